#!/usr/bin/env bash
# Profiles a workload and writes a flamegraph: perf/record.sh [batch|single|durable]
# Output: target/perf/<workload>.svg (open it in a browser) and target/perf/<workload>.perf.data.
# Installs linux-perf (Debian) and inferno (crates.io) when missing. Where perf is not permitted it falls
# back to valgrind --tool=callgrind (instruction counts, not time) and says so.
set -euo pipefail
cd "$(dirname "$0")/.."
source perf/workload.sh
name=${1:-batch}
out=target/perf
mkdir -p "$out"
cargo build --release -q
dir=$(mktemp -d -p target)
trap 'rm -rf "$dir"' EXIT
cmd=$(workload_cmd "$name" "$dir")
command -v perf >/dev/null || { apt-get update -qq && apt-get install -y -qq linux-perf; }
if perf stat -e instructions true >/dev/null 2>&1; then
  command -v inferno-collapse-perf >/dev/null || cargo install -q inferno
  perf record --call-graph dwarf,16384 -F 999 -o "$out/$name.perf.data" -- $cmd
  perf script -i "$out/$name.perf.data" 2>/dev/null | inferno-collapse-perf | inferno-flamegraph > "$out/$name.svg"
  echo "flamegraph: $out/$name.svg"
  perf report -i "$out/$name.perf.data" --no-children --percent-limit 2 --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -25
else
  echo "perf is not permitted here: falling back to valgrind --tool=callgrind (instruction counts)"
  command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind; }
  valgrind --tool=callgrind --callgrind-out-file="$out/$name.callgrind" $cmd
  callgrind_annotate "$out/$name.callgrind" | head -40
fi
