//! How long one durable append's I/O takes (a 300-byte `pwrite` then `fdatasync`) with each way a shard
//! could issue the fdatasync, on one pinned glommio executor: `docs/WAL-IO.md` reads these figures.
//!
//! `cargo run --release --example sync_probe -- [DIR] [APPENDS] [SPIN_BEFORE_PARK_US]`
//!
//! Methods, each run twice, alternated:
//! - `uring`: glommio's `fdatasync` (an io_uring op, which the kernel hands to an io-wq worker thread);
//! - `blocking-thread`: `fdatasync(2)` on the executor's blocking thread (`spawn_blocking`; what the WAL
//!   does);
//! - `syscall`: `fdatasync(2)` on the executor thread itself, blocking it (the floor; not allowed in the
//!   engine).

use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use glommio::io::OpenOptions;
use glommio::{LocalExecutorBuilder, Placement};

const RECORD_BYTES: usize = 300;

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args.next().map(std::path::PathBuf::from).unwrap_or_else(std::env::temp_dir);
    let appends: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(3_000);
    let spin_us: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(100);
    let mut builder = LocalExecutorBuilder::new(Placement::Fixed(0));
    if spin_us > 0 {
        builder = builder.spin_before_park(Duration::from_micros(spin_us));
    }
    builder
        .spawn(move || async move {
            for method in ["uring", "blocking-thread", "syscall"].repeat(2) {
                let mut latencies = run(&dir, method, appends).await;
                latencies.sort();
                let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
                let total: Duration = latencies.iter().sum();
                println!(
                    "{method:<16} spin {spin_us:>4} us: p50 {:>6.1} us  p99 {:>6.1} us  {:>6.0} appends/s",
                    at(0.5),
                    at(0.99),
                    appends as f64 / total.as_secs_f64()
                );
            }
        })
        .unwrap()
        .join()
        .unwrap();
}

async fn run(dir: &std::path::Path, method: &str, appends: usize) -> Vec<Duration> {
    let path = dir.join(format!("sync-probe-{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let file = OpenOptions::new().read(true).write(true).create_new(true).buffered_open(&path).await.unwrap();
    // Pre-allocated, as WAL segments are.
    file.pre_allocate((appends * RECORD_BYTES) as u64, false).await.unwrap();
    let fd = file.as_raw_fd();
    // SAFETY: `file` owns the descriptor and outlives this borrow; ManuallyDrop keeps it from being closed.
    let std_file = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(fd) });
    let record = vec![b'x'; RECORD_BYTES];
    let mut latencies = Vec::with_capacity(appends);
    for i in 0..appends {
        let started = Instant::now();
        std_file.write_all_at(&record, (i * RECORD_BYTES) as u64).unwrap();
        let synced = match method {
            "uring" => file.fdatasync().await.is_ok(),
            // SAFETY: `file` stays open until the awaited job has finished.
            "blocking-thread" => glommio::executor().spawn_blocking(move || (unsafe { libc::fdatasync(fd) }) == 0).await,
            // SAFETY: as above, synchronously.
            _ => (unsafe { libc::fdatasync(fd) }) == 0,
        };
        assert!(synced, "fdatasync failed");
        latencies.push(started.elapsed());
    }
    file.close().await.unwrap();
    std::fs::remove_file(&path).unwrap();
    latencies
}
