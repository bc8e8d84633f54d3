#!/usr/bin/env python3
"""tidelog's SQL beside DuckDB reading the same events exported as Parquet (issue #11's yardstick).

Run by scripts/sql-duckdb.sh (which builds tidelog and makes the venv with duckdb):
    sql_duckdb.py --bin target/release/tidelog --work DIR [--events N] [--runs K]

Starts `tidelog serve` on a fresh data directory, loads N events (1,000 entities, two event types,
payloads {"seq", "value", "host", "note"} like the benchmark's load generator) through the batch route,
asks the benchmark's five analytic questions K times each through POST /api/v1/sql, stops the server,
exports the store with `tidelog export --format parquet`, and asks DuckDB the same questions over the
exported files. Prints each question's median time on both and the ratio; checks the row counts agree.
tidelog's time is the server's own (its `Server-Timing` header: planning, execution and the JSON answer),
as DuckDB's is its in-process call; the HTTP round trip as this client saw it is printed beside it.
Exits 1 when an answer differs (not when tidelog is slower: the numbers are the output).
"""

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

import duckdb

HOUR_US = 3_600_000_000


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url, body, content_type="application/json"):
    return post_timed(url, body, content_type)[0]


def post_timed(url, body, content_type="application/json"):
    """The answer, and the server's time for it in seconds (Server-Timing `sql;dur=MS`), or None."""
    request = urllib.request.Request(url, data=body, headers={"content-type": content_type}, method="POST")
    with urllib.request.urlopen(request, timeout=600) as answer:
        timing = answer.headers.get("server-timing") or ""
        server_s = None
        for metric in timing.split(","):
            name, _, params = metric.strip().partition(";")
            if name == "sql" and params.startswith("dur="):
                server_s = float(params[4:]) / 1e3
        return json.loads(answer.read()), server_s


def questions(since_us, until_us):
    """(name, tidelog SQL, DuckDB SQL): the same questions as src/bench/workloads/analytics.rs."""
    def p95(host, value):
        return (f"SELECT host, min(v) AS p95 FROM (SELECT {host} AS host, {value} AS v, "
                f"cume_dist() OVER (PARTITION BY {host} ORDER BY {value}) AS cd FROM events) AS ranked "
                "WHERE cd >= 0.95 GROUP BY host")
    latest = ("SELECT entity_id, version, event_type, payload FROM (SELECT entity_id, version, event_type, payload, "
              "row_number() OVER (PARTITION BY entity_id ORDER BY version DESC) AS rn FROM events) AS ranked WHERE rn = 1")
    top = "SELECT entity_id, count(*) AS n FROM events GROUP BY entity_id ORDER BY n DESC, entity_id LIMIT 10"
    by_type = "SELECT event_type, count(*) AS n FROM events GROUP BY event_type"
    return [
        ("count by event_type", by_type, by_type),
        ("events per entity per hour, 10% of the span",
         "SELECT entity_id, date_trunc('hour', \"timestamp\") AS hour, count(*) AS n FROM events "
         f"WHERE \"timestamp\" >= to_timestamp_micros({since_us}) AND \"timestamp\" < to_timestamp_micros({until_us}) "
         "GROUP BY entity_id, date_trunc('hour', \"timestamp\")",
         "SELECT entity_id, date_trunc('hour', \"timestamp\") AS hour, count(*) AS n FROM events "
         f"WHERE \"timestamp\" >= make_timestamp({since_us}) AND \"timestamp\" < make_timestamp({until_us}) "
         "GROUP BY entity_id, date_trunc('hour', \"timestamp\")"),
        ("top 10 entities by count", top, top),
        ("latest event per entity", latest, latest),
        ("p95 of payload.value by payload.host",
         p95("json_get_str(payload, 'host')", "json_get_float(payload, 'value')"),
         p95("json_extract_string(payload, '$.host')", "CAST(json_extract(payload, '$.value') AS DOUBLE)")),
    ]


def timed(runs, f):
    times, rows = [], None
    for _ in range(runs):
        start = time.perf_counter()
        rows = f()
        times.append(time.perf_counter() - start)
    return statistics.median(times), rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    data = os.path.join(args.work, "data")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([args.bin, "--data-dir", data, "--shards", "2", "serve", "--listen", f"127.0.0.1:{port}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(f"{base}/health", timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        first_us = last_us = None
        batch = 1_000
        for start in range(0, args.events, batch):
            lines = []
            for seq in range(start, min(start + batch, args.events)):
                host = ((seq * 0x9E3779B97F4A7C15) & 0xFFFF_FFFF_FFFF_FFFF) >> 60
                payload = {"seq": seq, "value": seq * 2654435761 % 1000, "host": f"host-{host:02}", "note": "x" * 123}
                lines.append(json.dumps({"entity_id": f"entity-{seq % 1000}",
                                         "event_type": "metric.alert" if seq % 10 == 0 else "metric.sample",
                                         "payload": payload}))
            acks = post(f"{base}/api/v1/events/batch", ("\n".join(lines) + "\n").encode(), "application/x-ndjson")
            stamps = [e["timestamp"] for e in acks["events"]]
            first_us = first_us or stamps[0]
            last_us = stamps[-1]
        # The window: 10% of the span, from its middle; the acks' timestamps are RFC 3339, so ask the store.
        span = post(f"{base}/api/v1/sql", json.dumps({"query": "SELECT CAST(min(\"timestamp\") AS BIGINT) AS lo, "
                                                      "CAST(max(\"timestamp\") AS BIGINT) AS hi FROM events"}).encode())
        lo, hi = span["rows"][0]
        since_us = lo + (hi - lo) * 45 // 100
        until_us = since_us + (hi - lo) // 10
        qs = questions(since_us, until_us)
        ours = []
        for name, sql, _ in qs:
            server_times = []

            def ask():
                answer, server_s = post_timed(f"{base}/api/v1/sql", json.dumps({"query": sql}).encode())
                server_times.append(server_s)
                return answer["row_count"]
            round_trip_s, rows = timed(args.runs, ask)
            if None in server_times:
                raise SystemExit("the server sent no Server-Timing header")
            ours.append((statistics.median(server_times), round_trip_s, rows))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    export = os.path.join(args.work, "export")
    subprocess.run([args.bin, "--data-dir", data, "export", "--format", "parquet", "--out", export],
                   check=True, stdout=subprocess.DEVNULL)
    db = duckdb.connect()
    db.execute(f"CREATE VIEW events AS SELECT * FROM read_parquet('{export}/**/*.parquet', hive_partitioning = false)")
    failed = False
    print(f"{args.events} events, 2 shards, median of {args.runs} runs; duckdb {duckdb.__version__} over the exported Parquet")
    print(f"{'question':48} {'tidelog ms':>11} {'round trip ms':>14} {'duckdb ms':>10} {'tidelog/duckdb':>15}  rows")
    for (name, _, sql), (our_s, round_trip_s, our_rows) in zip(qs, ours):
        their_s, their_rows = timed(args.runs, lambda: len(db.execute(sql).fetchall()))
        same = their_rows == our_rows
        failed |= not same
        print(f"{name:48} {our_s * 1e3:11.1f} {round_trip_s * 1e3:14.1f} {their_s * 1e3:10.1f} {our_s / their_s:15.2f}  "
              f"{our_rows}{'' if same else f' (duckdb: {their_rows}) DIFFERENT'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
