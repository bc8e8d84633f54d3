//! Workload 3, durable ingest: FSYNC_INTERVAL=0 (an append is acknowledged after the fdatasync that
//! covers it), 1 to 1,024 concurrent single-event appenders on 2 shards. Group commit is what makes
//! many appenders faster than one: the events-per-fdatasync column shows it.

use super::{load, open, Ctx};
use crate::bench::report::{Report, ThroughputRow};
use crate::bench::stats::LatencyUs;
use crate::bench::{table, targets};
use crate::loadgen::{latency_histogram, LoadSpec};
use crate::{Error, Store};

pub const WORKLOAD: &str = "durable ingest";

/// (appenders, events at scale 1, at least). One appender waits a whole fdatasync per event (0.2-4 ms
/// on this disk), so it gets few events; the counts grow with the appenders to keep each run seconds.
pub const LEVELS: [(usize, u64, u64); 4] = [(1, 5_000, 100), (16, 40_000, 500), (256, 200_000, 2_000), (1024, 400_000, 4_000)];

pub fn setup(appenders: usize) -> String {
    format!("2 shards, FSYNC_INTERVAL=0, {appenders} appender{}, single", if appenders == 1 { "" } else { "s" })
}

/// One appender running on shard 0's executor (as the HTTP handlers run).
pub const SETUP_ON_SHARD: &str = "2 shards, FSYNC_INTERVAL=0, 1 appender on shard 0's executor, single";

pub fn run(ctx: &Ctx, report: &mut Report) -> Result<(), Error> {
    let mut rows = Vec::new();
    let on_shard = (1, LEVELS[0].1, LEVELS[0].2, Some(0));
    for (appenders, base, min, caller_on_shard) in LEVELS.map(|(a, b, m)| (a, b, m, None)).into_iter().chain([on_shard]) {
        let events = ctx.scaled(base, min);
        let (store, dir) = open(ctx, &format!("durable-{appenders}"), 2, 0)?;
        let spec = LoadSpec { tasks: appenders, events, batch_size: 1, caller_on_shard, ..LoadSpec::default() };
        let loaded = load(&store, &spec, &format!("durable ingest: {appenders} appenders"), None)?;
        // The store is fresh, so its histograms hold this load's fdatasyncs (and the ones at open).
        let engine_fdatasync = engine_fdatasync_latency(&store);
        store.close()?;
        ctx.remove(&dir);
        let setup = if caller_on_shard.is_some() { SETUP_ON_SHARD.to_string() } else { setup(appenders) };
        let mut row = ThroughputRow::new(WORKLOAD, "tidelog", setup, events, loaded.report.elapsed.as_secs_f64())
            .latency(LatencyUs::of(&loaded.report.latency_ns))
            .fdatasyncs(loaded.fdatasyncs);
        row.engine_fdatasync = engine_fdatasync;
        if appenders == 1024 {
            row = row.target(targets::DURABLE_1024_APPENDERS_EVENTS_PER_S);
        }
        rows.push(row);
    }
    table::print_throughput("3. durable ingest (latency: append to ack, fdatasync included)", &rows);
    for row in &rows {
        if let Some(f) = &row.engine_fdatasync {
            println!("  {}: engine fdatasync p50 {:.0} us, p99 {:.0} us ({} fdatasyncs)", row.setup, f.p50_us, f.p99_us, f.samples);
        }
    }
    report.throughput.extend(rows);
    Ok(())
}

/// The fdatasync latencies every shard recorded, merged.
fn engine_fdatasync_latency(store: &Store) -> Option<LatencyUs> {
    let mut merged = latency_histogram();
    for shard in 0..store.shard_count() {
        merged.add(&store.shard_latency(shard).fsync_ns).ok()?;
    }
    (!merged.is_empty()).then(|| LatencyUs::of(&merged))
}
