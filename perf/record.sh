#!/usr/bin/env bash
# Profiles a workload and writes a flamegraph: perf/record.sh [batch|single|durable|seed]
# Output: target/perf/<workload>.svg (open it in a browser) and target/perf/<workload>.perf.data.
# Installs linux-perf (Debian) and inferno (crates.io) when missing. Where perf is not permitted it falls
# back to valgrind --tool=callgrind (instruction counts, not time) and says so.
set -euo pipefail
cd "$(dirname "$0")/.."
source perf/workload.sh
name=${1:-batch}
# TIDELOG_LABEL names the output (default: the workload), e.g. seed-before / seed-after.
label=${TIDELOG_LABEL:-$name}
out=target/perf
mkdir -p "$out"
[ -n "${TIDELOG_BIN:-}" ] || cargo build --release -q
dir=$(mktemp -d -p target)
trap 'rm -rf "$dir"' EXIT
cmd=$(workload_cmd "$name" "$dir")
command -v perf >/dev/null || { apt-get update -qq && apt-get install -y -qq linux-perf; }
if perf stat -e instructions true >/dev/null 2>&1; then
  command -v inferno-collapse-perf >/dev/null || cargo install -q inferno
  perf record --call-graph dwarf,16384 -F 999 -o "$out/$label.perf.data" -- $cmd
  perf script -i "$out/$label.perf.data" 2>/dev/null | inferno-collapse-perf > "$out/$label.folded"
  inferno-flamegraph < "$out/$label.folded" > "$out/$label.svg"
  echo "flamegraph: $out/$label.svg (folded stacks: $out/$label.folded)"
  perf report -i "$out/$label.perf.data" --no-children --sort comm --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -8
  perf report -i "$out/$label.perf.data" --no-children --percent-limit 2 --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -25
else
  echo "perf is not permitted here: falling back to valgrind --tool=callgrind (instruction counts)"
  command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind; }
  valgrind --tool=callgrind --callgrind-out-file="$out/$label.callgrind" $cmd
  callgrind_annotate "$out/$label.callgrind" | head -40
fi
