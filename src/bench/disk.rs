//! The disk's own fdatasync latency: the floor under every durable (FSYNC_INTERVAL=0) figure. The disk of
//! this machine type swings between ~0.2 ms and ~4 ms over minutes, so it is measured in every run.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use super::stats::LatencyUs;
use crate::loadgen::latency_histogram;
use crate::Error;

const PROBES: usize = 200;
const BLOCK_BYTES: usize = 4096;

/// 4 KiB write + fdatasync, `PROBES` times, in a file under `dir` (removed afterwards).
pub fn fdatasync_latency(dir: &Path) -> Result<LatencyUs, Error> {
    let mut h = latency_histogram();
    let path = dir.join("fsync-probe");
    let io = |e| Error::io(format!("fdatasync probe {}", path.display()), e);
    let mut file = std::fs::File::create(&path).map_err(io)?;
    let block = vec![7u8; BLOCK_BYTES];
    for _ in 0..PROBES {
        let t = Instant::now();
        file.write_all(&block).map_err(io)?;
        file.sync_data().map_err(io)?;
        h.saturating_record(t.elapsed().as_nanos() as u64);
    }
    drop(file);
    std::fs::remove_file(&path).map_err(io)?;
    Ok(LatencyUs::of(&h))
}
