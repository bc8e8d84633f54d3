//! Workload 3 on the peers: durable single-row inserts (every commit fdatasynced) from N threads, each
//! with its own connection, one commit per row. SQLite has one writer at a time, so its threads wait
//! on the write lock (busy timeout); the levels stop where that stops being informative.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::sql::{Connection, Row};
use super::{throughput_ratio, PeerKind};
use crate::bench::report::{Report, ThroughputRow};
use crate::bench::stats::LatencyUs;
use crate::bench::workloads::{durable, Ctx};
use crate::bench::{other_error, progress, table};
use crate::loadgen::{latency_histogram, LoadSpec};
use crate::Error;

const PEERS: [PeerKind; 2] = [PeerKind::StoolapFileSyncFull, PeerKind::SqliteWalFull];
const THREADS: [usize; 2] = [1, 16];

pub fn run(ctx: &Ctx, report: &mut Report, dir: &Path, cap: Duration) -> Result<(), Error> {
    let spec = LoadSpec::default();
    let mut rows = Vec::new();
    for kind in PEERS {
        for threads in THREADS {
            // The same event count as tidelog's level with as many appenders.
            let (_, base, min) = durable::LEVELS.iter().copied().find(|l| l.0 == threads).unwrap_or((threads, 5_000, 100));
            let events = ctx.scaled(base, min);
            let peer = kind.create(dir)?;
            let connections = (0..threads).map(|_| peer.connect()).collect::<Result<Vec<_>, _>>()?;
            let bar = progress::bar(events, &format!("durable: {} x{threads}", peer.name()));
            let next = AtomicU64::new(0);
            let started = Instant::now();
            let results: Vec<Result<(u64, Histogram<u64>), Error>> = std::thread::scope(|s| {
                let handles: Vec<_> = connections
                    .into_iter()
                    .map(|conn| s.spawn(|| insert_until(conn, &spec, &next, events, started + cap, &bar)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|_| Err(other_error("peer thread", "panicked"))))
                    .collect()
            });
            let elapsed_s = started.elapsed().as_secs_f64();
            bar.finish_and_clear();
            let mut latency_ns = latency_histogram();
            let mut inserted = 0;
            for result in results {
                let (n, h) = result?;
                inserted += n;
                latency_ns.add(h).map_err(|e| other_error("merge latency", format!("{e:?}")))?;
            }
            let capped = if inserted < events { format!(", stopped at {:.0} s", cap.as_secs_f64()) } else { String::new() };
            let setup = format!("{threads} thread{}, commit per row{capped}", if threads == 1 { "" } else { "s" });
            let row = ThroughputRow::new(durable::WORKLOAD, peer.name(), setup, inserted, elapsed_s).latency(LatencyUs::of(&latency_ns));
            if let Some(tidelog) = report.tidelog_throughput(durable::WORKLOAD, &durable::setup(threads)) {
                let measure = format!("durable appends/s, {threads} appenders");
                report.peer_ratios.push(throughput_ratio(&measure, tidelog, &row));
            }
            if let Some(tidelog) = report.tidelog_throughput(durable::WORKLOAD, durable::SETUP_ON_SHARD).filter(|_| threads == 1) {
                let measure = "durable appends/s, 1 appender on a shard's executor";
                report.peer_ratios.push(throughput_ratio(measure, tidelog, &row));
            }
            rows.push(row);
        }
    }
    table::print_throughput("3. durable ingest on peers (every commit fdatasynced)", &rows);
    report.throughput.extend(rows);
    Ok(())
}

/// One thread's inserts: rows numbered from the shared counter, until `events` or the deadline.
fn insert_until(
    mut conn: Box<dyn Connection + Send>,
    spec: &LoadSpec,
    next: &AtomicU64,
    events: u64,
    deadline: Instant,
    bar: &indicatif::ProgressBar,
) -> Result<(u64, Histogram<u64>), Error> {
    let mut latency_ns = latency_histogram();
    let mut inserted = 0;
    loop {
        let seq = next.fetch_add(1, Ordering::Relaxed);
        if seq >= events || Instant::now() >= deadline {
            return Ok((inserted, latency_ns));
        }
        let row = Row::appended(spec, seq);
        let t = Instant::now();
        conn.insert(&row)?;
        latency_ns.saturating_record(t.elapsed().as_nanos() as u64);
        inserted += 1;
        bar.inc(1);
    }
}
