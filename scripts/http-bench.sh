#!/usr/bin/env bash
# HTTP ingest over loopback with wrk, for FSYNC_INTERVAL 100 and 0, on one server each: GET /health (the route
# with no storage work: the HTTP layer's ceiling, same connections), single-event POSTs, and NDJSON batches of
# 1,000 (8 connections). wrk runs on the same two cores as the server.
# Usage: scripts/http-bench.sh [seconds-per-run] [connections]. Installs wrk from Debian's packages if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
conns=${2:-64}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
cargo build --release -q
port=39171
for fsync in 100 0; do
  dir=$(mktemp -d)
  FSYNC_INTERVAL=$fsync target/release/tidelog --data-dir "$dir" serve --listen 127.0.0.1:$port 2>/dev/null &
  pid=$!
  for _ in $(seq 50); do curl -sf localhost:$port/health >/dev/null && break; sleep 0.1; done
  echo "FSYNC_INTERVAL=$fsync, $(nproc) cores, wrk -t2 -c$conns -d${secs}s"
  printf '  GET /health (no storage work): '; wrk -t2 -c"$conns" -d"${secs}s" -s scripts/wrk/health.lua "http://127.0.0.1:$port" | tail -1
  printf '  single events: '; wrk -t2 -c"$conns" -d"${secs}s" -s scripts/wrk/single.lua "http://127.0.0.1:$port" | tail -1
  printf '  batches of 1000: '; wrk -t2 -c8 -d"${secs}s" -s scripts/wrk/batch.lua "http://127.0.0.1:$port" | tail -1
  kill -TERM $pid; wait $pid
  rm -rf "$dir"
done
