//! A full inbox is back-pressure, never a stalled core: HTTP handlers (which run on the shards'
//! executors) fill tiny inboxes with cross-shard batches that take the prepare/commit path, single
//! appends and queries, while a prober checks that the server keeps answering within a deadline.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::http::try_request_within;
use serde_json::json;
use tidelog::server::{HttpOptions, Server, ServerConfig};
use tidelog::Store;

/// How long any answer may take while the inboxes are full. A stalled executor never answers.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

#[test]
fn full_inboxes_answer_503_and_the_server_keeps_answering() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path(), 2, 0);
    // Two messages fill an inbox: every burst of requests from the other shard's handlers fills it.
    config.queue_capacity = 2;
    let store = Store::open(config).expect("open");
    let limits = HttpOptions { max_body_bytes: 1 << 20, api_keys: None, ..HttpOptions::default() };
    let server = Server::start(&store, ServerConfig { listen: "127.0.0.1:0".parse().unwrap(), limits }).expect("server");
    let addr = server.local_addr();

    let stop = Arc::new(AtomicBool::new(false));
    let (ok, unavailable, missing_retry_after) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let writers: Vec<_> = (0..24u64)
        .map(|w| {
            let (stop, ok, unavailable, missing_retry_after) = (stop.clone(), ok.clone(), unavailable.clone(), missing_retry_after.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    // Client ids over several entities (both shards): the prepare/commit path.
                    let events: Vec<_> = (0..8u64)
                        .map(|e| json!({"event_type":"bp","entity_id":format!("w{w}-e{e}"),"id":uuid::Uuid::from_u128(((u128::from(w) + 1) << 64) | u128::from(n * 8 + e)).to_string(),"payload":{"n":n}}))
                        .collect();
                    let (path, body) = if n % 3 == 2 {
                        ("/api/v1/events", json!({"event_type":"bp","entity_id":format!("w{w}"),"payload":{"n":n}}))
                    } else {
                        ("/api/v1/events/batch", json!({"events": events}))
                    };
                    let reply = try_request_within(addr, "POST", path, Some("application/json"), body.to_string().as_bytes(), Some(ANSWER_WITHIN));
                    match reply {
                        Some(r) if r.status == 200 => {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Some(r) if r.status == 503 => {
                            unavailable.fetch_add(1, Ordering::Relaxed);
                            if r.header("retry-after").is_none() {
                                missing_retry_after.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Some(r) if r.status == 409 => {} // contended: another batch holds an entity
                        Some(r) => panic!("unexpected answer {}: {}", r.status, r.body),
                        None => {} // counted by the prober below: writers only load the server
                    }
                    n += 1;
                }
            })
        })
        .collect();

    // The prober: health, a query fanned out to both shards, and stats, each answered in time.
    let started = Instant::now();
    let mut probes = 0u64;
    let mut stalled = None;
    while started.elapsed() < Duration::from_secs(4) {
        for path in ["/health", "/api/v1/events/query?event_type_prefix=b&limit=5", "/api/v1/stats"] {
            let asked = Instant::now();
            match try_request_within(addr, "GET", path, None, b"", Some(ANSWER_WITHIN)) {
                Some(r) if r.status == 200 || r.status == 503 => probes += 1,
                other => {
                    stalled = Some(format!("{path}: {:?} after {:?}", other.map(|r| (r.status, r.body)), asked.elapsed()));
                    break;
                }
            }
        }
        if stalled.is_some() {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    if let Some(stalled) = stalled {
        // A stalled executor never stops: leave the store and server behind rather than hang on them.
        std::mem::forget(server);
        std::mem::forget(store);
        panic!("the server stopped answering under full inboxes: {stalled}");
    }
    for w in writers {
        w.join().unwrap();
    }
    let (ok, unavailable) = (ok.load(Ordering::Relaxed), unavailable.load(Ordering::Relaxed));
    eprintln!("{probes} probes answered; writers: {ok} accepted, {unavailable} refused with 503");
    assert!(ok > 0, "no write went through");
    assert!(unavailable > 0, "the inboxes never filled: the test did not test back-pressure");
    assert_eq!(missing_retry_after.load(Ordering::Relaxed), 0, "every 503 carries Retry-After");
    server.shutdown();
    store.close().unwrap();
}
