#!/usr/bin/env bash
# Ingest with the object store off, on a local directory (file://) and on S3 (SeaweedFS on loopback, from
# scripts/s3-local.sh), alternated in one run; the shipping lag sampled during each load; then the time of
# `tidelog restore` of the last S3 run's store (its events, checkpoints written at close included).
# Usage: scripts/object-store-bench.sh [events] [rounds] [ship-interval-ms]   (defaults 1000000 2 1000)
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-1000000}
rounds=${2:-2}
interval=${3:-1000}
cargo build --release -q
work=$(mktemp -d -p "$PWD/target")
trap 'bash scripts/s3-local.sh stop "$work/s3" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
while IFS= read -r line; do
  case $line in AWS_*) export "${line?}" ;; esac
done < <(bash scripts/s3-local.sh start "$work/s3")
load() { # name, store args...
  local dir=$work/data-$1
  rm -rf "$dir"
  target/release/tidelog --data-dir "$dir" --shards 2 --ship-interval-ms "$interval" "${@:2}" \
    load --events "$events" --batch-size 1000 --tasks 4 2>&1 | grep -E "events/s|object store" | sed 's/^ *//'
}
echo "$events events, batches of 1000, 4 callers, 2 shards, FSYNC_INTERVAL=100, ship interval $interval ms, $(nproc) cores"
# The order rotates each round, with a pause between runs: SeaweedFS keeps working a little after uploads.
kinds=(off file s3)
for r in $(seq "$rounds"); do
  echo "round $r"
  for i in 0 1 2; do
    sleep 2
    case ${kinds[$(( (i + r - 1) % 3 ))]} in
      off) echo "  off:"; load off | sed 's/^/    /' ;;
      file) echo "  file://:"; load file --object-store "file://$work/remote-$r" | sed 's/^/    /' ;;
      s3) echo "  s3:// (SeaweedFS on loopback):"; load s3 --object-store "s3://tidelog/bench-$r" | sed 's/^/    /' ;;
    esac
  done
done
started=$(date +%s.%N)
target/release/tidelog --data-dir "$work/restored" restore --from "s3://tidelog/bench-$rounds" | grep -E "downloaded|restored "
echo "restore (download, then recovery of the directory) took $(echo "$(date +%s.%N) - $started" | bc) s"
