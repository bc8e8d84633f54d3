#!/usr/bin/env bash
# Counts cycles, instructions, cache misses and context switches of a workload: perf/stat.sh [batch|single|durable|seed]
set -euo pipefail
cd "$(dirname "$0")/.."
source perf/workload.sh
name=${1:-batch}
[ -n "${TIDELOG_BIN:-}" ] || cargo build --release -q
dir=$(mktemp -d -p target)
trap 'rm -rf "$dir"' EXIT
command -v perf >/dev/null || { apt-get update -qq && apt-get install -y -qq linux-perf; }
if perf stat -e instructions true >/dev/null 2>&1; then
  if perf stat -e instructions true 2>&1 | grep -q "not supported"; then
    echo "note: this machine exposes no hardware counters (a VM): cycles/instructions/cache lines will read <not supported>;"
    echo "      context switches, migrations, page faults and task-clock are still counted."
  fi
  perf stat -e task-clock,cycles,instructions,cache-references,cache-misses,context-switches,cpu-migrations,page-faults -- $(workload_cmd "$name" "$dir")
else
  echo "perf is not permitted here: use perf/record.sh, which falls back to callgrind"
  exit 1
fi
