//! Workload 5, recovery: load a store, close it, time the reopen and keep every shard's recovery report.
//!
//! `recover_after_load` takes the store's configuration and a step to run before closing, so each variant
//! is one call: WAL only (checkpoints off: every record is replayed), and with Parquet checkpoints (the
//! close writes one, so the reopen loads Parquet and an empty WAL tail).

use std::path::Path;
use std::time::Instant;

use super::{load, wal_bytes, Ctx};
use crate::bench::report::{RecoveryResult, Report, ShardRecovery};
use crate::bench::{other_error, table};
use crate::loadgen::LoadSpec;
use crate::{Error, Store, StoreConfig};

const SHARDS: usize = 2;

pub fn run(ctx: &Ctx, report: &mut Report) -> Result<(), Error> {
    let events = ctx.scaled(1_000_000, 10_000);
    let wal_only = |dir: &Path| StoreConfig::new(dir).shards(SHARDS).fsync_interval_ms(100).without_checkpoints();
    let result = recover_after_load(ctx, "WAL only", wal_only, events, |_| Ok(()))?;
    table::print_recovery(&result);
    report.recovery.push(result);
    // Checkpoints at their default settings; close writes the last one.
    let with_checkpoints = |dir: &Path| StoreConfig::new(dir).shards(SHARDS).fsync_interval_ms(100);
    let result = recover_after_load(ctx, "with checkpoints", with_checkpoints, events, |_| Ok(()))?;
    table::print_recovery(&result);
    report.recovery.push(result);
    Ok(())
}

/// Loads `events` (batches of 1,000) into a fresh store made with `config`, runs `before_close` on it,
/// closes it, and times `Store::open` on the same directory.
pub fn recover_after_load(
    ctx: &Ctx,
    variant: &str,
    config: impl Fn(&Path) -> StoreConfig,
    events: u64,
    before_close: impl FnOnce(&Store) -> Result<(), Error>,
) -> Result<RecoveryResult, Error> {
    let dir = ctx.fresh(&format!("recovery-{}", variant.replace(' ', "-")))?;
    let store = Store::open(config(&dir))?;
    let spec = LoadSpec { tasks: 4, events, batch_size: 1_000, ..LoadSpec::default() };
    load(&store, &spec, &format!("recovery ({variant}): loading"), None)?;
    before_close(&store)?;
    let wal_bytes = wal_bytes(&store);
    store.close()?;
    drop(store);

    let started = Instant::now();
    let store = Store::open(config(&dir))?;
    let open_s = started.elapsed().as_secs_f64();
    let recovered: u64 = store.status().iter().map(|s| s.events).sum();
    let shard_reports = store
        .recovery_reports()
        .iter()
        .map(|r| ShardRecovery {
            shard: r.shard,
            segments: r.segments,
            records_recovered: r.records_recovered,
            events_from_checkpoints: r.checkpoints.events,
            checkpoint_files: r.checkpoints.files,
            checkpoint_load_s: r.checkpoints.duration.as_secs_f64(),
            records_skipped: r.records_skipped,
            corrupt_bytes_skipped: r.corrupt_bytes_skipped,
            bytes_truncated: r.bytes_truncated,
            duration_s: r.duration.as_secs_f64(),
        })
        .collect();
    store.close()?;
    ctx.remove(&dir);
    if recovered != events {
        return Err(other_error("recovery", format!("{events} events loaded, {recovered} recovered")));
    }
    Ok(RecoveryResult {
        variant: variant.into(),
        shards: SHARDS,
        events,
        wal_bytes,
        open_s,
        events_per_s: events as f64 / open_s.max(f64::MIN_POSITIVE),
        shard_reports,
    })
}
