//! SQL over the events (feature `sql`): results against references computed here from the same events,
//! before and after a checkpoint and a restart (events split between Parquet and the WAL); tenant
//! isolation; read-only refusals; bad SQL; limits; the HTTP answer shapes; cancellation.
#![cfg(feature = "sql")]

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use common::block_on;
use serde_json::{json, Value};
use tidelog::config::SqlLimits;
use tidelog::server::{ApiKeys, HttpOptions, Server, ServerConfig};
use tidelog::sql::{output, QueryTask};
use tidelog::{AppendAck, NewEvent, Store};

/// The tests share the side runtime; the cancellation probe counts its tasks, so they take turns.
static SERIAL: Mutex<()> = Mutex::new(());

const HOUR_US: i64 = 3_600_000_000;
const START_US: i64 = 1_767_225_600_000_000; // 2026-01-01T00:00:00Z
const HOSTS: [&str; 3] = ["alpha", "beta", "gamma"];
const TYPES: [&str; 3] = ["http.request", "job.done", "user.login"];

/// One event as the reference sees it.
#[derive(Debug, Clone)]
struct Row {
    id: String,
    entity: String,
    event_type: String,
    ts_us: i64,
    version: u64,
    host: String,
    latency_ms: i64,
    has_metadata: bool,
}

fn open(dir: &Path) -> Store {
    // Checkpoints only when the test says; acknowledgements after fdatasync, so a halt loses nothing.
    Store::open(common::config(dir, 2, 0).checkpoint_events(0).checkpoint_interval_s(0)).expect("open store")
}

/// Appends `n` events of tenant `acme` (and as many of tenant `other`, which must never show), with
/// timestamps spread over hours; returns acme's rows.
fn append(store: &Store, from: u64, n: u64, versions: &mut BTreeMap<String, u64>) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut batch = Vec::new();
    let mut expected = Vec::new();
    for i in from..from + n {
        let entity = format!("e{}", i % 17);
        let event_type = TYPES[(i % 3) as usize];
        let host = HOSTS[(i * 7 % 3) as usize];
        let latency_ms = (i * 37 % 1000) as i64;
        let ts_us = START_US + (i as i64) * 97_000_000 + (i as i64 % 5);
        let payload = json!({"host": host, "latency_ms": latency_ms, "i": i});
        let mut event = NewEvent::new(&entity, event_type, &payload).with_tenant("acme").with_timestamp_us(ts_us);
        if i % 4 == 0 {
            event = event.with_metadata(&json!({"source": "test"}));
        }
        batch.push(event);
        batch.push(NewEvent::new(&entity, event_type, &json!({"host": "secret", "latency_ms": 1_000_000})).with_tenant("other").with_timestamp_us(ts_us));
        let version = versions.entry(entity.clone()).or_default();
        *version += 1;
        expected.push(Row { id: String::new(), entity, event_type: event_type.into(), ts_us, version: *version, host: host.into(), latency_ms, has_metadata: i % 4 == 0 });
    }
    let acks: Vec<AppendAck> = block_on(store.append_batch(batch)).expect("append");
    for (row, ack) in expected.into_iter().zip(acks.iter().step_by(2)) {
        assert_eq!(ack.version, row.version);
        rows.push(Row { id: ack.id.to_string(), ..row });
    }
    rows
}

fn run(store: &Store, tenant: &str, sql: &str, limits: SqlLimits) -> Result<(arrow::datatypes::SchemaRef, Vec<RecordBatch>), tidelog::sql::SqlError> {
    let (store, tenant, sql) = (store.clone(), tenant.to_string(), sql.to_string());
    block_on(QueryTask::spawn(async move { tidelog::sql::collect(&store, &tenant, &sql, &limits, limits.max_json_rows).await }))?
}

/// The answer's rows as JSON arrays (the HTTP answer's conversion), for tenant `acme`.
fn rows(store: &Store, sql: &str) -> Vec<Value> {
    rows_of(store, "acme", sql)
}

fn rows_of(store: &Store, tenant: &str, sql: &str) -> Vec<Value> {
    let (schema, batches) = run(store, tenant, sql, SqlLimits::default()).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let answer = output::answer_json(&schema, &batches).unwrap();
    answer["rows"].as_array().unwrap().clone()
}

fn count(store: &Store, sql: &str) -> u64 {
    rows(store, sql)[0][0].as_u64().unwrap_or_else(|| panic!("{sql}: not a count"))
}

fn rfc3339(us: i64) -> String {
    tidelog::time::format_rfc3339_us(us)
}

