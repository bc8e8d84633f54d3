//! How long one WAL write takes to be "in the kernel" with each I/O method a shard could use, measured
//! on one pinned glommio executor, the way a shard issues them: `docs/WAL-IO.md` reads these figures.
//!
//! `cargo run --release --example wal_io -- [DIR] [WRITES]`
//!
//! Methods, each appending `WRITES` records of 296 bytes (one event) and then of 256 KiB (a batch):
//! - `odirect-tail`: O_DIRECT through io_uring, rewriting the 4 KiB block that holds the log's tail (the
//!   shard's method before page-cache acks): completes when the device has the block;
//! - `buffered-uring`: a buffered write through io_uring (glommio `BufferedFile::write_at`);
//! - `pwrite`: a buffered `pwrite(2)` on the executor thread (what the WAL does now).

use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use glommio::io::{BufferedFile, OpenOptions};
use glommio::{LocalExecutorBuilder, Placement};
use hdrhistogram::Histogram;

const BLOCK: usize = 4096;

fn main() {
    let dir = std::env::args().nth(1).map(std::path::PathBuf::from).unwrap_or_else(std::env::temp_dir);
    let writes: usize = std::env::args().nth(2).and_then(|n| n.parse().ok()).unwrap_or(5_000);
    LocalExecutorBuilder::new(Placement::Fixed(0))
        .spawn(move || async move {
            for record in [296usize, 256 << 10] {
                let n = if record > BLOCK { writes / 20 } else { writes };
                report("odirect-tail", record, odirect_tail(&dir, record, n).await);
                report("buffered-uring", record, buffered_uring(&dir, record, n).await);
                report("pwrite", record, pwrite(&dir, record, n).await);
            }
        })
        .unwrap()
        .join()
        .unwrap();
}

fn report(method: &str, record: usize, (h, total): (Histogram<u64>, Duration)) {
    let mb_s = (h.len() as f64 * record as f64) / total.as_secs_f64() / 1e6;
    println!(
        "{method:<15} {record:>7} B  p50 {:>8.1} us  p99 {:>8.1} us  max {:>8.1} us  {mb_s:>7.0} MB/s",
        h.value_at_quantile(0.5) as f64 / 1e3,
        h.value_at_quantile(0.99) as f64 / 1e3,
        h.max() as f64 / 1e3,
    );
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).unwrap()
}

fn path(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    let p = dir.join(format!("wal-io-{name}-{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

async fn odirect_tail(dir: &std::path::Path, record: usize, n: usize) -> (Histogram<u64>, Duration) {
    let p = path(dir, "odirect");
    let file = OpenOptions::new().read(true).write(true).create_new(true).dma_open(&p).await.unwrap();
    file.pre_allocate((record * n + BLOCK) as u64 * 2, false).await.unwrap();
    let (mut h, started) = (histogram(), Instant::now());
    let mut tail: Vec<u8> = Vec::new();
    let mut offset = 0usize;
    for _ in 0..n {
        let block_start = offset / BLOCK * BLOCK;
        let used = tail.len() + record;
        let len = used.div_ceil(BLOCK) * BLOCK;
        let t = Instant::now();
        let mut buf = file.alloc_dma_buffer(len);
        let bytes = buf.as_bytes_mut();
        bytes[..tail.len()].copy_from_slice(&tail);
        bytes[tail.len()..used].fill(7);
        bytes[used..].fill(0);
        let new_offset = offset + record;
        tail = bytes[used - (new_offset - new_offset / BLOCK * BLOCK)..used].to_vec();
        file.write_at(buf, block_start as u64).await.unwrap();
        h.saturating_record(t.elapsed().as_nanos() as u64);
        offset = new_offset;
    }
    let total = started.elapsed();
    file.close().await.unwrap();
    std::fs::remove_file(&p).unwrap();
    (h, total)
}

async fn buffered(dir: &std::path::Path, name: &str, record: usize, n: usize) -> (BufferedFile, std::path::PathBuf) {
    let p = path(dir, name);
    let file = OpenOptions::new().read(true).write(true).create_new(true).buffered_open(&p).await.unwrap();
    file.pre_allocate((record * n) as u64 * 2, false).await.unwrap();
    (file, p)
}

async fn buffered_uring(dir: &std::path::Path, record: usize, n: usize) -> (Histogram<u64>, Duration) {
    let (file, p) = buffered(dir, "uring", record, n).await;
    let (mut h, started) = (histogram(), Instant::now());
    for i in 0..n {
        let t = Instant::now();
        file.write_at(vec![7u8; record], (i * record) as u64).await.unwrap();
        h.saturating_record(t.elapsed().as_nanos() as u64);
    }
    let total = started.elapsed();
    file.close().await.unwrap();
    std::fs::remove_file(&p).unwrap();
    (h, total)
}

async fn pwrite(dir: &std::path::Path, record: usize, n: usize) -> (Histogram<u64>, Duration) {
    let (file, p) = buffered(dir, "pwrite", record, n).await;
    let raw = std::mem::ManuallyDrop::new(unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(file.as_raw_fd()) });
    let (mut h, started) = (histogram(), Instant::now());
    for i in 0..n {
        let buf = vec![7u8; record];
        let t = Instant::now();
        raw.write_all_at(&buf, (i * record) as u64).unwrap();
        h.saturating_record(t.elapsed().as_nanos() as u64);
        // As a shard does between writes: let the executor run its other tasks.
        futures_lite::future::yield_now().await;
    }
    let total = started.elapsed();
    file.close().await.unwrap();
    std::fs::remove_file(&p).unwrap();
    (h, total)
}
