//! Workload 1, seed: single-event appends from one caller (each awaited before the next), then point
//! reads by id in random order from the calling thread.

use std::time::Instant;

use super::{load, open, Ctx};
use crate::bench::report::{LatencyRow, Report, ThroughputRow};
use crate::bench::stats::LatencyUs;
use crate::bench::{other_error, progress, table, targets};
use crate::loadgen::{latency_histogram, LoadSpec};
use crate::Error;

pub const WORKLOAD: &str = "seed";
pub const SETUP: &str = "2 shards, FSYNC_INTERVAL=100, 1 caller, single";
/// The same caller as a task on shard 0's executor (as the HTTP handlers run): its appends to shard 0 take
/// the direct path, the others cross to shard 1.
pub const SETUP_ON_SHARD: &str = "2 shards, FSYNC_INTERVAL=100, 1 caller on shard 0's executor, single";
/// The same appends from one caller through a `Producer`, this many in flight.
pub const PIPELINE_WINDOW: usize = 4096;
pub const SETUP_PIPELINED: &str = "2 shards, FSYNC_INTERVAL=100, 1 caller, pipelined (Producer, 4096 in flight)";
pub const OP_GET: &str = "get by id, random order";

pub fn run(ctx: &Ctx, report: &mut Report) -> Result<(), Error> {
    let events = ctx.scaled(100_000, 1_000);
    let (store, dir) = open(ctx, "seed", 2, 100)?;
    let spec = LoadSpec { tasks: 1, events, batch_size: 1, ..LoadSpec::default() };
    let loaded = load(&store, &spec, "seed: single appends, 1 caller", Some(1))?;
    let row = ThroughputRow::new(WORKLOAD, "tidelog", SETUP.into(), events, loaded.report.elapsed.as_secs_f64())
        .latency(LatencyUs::of(&loaded.report.latency_ns))
        .fdatasyncs(loaded.fdatasyncs);

    let mut ids: Vec<uuid::Uuid> = loaded.acks.iter().map(|a| a.id).collect();
    fastrand::shuffle(&mut ids);
    let bar = progress::bar(ids.len() as u64, "seed: point reads");
    let mut reads_ns = latency_histogram();
    let mut missing = 0u64;
    for (i, id) in ids.iter().enumerate() {
        let t = Instant::now();
        let event = store.get("default", id);
        reads_ns.saturating_record(t.elapsed().as_nanos() as u64);
        missing += u64::from(event.is_none());
        progress::step(&bar, i as u64);
    }
    bar.finish_and_clear();
    store.close()?;
    ctx.remove(&dir);
    if missing > 0 {
        return Err(other_error("seed", format!("{missing} acknowledged events not found by id")));
    }
    // The same appends from a caller on shard 0's executor, each awaited; then pipelined from one caller,
    // every one acknowledged on its own, in order.
    let on_shard_spec = LoadSpec { tasks: 1, events, batch_size: 1, caller_on_shard: Some(0), ..LoadSpec::default() };
    let on_shard = one_caller(ctx, "seed-on-shard", SETUP_ON_SHARD, &on_shard_spec)?;
    let pipelined_spec = LoadSpec { events, pipeline_window: PIPELINE_WINDOW, ..LoadSpec::default() };
    let pipelined = one_caller(ctx, "seed-pipelined", SETUP_PIPELINED, &pipelined_spec)?;
    let read = LatencyRow::new(WORKLOAD, "tidelog", OP_GET, LatencyUs::of(&reads_ns), 1.0)
        .target_p99(targets::POINT_READ_P99_US);
    let rows = [row, on_shard, pipelined];
    table::print_throughput("1. seed: single-event appends from one caller", &rows);
    table::print_latency("1. seed: point reads (calling thread)", std::slice::from_ref(&read));
    report.throughput.extend(rows);
    report.latency.push(read);
    Ok(())
}

/// The seed's appends from one caller shaped by `spec` (on a shard's executor, or pipelined), on a fresh
/// store: one throughput row.
fn one_caller(ctx: &Ctx, name: &str, setup: &str, spec: &LoadSpec) -> Result<ThroughputRow, Error> {
    let (store, dir) = open(ctx, name, 2, 100)?;
    let loaded = load(&store, spec, &format!("seed: {setup}"), None)?;
    store.close()?;
    ctx.remove(&dir);
    Ok(ThroughputRow::new(WORKLOAD, "tidelog", setup.into(), spec.events, loaded.report.elapsed.as_secs_f64())
        .latency(LatencyUs::of(&loaded.report.latency_ns))
        .fdatasyncs(loaded.fdatasyncs))
}