/// Every query family against its reference.
fn check(store: &Store, all: &[Row]) {
    assert_eq!(count(store, "SELECT count(*) FROM events"), all.len() as u64);

    // Columns and types.
    let (schema, _) = run(store, "acme", "SELECT * FROM events LIMIT 1", SqlLimits::default()).unwrap();
    let columns = output::columns_json(&schema);
    let expected = json!([
        {"name": "position", "type": "UInt64"}, {"name": "id", "type": "Utf8"}, {"name": "tenant_id", "type": "Utf8"},
        {"name": "entity_id", "type": "Utf8"}, {"name": "event_type", "type": "Utf8"},
        {"name": "timestamp", "type": "Timestamp(µs, \"UTC\")"}, {"name": "version", "type": "UInt64"},
        {"name": "payload", "type": "Utf8"}, {"name": "metadata", "type": "Utf8"},
    ]);
    assert_eq!(columns.as_array().unwrap().iter().map(|c| c["name"].clone()).collect::<Vec<_>>(),
        expected.as_array().unwrap().iter().map(|c| c["name"].clone()).collect::<Vec<_>>());
    assert_eq!(columns[0]["type"], "UInt64");
    assert!(columns[5]["type"].as_str().unwrap().starts_with("Timestamp("), "{columns}");

    // One entity's events, every column, in version order.
    let e3: Vec<&Row> = all.iter().filter(|r| r.entity == "e3").collect();
    let got = rows(store, "SELECT id, tenant_id, entity_id, event_type, timestamp, version, payload, metadata FROM events WHERE entity_id = 'e3' ORDER BY version");
    assert_eq!(got.len(), e3.len());
    for (g, r) in got.iter().zip(&e3) {
        assert_eq!(g[0], json!(r.id));
        assert_eq!((g[1].clone(), g[2].clone(), g[3].clone()), (json!("acme"), json!("e3"), json!(r.event_type)));
        assert_eq!(g[4], json!(rfc3339(r.ts_us)));
        assert_eq!(g[5], json!(r.version));
        let payload: Value = serde_json::from_str(g[6].as_str().unwrap()).unwrap();
        assert_eq!(payload["host"], json!(r.host));
        match r.has_metadata {
            true => assert_eq!(serde_json::from_str::<Value>(g[7].as_str().unwrap()).unwrap(), json!({"source": "test"})),
            false => assert!(g[7].is_null(), "no metadata is NULL: {g}"),
        }
    }
    let with_metadata = all.iter().filter(|r| r.has_metadata).count() as u64;
    assert_eq!(count(store, "SELECT count(metadata) FROM events"), with_metadata, "NULL metadata counts as NULL");

    // GROUP BY.
    let mut by_type: BTreeMap<&str, u64> = BTreeMap::new();
    all.iter().for_each(|r| *by_type.entry(&r.event_type).or_default() += 1);
    let got = rows(store, "SELECT event_type, count(*) AS n FROM events GROUP BY event_type ORDER BY event_type");
    let want: Vec<Value> = by_type.iter().map(|(t, n)| json!([t, n])).collect();
    assert_eq!(got, want);

    // ORDER BY / LIMIT: top entities by count, ties by name.
    let mut by_entity: BTreeMap<&str, u64> = BTreeMap::new();
    all.iter().for_each(|r| *by_entity.entry(&r.entity).or_default() += 1);
    let mut top: Vec<(&str, u64)> = by_entity.iter().map(|(e, n)| (*e, *n)).collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let got = rows(store, "SELECT entity_id, count(*) AS n FROM events GROUP BY entity_id ORDER BY n DESC, entity_id LIMIT 5");
    assert_eq!(got, top[..5].iter().map(|(e, n)| json!([e, n])).collect::<Vec<_>>());

    // Window function: the latest event per entity.
    let mut latest: BTreeMap<&str, &Row> = BTreeMap::new();
    all.iter().for_each(|r| {
        latest.entry(&r.entity).and_modify(|l| if r.version > l.version { *l = r }).or_insert(r);
    });
    let latest_sql = "SELECT entity_id, version, id FROM (SELECT entity_id, version, id, row_number() OVER (PARTITION BY entity_id ORDER BY version DESC) AS rn FROM events) WHERE rn = 1 ORDER BY entity_id";
    let got = rows(store, latest_sql);
    assert_eq!(got, latest.iter().map(|(e, r)| json!([e, r.version, r.id])).collect::<Vec<_>>());
    // Such a window reads the scan in entity order instead of sorting by entity (`sql/entity_order.rs`).
    let plan = rows(store, &format!("EXPLAIN {latest_sql}"));
    assert!(plan.iter().any(|r| r[1].as_str().unwrap_or("").contains("by entity then version desc")), "no scan in entity order: {plan:?}");
    assert!(!plan.iter().any(|r| r[1].as_str().unwrap_or("").contains("RepartitionExec: partitioning=Hash([entity_id")), "{plan:?}");
    // Ascending, and with an entity filter: each event's rank and running version sum in its entity.
    let mut running: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    let mut ordered: Vec<&Row> = all.iter().collect();
    ordered.sort_by(|a, b| a.entity.cmp(&b.entity).then(a.version.cmp(&b.version)));
    let want: Vec<Value> = ordered
        .iter()
        .filter(|r| ["e1", "e4"].contains(&r.entity.as_str()))
        .map(|r| {
            let (n, sum) = running.entry(&r.entity).or_default();
            *n += 1;
            *sum += r.version;
            json!([r.entity, r.version, *n, *sum])
        })
        .collect();
    let got = rows(store, "SELECT entity_id, version, row_number() OVER w, sum(version) OVER w FROM events WHERE entity_id IN ('e4', 'e1') \
        WINDOW w AS (PARTITION BY entity_id ORDER BY version) ORDER BY entity_id, version");
    assert_eq!(got, want);

    // A window keyed by JSON values: the nearest-rank p95 of latency per host. The keys are computed once
    // under the window (`sql/window_keys.rs`), and the helper columns do not reach the answer.
    let mut latencies: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    all.iter().for_each(|r| latencies.entry(&r.host).or_default().push(r.latency_ms));
    let want: Vec<Value> = latencies
        .iter_mut()
        .map(|(host, values)| {
            values.sort();
            let n = values.len();
            let p95 = (0..n).find(|&i| (values.iter().filter(|&&v| v <= values[i]).count() as f64) / n as f64 >= 0.95).map(|i| values[i]);
            json!([host, p95])
        })
        .collect();
    let p95_sql = "SELECT host, min(v) AS p95 FROM (SELECT json_get_str(payload, 'host') AS host, json_get_int(payload, 'latency_ms') AS v, \
        cume_dist() OVER (PARTITION BY json_get_str(payload, 'host') ORDER BY json_get_int(payload, 'latency_ms')) AS cd FROM events) \
        WHERE cd >= 0.95 GROUP BY host ORDER BY host";
    assert_eq!(rows(store, p95_sql), want);
    let plan = rows(store, &format!("EXPLAIN {p95_sql}"));
    assert!(plan.iter().any(|r| r[1].as_str().unwrap_or("").contains("SortExec: expr=[__tidelog_window_key_0")), "keys not computed once: {plan:?}");
    let (schema, _) = run(store, "acme", "SELECT *, rank() OVER (PARTITION BY payload->>'host' ORDER BY version) AS r FROM events LIMIT 1", SqlLimits::default()).unwrap();
    assert_eq!(schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>(),
        ["position", "id", "tenant_id", "entity_id", "event_type", "timestamp", "version", "payload", "metadata", "r"]);

    // Time buckets.
    let mut per_hour: BTreeMap<i64, u64> = BTreeMap::new();
    all.iter().for_each(|r| *per_hour.entry(r.ts_us.div_euclid(HOUR_US) * HOUR_US).or_default() += 1);
    let got = rows(store, "SELECT date_trunc('hour', timestamp) AS hour, count(*) FROM events GROUP BY hour ORDER BY hour");
    assert_eq!(got, per_hour.iter().map(|(h, n)| json!([rfc3339(*h), n])).collect::<Vec<_>>());

    // JSON functions: per host, the sum and max of a payload number, two spellings.
    let mut per_host: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    all.iter().for_each(|r| {
        let e = per_host.entry(&r.host).or_default();
        e.0 += r.latency_ms;
        e.1 = e.1.max(r.latency_ms);
    });
    let got = rows(store, "SELECT json_get_str(payload, 'host') AS host, sum(json_get_int(payload, 'latency_ms')), max(json_get_float(payload, 'latency_ms')) FROM events GROUP BY host ORDER BY host");
    assert_eq!(got, per_host.iter().map(|(h, (s, m))| json!([h, s, *m as f64])).collect::<Vec<_>>());
    let got = rows(store, "SELECT payload->>'host' AS host, count(*) FROM events GROUP BY 1 ORDER BY 1");
    let mut host_count: BTreeMap<&str, u64> = BTreeMap::new();
    all.iter().for_each(|r| *host_count.entry(&r.host).or_default() += 1);
    assert_eq!(got, host_count.iter().map(|(h, n)| json!([h, n])).collect::<Vec<_>>());

    // Pushed filters (type, entity, time range, IN, OR) give what the reference gives.
    let (lo, hi) = (all[all.len() / 4].ts_us, all[all.len() / 2].ts_us);
    let want = all.iter().filter(|r| r.event_type == "job.done" && r.ts_us >= lo && r.ts_us < hi).count() as u64;
    let sql = format!("SELECT count(*) FROM events WHERE event_type = 'job.done' AND timestamp >= '{}' AND timestamp < '{}'", rfc3339(lo), rfc3339(hi));
    assert_eq!(count(store, &sql), want);
    let sql = format!("SELECT count(*) FROM events WHERE timestamp BETWEEN '{}' AND '{}'", rfc3339(lo), rfc3339(hi));
    assert_eq!(count(store, &sql), all.iter().filter(|r| r.ts_us >= lo && r.ts_us <= hi).count() as u64);
    // A time range with columns the type indexes lack: the positions come from every type's time index
    // (or, with a late event, from reading all events).
    let sql = format!("SELECT count(version) FROM events WHERE timestamp >= '{}' AND timestamp < '{}'", rfc3339(lo), rfc3339(hi));
    assert_eq!(count(store, &sql), all.iter().filter(|r| r.ts_us >= lo && r.ts_us < hi).count() as u64);
    let sql = format!("SELECT entity_id, sum(version) FROM events WHERE timestamp < '{}' GROUP BY 1 ORDER BY 1", rfc3339(hi));
    let mut sums: BTreeMap<&str, u64> = BTreeMap::new();
    all.iter().filter(|r| r.ts_us < hi).for_each(|r| *sums.entry(&r.entity).or_default() += r.version);
    assert_eq!(rows(store, &sql), sums.iter().map(|(e, v)| json!([e, v])).collect::<Vec<_>>());
    let want = all.iter().filter(|r| ["e1", "e2"].contains(&r.entity.as_str())).count() as u64;
    assert_eq!(count(store, "SELECT count(*) FROM events WHERE entity_id IN ('e1', 'e2')"), want);
    assert_eq!(count(store, "SELECT count(*) FROM events WHERE entity_id = 'e1' OR entity_id = 'e2'"), want);
    let want = all.iter().filter(|r| r.event_type != "job.done" && r.latency_ms > 500).count() as u64;
    assert_eq!(count(store, "SELECT count(*) FROM events WHERE event_type IN ('http.request', 'user.login') AND json_get_int(payload, 'latency_ms') > 500"), want);
    assert_eq!(rows(store, "SELECT position FROM events WHERE event_type = 'user.login' LIMIT 7").len(), 7);
    assert_eq!(count(store, "SELECT count(*) FROM (SELECT * FROM events LIMIT 3)"), 3);

    // Isolation, whatever the SQL: the other tenant's rows are never there.
    assert_eq!(count(store, "SELECT count(*) FROM events WHERE tenant_id = 'other'"), 0);
    assert_eq!(count(store, "SELECT count(*) FROM events WHERE tenant_id <> 'acme' OR payload LIKE '%secret%'"), 0);
    assert_eq!(count(store, "SELECT count(DISTINCT tenant_id) FROM events"), 1);
    let (_, other) = run(store, "other", "SELECT count(*) FROM events WHERE json_get_str(payload, 'host') = 'secret'", SqlLimits::default()).unwrap();
    assert_eq!(other[0].column(0).as_any().downcast_ref::<arrow::array::Int64Array>().unwrap().value(0), all.len() as i64);
    assert_eq!(run(store, "nobody", "SELECT count(*) FROM events", SqlLimits::default()).map(|(_, b)| b[0].num_rows()).unwrap(), 1);
}

