#!/usr/bin/env python3
"""HTTP client for scripts/durability.sh (standard library only).

load ADDR FILE THREADS: concurrent POST /api/v1/events until killed; every 200 is appended to FILE as
    "event_id entity_id version" and flushed before the next request.
verify ADDR FILE: every recorded event must be found by id with its entity and version, and every entity's
    history must be versions 1..n, each once. Exits 1 on any failure.
"""
import http.client
import json
import sys
import threading


def request(conn, method, path, body=None):
    headers = {"Content-Type": "application/json"} if body is not None else {}
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    return response.status, response.read()


def load(addr, path, threads):
    host, port = addr.split(":")
    out = open(path, "a", buffering=1)
    lock = threading.Lock()

    def worker(t):
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        n = 0
        while True:
            entity = f"t{t}-e{n % 7}"
            body = json.dumps({"event_type": "tick", "entity_id": entity, "payload": {"n": n, "pad": "x" * 150}})
            try:
                status, data = request(conn, "POST", "/api/v1/events", body)
            except Exception:
                return  # the server is gone: what was not answered was not acknowledged
            if status == 200:
                ack = json.loads(data)
                with lock:
                    out.write(f"{ack['event_id']} {entity} {ack['version']}\n")
            n += 1

    workers = [threading.Thread(target=worker, args=(t,), daemon=True) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()


def verify(addr, path):
    host, port = addr.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    acked = [line.split() for line in open(path) if len(line.split()) == 3]
    failures = 0
    for event_id, entity, version in acked:
        status, data = request(conn, "GET", f"/api/v1/events/{event_id}")
        event = json.loads(data).get("event", {}) if status == 200 else {}
        if status != 200 or event.get("entity_id") != entity or str(event.get("version")) != version:
            failures += 1
            print(f"  lost or wrong: {event_id} {entity} v{version}: HTTP {status}", file=sys.stderr)
    for entity in sorted({e for _, e, _ in acked}):
        status, data = request(conn, "GET", f"/api/v1/events/query?entity_id={entity}&limit=10000")
        versions = [e["version"] for e in json.loads(data)["events"]]
        if versions != list(range(1, len(versions) + 1)):
            failures += 1
            print(f"  {entity}: versions {versions[:10]}... are not 1..n", file=sys.stderr)
    print(f"  {len(acked)} acknowledged events checked, {failures} failures")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    if sys.argv[1] == "load":
        load(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        verify(sys.argv[2], sys.argv[3])
