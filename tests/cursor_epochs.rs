//! Issue #10, item 6: stream cursors stay meaningful after a power loss. At FSYNC_INTERVAL=N a power cut
//! takes back acknowledged but unsynced events, and after the restart their positions go to new events.
//! A stream resumed with a cursor handed out before the cut must still see every event appended after
//! the restart: the cursor names its epoch, and the store knows where each later epoch began.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::http::Sse;
use serde_json::json;
use tidelog::server::{HttpOptions, Server, ServerConfig};
use tidelog::wal::fault::FaultPlan;
use tidelog::{NewEvent, Store};

const TENANT: &str = "t";
/// Far longer than the test: nothing is fdatasynced but by a close.
const NEVER_MS: u32 = 3_600_000;

fn open(dir: &Path, plan: Option<&Arc<FaultPlan>>) -> Store {
    let mut config = common::config(dir, 2, NEVER_MS).without_checkpoints();
    if let Some(plan) = plan {
        config = config.fault_plan(plan.clone());
    }
    Store::open(config).expect("open")
}

fn serve(store: &Store) -> Server {
    let config = ServerConfig { listen: "127.0.0.1:0".parse().unwrap(), limits: HttpOptions { api_keys: None, ..HttpOptions::default() } };
    Server::start(store, config).expect("server starts")
}

/// Appends `count` events of `phase`, over entities on both shards.
fn append(store: &Store, phase: &str, count: u64) {
    for n in 0..count {
        let event = NewEvent::new(format!("e{}", n % 6), format!("{phase}.tick"), &json!({ "phase": phase, "n": n })).with_tenant(TENANT);
        common::block_on(store.append(event)).expect("append");
    }
}

fn phases(events: &[(String, serde_json::Value)]) -> Vec<(String, u64)> {
    let mut seen: Vec<(String, u64)> =
        events.iter().map(|(_, e)| (e["payload"]["phase"].as_str().unwrap().to_string(), e["payload"]["n"].as_u64().unwrap())).collect();
    seen.sort();
    seen
}

const STREAM: &str = "/api/v1/events/stream?tenant_id=t";

#[test]
fn a_stream_resumed_after_a_power_cut_sees_every_new_event() {
    let dir = tempfile::tempdir().unwrap();

    // Durable history: appended, then closed (which fdatasyncs).
    let store = open(dir.path(), None);
    append(&store, "kept", 10);
    store.close().unwrap();

    // Acknowledged but never synced; a stream reads all of it and keeps its cursor.
    let plan = FaultPlan::new();
    let store = open(dir.path(), Some(&plan));
    append(&store, "lost", 20);
    let server = serve(&store);
    let mut sse = Sse::open(server.local_addr(), STREAM, None);
    let before = sse.take(30, Duration::from_secs(10));
    assert_eq!(before.len(), 30);
    let cursor = before.last().unwrap().0.clone();
    let epoch_before = store.epochs().current();
    assert!(cursor.ends_with(&format!("-e{epoch_before}")), "the cursor names its epoch: {cursor}");
    drop(sse);
    server.shutdown();
    store.halt();
    plan.power_cut().unwrap();

    // After the restart the lost events are gone and new ones take their positions.
    let store = open(dir.path(), None);
    assert_eq!(store.epochs().current(), epoch_before + 1);
    let recovered: u64 = store.recovery_reports().iter().map(|r| r.last_position).sum();
    assert_eq!(recovered, 10, "the power cut took back every unsynced event");
    append(&store, "after", 8);
    let server = serve(&store);
    let addr = server.local_addr();

    let mut resumed = Sse::open(addr, STREAM, Some(&cursor));
    assert_eq!(resumed.status, 200);
    let got = resumed.take(100, Duration::from_millis(1500));
    let expected: Vec<(String, u64)> = (0..8).map(|n| ("after".to_string(), n)).collect();
    assert_eq!(phases(&got), expected, "every event appended after the restart, nothing already seen");

    // The cursors it hands out now name the new epoch and resume exactly.
    let live_cursor = got.last().unwrap().0.clone();
    assert!(live_cursor.ends_with(&format!("-e{}", epoch_before + 1)), "{live_cursor}");
    drop(resumed);
    append(&store, "later", 3);
    let mut again = Sse::open(addr, STREAM, Some(&live_cursor));
    let later = again.take(100, Duration::from_millis(1500));
    assert_eq!(phases(&later), (0..3).map(|n| ("later".to_string(), n)).collect::<Vec<_>>());
    drop(again);

    // A cursor without an epoch (the format before epochs) is older than every epoch: never skips.
    let positions = cursor.rsplit_once("-e").unwrap().0.to_string();
    let mut legacy = Sse::open(addr, STREAM, Some(&positions));
    assert_eq!(legacy.status, 200);
    let replayed = phases(&legacy.take(100, Duration::from_millis(1500)));
    for n in 0..8 {
        assert!(replayed.contains(&("after".to_string(), n)), "after/{n} missing from {replayed:?}");
    }
    drop(legacy);

    // Malformed cursors and epochs this store has not reached are refused with a JSON error.
    for bad in ["c-1-x-e1", "c-1-2-ex", "c-1-2-e99", "c-1", "12"] {
        let refused = Sse::open(addr, STREAM, Some(bad));
        assert_eq!(refused.status, 400, "{bad}");
    }
    let answer = raw_get(addr, STREAM, "c-1-2-e99");
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let body: serde_json::Value = serde_json::from_str(answer.split_once("\r\n\r\n").unwrap().1).expect("a JSON error body");
    assert_eq!(body["error"], "bad_request", "{body}");
    assert!(body["message"].as_str().unwrap().contains("epoch 99"), "{body}");

    server.shutdown();
    store.close().unwrap();
}

/// A GET with a `Last-Event-ID`, read to the end (for answers that are not streams).
fn raw_get(addr: std::net::SocketAddr, path: &str, last_event_id: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let head = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nLast-Event-ID: {last_event_id}\r\n\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    let mut raw = String::new();
    let _ = stream.read_to_string(&mut raw);
    raw
}