#[test]
fn results_match_the_reference_across_checkpoint_and_restart() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let mut versions = BTreeMap::new();
    let store = open(dir.path());
    let mut all = append(&store, 0, 300, &mut versions);
    check(&store, &all);

    // Half of it checkpointed to Parquet, the rest only in the WAL and memory.
    block_on(store.checkpoint()).unwrap();
    all.extend(append(&store, 300, 250, &mut versions));
    check(&store, &all);
    assert!(store.status().iter().all(|s| s.checkpointed_position > 0 && s.checkpointed_position < s.visible_position));

    // A crash: the reopened store has the first part from the checkpoints, the rest from the WAL.
    store.halt();
    let store = open(dir.path());
    let reports = store.recovery_reports();
    assert_eq!(reports.iter().map(|r| r.checkpoints.events).sum::<u64>(), 600, "{reports:?}");
    check(&store, &all);
    store.close().unwrap();
}

/// Plans are cached by query text: a query asked again reads the data of its own moment, of its own
/// store and tenant, also through a subquery; a query that reads the clock is planned every time.
#[test]
fn a_repeated_query_reads_its_own_store_tenant_and_moment() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (open(dir_a.path()), open(dir_b.path()));
    let (mut versions_a, mut versions_b) = (BTreeMap::new(), BTreeMap::new());
    let mut rows_a = append(&a, 0, 30, &mut versions_a);
    let rows_b = append(&b, 0, 70, &mut versions_b);
    // Tenant `other` has one event more than `acme` in store a.
    block_on(a.append(NewEvent::new("x", "job.done", &json!({})).with_tenant("other"))).unwrap();
    // Events of entities that have a `job.done` event.
    let nested_reference = |rows: &[Row]| {
        let done: std::collections::BTreeSet<&str> = rows.iter().filter(|r| r.event_type == "job.done").map(|r| r.entity.as_str()).collect();
        rows.iter().filter(|r| done.contains(r.entity.as_str())).count() as u64
    };
    let total = "SELECT count(*) FROM events";
    let nested = "SELECT count(*) FROM events WHERE entity_id IN (SELECT entity_id FROM events WHERE event_type = 'job.done')";
    for round in 0..3u64 {
        let n = rows_a.len() as u64;
        assert_eq!(count(&a, total), n, "round {round}: store a");
        assert_eq!(count(&b, total), 70, "round {round}: store b");
        assert_eq!(rows_of(&a, "other", total)[0][0].as_u64(), Some(n + 1), "round {round}: tenant other of store a");
        assert_eq!(count(&a, nested), nested_reference(&rows_a), "round {round}: subquery on store a");
        assert_eq!(count(&b, nested), nested_reference(&rows_b), "round {round}: subquery on store b");
        // A table function is a scan of its own table, beside the events.
        assert_eq!(count(&a, "SELECT count(*) FROM events, generate_series(1, 3)"), 3 * n, "round {round}: with a table function");
        assert_eq!(count(&a, "SELECT count(*) FROM generate_series(1, 5)"), 5, "round {round}: a table function alone");
        rows_a.extend(append(&a, n, 10, &mut versions_a));
    }
    // `now()` is folded when a query is planned: a cached plan would answer with the first query's time.
    let now_us = |store: &Store| rows(store, "SELECT CAST(now() AS BIGINT) / 1000 AS now_us")[0][0].as_i64().unwrap();
    let first = now_us(&a);
    std::thread::sleep(Duration::from_millis(20));
    let second = now_us(&a);
    assert!(second - first >= 20_000, "now() moved {} us in 20 ms", second - first);
    a.close().unwrap();
    b.close().unwrap();
}

