#!/usr/bin/env python3
"""Counts the events per tenant in tidelog's Delta Lake table with Python deltalake and with DuckDB.

Run by scripts/delta-readers.sh (which makes the venv):
    delta_read.py TABLE_URL [--expect FILE] [--expect-rows N]
Prints {"deltalake": {tenant: n}, "duckdb": {tenant: n}, "rows": n, "duplicates": n}; exits 1 if the readers
differ, if an event is there twice, or if the counts differ from FILE's {tenant: n} or from N.
"""

import argparse
import glob
import json
import os
import sys
from urllib.parse import urlparse

import deltalake
import duckdb
import duckdb_ext


def storage_options():
    """The AWS_* variables tidelog reads, as delta-rs options (it reads the same names)."""
    keys = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_ENDPOINT_URL", "AWS_ALLOW_HTTP"]
    return {k: os.environ[k] for k in keys if k in os.environ}


def with_deltalake(url):
    table = deltalake.DeltaTable(url, storage_options=storage_options())
    result = deltalake.QueryBuilder().register("events", table).execute(
        "SELECT tenant_id, count(*) AS n FROM events GROUP BY tenant_id"
    )
    answer = result.read_all()
    counts = dict(zip(answer.column("tenant_id").to_pylist(), answer.column("n").to_pylist()))
    return counts, table.version()


def extension_file(name):
    root = os.path.dirname(duckdb_ext.__path__[0] if hasattr(duckdb_ext, "__path__") else duckdb_ext.__file__)
    found = glob.glob(os.path.join(root, "duckdb_ext", "extensions", "*", "*", f"{name}.duckdb_extension"))
    if not found:
        sys.exit(f"no {name}.duckdb_extension under {root}")
    return found[0]


def with_duckdb(url):
    con = duckdb.connect()
    con.execute(f"LOAD '{extension_file('httpfs')}'")
    con.execute(f"LOAD '{extension_file('delta')}'")
    if url.startswith("s3://"):
        endpoint = urlparse(os.environ.get("AWS_ENDPOINT_URL", "https://s3.amazonaws.com"))
        con.execute(
            "CREATE SECRET tidelog (TYPE S3, KEY_ID ?, SECRET ?, REGION ?, ENDPOINT ?, URL_STYLE 'path', USE_SSL ?)",
            [
                os.environ.get("AWS_ACCESS_KEY_ID", ""),
                os.environ.get("AWS_SECRET_ACCESS_KEY", ""),
                os.environ.get("AWS_REGION", "us-east-1"),
                endpoint.netloc,
                endpoint.scheme == "https",
            ],
        )
    location = urlparse(url).path if url.startswith("file://") else url
    rows = con.execute(
        "SELECT tenant_id, count(*) FROM delta_scan(?) GROUP BY tenant_id", [location]
    ).fetchall()
    # An event is in the table once: its id (unique in its tenant) appears once.
    (duplicates,) = con.execute(
        "SELECT count(*) - count(DISTINCT (tenant_id, id)) FROM delta_scan(?)", [location]
    ).fetchone()
    return {t: n for t, n in rows}, duplicates


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--expect")
    parser.add_argument("--expect-rows", type=int)
    args = parser.parse_args()
    by_deltalake, version = with_deltalake(args.url)
    by_duckdb, duplicates = with_duckdb(args.url)
    rows = sum(by_deltalake.values())
    print(json.dumps({"deltalake": by_deltalake, "duckdb": by_duckdb, "rows": rows, "duplicates": duplicates, "table_version": version}, sort_keys=True))
    if by_deltalake != by_duckdb:
        sys.exit("the readers differ")
    if duplicates:
        sys.exit(f"{duplicates} events are in the table more than once")
    if args.expect_rows is not None and rows != args.expect_rows:
        sys.exit(f"the table holds {rows} events, {args.expect_rows} expected")
    if args.expect:
        with open(args.expect) as f:
            expected = json.load(f)
        if expected != by_deltalake:
            missing = {t: (expected.get(t), by_deltalake.get(t)) for t in set(expected) | set(by_deltalake) if expected.get(t) != by_deltalake.get(t)}
            sys.exit(f"the table differs from the acknowledged events (tenant: (acknowledged, in the table)): {missing}")


if __name__ == "__main__":
    main()
