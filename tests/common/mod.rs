//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod http;

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

pub fn event(tenant: &str, entity: &str, event_type: &str, n: u64) -> NewEvent {
    NewEvent::new(entity, event_type, &json!({ "n": n, "entity": entity })).with_tenant(tenant)
}
