//! The engine benchmark behind `cargo bench --bench tidelog` and `tidelog bench`: append throughput for
//! FSYNC_INTERVAL 0 and 100 on 1 and 2 shards (single-event appends from many concurrent tasks, and
//! batches), events per fdatasync, and read latencies, after measuring the disk's own fdatasync latency.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use hdrhistogram::Histogram;
use crate::loadgen::{latency_histogram, run_load, LoadSpec};
use crate::{Error, Order, Query, Store, StoreConfig};

/// Workload sizes are multiplied by `scale` (at least 1,000 events each).
fn scaled(scale: f64, n: u64) -> u64 {
    ((n as f64 * scale) as u64).max(1000)
}

fn fresh_dir(dir: &Path) -> Result<PathBuf, Error> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
    Ok(dir.to_path_buf())
}

/// 4 KiB write + fdatasync, the disk's own group-commit floor.
fn fdatasync_latency(dir: &Path) -> Result<Histogram<u64>, Error> {
    let mut h = latency_histogram();
    let path = dir.join("fsync-probe");
    let io = |e| Error::io(format!("fdatasync probe {}", path.display()), e);
    let mut file = std::fs::File::create(&path).map_err(io)?;
    let block = vec![7u8; 4096];
    for _ in 0..200 {
        let t = Instant::now();
        file.write_all(&block).map_err(io)?;
        file.sync_data().map_err(io)?;
        h.saturating_record(t.elapsed().as_nanos() as u64);
    }
    Ok(h)
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1e3
}

struct Row {
    name: String,
    events_per_s: f64,
    p50_us: f64,
    p99_us: f64,
    events_per_fsync: f64,
}

fn append_run(
    dir: &Path,
    shards: usize,
    fsync_ms: u32,
    spec: &LoadSpec,
    ids: Option<Arc<Mutex<Vec<uuid::Uuid>>>>,
) -> Result<(Row, Store), Error> {
    let store = Store::open(StoreConfig::new(dir).shards(shards).fsync_interval_ms(fsync_ms))?;
    let sink = ids.clone();
    let report = run_load(&store, spec, move |ack, _| {
        if let Some(ids) = &sink {
            ids.lock().unwrap().push(ack.id);
        }
    })?;
    let fsyncs: u64 = store.status().iter().map(|s| s.fsyncs).sum();
    let name = format!(
        "{} shard{} fsync={fsync_ms:<3} {} x{}",
        shards,
        if shards == 1 { " " } else { "s" },
        if spec.batch_size == 1 { "single ".to_string() } else { format!("batch{}", spec.batch_size) },
        spec.tasks
    );
    let row = Row {
        name,
        events_per_s: report.events_per_s(),
        p50_us: us(report.latency_ns.value_at_quantile(0.5)),
        p99_us: us(report.latency_ns.value_at_quantile(0.99)),
        events_per_fsync: if fsyncs == 0 { f64::NAN } else { report.events as f64 / fsyncs as f64 },
    };
    Ok((row, store))
}

/// Runs every workload in `root` (removed afterwards) and prints the tables.
pub fn run(root: &Path, scale: f64) -> Result<(), Error> {
    let root = fresh_dir(root)?;
    let scaled = |n| scaled(scale, n);
    let probe = fdatasync_latency(&root)?;
    println!(
        "tidelog engine benchmark, {} cores; disk fdatasync (4 KiB) p50 {:.0} us, p99 {:.0} us",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        us(probe.value_at_quantile(0.5)),
        us(probe.value_at_quantile(0.99))
    );
    println!("events ~200-byte JSON payloads, 1,000 entities\n");
    println!("{:<36} {:>12} {:>10} {:>10} {:>12}", "append workload", "events/s", "p50 us", "p99 us", "events/fsync");

    let mut kept = None;
    let mut ids_kept = Vec::new();
    for shards in [1usize, 2] {
        for fsync_ms in [0u32, 100] {
            let single = LoadSpec { tasks: 256, events: scaled(100_000), ..LoadSpec::default() };
            let dir = root.join(format!("s{shards}-f{fsync_ms}-single"));
            let ids = Arc::new(Mutex::new(Vec::new()));
            let (row, store) = append_run(&dir, shards, fsync_ms, &single, Some(ids.clone()))?;
            print_row(&row);
            if shards == 2 && fsync_ms == 100 {
                kept = Some(store);
                ids_kept = std::mem::take(&mut *ids.lock().unwrap());
            } else {
                store.close()?;
            }
            let batch = LoadSpec { tasks: 4, events: scaled(1_000_000), batch_size: 1000, ..LoadSpec::default() };
            let dir = root.join(format!("s{shards}-f{fsync_ms}-batch"));
            let (row, store) = append_run(&dir, shards, fsync_ms, &batch, None)?;
            print_row(&row);
            store.close()?;
            let _ = std::fs::remove_dir_all(&dir);
        }
    }

    let store = kept.expect("2-shard store kept");
    fastrand::shuffle(&mut ids_kept);
    let mut reads = latency_histogram();
    for id in &ids_kept {
        let t = Instant::now();
        let event = store.get("default", id);
        reads.saturating_record(t.elapsed().as_nanos() as u64);
        assert!(event.is_some());
    }
    let mut history = latency_histogram();
    let mut latest = latency_histogram();
    for i in 0..scaled(20_000) {
        let entity = format!("entity-{}", i % 1000);
        let q = Query::tenant("default").entity(entity.clone()).limit(1000);
        let t = Instant::now();
        let page = futures_lite::future::block_on(store.query(&q))?;
        history.saturating_record(t.elapsed().as_nanos() as u64);
        assert!(!page.events.is_empty());
        let q = Query::tenant("default").entity(entity).order(Order::Desc).limit(1);
        let t = Instant::now();
        futures_lite::future::block_on(store.query(&q))?;
        latest.saturating_record(t.elapsed().as_nanos() as u64);
    }
    println!("\n{:<36} {:>10} {:>10} {:>10}", "read (2 shards, calling thread)", "p50 us", "p99 us", "p99.9 us");
    for (name, h) in [
        (format!("get by id ({} random)", reads.len()), &reads),
        (format!("entity history (~{} events)", ids_kept.len() / 1000), &history),
        ("latest of entity (desc, limit 1)".to_string(), &latest),
    ] {
        println!(
            "{name:<36} {:>10.2} {:>10.2} {:>10.2}",
            us(h.value_at_quantile(0.5)),
            us(h.value_at_quantile(0.99)),
            us(h.value_at_quantile(0.999))
        );
    }
    store.close()?;
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}

fn print_row(row: &Row) {
    println!(
        "{:<36} {:>12.0} {:>10.1} {:>10.1} {:>12.1}",
        row.name, row.events_per_s, row.p50_us, row.p99_us, row.events_per_fsync
    );
}
