#!/usr/bin/env bash
# Hunts for lost cross-thread wakeups: runs many short loads of different shapes (one caller on a thread,
# one caller on a shard's executor, 64 and 1,024 concurrent callers, a pipelining caller; FSYNC_INTERVAL 0
# and 100) and counts any run that takes far longer than it should. A stalled run's threads are dumped
# with gdb (when installed) before it is killed, so the stall can be read, not guessed.
#
#   scripts/stall-hunt.sh [rounds] [limit_s]     (defaults: 20 rounds, 60 s per run)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-20}
limit_s=${2:-60}
cargo build --release --quiet
bin=target/release/tidelog
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
shapes=(
  "--tasks 1 --events 20000"
  "--tasks 1 --events 20000 --on-shard 1"
  "--tasks 64 --events 100000"
  "--tasks 1024 --events 100000"
  "--pipeline 2048 --events 200000"
)
runs=0 stalls=0
for round in $(seq 1 "$rounds"); do
  for fsync in 0 100; do
    for shape in "${shapes[@]}"; do
      dir="$work/r$round"
      rm -rf "$dir"
      # shellcheck disable=SC2086
      "$bin" --data-dir "$dir" --shards 2 --fsync-interval-ms "$fsync" load $shape >"$work/out" 2>&1 &
      pid=$!
      waited=0
      while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt $((limit_s * 10)) ]; do
        sleep 0.1
        waited=$((waited + 1))
      done
      runs=$((runs + 1))
      if kill -0 "$pid" 2>/dev/null; then
        stalls=$((stalls + 1))
        echo "STALL: round $round, FSYNC_INTERVAL=$fsync, load $shape: still running after ${limit_s} s"
        if command -v gdb >/dev/null; then
          gdb -p "$pid" -batch -ex "thread apply all bt" >"$work/stall-$stalls.txt" 2>&1 || true
          cp "$work/stall-$stalls.txt" "target/stall-$stalls.txt"
          echo "  threads dumped to target/stall-$stalls.txt"
        fi
        kill -9 "$pid" 2>/dev/null || true
      fi
      wait "$pid" 2>/dev/null || true
    done
  done
  echo "round $round: $runs runs, $stalls stalls"
done
echo "$((runs - stalls)) passed, $stalls failed"
[ "$stalls" -eq 0 ]
