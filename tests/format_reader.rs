//! docs/FORMAT.md is enough to read the WAL: `scripts/wal_read.py`, written from it with Python's standard
//! library only, reads every record of a store's WAL, and every field of every event it prints matches what
//! the store acknowledged and what it returns after a reopen. The events cover both string forms of the
//! archive (8 bytes and less inline, longer out of line), multi-byte UTF-8, absent, empty and `null` metadata,
//! JSON text with whitespace, several tenants, entities and types, explicit and assigned ids and timestamps,
//! single appends, single-shard batches, cross-shard batches (so part headers appear, with and without client
//! ids), and a batch larger than the segment size. Copies of the directory check that the reader accepts an
//! all-zero (empty) segment, as the store does, and that it checks CRCs.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::{Command, Output};

use common::{block_on, config};
use serde_json::{json, Value};
use tidelog::time::{format_rfc3339_us, MAX_TIMESTAMP_US};
use tidelog::{AppendAck, NewEvent, Query, Store, StoreConfig};
use uuid::Uuid;

const SHARDS: usize = 2;
/// `common::config`'s segment size.
const SEGMENT_BYTES: u64 = 64 * 1024;

const TENANTS: [&str; 3] = ["t", "acme", "tenant.with-a_long-name"];
/// Inline (at most 8 bytes, "abcdefgh" exactly 8, "é🦀" 6 bytes in two characters) and out of line
/// ("abcdefghi" exactly 9), ASCII and not.
const ENTITIES: [&str; 7] = ["e1", "abcdefgh", "abcdefghi", "entity-with-a-longer-id-0042", "ünï-çødé", "🦀-crab", "é🦀"];
const TYPES: [&str; 5] = ["a", "x.created", "12345678", "type.with.a.much.longer.name", "ß.ü"];

fn store_config(dir: &Path) -> StoreConfig {
    config(dir, SHARDS, 10).without_checkpoints()
}

/// The `i`-th event of a varied mix.
fn varied_event(i: usize) -> NewEvent {
    let (tenant, entity, event_type) = (TENANTS[i % 3], ENTITIES[i % 7], TYPES[i % 5]);
    let mut event = match i % 6 {
        0 => NewEvent::new(entity, event_type, &json!({})),
        // Kept as given: the whitespace and the number's spelling are part of the stored text.
        1 => NewEvent::with_raw_payload(entity, event_type, "{\"a\": [1, 2],  \"s\": \"ü 🦀\", \"n\": -1.5e3}"),
        2 => NewEvent::new(entity, event_type, &json!(i)),
        3 => NewEvent::new(entity, event_type, &json!({ "text": "x".repeat(i % 300), "i": i, "ü": "🦀" })),
        4 => NewEvent::with_raw_payload(entity, event_type, "\"abcdef\""), // 8 bytes: the longest inline
        _ => NewEvent::with_raw_payload(entity, event_type, "[]"),
    }
    .with_tenant(tenant);
    event = match i % 4 {
        0 => event,
        1 => event.with_metadata(&json!({})),
        2 => event.with_metadata(&json!({ "source": "format reader", "trace": [i, "ü"] })),
        _ => event.with_metadata(&Value::Null), // stored as the text `null`
    };
    if i % 3 == 0 {
        event = event.with_id(Uuid::from_u128((0xf0_u128 << 120) | i as u128));
    }
    match i % 7 {
        0 => event.with_timestamp_us(1_700_000_000_000_000 + i as i64),
        1 if i < 20 => event.with_timestamp_us(if i == 1 { 0 } else { MAX_TIMESTAMP_US }),
        _ => event,
    }
}

/// One call to the store: its events, in order, with their acks.
struct Append {
    events: Vec<(NewEvent, AppendAck)>,
    cross_shard: bool,
}

fn append(store: &Store, events: Vec<NewEvent>) -> Append {
    let acks = block_on(store.append_batch(events.clone())).expect("append");
    let shards: HashSet<u32> = acks.iter().map(|a| a.shard).collect();
    assert!(acks.iter().all(|a| !a.duplicate));
    Append { events: events.into_iter().zip(acks).collect(), cross_shard: shards.len() > 1 }
}

