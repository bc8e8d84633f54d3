//! Workload 2, batch ingest: batches of 1,000 from one caller and from many, FSYNC_INTERVAL=100, on 1
//! and 2 shards.

use std::time::Instant;

use super::{load, open, shards_label, Ctx};
use crate::bench::report::{Report, ThroughputRow};
use crate::bench::stats::LatencyUs;
use crate::bench::{table, targets};
use crate::loadgen::{make_event, LoadSpec};
use crate::Error;

pub const WORKLOAD: &str = "batch ingest";
const BATCH_EVENTS: usize = 1_000;
/// "Many callers": enough batches in flight to keep both shards' queues non-empty.
const MANY_CALLERS: usize = 8;

pub fn run(ctx: &Ctx, report: &mut Report) -> Result<(), Error> {
    let events = ctx.scaled(1_000_000, 10_000);
    let mut rows = Vec::new();
    for shards in [1usize, 2] {
        for callers in [1usize, MANY_CALLERS] {
            let (store, dir) = open(ctx, &format!("batch-s{shards}-c{callers}"), shards, 100)?;
            let spec = LoadSpec { tasks: callers, events, batch_size: BATCH_EVENTS, ..LoadSpec::default() };
            let setup = format!(
                "{}, FSYNC_INTERVAL=100, batch {BATCH_EVENTS}, {callers} caller{}",
                shards_label(shards),
                if callers == 1 { "" } else { "s" }
            );
            let loaded = load(&store, &spec, &format!("batch ingest: {setup}"), None)?;
            store.close()?;
            ctx.remove(&dir);
            let mut row = ThroughputRow::new(WORKLOAD, "tidelog", setup, events, loaded.report.elapsed.as_secs_f64())
                .latency(LatencyUs::of(&loaded.report.latency_ns))
                .fdatasyncs(loaded.fdatasyncs);
            if shards == 2 {
                row = row.target(targets::BATCH_INGEST_2_SHARDS_EVENTS_PER_S);
            }
            rows.push(row);
        }
    }
    rows.push(super::wal_alone::run(ctx, events, 2, BATCH_EVENTS)?);
    rows.push(loadgen_only(events));
    table::print_throughput("2. batch ingest (latency: one batch of 1,000)", &rows);
    report.throughput.extend(rows);
    Ok(())
}

/// The load generator alone: building the events (JSON payload text included) on one thread, as the
/// load executor does, with no store. All callers of a load share that one thread, so this is a
/// ceiling on what any row above can show.
fn loadgen_only(events: u64) -> ThroughputRow {
    let spec = LoadSpec::default();
    let started = Instant::now();
    let mut batch = Vec::with_capacity(BATCH_EVENTS);
    for seq in 0..events {
        batch.push(make_event(&spec, seq));
        if batch.len() == BATCH_EVENTS {
            std::hint::black_box(&batch);
            batch.clear();
        }
    }
    std::hint::black_box(&batch);
    let setup = format!("make_event only, batches of {BATCH_EVENTS}, no store");
    ThroughputRow::new(WORKLOAD, "load generator", setup, events, started.elapsed().as_secs_f64())
}
