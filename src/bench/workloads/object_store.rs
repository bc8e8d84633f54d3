//! Workload 8, object store: batch ingest with the object store off and on (`file://` in the run's
//! directory, on the same disk), alternated, in one run; the shipping lag sampled every 50 ms during each
//! load with it on; then the last shipped store restored into a fresh directory (download, then recovery),
//! timed.

use std::path::Path;
use std::time::Instant;

use hdrhistogram::Histogram;

use super::{load, Ctx};
use crate::bench::report::{LatencyRow, RecoveryResult, Report, ThroughputRow};
use crate::bench::stats::LatencyUs;
use crate::bench::{other_error, table};
use crate::loadgen::{LagSampler, LoadSpec};
use crate::ship::{download, ObjectStoreConfig, Remote};
use crate::{Error, Store, StoreConfig};

pub const WORKLOAD: &str = "object store";
const SHARDS: usize = 2;
const CALLERS: usize = 4;
const BATCH_EVENTS: usize = 1_000;
const ROUNDS: usize = 2;
const HOUR_NS: u64 = 3_600_000_000_000;

pub fn run(ctx: &Ctx, report: &mut Report) -> Result<(), Error> {
    let events = ctx.scaled(1_000_000, 10_000);
    let mut rows = Vec::new();
    let mut lags = Vec::new();
    let mut last_remote = None;
    let mut closes = Vec::new();
    for round in 0..ROUNDS {
        // The order alternates, so neither mode always runs on a warmer (or busier) machine.
        let modes = if round % 2 == 0 { [false, true] } else { [true, false] };
        for shipping in modes {
            let dir = ctx.fresh(&format!("object-store-r{round}-{}", if shipping { "on" } else { "off" }))?;
            let remote = ctx.root.join(format!("object-store-remote-r{round}"));
            let mut config = StoreConfig::new(&dir).shards(SHARDS).fsync_interval_ms(100);
            if shipping {
                config.object_store = Some(ObjectStoreConfig::new(format!("file://{}", remote.display())));
            }
            let store = Store::open(config)?;
            let spec = LoadSpec { tasks: CALLERS, events, batch_size: BATCH_EVENTS, ..LoadSpec::default() };
            let mode = if shipping { "object store file:// (ship interval 1000 ms)" } else { "no object store" };
            let setup = format!("2 shards, FSYNC_INTERVAL=100, batch {BATCH_EVENTS}, {CALLERS} callers, {mode}, round {}", round + 1);
            let sampler = LagSampler::start(&store);
            let loaded = load(&store, &spec, &format!("object store: {setup}"), None)?;
            let lags_ms = sampler.map(LagSampler::stop).unwrap_or_default();
            // With shipping, close waits for the last round: the checkpoint written at close, and its
            // Delta commit.
            let closing = Instant::now();
            store.close()?;
            closes.push((shipping, round, closing.elapsed()));
            ctx.remove(&dir);
            rows.push(
                ThroughputRow::new(WORKLOAD, "tidelog", setup, events, loaded.report.elapsed.as_secs_f64())
                    .latency(LatencyUs::of(&loaded.report.latency_ns)),
            );
            if shipping {
                let operation = format!("shipping lag during the load (sampled every 50 ms), round {}", round + 1);
                let mut lag_ns = Histogram::<u64>::new_with_bounds(1, HOUR_NS, 3).expect("histogram");
                lags_ms.iter().for_each(|&ms| lag_ns.saturating_record(ms.saturating_mul(1_000_000)));
                lags.push(LatencyRow::new(WORKLOAD, "tidelog", &operation, LatencyUs::of(&lag_ns), 0.0));
                if let Some(previous) = last_remote.replace(remote) {
                    ctx.remove(&previous);
                }
            }
        }
    }
    table::print_throughput("8. object store: batch ingest with shipping off and on (latency: one batch of 1,000)", &rows);
    for round in 0..ROUNDS {
        let rate = |on: bool| rows.iter().filter(|r| r.setup.ends_with(&format!("round {}", round + 1))).find(|r| r.setup.contains("file://") == on).map(|r| r.events_per_s);
        if let (Some(on), Some(off)) = (rate(true), rate(false)) {
            println!("round {}: with shipping / without {:.2} (target: within 10%, >= 0.90)", round + 1, on / off);
        }
    }
    for lag in &lags {
        let l = &lag.latency;
        println!("{}: p50 {:.0} ms, max {:.0} ms ({} samples)", lag.operation, l.p50_us / 1e3, l.max_us / 1e3, l.samples);
    }
    for (shipping, round, took) in closes {
        let what = if shipping { "close with shipping (last checkpoint, last round, Delta commit)" } else { "close without an object store" };
        println!("{what}, round {}: {:.2} s", round + 1, took.as_secs_f64());
    }
    report.throughput.extend(rows);
    report.latency.extend(lags);
    if let Some(remote) = last_remote {
        let result = restore(ctx, &remote, events)?;
        println!(
            "restore of {} events ({:.1} MiB downloaded from file://): download and recovery {:.3} s, {:.0} events/s",
            result.events,
            result.wal_bytes as f64 / (1 << 20) as f64,
            result.open_s,
            result.events_per_s
        );
        report.recovery.push(result);
        ctx.remove(&remote);
    }
    Ok(())
}

/// `tidelog restore`'s work: the download, then the recovery of the directory, timed together.
fn restore(ctx: &Ctx, remote: &Path, events: u64) -> Result<RecoveryResult, Error> {
    let dir = ctx.fresh("object-store-restored")?;
    let remote = Remote::open(&format!("file://{}", remote.display())).map_err(|e| other_error("restore", e))?;
    let started = Instant::now();
    let downloaded = crate::side_runtime::side_runtime().block_on(download(&remote, &dir)).map_err(|e| other_error("restore", e))?;
    let store = Store::open(StoreConfig::new(&dir).shards(SHARDS).fsync_interval_ms(100))?;
    let open_s = started.elapsed().as_secs_f64();
    let recovered: u64 = store.status().iter().map(|s| s.events).sum();
    store.close()?;
    ctx.remove(&dir);
    if recovered != events {
        return Err(other_error("restore", format!("{events} events shipped, {recovered} restored")));
    }
    Ok(RecoveryResult {
        variant: "restore from the object store: download, then recovery".into(),
        shards: SHARDS,
        events,
        wal_bytes: downloaded.bytes,
        open_s,
        events_per_s: events as f64 / open_s.max(f64::MIN_POSITIVE),
        shard_reports: Vec::new(),
    })
}