fn write_events(dir: &Path) -> Vec<Append> {
    let store = Store::open(store_config(dir)).expect("open store");
    let mut appends = Vec::new();
    let mut next = 0usize;
    let mut take = |n: usize| {
        let events: Vec<NewEvent> = (next..next + n).map(varied_event).collect();
        next += n;
        events
    };
    for _ in 0..700 {
        appends.push(append(&store, take(1)));
    }
    // Batches on one shard: one entity each.
    for b in 0..20 {
        let events = take(5).into_iter().map(|e| NewEvent { tenant_id: "acme".into(), entity_id: format!("batch-{b}"), ..e }).collect();
        appends.push(append(&store, events));
    }
    // Batches over both shards: every entity of one tenant, without client ids (appended at once) and with
    // them (prepared, then committed).
    for b in 0..8 {
        let events = (0..ENTITIES.len())
            .map(|k| {
                let e = NewEvent { tenant_id: "acme".into(), entity_id: ENTITIES[k].into(), ..varied_event(1000 + b * 10 + k) };
                if b < 4 { NewEvent { id: None, ..e } } else { e.with_id(Uuid::from_u128((0xb0_u128 << 120) | (b * 10 + k) as u128)) }
            })
            .collect();
        let append = append(&store, events);
        assert!(append.cross_shard, "the entities of tenant acme must cover both shards");
        appends.push(append);
    }
    // A batch larger than a segment: it gets a segment of its own size.
    let big: Vec<NewEvent> = (0..80)
        .map(|k| NewEvent::new("big-entity", "big.event", &json!({ "k": k, "fill": "é".repeat(700) })).with_tenant("t"))
        .collect();
    appends.push(append(&store, big));
    for _ in 0..40 {
        appends.push(append(&store, take(1)));
    }
    store.close().expect("close");
    appends
}

/// Runs the reader on `dir`; a missing python3 fails the test with the reason.
fn run_reader(dir: &Path, extra: &[&str]) -> Output {
    Command::new("python3")
        .arg(common::python::script("wal_read.py"))
        .arg(dir)
        .args(extra)
        .output()
        .unwrap_or_else(|e| panic!("this test needs python3 on PATH to run scripts/wal_read.py: {e}"))
}

/// The reader's records, each checked to be one JSON object per line; the run must be clean.
fn read_clean(dir: &Path, extra: &[&str]) -> Vec<Value> {
    let output = run_reader(dir, extra);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success() && stderr.is_empty(), "wal_read.py failed ({}):\n{stderr}", output.status);
    records_of(&output)
}

fn records_of(output: &Output) -> Vec<Value> {
    let stdout = std::str::from_utf8(&output.stdout).expect("the reader's output is UTF-8");
    stdout.lines().map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))).collect()
}

fn str_of<'a>(record: &'a Value, field: &str) -> &'a str {
    record[field].as_str().unwrap_or_else(|| panic!("{field} is not a string in {record}"))
}

fn u64_of(record: &Value, field: &str) -> u64 {
    record[field].as_u64().unwrap_or_else(|| panic!("{field} is not an unsigned integer in {record}"))
}

/// Every field the reader printed for an event against the event as appended and acknowledged.
fn check_against_append(record: &Value, event: &NewEvent, ack: &AppendAck) {
    let context = format!("record {record} for ack {ack:?}");
    assert_eq!(u64_of(record, "shard"), u64::from(ack.shard), "{context}");
    assert_eq!(u64_of(record, "position"), ack.position, "{context}");
    assert_eq!(u64_of(record, "version"), ack.version, "{context}");
    assert_eq!(record["timestamp_us"].as_i64(), Some(ack.timestamp_us), "{context}");
    assert_eq!(str_of(record, "timestamp"), format_rfc3339_us(ack.timestamp_us), "{context}");
    if let Some(timestamp_us) = event.timestamp_us {
        assert_eq!(ack.timestamp_us, timestamp_us, "{context}");
    }
    assert_eq!(str_of(record, "id"), ack.id.to_string(), "{context}");
    if let Some(id) = event.id {
        assert_eq!(ack.id, id, "{context}");
    }
    assert_eq!(str_of(record, "tenant_id"), event.tenant_id, "{context}");
    assert_eq!(str_of(record, "entity_id"), event.entity_id, "{context}");
    assert_eq!(str_of(record, "event_type"), event.event_type, "{context}");
    assert_eq!(str_of(record, "payload"), event.payload, "{context}");
    assert_eq!(record["metadata"].as_str(), event.metadata.as_deref(), "{context}");
}

