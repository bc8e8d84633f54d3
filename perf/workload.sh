#!/usr/bin/env bash
# Shared by perf/record.sh and perf/stat.sh: prints the tidelog command line of a named workload.
# Workloads: batch (1M events in batches of 1,000, FSYNC_INTERVAL=100), single (200k single-event appends from
# 256 tasks), durable (the same with FSYNC_INTERVAL=0), seed (50k single-event appends from one caller, each
# awaited, FSYNC_INTERVAL=100: one event's whole round trip). Each runs on a fresh data directory given as $1.
# TIDELOG_BIN profiles another build (for example an older commit's) instead of target/release/tidelog.
workload_cmd() {
  local name=$1 dir=$2 bin=${TIDELOG_BIN:-target/release/tidelog}
  case "$name" in
    seed) echo "$bin --data-dir $dir --fsync-interval-ms 100 load --events 50000 --tasks 1" ;;
    batch) echo "$bin --data-dir $dir --fsync-interval-ms 100 load --events 1000000 --batch-size 1000 --tasks 4" ;;
    single) echo "$bin --data-dir $dir --fsync-interval-ms 100 load --events 200000 --tasks 256" ;;
    durable) echo "$bin --data-dir $dir --fsync-interval-ms 0 load --events 200000 --tasks 256" ;;
    *) echo "unknown workload $name (batch, single, durable, seed)" >&2; return 1 ;;
  esac
}
