//! Cross-shard batches over HTTP, with readers, then SIGKILL: six writers send batches of 40 events over
//! 40 entities (both shards), each batch with its own event type; three readers count each batch's
//! members through the query route while they are written (always 0 or all); then `tidelog serve` is
//! SIGKILLed and restarted, and every acknowledged batch must be whole and every batch sent whole or
//! absent (recovery drops the parts of a batch cut short by the kill). Rounds at FSYNC_INTERVAL=0 and
//! 100. `BATCH_CRASH_ROUNDS` sets the rounds per interval (scripts/batch-crash.sh runs many).

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::crash::Clients;
use common::http::{get, try_request};
use common::server::Server;
use serde_json::json;

const MEMBERS: usize = 40;

/// `tidelog serve` with 1 MiB segments.
fn serve(dir: &std::path::Path, fsync_interval_ms: u32) -> Server {
    Server::start(dir, fsync_interval_ms, &["--segment-size-mib", "1"])
}

fn rounds() -> u64 {
    std::env::var("BATCH_CRASH_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(2)
}

fn count(addr: std::net::SocketAddr, event_type: &str) -> Option<usize> {
    let r = try_request(addr, "GET", &format!("/api/v1/events/query?event_type={event_type}&limit=1000"), None, b"")?;
    (r.status == 200).then(|| r.json()["count"].as_u64().unwrap() as usize)
}

/// What the run saw: batches sent (by type), batches acknowledged, torn reads while running.
struct Seen {
    sent: Vec<String>,
    acked: Vec<String>,
    torn_reads: u64,
    reads: u64,
}

fn run(fsync_interval_ms: u32) -> (tempfile::TempDir, Seen) {
    let dir = tempfile::tempdir().unwrap();
    let sent: Arc<Mutex<Vec<String>>> = Arc::default();
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let (torn, reads) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    for round in 0..rounds() {
        let mut server = serve(dir.path(), fsync_interval_ms);
        let mut clients = Clients::new(&server);
        clients.spawn(6, {
            let (sent, acked) = (sent.clone(), acked.clone());
            move |w, addr, stop| {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let event_type = format!("f{fsync_interval_ms}-r{round}-w{w}-b{n}");
                    let events: Vec<_> = (0..MEMBERS)
                        .map(|e| json!({"event_type": event_type, "entity_id": format!("{event_type}-e{e}"), "payload": {"e": e}}))
                        .collect();
                    sent.lock().unwrap().push(event_type.clone());
                    let body = json!({ "events": events }).to_string();
                    match try_request(addr, "POST", "/api/v1/events/batch", Some("application/json"), body.as_bytes()) {
                        Some(r) if r.status == 200 => acked.lock().unwrap().push(event_type),
                        Some(r) if r.status == 503 => {}
                        Some(r) => panic!("unexpected answer {}: {}", r.status, r.body),
                        None => {} // cut off by the kill: not acknowledged
                    }
                    n += 1;
                }
            }
        });
        clients.spawn(3, {
            let (sent, torn, reads) = (sent.clone(), torn.clone(), reads.clone());
            move |_, addr, stop| {
                while !stop.load(Ordering::Relaxed) {
                    let recent: Vec<String> = sent.lock().unwrap().iter().rev().take(6).cloned().collect();
                    for event_type in recent {
                        match count(addr, &event_type) {
                            Some(n) if n != 0 && n != MEMBERS => {
                                eprintln!("a reader saw {n} of {MEMBERS} events of {event_type}");
                                torn.fetch_add(1, Ordering::Relaxed);
                            }
                            Some(_) => {
                                reads.fetch_add(1, Ordering::Relaxed);
                            }
                            None => {}
                        }
                    }
                }
            }
        });
        clients.kill_after(&mut server, Duration::from_millis(600 + 150 * round));
    }
    let seen = Seen {
        sent: std::mem::take(&mut *sent.lock().unwrap()),
        acked: std::mem::take(&mut *acked.lock().unwrap()),
        torn_reads: torn.load(Ordering::Relaxed),
        reads: reads.load(Ordering::Relaxed),
    };
    (dir, seen)
}

/// Counts of every batch sent, read after a restart.
fn counts_after_restart(dir: &std::path::Path, fsync_interval_ms: u32, sent: &[String]) -> Vec<(String, usize)> {
    let mut server = serve(dir, fsync_interval_ms);
    let addr = server.addr;
    let counts = sent
        .iter()
        .map(|t| (t.clone(), get(addr, &format!("/api/v1/events/query?event_type={t}&limit=1000")).json()["count"].as_u64().unwrap() as usize))
        .collect();
    server.kill();
    counts
}

#[test]
fn readers_see_batches_whole_and_acknowledged_batches_survive_sigkill() {
    for fsync_interval_ms in [0u32, 100] {
        let (dir, seen) = run(fsync_interval_ms);
        eprintln!(
            "FSYNC_INTERVAL={fsync_interval_ms}: {} batches sent, {} acknowledged, {} whole reads, {} torn reads",
            seen.sent.len(),
            seen.acked.len(),
            seen.reads,
            seen.torn_reads
        );
        assert!(seen.acked.len() > 20 && seen.reads > 100, "too little happened to show anything");
        assert_eq!(seen.torn_reads, 0, "a reader saw part of a batch");
        let counts = counts_after_restart(dir.path(), fsync_interval_ms, &seen.acked);
        for (event_type, n) in counts {
            assert_eq!(n, MEMBERS, "acknowledged batch {event_type} is not whole after SIGKILL");
        }
    }
}

#[test]
fn after_sigkill_every_batch_is_whole_or_absent() {
    for fsync_interval_ms in [0u32, 100] {
        let (dir, seen) = run(fsync_interval_ms);
        let counts = counts_after_restart(dir.path(), fsync_interval_ms, &seen.sent);
        let partial: Vec<_> = counts.iter().filter(|(_, n)| *n != 0 && *n != MEMBERS).collect();
        assert!(partial.is_empty(), "FSYNC_INTERVAL={fsync_interval_ms}: batches partly present after restart: {partial:?}");
    }
}
