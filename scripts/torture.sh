#!/usr/bin/env bash
# Corrupts a WAL on purpose and shows what `tidelog inspect` and recovery report: a torn tail, a zero tail,
# a flipped bit in the middle of a segment, and a deleted segment. Each case starts from a fresh copy of the
# same 1-shard store (20,000 events in 1 MiB segments, no checkpoints, so the WAL holds everything). Then a
# damaged Parquet checkpoint. Usage: scripts/torture.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q
tidelog=$PWD/target/release/tidelog
bin="$tidelog --no-checkpoints"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
$bin --data-dir "$work/pristine" --shards 1 --segment-size-mib 1 load --events 20000 --tasks 16 2>/dev/null

fresh() { rm -rf "$work/case"; cp -r "$work/pristine" "$work/case"; ls "$work/case/shard-0/wal/"*.log | sort; }
show() {
  echo "--- inspect"; $bin inspect "$work/case" | sed 's/^/    /' || true
  echo "--- recovery (opening the store)"; $bin --data-dir "$work/case" recover | sed 's/^/    /'
  echo "--- inspect after recovery"; $bin inspect "$work/case" | tail -n +3 | sed 's/^/    /' || true
  echo
}
# Python edits bytes in place: python3 - FILE OFFSET MODE
poke() {
  python3 - "$@" <<'PY'
import sys
path, mode = sys.argv[1], sys.argv[2]
data = bytearray(open(path, "rb").read())
end = max(i for i, b in enumerate(data) if b) + 1      # last byte of the log
if mode == "torn":                                     # the last record loses its second half
    for i in range(end - 120, end): data[i] = 0
elif mode == "flip":                                   # one bit in the middle of the segment's records
    data[end // 2] ^= 0x10
open(path, "wb").write(data)
PY
}

echo "== 1. clean store (zero-padded tails are the normal end of log)"
fresh >/dev/null; show

echo "== 2. torn tail: the last record's second half never reached the disk"
last=$(fresh | tail -1); poke "$last" torn; show

echo "== 3. a flipped bit in the middle of the first segment"
first=$(fresh | head -1); poke "$first" flip; show
echo "--- the same with --strict-recovery"
$bin --data-dir "$work/case" --strict-recovery recover 2>&1 | sed 's/^/    /' || true
echo

echo "== 4. a deleted segment in the middle of the log"
middle=$(fresh | sed -n 2p); rm "$middle"; show

echo "== 5. a damaged Parquet checkpoint whose events are no longer in the WAL"
rm -rf "$work/case"
$tidelog --data-dir "$work/case" --shards 1 --segment-size-mib 1 --checkpoint-events 8000 load --events 20000 --tasks 16 2>/dev/null
ls "$work/case/shard-0/checkpoints" "$work/case/shard-0/wal" | sed 's/^/    /'
checkpoint=$(ls "$work/case/shard-0/checkpoints/"*.parquet | head -1)
python3 -c "import sys; p=sys.argv[1]; d=bytearray(open(p,'rb').read()); d[len(d)//2]^=1; open(p,'wb').write(d)" "$checkpoint"
echo "--- inspect"; $tidelog inspect "$work/case" | sed 's/^/    /' || true
echo "--- opening refuses, and says what to do"; $tidelog --data-dir "$work/case" recover 2>&1 | sed 's/^/    /' || true
echo "--- the operator chooses --checkpoint-damage set-aside"
$tidelog --data-dir "$work/case" --checkpoint-damage set-aside recover 2>&1 | sed 's/^/    /'
ls "$work/case/shard-0/checkpoints/set-aside" | sed 's/^/    set aside: /'
