//! Workload 6, memory: resident bytes per stored event. RSS is read after the store is open and again
//! after loading N events (the heap trimmed both times, so freed memory does not count), and the
//! difference divided by N is set against the encoded size of an event.

use super::{load, open, wal_bytes, Ctx};
use crate::bench::report::{MemoryResult, Report};
use crate::bench::stats::{resident_bytes, trim_heap};
use crate::bench::{other_error, table};
use crate::loadgen::LoadSpec;
use crate::Error;

/// Every this-many-th event's encoded size is sampled (keeping them all would itself cost memory).
const SAMPLE_EVERY: u64 = 100;

pub fn run(ctx: &Ctx, report: &mut Report) -> Result<(), Error> {
    let events = ctx.scaled(500_000, 10_000);
    let (store, dir) = open(ctx, "memory", 2, 100)?;
    let rss = || resident_bytes().ok_or_else(|| other_error("memory", "cannot read /proc/self/statm"));
    trim_heap();
    let rss_before_bytes = rss()?;
    let spec = LoadSpec { tasks: 1, events, batch_size: 1_000, ..LoadSpec::default() };
    let loaded = load(&store, &spec, "memory: loading", Some(SAMPLE_EVERY))?;
    trim_heap();
    let rss_after_bytes = rss()?;
    let sizes: Vec<usize> = loaded
        .acks
        .iter()
        .filter_map(|a| store.get(crate::DEFAULT_TENANT, &a.id))
        .map(|e| e.bytes().len())
        .collect();
    let wal = wal_bytes(&store);
    store.close()?;
    ctx.remove(&dir);
    let encoded_event_avg_bytes = sizes.iter().sum::<usize>() as f64 / sizes.len().max(1) as f64;
    let rss_per_event_bytes = rss_after_bytes.saturating_sub(rss_before_bytes) as f64 / events as f64;
    let result = MemoryResult {
        events,
        rss_before_bytes,
        rss_after_bytes,
        rss_per_event_bytes,
        encoded_event_avg_bytes,
        wal_bytes_per_event: wal as f64 / events as f64,
        rss_over_encoded: rss_per_event_bytes / encoded_event_avg_bytes.max(1.0),
    };
    table::print_memory(&result);
    report.memory = Some(result);
    Ok(())
}
