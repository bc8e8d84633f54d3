//! SIGKILL `tidelog serve` under concurrent HTTP load with FSYNC_INTERVAL=0; after a restart every event
//! that got a 200 must be there exactly once. And SIGTERM: a graceful stop that drains and syncs.

mod common;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::crash::{verify_acks, Ack, Clients};
use common::http::try_request;
use common::server::Server;
use serde_json::json;

/// `tidelog serve` at FSYNC_INTERVAL=0 with 1 MiB segments.
fn serve(dir: &std::path::Path) -> Server {
    Server::start(dir, 0, &["--segment-size-mib", "1"])
}

#[test]
fn sigkill_under_http_load_loses_no_acknowledged_event() {
    let dir = tempfile::tempdir().unwrap();
    let acked: Arc<Mutex<Vec<Ack>>> = Arc::default();
    for round in 0..3u64 {
        let mut server = serve(dir.path());
        let mut clients = Clients::new(&server);
        clients.spawn(8, {
            let acked = acked.clone();
            move |client, addr, stop| {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let entity = format!("r{round}-c{client}-e{}", n % 5);
                    let payload = json!({ "n": n });
                    let body = json!({"event_type":"tick","entity_id":entity,"payload":payload});
                    // A request cut off by the kill has no answer: it was not acknowledged.
                    let reply = try_request(addr, "POST", "/api/v1/events", Some("application/json"), body.to_string().as_bytes());
                    if let Some(reply) = reply {
                        if reply.status == 200 {
                            acked.lock().unwrap().push(Ack::of_reply(&reply.json(), entity, payload));
                        }
                    }
                    n += 1;
                }
            }
        });
        clients.kill_after(&mut server, Duration::from_millis(400 + 200 * round));
    }
    let acked = acked.lock().unwrap();
    assert!(acked.len() > 100, "only {} events acknowledged", acked.len());
    // Read back over HTTP from a restarted server: every acknowledged event by id, and every entity's
    // history (each event once, no gaps).
    let mut server = serve(dir.path());
    verify_acks(&server, &acked);
    eprintln!("{} acknowledged events verified after 3 SIGKILLs", acked.len());
    server.kill();
}

#[test]
fn sigterm_drains_requests_syncs_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = serve(dir.path());
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut clients = Clients::new(&server);
    clients.spawn(4, {
        let acked = acked.clone();
        move |c, addr, stop| {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let body = json!({"event_type":"t","entity_id":format!("c{c}"),"payload":{"n":n}}).to_string();
                match try_request(addr, "POST", "/api/v1/events", Some("application/json"), body.as_bytes()) {
                    Some(r) if r.status == 200 => acked.lock().unwrap().push(r.json()["event_id"].as_str().unwrap().to_string()),
                    _ => break, // refused: the server is stopping
                }
                n += 1;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    let status = clients.stop_with(|| server.terminate());
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
