//! What the shipper reports (`/health`, `/metrics`): how far behind the object store is, and the last
//! error. Written by the shipper's task, read by anyone.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

use serde::Serialize;

pub struct ShipStatus {
    url: String,
    ship_interval_ms: u32,
    started_us: i64,
    /// Start of the last round that shipped everything (0: none yet): every append acknowledged before
    /// it is in the object store.
    shipped_through_us: AtomicI64,
    last_error: Mutex<Option<(i64, String)>>,
    rounds_ok: AtomicU64,
    rounds_failed: AtomicU64,
    uploaded_bytes: AtomicU64,
    uploaded_objects: AtomicU64,
    deleted_objects: AtomicU64,
    delta_table: Option<String>,
    delta_events: AtomicU64,
    delta_commits: AtomicU64,
    delta_last_error: Mutex<Option<String>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ShipStatusSnapshot {
    pub url: String,
    pub ship_interval_ms: u32,
    /// How long before now the last complete round started: appends acknowledged since then may not be in
    /// the object store yet.
    pub lag_ms: u64,
    /// When the last complete round started (µs since the Unix epoch), if any has.
    pub shipped_through_us: Option<i64>,
    pub last_error: Option<String>,
    /// When the last error happened (µs since the Unix epoch).
    pub last_error_us: Option<i64>,
    pub rounds_ok: u64,
    pub rounds_failed: u64,
    pub uploaded_bytes: u64,
    pub uploaded_objects: u64,
    pub deleted_objects: u64,
    /// The Delta Lake table appended to at each shipped checkpoint, if any.
    pub delta_table: Option<String>,
    /// Events and commits this process appended to it.
    pub delta_events_appended: u64,
    pub delta_commits: u64,
    /// Why the last attempt to append to the table failed (cleared by one that succeeds).
    pub delta_last_error: Option<String>,
}

impl ShipStatus {
    pub fn new(url: &str, ship_interval_ms: u32, delta_table: Option<String>) -> ShipStatus {
        ShipStatus {
            url: url.to_string(),
            ship_interval_ms,
            started_us: crate::time::now_us(),
            shipped_through_us: AtomicI64::new(0),
            last_error: Mutex::new(None),
            rounds_ok: AtomicU64::new(0),
            rounds_failed: AtomicU64::new(0),
            uploaded_bytes: AtomicU64::new(0),
            uploaded_objects: AtomicU64::new(0),
            deleted_objects: AtomicU64::new(0),
            delta_table,
            delta_events: AtomicU64::new(0),
            delta_commits: AtomicU64::new(0),
            delta_last_error: Mutex::new(None),
        }
    }

    pub(crate) fn round_ok(&self, started_us: i64) {
        self.shipped_through_us.store(started_us, Ordering::Relaxed);
        self.rounds_ok.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock().unwrap() = None;
    }

    pub(crate) fn round_failed(&self, error: String) {
        self.rounds_failed.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock().unwrap() = Some((crate::time::now_us(), error));
    }

    pub(crate) fn uploaded(&self, size_bytes: usize) {
        self.uploaded_bytes.fetch_add(size_bytes as u64, Ordering::Relaxed);
        self.uploaded_objects.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn uploaded_objects(&self) -> u64 {
        self.uploaded_objects.load(Ordering::Relaxed)
    }

    pub(crate) fn deleted(&self) {
        self.deleted_objects.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn delta_committed(&self, events: u64) {
        self.delta_events.fetch_add(events, Ordering::Relaxed);
        self.delta_commits.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn delta_failed(&self, error: String) {
        *self.delta_last_error.lock().unwrap() = Some(error);
    }

    pub(crate) fn delta_ok(&self) {
        *self.delta_last_error.lock().unwrap() = None;
    }

    pub fn snapshot(&self) -> ShipStatusSnapshot {
        let through = self.shipped_through_us.load(Ordering::Relaxed);
        let since = if through > 0 { through } else { self.started_us };
        let error = self.last_error.lock().unwrap().clone();
        ShipStatusSnapshot {
            url: self.url.clone(),
            ship_interval_ms: self.ship_interval_ms,
            lag_ms: (crate::time::now_us() - since).max(0) as u64 / 1000,
            shipped_through_us: (through > 0).then_some(through),
            last_error_us: error.as_ref().map(|e| e.0),
            last_error: error.map(|e| e.1),
            rounds_ok: self.rounds_ok.load(Ordering::Relaxed),
            rounds_failed: self.rounds_failed.load(Ordering::Relaxed),
            uploaded_bytes: self.uploaded_bytes.load(Ordering::Relaxed),
            uploaded_objects: self.uploaded_objects.load(Ordering::Relaxed),
            deleted_objects: self.deleted_objects.load(Ordering::Relaxed),
            delta_table: self.delta_table.clone(),
            delta_events_appended: self.delta_events.load(Ordering::Relaxed),
            delta_commits: self.delta_commits.load(Ordering::Relaxed),
            delta_last_error: self.delta_last_error.lock().unwrap().clone(),
        }
    }
}
