//! Issue #10, item 5: no read holds a shard's appends for more than a bounded slice. A store of a
//! million events; 50 SSE streams catch up from position 0 (each wants a rare event type, so its
//! catch-up reads every position of both shards) while a writer appends single events; the writer's
//! append latency stays low. Before catch-up was sliced, each stream's first page read half a million
//! positions in one go on a shard's executor, and appends waited behind all of them.
//!
//! Latency figures for comparison belong in the benchmarks; the bounds here are loose on purpose (a
//! shared 2-core machine), yet far below what whole-store scans on the executor cost.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::http::Sse;
use serde_json::json;
use tidelog::server::{HttpOptions, Server, ServerConfig};
use tidelog::{NewEvent, Store, StoreConfig};

const EVENTS: u64 = 1_000_000;
const BATCH_EVENTS: u64 = 1_000;
/// One event in this many is of the type the streams want.
const RARE_EVERY: u64 = 1_000;
const STREAMS: usize = 50;
const TENANT: &str = "t";

fn fill(store: &Store) {
    let started = Instant::now();
    let batches: Vec<Vec<NewEvent>> = (0..EVENTS / BATCH_EVENTS)
        .map(|b| {
            // One entity per batch, so each batch lands on one shard; consecutive batches alternate.
            let entity = format!("e{}", b % 64);
            (0..BATCH_EVENTS)
                .map(|i| {
                    let n = b * BATCH_EVENTS + i;
                    let event_type = if n % RARE_EVERY == 0 { "rare.tick" } else { "bulk.tick" };
                    NewEvent::new(entity.as_str(), event_type, &json!({ "n": n })).with_tenant(TENANT)
                })
                .collect()
        })
        .collect();
    // A few writers at once keep both shards busy.
    let batches = Arc::new(std::sync::Mutex::new(batches));
    let writers: Vec<_> = (0..4)
        .map(|_| {
            let (store, batches) = (store.clone(), batches.clone());
            std::thread::spawn(move || loop {
                let Some(batch) = batches.lock().unwrap().pop() else { return };
                common::block_on(store.append_batch(batch)).expect("batch appended");
            })
        })
        .collect();
    writers.into_iter().for_each(|w| w.join().expect("fill thread"));
    eprintln!("filled {EVENTS} events in {:?}", started.elapsed());
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[test]
fn appends_stay_fast_while_fifty_streams_catch_up_on_a_million_events() {
    let dir = tempfile::tempdir().unwrap();
    // Acknowledged after the write (FSYNC_INTERVAL=100): the latency measured is the executor's, not
    // the disk's fdatasync.
    let store = Store::open(StoreConfig::new(dir.path()).shards(2).fsync_interval_ms(100).without_checkpoints()).expect("open");
    fill(&store);
    let config = ServerConfig { listen: "127.0.0.1:0".parse().unwrap(), limits: HttpOptions { api_keys: None, ..HttpOptions::default() } };
    let server = Server::start(&store, config).expect("server starts");
    let addr = server.local_addr();

    // The writer: single events on a few entities (both shards), one after another, timed each.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (store, stop) = (store.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut latencies = Vec::new();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let event = NewEvent::new(format!("w{}", n % 8), "live.tick", &json!({ "n": n })).with_tenant(TENANT);
                let started = Instant::now();
                common::block_on(store.append(event)).expect("append");
                latencies.push(started.elapsed());
                n += 1;
                std::thread::sleep(Duration::from_micros(200));
            }
            latencies
        })
    };
    std::thread::sleep(Duration::from_millis(300));

    let rare = (EVENTS / RARE_EVERY) as usize;
    let go = Arc::new(Barrier::new(STREAMS));
    let catch_up_started = Instant::now();
    let streams: Vec<_> = (0..STREAMS)
        .map(|_| {
            let go = go.clone();
            std::thread::spawn(move || {
                go.wait();
                let started = Instant::now();
                let mut sse = Sse::open(addr, &format!("/api/v1/events/stream?tenant_id={TENANT}&event_type_prefix=rare."), None);
                assert_eq!(sse.status, 200);
                let got = sse.take(rare, Duration::from_secs(120));
                assert_eq!(got.len(), rare, "a stream caught up with every stored event of its type");
                started.elapsed()
            })
        })
        .collect();
    let catch_up: Vec<Duration> = streams.into_iter().map(|s| s.join().expect("stream thread")).collect();
    let all_caught_up = catch_up_started.elapsed();
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let mut latencies = writer.join().expect("writer thread");
    server.shutdown();
    store.close().unwrap();

    latencies.sort();
    let (p50, p99, max) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99), *latencies.last().unwrap());
    eprintln!(
        "{STREAMS} streams caught up in {all_caught_up:?} (slowest {:?}); {} appends meanwhile: p50 {p50:?}, p99 {p99:?}, max {max:?}",
        catch_up.iter().max().unwrap(),
        latencies.len()
    );
    assert!(p99 < Duration::from_millis(50), "p99 append latency {p99:?} during catch-up");
    assert!(max < Duration::from_millis(200), "max append latency {max:?} during catch-up");
}
