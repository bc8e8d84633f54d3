#!/usr/bin/env bash
# Durability with real crashes: for each round, start `tidelog serve` on a fresh data directory, drive
# concurrent HTTP appends (recording every 200), SIGKILL the server at a random moment, restart it and
# check that every acknowledged event is there exactly once with its version. FSYNC_INTERVAL=0 first, then
# FSYNC_INTERVAL=100 (a killed process loses nothing acknowledged in either mode; only a power cut may lose
# the last interval of the second). Usage: scripts/durability.sh [rounds per mode, default 20]
set -uo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-20}
cargo build --release -q || exit 1
bin=target/release/tidelog
port=39271
addr=127.0.0.1:$port
passed=0
failed=0

wait_healthy() {
  for _ in $(seq 100); do curl -sf "http://$addr/health" >/dev/null && return 0; sleep 0.1; done
  return 1
}

for fsync in 0 100; do
  for round in $(seq "$rounds"); do
    dir=$(mktemp -d)
    acks="$dir/acks.txt"
    FSYNC_INTERVAL=$fsync $bin --data-dir "$dir/data" serve --listen "$addr" 2>"$dir/serve.log" &
    server=$!
    wait_healthy || { echo "round $round: server did not start"; failed=$((failed + 1)); kill -9 $server; continue; }
    python3 scripts/durability_client.py load "$addr" "$acks" 16 &
    client=$!
    sleep "$(awk -v r=$RANDOM 'BEGIN { print (300 + r % 1200) / 1000 }')"  # 0.3 to 1.5 s
    kill -9 $server
    wait $server 2>/dev/null
    wait $client 2>/dev/null
    FSYNC_INTERVAL=$fsync $bin --data-dir "$dir/data" serve --listen "$addr" 2>>"$dir/serve.log" &
    server=$!
    if wait_healthy && python3 scripts/durability_client.py verify "$addr" "$acks"; then
      echo "FSYNC_INTERVAL=$fsync round $round: ok"
      passed=$((passed + 1))
    else
      echo "FSYNC_INTERVAL=$fsync round $round: FAILED (data kept in $dir)"
      failed=$((failed + 1))
    fi
    kill -TERM $server
    wait $server 2>/dev/null
    [ "$failed" -eq 0 ] && rm -rf "$dir"
  done
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