/// Scans that read the indexes instead of the events (counts by type, by time bucket, by entity) agree
/// with the reference also when an event comes with an earlier timestamp than its type's last, so the
/// type's time index cannot answer alone, and when counts must match what the event scan gives.
#[test]
fn index_scans_match_the_reference_with_a_late_event() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let mut versions = BTreeMap::new();
    let store = open(dir.path());
    let mut all = append(&store, 0, 200, &mut versions);
    let (entity, ts_us) = ("e1".to_string(), START_US - HOUR_US);
    let late = NewEvent::new(&entity, "job.done", &json!({"host": "alpha", "latency_ms": 7})).with_tenant("acme").with_timestamp_us(ts_us);
    // The other tenant gets one too: `check` expects it to have as many events as acme.
    let other = NewEvent::new(&entity, "job.done", &json!({"host": "secret", "latency_ms": 1_000_000})).with_tenant("other").with_timestamp_us(ts_us);
    let ack = block_on(store.append_batch(vec![late, other])).expect("append").remove(0);
    let version = versions.get_mut(&entity).unwrap();
    *version += 1;
    assert_eq!(ack.version, *version);
    let row = Row { id: ack.id.to_string(), entity, event_type: "job.done".into(), ts_us, version: *version, host: "alpha".into(), latency_ms: 7, has_metadata: false };
    all.push(row);
    check(&store, &all);
    // The index scans and the event scans (a column the indexes lack) count the same.
    for (by_index, by_events) in [
        ("SELECT event_type, count(*) FROM events GROUP BY 1 ORDER BY 1", "SELECT event_type, sum(1) FROM events GROUP BY 1 ORDER BY 1"),
        ("SELECT entity_id, count(position) FROM events GROUP BY 1 ORDER BY 1", "SELECT entity_id, sum(1) FROM events GROUP BY 1 ORDER BY 1"),
        ("SELECT count(DISTINCT position) FROM events WHERE entity_id = 'e1'", "SELECT count(DISTINCT position) FROM events WHERE entity_id = 'e1' AND version > 0"),
        ("SELECT count(*) FROM events WHERE entity_id IN ('e1', 'e1', 'e2')", "SELECT count(version) FROM events WHERE entity_id IN ('e1', 'e2')"),
    ] {
        assert_eq!(rows(&store, by_index), rows(&store, by_events), "{by_index}");
    }
    // Counts per type and per entity are counted by the indexes, not by DataFusion over rows; with a
    // time range too (the type index's keys are in time order), and where a LIMIT under the count or a
    // filter the index cannot apply keeps the rows.
    let plan = |sql: &str| rows(&store, &format!("EXPLAIN {sql}")).iter().map(|r| r.to_string()).collect::<String>();
    for sql in [
        "SELECT event_type, count(*) FROM events GROUP BY event_type",
        "SELECT entity_id, count(1), count(*) FROM events GROUP BY entity_id",
        "SELECT event_type, count(*) FROM events WHERE timestamp >= '2026-01-01T00:00:00Z' GROUP BY event_type",
        "SELECT event_type, count(id), count(version), count(payload) FROM events GROUP BY event_type",
        "SELECT entity_id, count(entity_id) FROM events GROUP BY entity_id",
    ] {
        assert!(plan(sql).contains("IndexCountExec"), "{sql}: {}", plan(sql));
    }
    for sql in [
        "SELECT event_type, count(*) FROM (SELECT event_type FROM events LIMIT 5) GROUP BY event_type",
        "SELECT event_type, count(DISTINCT entity_id) FROM events GROUP BY event_type",
        "SELECT entity_id, count(*) FROM events WHERE event_type = 'job.done' GROUP BY entity_id",
        "SELECT event_type, count(metadata) FROM events GROUP BY event_type",
        "SELECT event_type, count(*), count(metadata) FROM events GROUP BY event_type",
    ] {
        assert!(!plan(sql).contains("IndexCountExec"), "{sql}: {}", plan(sql));
    }
    let since = rfc3339(START_US + 30 * 60_000_000);
    for (by_index, by_events) in [
        (
            format!("SELECT event_type, count(*) FROM events WHERE timestamp >= '{since}' GROUP BY 1 ORDER BY 1"),
            format!("SELECT event_type, sum(1) FROM events WHERE timestamp >= '{since}' GROUP BY 1 ORDER BY 1"),
        ),
        (
            format!("SELECT event_type, count(version), count(id) FROM events WHERE timestamp >= '{since}' GROUP BY 1 ORDER BY 1"),
            format!("SELECT event_type, sum(1) AS a, sum(1) AS b FROM events WHERE timestamp >= '{since}' GROUP BY 1 ORDER BY 1"),
        ),
        (
            "SELECT event_type, count(*), count(metadata) FROM events GROUP BY 1 ORDER BY 1".into(),
            "SELECT event_type, sum(1), sum(CASE WHEN metadata IS NULL THEN 0 ELSE 1 END) FROM events GROUP BY 1 ORDER BY 1".into(),
        ),
        (
            "SELECT entity_id, count(*) FROM events WHERE entity_id IN ('e1', 'e2', 'nobody') GROUP BY 1 ORDER BY 1".into(),
            "SELECT entity_id, sum(1) FROM events WHERE entity_id IN ('e1', 'e2', 'nobody') GROUP BY 1 ORDER BY 1".into(),
        ),
    ] {
        assert_eq!(rows(&store, &by_index), rows(&store, &by_events), "{by_index}");
    }
    store.close().unwrap();
}

