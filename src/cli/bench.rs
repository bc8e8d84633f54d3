//! `tidelog bench`: the engine benchmark, in a scratch directory of its own.

use std::path::PathBuf;

use clap::Args;

#[derive(Args)]
pub struct BenchArgs {
    /// Workload size multiplier (0.1 for a quick run).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Scratch directory on the disk to measure; removed afterwards.
    #[arg(long, default_value = "./tidelog-bench")]
    dir: PathBuf,
    /// Where report.json and report.svg are written.
    #[arg(long, default_value = "target/bench")]
    report_dir: PathBuf,
    /// Skip the peer databases (when built with the `peers` feature).
    #[arg(long)]
    no_peers: bool,
}

pub fn run(args: &BenchArgs) -> Result<(), String> {
    let options = tidelog::bench::Options::new(&args.dir, args.scale).report_dir(&args.report_dir);
    let options = if args.no_peers { options.peers(false) } else { options };
    tidelog::bench::run_with(&options).map(|_| ()).map_err(|e| e.to_string())
}
