//! The report: every figure of a run, with units in the key names, written as `report.json`.

use std::path::Path;

use serde::Serialize;

use super::machine::Machine;
use super::stats::LatencyUs;
use crate::Error;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// RFC 3339, UTC, when the run started.
    pub date_utc: String,
    pub machine: Machine,
    pub scale: f64,
    /// 4 KiB write + fdatasync on the data directory's disk, measured at the start of the run.
    pub fdatasync_4k: LatencyUs,
    pub throughput: Vec<ThroughputRow>,
    pub latency: Vec<LatencyRow>,
    pub recovery: Vec<RecoveryResult>,
    pub memory: Option<MemoryResult>,
    pub peer_ratios: Vec<PeerRatio>,
    /// What went wrong without failing the run, e.g. a load that stalled.
    pub warnings: Vec<String>,
}

/// Events appended (or inserted) per second by one workload setup.
#[derive(Debug, Clone, Serialize)]
pub struct ThroughputRow {
    /// The workload of issue #5: "seed", "batch ingest", "durable ingest", "http".
    pub workload: String,
    /// "tidelog" or a peer database and mode.
    pub system: String,
    /// Shards, FSYNC_INTERVAL, callers, batch size.
    pub setup: String,
    pub events: u64,
    pub elapsed_s: f64,
    pub events_per_s: f64,
    /// Latency of one append call / request / insert (a whole batch for batches).
    pub call_latency: Option<LatencyUs>,
    /// fdatasyncs during the workload (tidelog: from `Store::status`).
    pub fdatasyncs: Option<u64>,
    /// None when there was no fdatasync during the workload.
    pub events_per_fdatasync: Option<f64>,
    /// fdatasync latency inside the engine during the workload (all shards), from `Store::shard_latency`.
    pub engine_fdatasync: Option<LatencyUs>,
    pub target_events_per_s: Option<f64>,
    /// events_per_s / target_events_per_s.
    pub ratio_to_target: Option<f64>,
}

impl ThroughputRow {
    pub fn new(workload: &str, system: &str, setup: String, events: u64, elapsed_s: f64) -> ThroughputRow {
        ThroughputRow {
            workload: workload.into(),
            system: system.into(),
            setup,
            events,
            elapsed_s,
            events_per_s: if elapsed_s > 0.0 { events as f64 / elapsed_s } else { 0.0 },
            call_latency: None,
            fdatasyncs: None,
            events_per_fdatasync: None,
            engine_fdatasync: None,
            target_events_per_s: None,
            ratio_to_target: None,
        }
    }

    pub fn latency(mut self, latency: LatencyUs) -> ThroughputRow {
        self.call_latency = Some(latency);
        self
    }

    /// Records the fdatasync count; events per fdatasync only when there was at least one.
    pub fn fdatasyncs(mut self, fdatasyncs: u64) -> ThroughputRow {
        self.fdatasyncs = Some(fdatasyncs);
        self.events_per_fdatasync = (fdatasyncs > 0).then(|| self.events as f64 / fdatasyncs as f64);
        self
    }

    pub fn target(mut self, events_per_s: f64) -> ThroughputRow {
        self.target_events_per_s = Some(events_per_s);
        self.ratio_to_target = Some(self.events_per_s / events_per_s);
        self
    }
}

/// Latency of one kind of read.
#[derive(Debug, Clone, Serialize)]
pub struct LatencyRow {
    /// "seed" or "queries".
    pub workload: String,
    pub system: String,
    /// What one sample is, e.g. "get by id (random order)".
    pub operation: String,
    pub latency: LatencyUs,
    /// Events returned per call, on average.
    pub events_per_call: f64,
    pub target_p99_us: Option<f64>,
    /// p99_us / target_p99_us (above 1: slower than the target).
    pub ratio_p99_to_target: Option<f64>,
}

impl LatencyRow {
    pub fn new(workload: &str, system: &str, operation: &str, latency: LatencyUs, events_per_call: f64) -> LatencyRow {
        LatencyRow {
            workload: workload.into(),
            system: system.into(),
            operation: operation.into(),
            latency,
            events_per_call,
            target_p99_us: None,
            ratio_p99_to_target: None,
        }
    }

    pub fn target_p99(mut self, p99_us: f64) -> LatencyRow {
        self.target_p99_us = Some(p99_us);
        self.ratio_p99_to_target = Some(self.latency.p99_us / p99_us);
        self
    }
}

/// Reopening a store: how long recovery took and what each shard found.
#[derive(Debug, Clone, Serialize)]
pub struct RecoveryResult {
    /// "WAL only" or "with checkpoints".
    pub variant: String,
    pub shards: usize,
    pub events: u64,
    pub wal_bytes: u64,
    /// `Store::open` wall time, recovery of all shards in parallel included.
    pub open_s: f64,
    pub events_per_s: f64,
    pub shard_reports: Vec<ShardRecovery>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ShardRecovery {
    pub shard: u32,
    pub segments: u32,
    /// Records replayed from the WAL.
    pub records_recovered: u64,
    pub events_from_checkpoints: u64,
    pub checkpoint_files: u32,
    pub checkpoint_load_s: f64,
    pub records_skipped: u64,
    pub corrupt_bytes_skipped: u64,
    pub bytes_truncated: u64,
    pub duration_s: f64,
}

/// Resident memory per stored event.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryResult {
    pub events: u64,
    pub rss_before_bytes: u64,
    pub rss_after_bytes: u64,
    pub rss_per_event_bytes: f64,
    /// Average `StoredEvent::bytes().len()` over a sample of the stored events.
    pub encoded_event_avg_bytes: f64,
    pub wal_bytes_per_event: f64,
    /// rss_per_event_bytes / encoded_event_avg_bytes.
    pub rss_over_encoded: f64,
}

/// tidelog against a peer on the same workload, same data, same run.
#[derive(Debug, Clone, Serialize)]
pub struct PeerRatio {
    pub workload: String,
    pub peer: String,
    /// What is compared, e.g. "inserts, 1 caller" or "entity history p99".
    pub measure: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tidelog_events_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_events_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tidelog_p99_us: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_p99_us: Option<f64>,
    /// Above 1, tidelog is better: events/s tidelog ÷ peer, or p99 peer ÷ tidelog.
    pub tidelog_advantage: f64,
}

impl Report {
    pub fn new(scale: f64, machine: Machine, fdatasync_4k: LatencyUs) -> Report {
        Report {
            date_utc: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            machine,
            scale,
            fdatasync_4k,
            throughput: Vec::new(),
            latency: Vec::new(),
            recovery: Vec::new(),
            memory: None,
            peer_ratios: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// The tidelog row of `workload` whose setup starts with `setup_prefix`.
    pub fn tidelog_throughput(&self, workload: &str, setup_prefix: &str) -> Option<&ThroughputRow> {
        self.throughput
            .iter()
            .find(|r| r.system == "tidelog" && r.workload == workload && r.setup.starts_with(setup_prefix))
    }

    pub fn tidelog_latency(&self, workload: &str, operation: &str) -> Option<&LatencyRow> {
        self.latency.iter().find(|r| r.system == "tidelog" && r.workload == workload && r.operation == operation)
    }

    pub fn write_json(&self, path: &Path) -> Result<(), Error> {
        let text = serde_json::to_string_pretty(self).map_err(|e| super::other_error("encode report", e))?;
        std::fs::write(path, text).map_err(|e| Error::io(format!("write {}", path.display()), e))
    }
}
