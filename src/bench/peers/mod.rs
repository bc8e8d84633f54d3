//! The peer databases (feature `peers`): stoolap and SQLite on workloads 1 (seed), 3 (durable ingest)
//! and 4 (queries), with the same events as tidelog in the same run, and tidelog's ratio to each.

mod durable;
mod queries;
mod seed;
mod sql;
mod sqlite;
mod stoolap;

use std::path::Path;
use std::time::Duration;

use super::report::{LatencyRow, PeerRatio, Report, ThroughputRow};
use super::workloads::queries::QueryData;
use super::workloads::Ctx;
use crate::Error;
use sql::Peer;
use sqlite::{Sqlite, Synchronous};

/// The peer setups of issue #5.
#[derive(Debug, Clone, Copy)]
pub enum PeerKind {
    StoolapMemory,
    StoolapFileSyncFull,
    SqliteWalNormal,
    SqliteWalFull,
}

impl PeerKind {
    /// A new, empty database of this kind under `dir`.
    pub fn create(self, dir: &Path) -> Result<Box<dyn Peer>, Error> {
        Ok(match self {
            PeerKind::StoolapMemory => Box::new(stoolap::Stoolap::memory()?),
            PeerKind::StoolapFileSyncFull => Box::new(stoolap::Stoolap::file_sync_full(&dir.join("stoolap"))?),
            PeerKind::SqliteWalNormal => Box::new(Sqlite::create(dir.join("sqlite-normal.db"), Synchronous::Normal)?),
            PeerKind::SqliteWalFull => Box::new(Sqlite::create(dir.join("sqlite-full.db"), Synchronous::Full)?),
        })
    }
}

// Each peer workload runs right after tidelog's, so both see the disk in (nearly) the same state: its
// fdatasync latency swings between ~0.2 ms and ~4 ms over minutes.

/// Workload 1 on the peers.
pub fn seed(ctx: &Ctx, report: &mut Report) -> Result<(), Error> {
    in_scratch(ctx, |dir| seed::run(ctx, report, dir, time_cap(ctx)))
}

/// Workload 3 on the peers.
pub fn durable(ctx: &Ctx, report: &mut Report) -> Result<(), Error> {
    in_scratch(ctx, |dir| durable::run(ctx, report, dir, time_cap(ctx)))
}

/// Workload 4 on the peers, with tidelog's events and cases.
pub fn queries(ctx: &Ctx, report: &mut Report, data: &QueryData) -> Result<(), Error> {
    in_scratch(ctx, |dir| queries::run(report, dir, data))
}

/// A peer that fdatasyncs every commit can take minutes on the slow state of the disk; each peer
/// workload stops at this time and reports the rows it did.
fn time_cap(ctx: &Ctx) -> Duration {
    Duration::from_secs_f64((60.0 * ctx.options.scale).clamp(3.0, 60.0))
}

fn in_scratch(ctx: &Ctx, f: impl FnOnce(&Path) -> Result<(), Error>) -> Result<(), Error> {
    let dir = ctx.fresh("peers")?;
    let result = f(&dir);
    ctx.remove(&dir);
    result
}

/// tidelog events/s ÷ peer events/s.
fn throughput_ratio(measure: &str, tidelog: &ThroughputRow, peer: &ThroughputRow) -> PeerRatio {
    PeerRatio {
        workload: peer.workload.clone(),
        peer: peer.system.clone(),
        measure: measure.into(),
        tidelog_events_per_s: Some(tidelog.events_per_s),
        peer_events_per_s: Some(peer.events_per_s),
        tidelog_p99_us: None,
        peer_p99_us: None,
        tidelog_advantage: tidelog.events_per_s / peer.events_per_s.max(f64::MIN_POSITIVE),
    }
}

/// Peer p99 ÷ tidelog p99.
fn latency_ratio(tidelog: &LatencyRow, peer: &LatencyRow) -> PeerRatio {
    PeerRatio {
        workload: peer.workload.clone(),
        peer: peer.system.clone(),
        measure: format!("{} p99", peer.operation),
        tidelog_events_per_s: None,
        peer_events_per_s: None,
        tidelog_p99_us: Some(tidelog.latency.p99_us),
        peer_p99_us: Some(peer.latency.p99_us),
        tidelog_advantage: peer.latency.p99_us / tidelog.latency.p99_us.max(f64::MIN_POSITIVE),
    }
}