/// Every field the reader printed for an event against the store's copy of it after a reopen.
fn check_against_store(record: &Value, store: &Store) {
    let id: Uuid = str_of(record, "id").parse().expect("a UUID");
    let stored = store.get(str_of(record, "tenant_id"), &id).unwrap_or_else(|| panic!("the store lacks {record}"));
    assert_eq!(u64_of(record, "position"), stored.position(), "{record}");
    assert_eq!(u64_of(record, "shard"), store.shard_of(stored.tenant_id(), stored.entity_id()) as u64, "{record}");
    assert_eq!(record["timestamp_us"].as_i64(), Some(stored.timestamp_us()), "{record}");
    assert_eq!(u64_of(record, "version"), stored.version(), "{record}");
    assert_eq!(str_of(record, "entity_id"), stored.entity_id(), "{record}");
    assert_eq!(str_of(record, "event_type"), stored.event_type(), "{record}");
    assert_eq!(str_of(record, "payload"), stored.payload_json(), "{record}");
    assert_eq!(record["metadata"].as_str(), stored.metadata_json(), "{record}");
}

/// The WAL's records grouped by shard, in log order.
fn by_shard(records: &[Value]) -> Vec<Vec<&Value>> {
    let mut shards = vec![Vec::new(); SHARDS];
    for record in records {
        shards[u64_of(record, "shard") as usize].push(record);
    }
    shards
}

