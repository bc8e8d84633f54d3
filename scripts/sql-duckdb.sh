#!/usr/bin/env bash
# tidelog's SQL (POST /api/v1/sql) beside DuckDB reading the same events exported as Parquet: the five
# analytic questions of the benchmark, median times and ratios (see scripts/sql_duckdb.py). DuckDB comes
# from PyPI into a venv under target/.
# Usage: scripts/sql-duckdb.sh [--events N] [--runs K]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q
venv=target/sql-duckdb-venv
if ! "$venv/bin/python" -c 'import duckdb, pytz' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'duckdb==1.4.2' 'pytz==2025.2'
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$venv/bin/python" scripts/sql_duckdb.py --bin target/release/tidelog --work "$work" "$@"
