#!/usr/bin/env python3
"""Checks with pyarrow that `tidelog export --format parquet` writes a Hive-partitioned dataset that
pyarrow reads as one table with the right rows, columns and types, that --tenant/--since/--until export
the right subsets, and that the store's own checkpoint files read back as the manifest says.

Run by scripts/parquet-export-check.sh (which builds tidelog and makes the venv with pyarrow):
    parquet_export_check.py --bin target/release/tidelog --work DIR
Prints PASS/FAIL lines and `N passed, N failed`; exits 1 on any failure.
"""

import argparse
import collections
import datetime as dt
import json
import os
import random
import subprocess
import sys
import uuid
import zlib

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

UTC = dt.timezone.utc
RESULTS = {"passed": 0, "failed": 0}


def check(ok, what, detail=""):
    RESULTS["passed" if ok else "failed"] += 1
    print(f"{'PASS' if ok else 'FAIL'}: {what}" + (f" ({detail})" if detail else ""), flush=True)
    return ok


def us(t):
    """Microseconds since the epoch of an aware datetime, exactly (no float rounding)."""
    delta = t - dt.datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def rfc3339(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# Rows per (tenant, date): uneven on purpose, so a partition mixed up with another shows in the counts.
PLAN = {
    ("acme", "2024-05-01"): 300,
    ("acme", "2024-05-02"): 120,
    ("acme", "2024-05-03"): 7,
    ("globex", "2024-05-01"): 50,
    ("globex", "2024-05-03"): 400,
    ("initech", "2024-05-02"): 1,
}
BOUNDARY = dt.datetime(2024, 5, 2, tzinfo=UTC)  # --since is inclusive, --until exclusive here


def make_events():
    rng = random.Random(20240501)
    events = []
    for (tenant, date), n in PLAN.items():
        day = dt.datetime.fromisoformat(date).replace(tzinfo=UTC)
        for i in range(n):
            ts = day + dt.timedelta(microseconds=rng.randrange(86_400 * 1_000_000))
            events.append({
                "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "tenant_id": tenant,
                "entity_id": f"{tenant}-entity-{rng.randrange(12)}",
                "event_type": rng.choice(["order.created", "order.paid", "user.seen"]),
                "timestamp": ts,
                "payload": {"n": i, "note": "naïve café ☕", "amount": rng.randrange(10_000) / 100},
                "metadata": {"source": "check"} if i % 3 == 0 else None,
            })
    # Events on the exact edges of the BOUNDARY instant and of a day.
    edge = [("acme", BOUNDARY), ("acme", BOUNDARY - dt.timedelta(microseconds=1)), ("globex", BOUNDARY)]
    for k, (tenant, ts) in enumerate(edge):
        events.append({
            "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "tenant_id": tenant, "entity_id": f"{tenant}-edge", "event_type": "edge", "timestamp": ts,
            "payload": {"edge": k}, "metadata": None,
        })
    rng.shuffle(events)
    return events


def ndjson(events):
    lines = []
    for e in events:
        o = {k: e[k] for k in ("id", "tenant_id", "entity_id", "event_type", "payload")}
        o["timestamp"] = rfc3339(e["timestamp"])
        if e["metadata"] is not None:
            o["metadata"] = e["metadata"]
        lines.append(json.dumps(o, ensure_ascii=False))
    return ("\n".join(lines) + "\n").encode()


class Tidelog:
    def __init__(self, binary, data_dir):
        self.binary, self.data_dir = binary, data_dir

    def run(self, *args, stdin=None, ok=True):
        cmd = [self.binary, "--data-dir", self.data_dir, "--shards", "2", *args]
        p = subprocess.run(cmd, input=stdin, capture_output=True)
        if ok and p.returncode != 0:
            raise SystemExit(f"FAIL: {' '.join(cmd)} exited {p.returncode}: {p.stderr.decode()}")
        return p


def read_dataset(path):
    if not os.path.isdir(path) or not any(fs for _, _, fs in os.walk(path)):
        # Nothing exported: an empty table with the columns the checks look at.
        return pa.table({"id": pa.array([], pa.binary(16)), "tenant_id": pa.array([], pa.string()),
                         "date": pa.array([], pa.string())})
    return ds.dataset(path, format="parquet", partitioning="hive").to_table()


def as_str(column):
    return [str(v) for v in column.to_pylist()]


def expected_subset(events, tenant=None, since=None, until=None):
    return [e for e in events
            if (tenant is None or e["tenant_id"] == tenant)
            and (since is None or e["timestamp"] >= since)
            and (until is None or e["timestamp"] < until)]


def counts_by(events):
    return collections.Counter((e["tenant_id"], e["timestamp"].strftime("%Y-%m-%d")) for e in events)


def table_counts(table):
    return collections.Counter(zip(as_str(table["tenant_id"]), as_str(table["date"])))


def check_full_export(out, events):
    table = read_dataset(out)
    schema = table.schema
    print(f"       dataset schema: {', '.join(f'{f.name}: {f.type}' for f in schema)}")
    check(table.num_rows == len(events), "total rows equal the events ingested", f"{table.num_rows} vs {len(events)}")
    per_tenant = collections.Counter(as_str(table["tenant_id"]))
    want_tenant = collections.Counter(e["tenant_id"] for e in events)
    check(per_tenant == want_tenant, "rows per tenant", dict(per_tenant))
    per_date = collections.Counter(as_str(table["date"]))
    want_date = collections.Counter(e["timestamp"].strftime("%Y-%m-%d") for e in events)
    check(per_date == want_date, "rows per date", dict(per_date))
    check(table_counts(table) == counts_by(events), "rows per (tenant, date) partition")

    # Column types.
    def typed(name, pred, want):
        present = name in schema.names
        t = schema.field(name).type if present else None
        return check(present and pred(t), f"column {name} is {want}", str(t))

    is_str = lambda t: pa.types.is_string(t) or pa.types.is_large_string(t) or (
        pa.types.is_dictionary(t) and pa.types.is_string(t.value_type))
    typed("position", pa.types.is_uint64, "uint64")
    typed("id", lambda t: pa.types.is_fixed_size_binary(t) and t.byte_width == 16, "fixed_size_binary[16]")
    typed("entity_id", is_str, "a string (or dictionary of strings)")
    typed("event_type", is_str, "a string (or dictionary of strings)")
    typed("timestamp", lambda t: pa.types.is_timestamp(t) and t.unit == "us" and t.tz in ("UTC", "+00:00", "Etc/UTC"),
          "timestamp[us, tz=UTC]")
    typed("version", pa.types.is_uint64, "uint64")
    typed("payload", is_str, "a string")
    typed("metadata", is_str, "a string")
    check("tenant_id" in schema.names and "date" in schema.names, "partition columns tenant_id and date are present")
    files = sorted(os.path.relpath(os.path.join(d, f), out) for d, _, fs in os.walk(out) for f in fs)
    want_files = sorted(f"tenant_id={t}/date={d}/part-00000.parquet" for t, d in counts_by(events))
    check(files == want_files, "one file per (tenant, date), Hive layout", f"{len(files)} files")
    file_schema = pq.read_schema(os.path.join(out, files[0]))
    check("tenant_id" not in file_schema.names, "the files themselves have no tenant_id column (it is the partition)")

    # Content: ids, timestamps, payloads, metadata and versions are the ones ingested.
    by_id = {uuid.UUID(e["id"]).bytes: e for e in events}
    ids = table["id"].to_pylist()
    check(len(set(ids)) == len(ids) == len(events) and set(ids) == set(by_id), "every ingested id exactly once")
    mismatches = 0
    versions = collections.defaultdict(list)
    rows = table.select(["id", "entity_id", "event_type", "timestamp", "payload", "metadata", "version", "tenant_id"]).to_pylist()
    for row in rows:
        e = by_id.get(row["id"])
        if e is None:
            mismatches += 1
            continue
        got_ts = row["timestamp"]
        same = (row["tenant_id"] == e["tenant_id"] and row["entity_id"] == e["entity_id"]
                and row["event_type"] == e["event_type"] and us(got_ts) == us(e["timestamp"])
                and json.loads(row["payload"]) == e["payload"]
                and (json.loads(row["metadata"]) if row["metadata"] is not None else None) == e["metadata"])
        mismatches += not same
        versions[(row["tenant_id"], row["entity_id"])].append(row["version"])
    check(mismatches == 0, "every row's tenant, entity, type, timestamp (to the µs), payload and metadata match", f"{mismatches} mismatches")
    dense = all(sorted(v) == list(range(1, len(v) + 1)) for v in versions.values())
    check(dense, "versions of each entity are 1..n", f"{len(versions)} entities")
    # Rows within a file are in timestamp order.
    ordered = True
    for f in files:
        ts = pq.read_table(os.path.join(out, f), columns=["timestamp"])["timestamp"]
        ordered &= len(ts) < 2 or pc.all(pc.greater_equal(ts[1:], ts[:-1])).as_py()
    check(ordered, "rows within each file are in timestamp order")
    date_ok = all(r["timestamp"].strftime("%Y-%m-%d") == d for r, d in zip(rows, as_str(table["date"])))
    check(date_ok, "each row's date partition is its UTC timestamp's date")


def check_filtered(tl, work, name, events, tenant=None, since=None, until=None):
    out = os.path.join(work, f"export-{name}")
    args = ["export", "--format", "parquet", "--out", out]
    if tenant:
        args += ["--tenant", tenant]
    if since:
        args += ["--since", rfc3339(since)]
    if until:
        args += ["--until", rfc3339(until)]
    tl.run(*args)
    want = expected_subset(events, tenant, since, until)
    table = read_dataset(out)
    ids = set(table["id"].to_pylist())
    check(table.num_rows == len(want) and table_counts(table) == counts_by(want) and ids == {uuid.UUID(e["id"]).bytes for e in want},
          f"export {' '.join(args[5:])}: exactly the expected {len(want)} events", f"{table.num_rows} rows")
    return table


def check_checkpoints(data, events):
    all_ids = []
    total_manifest = 0
    for shard in (0, 1):
        cdir = os.path.join(data, f"shard-{shard}", "checkpoints")
        with open(os.path.join(cdir, "MANIFEST.json")) as f:
            manifest = json.load(f)
        entries = manifest["checkpoints"]
        on_disk = sorted(n for n in os.listdir(cdir) if n.endswith(".parquet"))
        check(sorted(e["file"] for e in entries) == on_disk and entries,
              f"shard-{shard}: the checkpoint files on disk are the ones MANIFEST.json names", ", ".join(on_disk))
        for entry in entries:
            path = os.path.join(cdir, entry["file"])
            raw = open(path, "rb").read()
            check(len(raw) == entry["size_bytes"] and zlib.crc32(raw) == entry["crc32"],
                  f"shard-{shard}/{entry['file']}: size and CRC-32 match the manifest", f"{len(raw)} bytes")
            table = pq.read_table(path)
            check(table.num_rows == entry["events"], f"shard-{shard}/{entry['file']}: pyarrow reads {table.num_rows} rows, the manifest says {entry['events']}")
            pos = table["position"].to_pylist()
            check(pos == sorted(pos) and pos[0] >= entry["first_position"] and pos[-1] <= entry["last_position"],
                  f"shard-{shard}/{entry['file']}: positions ascending within {entry['first_position']}..={entry['last_position']}")
            kv = {k.decode(): v.decode() for k, v in (pq.read_metadata(path).metadata or {}).items()}
            check("tenant_id" in table.schema.names and kv.get("tidelog.shard") == str(shard),
                  f"shard-{shard}/{entry['file']}: has the tenant_id column and tidelog.shard={shard} metadata")
            all_ids += table["id"].to_pylist()
            total_manifest += entry["events"]
    check(total_manifest == len(events) and len(all_ids) == len(set(all_ids)) == len(events)
          and set(all_ids) == {uuid.UUID(e["id"]).bytes for e in events},
          "after close, the checkpoints of both shards hold every ingested event exactly once", f"{total_manifest} events")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--work", required=True)
    a = ap.parse_args()
    print(f"pyarrow {pa.__version__}, python {sys.version.split()[0]}")
    data = os.path.join(a.work, "data")
    tl = Tidelog(a.bin, data)
    events = make_events()
    # Two ingests: each close writes a checkpoint, so each shard ends with more than one file.
    half = len(events) // 2
    for part in (events[:half], events[half:]):
        p = tl.run("ingest", "--batch-size", "100", stdin=ndjson(part))
        print(f"       {p.stderr.decode().strip()}")
    print(f"       ingested {len(events)} events: " + ", ".join(f"{t}/{d}={n}" for (t, d), n in sorted(counts_by(events).items())))

    out = os.path.join(a.work, "export-all")
    p = tl.run("export", "--format", "parquet", "--out", out)
    print(f"       {p.stderr.decode().strip()}")
    check_full_export(out, events)
    p = tl.run("export", "--format", "parquet", "--out", out, ok=False)
    check(p.returncode != 0, "export refuses a non-empty output directory", p.stderr.decode().strip())

    check_filtered(tl, a.work, "acme", events, tenant="acme")
    check_filtered(tl, a.work, "globex", events, tenant="globex")
    since = check_filtered(tl, a.work, "since", events, since=BOUNDARY)
    until = check_filtered(tl, a.work, "until", events, until=BOUNDARY)
    check(since.num_rows + until.num_rows == len(events)
          and not set(since["id"].to_pylist()) & set(until["id"].to_pylist()),
          "--since T and --until T split the events with no overlap (the event at exactly T is in --since)")
    check_filtered(tl, a.work, "globex-window", events, tenant="globex",
                   since=dt.datetime(2024, 5, 1, 12, tzinfo=UTC), until=dt.datetime(2024, 5, 3, 12, tzinfo=UTC))
    check_filtered(tl, a.work, "empty", events, tenant="nobody")

    check_checkpoints(data, events)
    print(f"{RESULTS['passed']} passed, {RESULTS['failed']} failed")
    return 1 if RESULTS["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