/// The framing: a single append is one record with the batch flag clear; a batch's records on a shard are
/// consecutive with the flag set on all but the last; a cross-shard part starts with a part header naming
/// the participants and its event count.
fn check_framing(appends: &[Append], records: &[Value]) {
    let shards = by_shard(records);
    let mut index_of: HashMap<(u64, String), usize> = HashMap::new();
    for (shard, list) in shards.iter().enumerate() {
        for (i, record) in list.iter().enumerate() {
            if record["kind"] == "event" {
                index_of.insert((shard as u64, str_of(record, "id").to_string()), i);
            }
        }
    }
    let mut headers_expected = 0;
    for append in appends {
        let participants: Vec<u64> = {
            let set: HashSet<u64> = append.events.iter().map(|(_, a)| u64::from(a.shard)).collect();
            let mut list: Vec<u64> = set.into_iter().collect();
            list.sort();
            list
        };
        for &shard in &participants {
            let ids: Vec<String> = append.events.iter().filter(|(_, a)| u64::from(a.shard) == shard).map(|(_, a)| a.id.to_string()).collect();
            let first = index_of[&(shard, ids[0].clone())];
            let list = &shards[shard as usize];
            for (k, id) in ids.iter().enumerate() {
                let record = list[first + k];
                assert_eq!(str_of(record, "id"), id, "the part's events are consecutive");
                assert_eq!(record["batch_continues"], json!(k + 1 < ids.len()), "{record}");
            }
            let before = first.checked_sub(1).map(|i| list[i]);
            if append.cross_shard {
                headers_expected += 1;
                let header = before.expect("a part header before the part");
                assert_eq!(header["kind"], "part_header", "{header}");
                assert_eq!(header["batch_continues"], json!(true), "{header}");
                assert_eq!(u64_of(header, "events"), ids.len() as u64, "{header}");
                assert_eq!(header["participants"], json!(participants), "{header}");
                assert_eq!(str_of(header, "batch").len(), 32, "{header}");
            } else if let Some(before) = before {
                assert_eq!(before["kind"], "event", "no part header before {ids:?}");
            }
        }
    }
    let headers = records.iter().filter(|r| r["kind"] == "part_header").count();
    assert_eq!(headers, headers_expected, "one part header per participant of each cross-shard batch");
    // Positions are 1, 2, 3, ... on each shard, in log order.
    for list in &shards {
        let positions: Vec<u64> = list.iter().filter(|r| r["kind"] == "event").map(|r| u64_of(r, "position")).collect();
        assert_eq!(positions, (1..=positions.len() as u64).collect::<Vec<_>>());
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else if entry.file_name() != "LOCK" {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn segments(dir: &Path, shard: usize) -> Vec<std::path::PathBuf> {
    let mut list: Vec<_> = std::fs::read_dir(dir.join(format!("shard-{shard}")).join("wal")).unwrap().map(|e| e.unwrap().path()).collect();
    list.sort();
    list
}

#[test]
fn an_independent_reader_reads_every_event_as_the_store_does() {
    let dir = tempfile::tempdir().unwrap();
    let appends = write_events(dir.path());
    let appended: Vec<&(NewEvent, AppendAck)> = appends.iter().flat_map(|a| &a.events).collect();

    let records = read_clean(dir.path(), &[]);
    let events: Vec<&Value> = records.iter().filter(|r| r["kind"] == "event").collect();
    assert_eq!(events.len(), appended.len(), "one event record per appended event");
    let by_id: HashMap<&str, &Value> = events.iter().map(|r| (str_of(r, "id"), *r)).collect();
    assert_eq!(by_id.len(), events.len(), "ids are unique");
    for (event, ack) in &appended {
        let record = by_id.get(ack.id.to_string().as_str()).unwrap_or_else(|| panic!("no record for {ack:?}"));
        check_against_append(record, event, ack);
    }
    check_framing(&appends, &records);

    // Both string forms, multi-byte text and each kind of metadata were in the log.
    let entity_lengths: HashSet<usize> = events.iter().map(|r| str_of(r, "entity_id").len()).collect();
    assert!(entity_lengths.contains(&8) && entity_lengths.contains(&9) && entity_lengths.iter().any(|&n| n < 8));
    assert!(events.iter().any(|r| r["metadata"].is_null()) && events.iter().any(|r| r["metadata"] == "null"));
    assert!(events.iter().any(|r| str_of(r, "payload").contains('🦀')));

    // The big batch's segment is larger than the segment size, and the log crossed segments.
    assert!(
        (0..SHARDS).flat_map(|s| segments(dir.path(), s)).any(|p| std::fs::metadata(p).unwrap().len() > SEGMENT_BYTES),
        "a segment larger than the segment size"
    );
    assert!((0..SHARDS).any(|s| segments(dir.path(), s).len() > 2), "the log crossed segment boundaries");

    // With --json-values the payload and metadata are the parsed JSON.
    let values = read_clean(dir.path(), &["--json-values"]);
    assert_eq!(values.len(), records.len());
    for (text, value) in records.iter().zip(&values).filter(|(r, _)| r["kind"] == "event") {
        assert_eq!(value["payload"], serde_json::from_str::<Value>(str_of(text, "payload")).unwrap());
        let metadata = text["metadata"].as_str().map(|m| serde_json::from_str::<Value>(m).unwrap());
        assert_eq!(value["metadata"], metadata.unwrap_or(Value::Null));
    }

    // After a reopen the store returns exactly these events.
    let store = Store::open(store_config(dir.path())).expect("reopen");
    for record in &events {
        check_against_store(record, &store);
    }
    let stored: usize = TENANTS
        .iter()
        .map(|t| block_on(store.query(&Query::tenant(*t).limit(10_000))).unwrap().events.len())
        .sum();
    assert_eq!(stored, events.len(), "the store holds no event the reader did not print");
    store.close().unwrap();

    // An all-zero segment after the last one is an empty segment: the reader and the store accept it.
    let copy = tempfile::tempdir().unwrap();
    copy_dir(dir.path(), copy.path());
    let last_position = events.iter().filter(|r| r["shard"] == 0).map(|r| u64_of(r, "position")).max().unwrap();
    let empty = copy.path().join("shard-0").join("wal").join(format!("{:020}.log", last_position + 1));
    std::fs::write(&empty, vec![0u8; 4096]).unwrap();
    assert_eq!(read_clean(copy.path(), &[]), records);
    let store = Store::open(store_config(copy.path())).expect("open with an empty segment");
    assert_eq!(store.recovery_reports()[0].last_position, last_position);
    store.close().unwrap();

    // A flipped byte in an event's body fails its CRC: the reader says so, exits 1, and reads on past it.
    let copy = tempfile::tempdir().unwrap();
    copy_dir(dir.path(), copy.path());
    let segment = &segments(copy.path(), 1)[0];
    let mut bytes = std::fs::read(segment).unwrap();
    let first_body = 32 + 8;
    bytes[first_body + 3] ^= 0x40;
    std::fs::write(segment, &bytes).unwrap();
    let output = run_reader(copy.path(), &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("CRC mismatch") && stderr.contains("offset 32"), "{stderr}");
    assert_eq!(records_of(&output).len(), records.len() - 1, "only the damaged record is missing");
}
