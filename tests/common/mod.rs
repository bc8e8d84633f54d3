//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod crash;
pub mod http;
pub mod python;
pub mod server;

use std::path::Path;

use serde_json::json;
use tidelog::{NewEvent, Store, StoreConfig};

pub fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    futures_lite::future::block_on(f)
}

/// A small-segment config so tests cross segment boundaries.
pub fn config(dir: &Path, shards: usize, fsync_interval_ms: u32) -> StoreConfig {
    StoreConfig::new(dir).shards(shards).fsync_interval_ms(fsync_interval_ms).segment_size_bytes(64 * 1024)
}

pub fn open(dir: &Path, shards: usize, fsync_interval_ms: u32) -> Store {
    Store::open(config(dir, shards, fsync_interval_ms)).expect("open store")
}

/// Polls `done` every 2 ms; fails the test after 20 s, naming `what` it waited for.
pub fn wait_until(what: &str, done: impl Fn() -> bool) {
    let started = std::time::Instant::now();
    while !done() {
        assert!(started.elapsed() < std::time::Duration::from_secs(20), "timed out waiting until {what}");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// Keeps a shard's executor busy (a task that sleeps without yielding) until the returned flag is set:
/// what is sent to the shard meanwhile waits in its inbox. Returns once the task runs: the spawn is a
/// message in the inbox too, and a shard that took it could still take the next message before the task
/// starts (seen in CI: a batch part meant to wait was taken).
pub fn occupy_shard(store: &Store, shard: usize) -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let release = Arc::new(AtomicBool::new(false));
    let running = Arc::new(AtomicBool::new(false));
    block_on(store.spawn_on(shard, {
        let (release, running) = (release.clone(), running.clone());
        move |_| async move {
            running.store(true, Ordering::Relaxed);
            while !release.load(Ordering::Relaxed) {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
    }))
    .expect("spawn on the shard");
    wait_until("the task occupying the shard runs", || running.load(Ordering::Relaxed));
    release
}

pub fn event(tenant: &str, entity: &str, event_type: &str, n: u64) -> NewEvent {
    NewEvent::new(entity, event_type, &json!({ "n": n, "entity": entity })).with_tenant(tenant)
}