#[test]
fn refusals_bad_sql_and_limits() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    append(&store, 0, 50, &mut BTreeMap::new());
    let written = dir.path().join("copied.csv");
    let refused = [
        "CREATE TABLE t AS SELECT 1",
        "CREATE VIEW v AS SELECT * FROM events",
        &format!("CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '{}'", dir.path().join("tidelog.json").display()),
        "DROP TABLE events",
        "INSERT INTO events (entity_id) VALUES ('x')",
        "DELETE FROM events",
        "UPDATE events SET version = 0",
        &format!("COPY (SELECT * FROM events) TO '{}'", written.display()),
        "SET datafusion.execution.batch_size = 1",
        "BEGIN TRANSACTION",
    ];
    for sql in refused {
        match run(&store, "acme", sql, SqlLimits::default()) {
            Err(e) => assert!(matches!(e.code(), "read_only" | "invalid_sql"), "{sql}: {e}"),
            Ok(_) => panic!("{sql} was run"),
        }
    }
    assert!(!written.exists(), "COPY wrote a file");
    // No table or function reads files.
    for sql in [format!("SELECT * FROM '{}'", dir.path().join("tidelog.json").display()), "SELECT * FROM read_csv('/etc/passwd')".into()] {
        let e = run(&store, "acme", &sql, SqlLimits::default()).unwrap_err();
        assert_eq!(e.code(), "invalid_sql", "{sql}: {e}");
    }
    let e = run(&store, "acme", "SELEC count(*) FROM events", SqlLimits::default()).unwrap_err();
    assert_eq!(e.code(), "invalid_sql");
    assert!(e.to_string().contains("SELEC"), "the parser's message: {e}");
    let e = run(&store, "acme", "SELECT nope FROM events", SqlLimits::default()).unwrap_err();
    assert!(e.to_string().contains("nope"), "the planner's message: {e}");

    // Limits: memory (a sort that cannot spill), rows of a buffered answer, time.
    let small = SqlLimits { memory_limit_bytes: 256 << 10, ..SqlLimits::default() };
    let e = run(&store, "acme", "SELECT v FROM generate_series(1, 400000) AS t(v) ORDER BY v DESC", small).unwrap_err();
    assert_eq!(e.code(), "memory_limit_exceeded", "{e}");
    let few = SqlLimits { max_json_rows: 10, ..SqlLimits::default() };
    assert_eq!(run(&store, "acme", "SELECT * FROM events", few).unwrap_err().code(), "too_many_rows");
    let quick = SqlLimits { timeout_ms: 300, ..SqlLimits::default() };
    let started = Instant::now();
    let e = run(&store, "acme", "SELECT count(*) FROM generate_series(1, 100000000000) AS t(v)", quick).unwrap_err();
    assert_eq!(e.code(), "query_timeout", "{e}");
    assert!(started.elapsed() < Duration::from_secs(5), "the timeout stopped the query: {:?}", started.elapsed());
    // At most MAX_CONCURRENT_QUERIES run at once; the next waits for a turn, within its timeout.
    let hold = |store: &Store| {
        let store = store.clone();
        block_on(QueryTask::spawn(async move {
            tidelog::sql::start(&store, "acme", "SELECT * FROM events", &SqlLimits::default()).await
        }))
        .unwrap()
        .unwrap()
    };
    let mut held: Vec<_> = (0..tidelog::sql::MAX_CONCURRENT_QUERIES).map(|_| hold(&store)).collect();
    assert_eq!(run(&store, "acme", "SELECT 1", quick).unwrap_err().code(), "query_timeout", "a fifth query waits");
    held.pop();
    assert_eq!(run(&store, "acme", "SELECT 1", quick).unwrap().1[0].num_rows(), 1, "a turn came free");
    drop(held);
    // Still answering.
    assert_eq!(count(&store, "SELECT count(*) FROM events"), 50);
    store.close().unwrap();
}

