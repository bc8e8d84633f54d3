//! The benchmark of `cargo bench --bench tidelog` and `tidelog bench` (issue #5).
//!
//! It measures the disk's fdatasync latency first, then runs the workloads in `workloads/` (and, with the
//! `peers` feature, the same workloads on stoolap and SQLite), prints each section as it finishes, and
//! writes `report.json` and `report.svg` into the report directory. A figure below its target is printed
//! with the target and the ratio; slowness never fails the run.

mod chart;
mod disk;
mod machine;
#[cfg(feature = "peers")]
mod peers;
mod progress;
pub mod report;
mod stats;
mod table;
mod targets;
mod watchdog;
mod workloads;

use std::path::{Path, PathBuf};

use crate::Error;
pub use report::Report;

/// What to run and where.
#[derive(Debug, Clone)]
pub struct Options {
    /// Scratch directory on the disk to measure; removed before and after the run.
    pub data_dir: PathBuf,
    /// Where `report.json` and `report.svg` go.
    pub report_dir: PathBuf,
    /// Event counts are multiplied by this (`TIDELOG_BENCH_SCALE`); 1.0 is the full run.
    pub scale: f64,
    /// Also run the peer databases (only with the `peers` feature; ignored without it).
    pub peers: bool,
}

impl Options {
    /// A run at `scale` in `data_dir`, writing the report into `target/bench` (relative to the current
    /// directory), with the peers when the feature is compiled in.
    pub fn new(data_dir: impl Into<PathBuf>, scale: f64) -> Options {
        Options { data_dir: data_dir.into(), report_dir: PathBuf::from("target/bench"), scale, peers: cfg!(feature = "peers") }
    }

    pub fn report_dir(mut self, dir: impl Into<PathBuf>) -> Options {
        self.report_dir = dir.into();
        self
    }

    pub fn peers(mut self, peers: bool) -> Options {
        self.peers = peers;
        self
    }

    /// `n` events scaled, but never fewer than `min` (so a smoke run still measures something).
    pub fn scaled(&self, n: u64, min: u64) -> u64 {
        ((n as f64 * self.scale) as u64).max(min)
    }
}

/// Runs the whole benchmark with default options (see [`Options::new`]).
pub fn run(data_dir: &Path, scale: f64) -> Result<Report, Error> {
    run_with(&Options::new(data_dir, scale))
}

/// Runs every workload, prints the tables, writes the report files and returns the report.
pub fn run_with(options: &Options) -> Result<Report, Error> {
    let root = fresh_dir(&options.data_dir)?;
    // Absolute, so peers that take a URL (stoolap's file://) and the store see the same place.
    let root = std::fs::canonicalize(&root).map_err(|e| Error::io(format!("resolve {}", root.display()), e))?;
    // The disk first: every durable figure below depends on it, so it goes in the header.
    let fdatasync = disk::fdatasync_latency(&root)?;
    let mut report = Report::new(options.scale, machine::Machine::current(), fdatasync);
    watchdog::take(); // a previous run in this process left its own
    table::print_header(&report);

    let ctx = workloads::Ctx { options, root: root.clone() };
    // Memory first: the process has not yet allocated (and kept) memory for other stores, so the
    // resident size before loading is not inflated by freed-but-retained pages.
    workloads::memory::run(&ctx, &mut report)?;
    // With the peers, each of their workloads runs right after tidelog's (see `peers/mod.rs`).
    let peers = cfg!(feature = "peers") && options.peers;
    workloads::seed::run(&ctx, &mut report)?;
    #[cfg(feature = "peers")]
    if peers {
        peers::seed(&ctx, &mut report)?;
    }
    workloads::batch::run(&ctx, &mut report)?;
    workloads::durable::run(&ctx, &mut report)?;
    #[cfg(feature = "peers")]
    if peers {
        peers::durable(&ctx, &mut report)?;
    }
    let queries = workloads::queries::run(&ctx, &mut report)?;
    #[cfg(feature = "peers")]
    if peers {
        peers::queries(&ctx, &mut report, &queries)?;
    }
    #[cfg(not(feature = "peers"))]
    let _ = (queries, peers);
    workloads::recovery::run(&ctx, &mut report)?;
    workloads::http::run(&ctx, &mut report)?;
    #[cfg(feature = "object-store")]
    workloads::object_store::run(&ctx, &mut report)?;

    report.warnings = watchdog::take();
    table::print_warnings(&report);
    table::print_targets(&report);
    table::print_peer_ratios(&report);
    std::fs::create_dir_all(&options.report_dir)
        .map_err(|e| Error::io(format!("create {}", options.report_dir.display()), e))?;
    let json_path = options.report_dir.join("report.json");
    report.write_json(&json_path)?;
    let svg_path = options.report_dir.join("report.svg");
    chart::write_svg(&report, &svg_path)?;
    println!("\nwrote {} and {}", json_path.display(), svg_path.display());
    let _ = std::fs::remove_dir_all(&root);
    Ok(report)
}

/// An empty directory at `dir` (whatever was there is removed).
pub(crate) fn fresh_dir(dir: &Path) -> Result<PathBuf, Error> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(format!("remove {}", dir.display()), e)),
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
    Ok(dir.to_path_buf())
}

/// Wraps a foreign error (HTTP client, peer database) as a crate error with its context.
pub(crate) fn other_error(context: impl Into<String>, e: impl std::fmt::Display) -> Error {
    Error::io(context, std::io::Error::other(e.to_string()))
}
