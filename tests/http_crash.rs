//! SIGKILL `tidelog serve` under concurrent HTTP load with FSYNC_INTERVAL=0; after a restart every event
//! that got a 200 must be there exactly once.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::http::{get, try_request};
use common::server::Server;
use serde_json::json;

/// `tidelog serve` at FSYNC_INTERVAL=0 with 1 MiB segments.
fn serve(dir: &std::path::Path) -> Server {
    Server::start(dir, 0, &["--segment-size-mib", "1"])
}

#[test]
fn sigkill_under_http_load_loses_no_acknowledged_event() {
    let dir = tempfile::tempdir().unwrap();
    let acked: Arc<Mutex<Vec<(String, String, u64)>>> = Arc::default();
    for round in 0..3u64 {
        let mut server = serve(dir.path());
        let addr = server.addr;
        let stop = Arc::new(AtomicBool::new(false));
        let clients: Vec<_> = (0..8)
            .map(|client| {
                let (stop, acked) = (stop.clone(), acked.clone());
                std::thread::spawn(move || {
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let entity = format!("r{round}-c{client}-e{}", n % 5);
                        let body = json!({"event_type":"tick","entity_id":entity,"payload":{"n":n}});
                        // A request cut off by the kill has no answer: it was not acknowledged.
                        let reply = try_request(addr, "POST", "/api/v1/events", Some("application/json"), body.to_string().as_bytes());
                        if let Some(reply) = reply {
                            if reply.status == 200 {
                                let ack = reply.json();
                                let id = ack["event_id"].as_str().unwrap().to_string();
                                acked.lock().unwrap().push((id, entity, ack["version"].as_u64().unwrap()));
                            }
                        }
                        n += 1;
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(400 + 200 * round));
        server.kill();
        stop.store(true, Ordering::Relaxed);
        for c in clients {
            c.join().unwrap();
        }
    }
    let acked = acked.lock().unwrap();
    assert!(acked.len() > 100, "only {} events acknowledged", acked.len());
    let mut server = serve(dir.path());
    let addr = server.addr;
    for (id, entity, version) in acked.iter() {
        let r = get(addr, &format!("/api/v1/events/{id}"));
        assert_eq!(r.status, 200, "acknowledged event {id} lost");
        let event = &r.json()["event"];
        assert_eq!((event["entity_id"].as_str().unwrap(), event["version"].as_u64().unwrap()), (entity.as_str(), *version));
    }
    let entities: std::collections::HashSet<&String> = acked.iter().map(|(_, e, _)| e).collect();
    for entity in entities {
        let page = get(addr, &format!("/api/v1/events/query?entity_id={entity}&limit=10000")).json();
        let versions: Vec<u64> = page["events"].as_array().unwrap().iter().map(|e| e["version"].as_u64().unwrap()).collect();
        assert_eq!(versions, (1..=versions.len() as u64).collect::<Vec<_>>(), "{entity}: each event once, no gaps");
    }
    eprintln!("{} acknowledged events verified after 3 SIGKILLs", acked.len());
    server.kill();
}

#[test]
fn sigterm_drains_requests_syncs_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = serve(dir.path());
    let addr = server.addr;
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let (stop, acked) = (stop.clone(), acked.clone());
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let body = json!({"event_type":"t","entity_id":format!("c{c}"),"payload":{"n":n}}).to_string();
                    match try_request(addr, "POST", "/api/v1/events", Some("application/json"), body.as_bytes()) {
                        Some(r) if r.status == 200 => acked.lock().unwrap().push(r.json()["event_id"].as_str().unwrap().to_string()),
                        _ => break, // refused: the server is stopping
                    }
                    n += 1;
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let status = server.terminate();
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    assert_eq!(status.code(), Some(0), "graceful exit");
    let acked = acked.lock().unwrap();
    assert!(!acked.is_empty());
    let store = tidelog::Store::open(common::config(dir.path(), 2, 0)).unwrap();
    for report in store.recovery_reports() {
        assert_eq!((report.bytes_truncated, report.records_skipped), (0, 0), "a clean stop leaves a clean log: {report}");
    }
    for id in acked.iter() {
        assert!(store.get("default", &id.parse().unwrap()).is_some(), "{id} lost");
    }
    store.close().unwrap();
}