/// A reply read off the socket, chunked bodies decoded.
struct Reply {
    status: u16,
    content_type: String,
    /// The `Server-Timing` header, if any.
    server_timing: Option<String>,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

fn send(addr: SocketAddr, path: &str, headers: &[(&str, &str)], body: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).unwrap();
    let mut head = format!("POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body.as_bytes()).unwrap();
    stream
}

fn sql_request(addr: SocketAddr, path: &str, headers: &[(&str, &str)], query: &str) -> Reply {
    let mut stream = send(addr, path, headers, &json!({"query": query}).to_string());
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a head");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut body = raw[split + 4..].to_vec();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let header = |name: &str| head.lines().find_map(|l| l.split_once(": ").filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.to_string()));
    if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        let (mut plain, mut rest) = (Vec::new(), &body[..]);
        loop {
            let line_end = rest.windows(2).position(|w| w == b"\r\n").expect("chunk size");
            let size = usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).unwrap().trim(), 16).unwrap();
            if size == 0 {
                break;
            }
            plain.extend_from_slice(&rest[line_end + 2..line_end + 2 + size]);
            rest = &rest[line_end + 2 + size + 2..];
        }
        body = plain;
    }
    Reply { status, content_type: header("content-type").unwrap_or_default(), server_timing: header("server-timing"), body }
}

