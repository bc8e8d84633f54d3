#!/usr/bin/env bash
# Reads tidelog's Delta Lake table with two readers that share no code with tidelog: Python `deltalake`
# (delta-rs) and DuckDB (`delta_scan`, with the delta and httpfs extensions loaded from the files of the
# PyPI packages duckdb-ext-delta and duckdb-ext-httpfs). Prints, as JSON, the events per tenant each
# reader counts, and exits 1 if they differ, if an event is in the table twice, or if the counts differ
# from --expect FILE (a JSON {tenant: count}) or --expect-rows N.
# The readers come from PyPI into target/delta-venv on first use.
#
#   scripts/delta-readers.sh TABLE_URL [--expect FILE] [--expect-rows N]
#
# TABLE_URL: s3://BUCKET/PATH (credentials and endpoint from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
# AWS_REGION, AWS_ENDPOINT_URL, AWS_ALLOW_HTTP, as tidelog reads them) or file:///DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/delta-venv
# The extension packages are built for one DuckDB release: the pins move together.
mkdir -p target
exec 9>target/delta-venv.lock
flock 9  # one install at a time (tests run in parallel)
if ! "$venv/bin/python" -c 'import deltalake, duckdb, duckdb_ext' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    'deltalake==1.6.6' 'duckdb==1.4.4' 'duckdb-ext-delta==1.4.4.20260205' 'duckdb-ext-httpfs==1.4.4.20260205' >&2
fi
flock -u 9
exec "$venv/bin/python" scripts/delta_read.py "$@"
