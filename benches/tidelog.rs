//! `cargo bench --bench tidelog`: the engine benchmark (see `src/bench.rs`), in `target/bench/data`.
//! TIDELOG_BENCH_SCALE=0.1 makes a quick run. `cargo test --all-targets` runs this binary without
//! `--bench`: then it is a small smoke run that keeps the benchmark code working.

fn main() {
    let scale = if std::env::args().any(|a| a == "--bench") {
        std::env::var("TIDELOG_BENCH_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1.0)
    } else {
        0.01
    };
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench/data");
    if let Err(e) = tidelog::bench::run(&dir, scale) {
        eprintln!("benchmark failed: {e}");
        std::process::exit(1);
    }
}
