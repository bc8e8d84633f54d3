#!/usr/bin/env bash
# Shows that pyarrow reads what `tidelog export --format parquet` writes: builds tidelog, ingests a known
# set of events (3 tenants, 3 dates, explicit timestamps) into a fresh data directory, exports it (all, and
# with --tenant/--since/--until), reads the Hive-partitioned dataset with pyarrow.dataset and checks rows,
# partitions, columns and types; then reads the store's own checkpoint files against MANIFEST.json.
# pyarrow comes from PyPI into a venv under target/. Prints PASS/FAIL lines; exits non-zero on a failure.
# Usage: scripts/parquet-export-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q
venv=target/parquet-check-venv
if ! "$venv/bin/python" -c 'import pyarrow' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check pyarrow
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0
"$venv/bin/python" scripts/parquet_export_check.py --bin target/release/tidelog --work "$work" || status=$?
if [ "$status" -eq 0 ]; then echo "PASS: parquet export check"; else echo "FAIL: parquet export check"; fi
exit "$status"