#[test]
fn http_route_shapes_auth_and_cancellation() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("data"));
    let all = append(&store, 0, 120, &mut BTreeMap::new());
    let keys = dir.path().join("keys.json");
    std::fs::write(&keys, json!({"token-of-acme-0123456789": "acme", "token-of-other-012345678": "other"}).to_string()).unwrap();
    let api_keys = Some(std::sync::Arc::new(ApiKeys::load(&keys).unwrap()));
    let limits = SqlLimits { memory_limit_bytes: 256 << 10, timeout_ms: 20_000, max_json_rows: 1000 };
    let options = HttpOptions { max_body_bytes: 1 << 20, api_keys, sql: limits, ..HttpOptions::default() };
    let server = Server::start(&store, ServerConfig { listen: "127.0.0.1:0".parse().unwrap(), limits: options }).unwrap();
    let addr = server.local_addr();
    let acme = [("Authorization", "Bearer token-of-acme-0123456789")];

    // The JSON answer.
    let r = sql_request(addr, "/api/v1/sql", &acme, "SELECT entity_id, count(*) AS n, max(timestamp) AS last, min(metadata) AS m, avg(version) AS v FROM events WHERE entity_id = 'e1' GROUP BY entity_id");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let answer = r.json();
    let e1: Vec<&Row> = all.iter().filter(|x| x.entity == "e1").collect();
    assert_eq!(answer["row_count"], 1);
    assert_eq!(answer["columns"][0], json!({"name": "entity_id", "type": "Utf8"}));
    assert_eq!(answer["columns"][1], json!({"name": "n", "type": "Int64"}));
    let row = &answer["rows"][0];
    assert_eq!((row[0].clone(), row[1].clone()), (json!("e1"), json!(e1.len())));
    assert_eq!(row[2], json!(rfc3339(e1.iter().map(|x| x.ts_us).max().unwrap())));
    assert!(row[4].is_f64(), "numbers as numbers: {row}");
    // The server's own time for the query, in ms, as W3C Server-Timing says.
    let timing = r.server_timing.as_deref().expect("a Server-Timing header");
    let ms: f64 = timing.strip_prefix("sql;dur=").and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("Server-Timing: {timing}"));
    assert!(ms > 0.0 && ms < 20_000.0, "Server-Timing: {timing}");
    let r = sql_request(addr, "/api/v1/sql", &acme, "SELECT metadata FROM events WHERE metadata IS NULL LIMIT 1");
    assert_eq!(r.json()["rows"], json!([[null]]));

    // Auth: the token's tenant, 403 for another, 401 without a token.
    let r = sql_request(addr, "/api/v1/sql?tenant_id=other", &acme, "SELECT count(*) FROM events");
    assert_eq!((r.status, r.json()["error"].clone()), (403, json!("forbidden")));
    assert_eq!(sql_request(addr, "/api/v1/sql", &[], "SELECT 1").status, 401);
    let r = sql_request(addr, "/api/v1/sql?tenant_id=acme", &acme, "SELECT count(*) FROM events WHERE tenant_id = 'other'");
    assert_eq!(r.json()["rows"], json!([[0]]));

    // Refusals and bad SQL: 400 with the reason; the server stays up.
    for sql in ["DROP TABLE events", "COPY (SELECT 1) TO '/tmp/tidelog-sql-test.csv'", "CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/passwd'"] {
        let r = sql_request(addr, "/api/v1/sql", &acme, sql);
        assert_eq!((r.status, r.json()["error"].clone()), (400, json!("read_only")), "{sql}");
    }
    let r = sql_request(addr, "/api/v1/sql", &acme, "SELECT FROM WHERE");
    assert_eq!((r.status, r.json()["error"].clone()), (400, json!("invalid_sql")));
    let mut stream = send(addr, "/api/v1/sql", &acme, "{\"sql\": 1}");
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 400") && text.contains("expected {\\\"query\\\""), "{text}");
    let r = sql_request(addr, "/api/v1/sql", &acme, "SELECT v FROM generate_series(1, 400000) AS t(v) ORDER BY v DESC");
    assert_eq!((r.status, r.json()["error"].clone()), (422, json!("memory_limit_exceeded")));
    let r = sql_request(addr, "/api/v1/sql", &acme, "SELECT * FROM generate_series(1, 5000)");
    assert_eq!((r.status, r.json()["error"].clone()), (422, json!("too_many_rows")));

    // NDJSON: one object per row, no row cap.
    let ndjson = [("Authorization", "Bearer token-of-acme-0123456789"), ("Accept", "application/x-ndjson")];
    let r = sql_request(addr, "/api/v1/sql", &ndjson, "SELECT position, entity_id, timestamp FROM events ORDER BY timestamp");
    assert_eq!((r.status, r.content_type.as_str()), (200, "application/x-ndjson"));
    let lines: Vec<Value> = String::from_utf8(r.body).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), all.len());
    assert_eq!(lines[0]["timestamp"], json!(rfc3339(all[0].ts_us)));
    let r = sql_request(addr, "/api/v1/sql", &ndjson, "SELECT * FROM generate_series(1, 5000)");
    assert_eq!(String::from_utf8(r.body).unwrap().lines().count(), 5000);
    let r = sql_request(addr, "/api/v1/sql", &ndjson, "SELEC 1");
    assert_eq!((r.status, r.json()["error"].clone()), (400, json!("invalid_sql")));

    // Arrow IPC stream.
    let arrow_accept = [("Authorization", "Bearer token-of-acme-0123456789"), ("Accept", "application/vnd.apache.arrow.stream")];
    let r = sql_request(addr, "/api/v1/sql", &arrow_accept, "SELECT event_type, count(*) AS n FROM events GROUP BY event_type ORDER BY event_type");
    assert_eq!((r.status, r.content_type.as_str()), (200, "application/vnd.apache.arrow.stream"));
    let reader = arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(r.body), None).unwrap();
    let batches: Vec<RecordBatch> = reader.collect::<Result<_, _>>().unwrap();
    let answer = output::answer_json(&batches[0].schema(), &batches).unwrap();
    let mut by_type: BTreeMap<&str, u64> = BTreeMap::new();
    all.iter().for_each(|r| *by_type.entry(&r.event_type).or_default() += 1);
    assert_eq!(answer["rows"], json!(by_type.iter().map(|(t, n)| json!([t, n])).collect::<Vec<_>>()));

    // A client that goes away cancels its query: an endless streamed query, and an endless buffered one.
    let alive = || tidelog::side_runtime::side_runtime().metrics().num_alive_tasks();
    for (headers, sql) in [
        (&ndjson[..], "SELECT v FROM generate_series(1, 100000000000) AS t(v)"),
        (&acme[..], "SELECT count(*) FROM generate_series(1, 100000000000) AS t(v)"),
    ] {
        let mut stream = send(addr, "/api/v1/sql", headers, &json!({"query": sql}).to_string());
        std::thread::sleep(Duration::from_millis(300));
        assert!(alive() > 0, "the query runs");
        let mut some = [0u8; 1024];
        if headers.len() == 2 {
            assert!(stream.read(&mut some).unwrap() > 0, "rows arrive");
        }
        drop(stream);
        let deadline = Instant::now() + Duration::from_secs(10);
        while alive() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(alive(), 0, "{sql}: the query went on after its client left");
    }
    assert_eq!(sql_request(addr, "/api/v1/sql", &acme, "SELECT count(*) FROM events").json()["rows"], json!([[all.len()]]));
    server.shutdown();
    store.close().unwrap();
}

