//! `cargo bench --bench tidelog`: the benchmark of `src/bench/`, data in `target/bench/data`, report in
//! `target/bench/report.json` and `report.svg`. TIDELOG_BENCH_SCALE=0.1 makes a quick run; the peers
//! (stoolap, SQLite) run with `--features peers`.
//!
//! `cargo test --all-targets` runs this binary without `--bench`: then it is a smoke run at scale 0.01,
//! without the peers, that keeps every workload's code path and the report writing working.

fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    let benching = std::env::args().any(|a| a == "--bench");
    let options = if benching {
        let scale = std::env::var("TIDELOG_BENCH_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1.0);
        tidelog::bench::Options::new(root.join("data"), scale).report_dir(&root)
    } else {
        // A separate directory, so a smoke run never overwrites the report of a real run.
        let smoke = root.join("smoke");
        tidelog::bench::Options::new(smoke.join("data"), 0.01).report_dir(&smoke).peers(false)
    };
    if let Err(e) = tidelog::bench::run_with(&options) {
        eprintln!("benchmark failed: {e}");
        std::process::exit(1);
    }
}
