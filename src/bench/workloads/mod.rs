//! The workloads of issue #5, one file each, and what they share: a fresh store per setup, and a load
//! through `crate::loadgen` that reports its fdatasyncs and can keep the acknowledgements.

#[cfg(feature = "sql")]
pub mod analytics;
pub mod batch;
pub mod durable;
pub mod http;
pub mod memory;
#[cfg(feature = "object-store")]
pub mod object_store;
pub mod queries;
pub mod recovery;
pub mod seed;
pub mod wal_alone;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use super::progress;
use super::watchdog::Watchdog;
use super::Options;
use crate::loadgen::{run_load, LoadReport, LoadSpec};
use crate::{Error, Store, StoreConfig};

/// What every workload gets: the options and the scratch root.
pub struct Ctx<'a> {
    pub options: &'a Options,
    pub root: PathBuf,
}

impl Ctx<'_> {
    pub fn scaled(&self, n: u64, min: u64) -> u64 {
        self.options.scaled(n, min)
    }

    /// An empty directory for one store, under the scratch root.
    pub fn fresh(&self, name: &str) -> Result<PathBuf, Error> {
        super::fresh_dir(&self.root.join(name))
    }

    /// Removes a store's directory once it is closed; the disk is shared with the other workloads.
    pub fn remove(&self, dir: &std::path::Path) {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// A store in a fresh directory `name`.
pub fn open(ctx: &Ctx, name: &str, shards: usize, fsync_interval_ms: u32) -> Result<(Store, PathBuf), Error> {
    let dir = ctx.fresh(name)?;
    let store = Store::open(StoreConfig::new(&dir).shards(shards).fsync_interval_ms(fsync_interval_ms))?;
    Ok((store, dir))
}

pub fn fdatasyncs(store: &Store) -> u64 {
    store.status().iter().map(|s| s.fsyncs).sum()
}

pub fn wal_bytes(store: &Store) -> u64 {
    store.status().iter().map(|s| s.wal_bytes).sum()
}

/// One acknowledged event of a load.
#[derive(Debug, Clone, Copy)]
pub struct AckInfo {
    /// The load generator's sequence number: `make_event(spec, seq)` rebuilds the event.
    pub seq: u64,
    pub id: uuid::Uuid,
    /// Read by the peers, which store the same versions.
    #[cfg_attr(not(feature = "peers"), allow(dead_code))]
    pub version: u64,
    pub timestamp_us: i64,
}

/// A finished load.
pub struct Loaded {
    pub report: LoadReport,
    /// fdatasyncs during the load (all shards).
    pub fdatasyncs: u64,
    /// The kept acknowledgements, in acknowledgement order.
    pub acks: Vec<AckInfo>,
}

/// Runs `spec` against `store` with a progress bar. `keep_every`: keep the ack of every event whose
/// sequence number is a multiple of it (1: all), or none.
pub fn load(store: &Store, spec: &LoadSpec, label: &str, keep_every: Option<u64>) -> Result<Loaded, Error> {
    let fsyncs_before = fdatasyncs(store);
    let bar = progress::bar(spec.events, label);
    let watchdog = Watchdog::start(label);
    let acked = watchdog.progress();
    let kept = Arc::new(Mutex::new(Vec::new()));
    let sink = kept.clone();
    let step_bar = bar.clone();
    let report = run_load(store, spec, move |ack, seq| {
        progress::step(&step_bar, seq);
        acked.fetch_add(1, Ordering::Relaxed);
        if keep_every.is_some_and(|every| seq % every.max(1) == 0) {
            let info = AckInfo { seq, id: ack.id, version: ack.version, timestamp_us: ack.timestamp_us };
            sink.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(info);
        }
    });
    bar.finish_and_clear();
    watchdog.finish();
    let report = report?;
    let acks = std::mem::take(&mut *kept.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
    Ok(Loaded { report, fdatasyncs: fdatasyncs(store) - fsyncs_before, acks })
}

/// "2 shards" / "1 shard".
pub fn shards_label(shards: usize) -> String {
    format!("{shards} shard{}", if shards == 1 { "" } else { "s" })
}
