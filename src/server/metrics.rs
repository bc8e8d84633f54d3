//! `/metrics` in the Prometheus text format: per-shard counters, queue depths and latency quantiles
//! from the shards' HdrHistograms.

use std::fmt::Write;

use hdrhistogram::Histogram;

use crate::Store;

const QUANTILES: [f64; 4] = [0.5, 0.9, 0.99, 0.999];

pub fn render(store: &Store) -> String {
    let status = store.status();
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, values: &mut dyn Iterator<Item = (u32, f64)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (shard, value) in values {
            let _ = writeln!(out, "{name}{{shard=\"{shard}\"}} {value}");
        }
    };
    let counters: [(&str, &str, fn(&crate::ShardStatus) -> u64); 5] = [
        ("tidelog_events_appended_total", "Events appended (written to the WAL).", |s| s.events_appended),
        ("tidelog_wal_writes_total", "WAL writes (one per batch of accepted appends).", |s| s.wal_writes),
        ("tidelog_wal_bytes_total", "Bytes of records written to the WAL.", |s| s.wal_bytes),
        ("tidelog_fsyncs_total", "fdatasync calls on the WAL.", |s| s.fsyncs),
        ("tidelog_stall_wakes_total", "Times the shard's executor was interrupted after making no progress for 500 ms.", |s| s.stall_wakes),
    ];
    for (name, help, get) in counters {
        family(name, "counter", help, &mut status.iter().map(|s| (s.shard, get(s) as f64)));
    }
    family("tidelog_events", "gauge", "Acknowledged events stored.", &mut status.iter().map(|s| (s.shard, s.events as f64)));
    family(
        "tidelog_queue_depth",
        "gauge",
        "Messages waiting in the shard's inbox.",
        &mut status.iter().map(|s| (s.shard, s.queue_depth as f64)),
    );
    family(
        "tidelog_shard_healthy",
        "gauge",
        "1 while the shard accepts writes, 0 after an I/O error stopped it.",
        &mut status.iter().map(|s| (s.shard, if s.failure.is_none() { 1.0 } else { 0.0 })),
    );
    let latencies: Vec<_> = (0..store.shard_count()).map(|s| store.shard_latency(s)).collect();
    let summaries: [(&str, &str, f64, fn(&crate::shard::ShardLatency) -> &Histogram<u64>); 4] = [
        ("tidelog_append_latency_seconds", "From accept to acknowledgement in the shard.", 1e-9, |l| &l.append_ns),
        ("tidelog_fsync_latency_seconds", "fdatasync of the WAL.", 1e-9, |l| &l.fsync_ns),
        ("tidelog_query_latency_seconds", "Query execution in the shard.", 1e-9, |l| &l.query_ns),
        ("tidelog_events_per_fsync", "Events made durable by one fdatasync (group commit size).", 1.0, |l| {
            &l.events_per_fsync
        }),
    ];
    for (name, help, scale, get) in summaries {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} summary");
        for (shard, latency) in latencies.iter().enumerate() {
            let h = get(latency);
            for q in QUANTILES {
                let value = if h.is_empty() { 0.0 } else { h.value_at_quantile(q) as f64 * scale };
                let _ = writeln!(out, "{name}{{shard=\"{shard}\",quantile=\"{q}\"}} {value}");
            }
            let _ = writeln!(out, "{name}_count{{shard=\"{shard}\"}} {}", h.len());
        }
    }
    #[cfg(feature = "object-store")]
    if let Some(ship) = store.ship_status() {
        let gauges: [(&str, &str, &str, f64); 9] = [
            ("tidelog_object_store_lag_ms", "gauge", "Since the start of the last shipping round that shipped everything.", ship.lag_ms as f64),
            ("tidelog_object_store_failing", "gauge", "1 while the last shipping round failed.", if ship.last_error.is_some() { 1.0 } else { 0.0 }),
            ("tidelog_object_store_rounds_failed_total", "counter", "Shipping rounds that failed (retried).", ship.rounds_failed as f64),
            ("tidelog_object_store_uploaded_bytes_total", "counter", "Bytes uploaded to the object store.", ship.uploaded_bytes as f64),
            ("tidelog_object_store_uploaded_objects_total", "counter", "Objects uploaded to the object store.", ship.uploaded_objects as f64),
            ("tidelog_object_store_deleted_objects_total", "counter", "Objects deleted from the object store (made redundant by shipped checkpoints).", ship.deleted_objects as f64),
            ("tidelog_delta_events_appended_total", "counter", "Events appended to the Delta Lake table by this process.", ship.delta_events_appended as f64),
            ("tidelog_delta_commits_total", "counter", "Commits to the Delta Lake table by this process.", ship.delta_commits as f64),
            ("tidelog_delta_failing", "gauge", "1 while the last attempt to append to the Delta Lake table failed.", if ship.delta_last_error.is_some() { 1.0 } else { 0.0 }),
        ];
        for (name, kind, help, value) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
        }
    }
    out
}