#[test]
fn index_position_lists_count_against_the_memory_limit() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut versions = BTreeMap::new();
    let mut rows = append(&store, 0, 50_000, &mut versions);
    rows.extend(append(&store, 50_000, 50_000, &mut versions));
    // Two of the three types, not read from the type index (`version` is not in it): ~67,000 positions,
    // ~530 KB of lists across the two shards, held before a single row is produced.
    let sql = "SELECT count(version) AS n FROM events WHERE event_type IN ('job.done', 'user.login')";
    let small = SqlLimits { memory_limit_bytes: 256 << 10, ..SqlLimits::default() };
    let e = run(&store, "acme", sql, small).unwrap_err();
    assert_eq!(e.code(), "memory_limit_exceeded", "{e}");
    let e = run(&store, "acme", &format!("{sql} LIMIT 1"), small).unwrap_err();
    assert_eq!(e.code(), "memory_limit_exceeded", "a LIMIT does not shrink the list: {e}");
    // The same query within the default limit, and a list that fits in the small one.
    let want = rows.iter().filter(|r| r.event_type != "http.request").count();
    assert_eq!(count(&store, sql), want as u64);
    let sql = "SELECT count(version) AS n FROM events WHERE entity_id = 'e3'";
    let (schema, batches) = run(&store, "acme", sql, small).unwrap();
    let answer = output::answer_json(&schema, &batches).unwrap();
    assert_eq!(answer["rows"], json!([[rows.iter().filter(|r| r.entity == "e3").count()]]));
    store.close().unwrap();
}
