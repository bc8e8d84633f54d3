//! `tidelog restore --from URL`: downloads what a store shipped into an empty data directory, then opens
//! it (an ordinary recovery) and prints what it holds.

use std::path::Path;

use clap::Args;
use tidelog::ship::{download, Remote};
use tidelog::{Store, StoreConfig};

#[derive(Args)]
pub struct RestoreArgs {
    /// Where the store shipped to: s3://BUCKET/PREFIX or file:///DIR (as its --object-store).
    #[arg(long, env = "TIDELOG_RESTORE_FROM")]
    from: String,
}

pub fn restore(config: &StoreConfig, args: &RestoreArgs) -> Result<(), String> {
    let dir = &config.data_dir;
    if !is_empty_or_absent(dir)? {
        return Err(format!("{} is not empty: restore into a new directory", dir.display()));
    }
    let remote = Remote::open(&args.from).map_err(|e| e.to_string())?;
    let started = std::time::Instant::now();
    let report = tidelog::side_runtime::side_runtime().block_on(download(&remote, dir)).map_err(|e| e.to_string())?;
    println!(
        "downloaded from {}: {} files, {:.1} MiB in {:.1} s",
        report.from,
        report.files,
        report.bytes as f64 / (1 << 20) as f64,
        started.elapsed().as_secs_f64()
    );
    for (k, shard) in report.shards.iter().enumerate() {
        let skipped = if shard.parts_skipped > 0 { format!(", {} WAL parts after a gap skipped", shard.parts_skipped) } else { String::new() };
        println!("  shard {k}: {} checkpoints, {} WAL segments{skipped}", shard.checkpoints, shard.segments);
    }
    match report.shipped_through_us {
        Some(us) => println!("shipped through {}: every append acknowledged before then is restored", tidelog::time::format_rfc3339_us(us)),
        None => println!("no shipping round had completed: what was shipped is restored"),
    }
    let store = Store::open(StoreConfig { data_dir: dir.clone(), ..config.clone() }).map_err(|e| e.to_string())?;
    let mut events = 0u64;
    for report in store.recovery_reports() {
        println!("recovery: {report}");
        events += report.events();
    }
    for decision in store.batch_decisions().iter().filter(|d| !d.kept()) {
        println!("{decision}");
    }
    println!("restored {events} events into {}", dir.display());
    store.close().map_err(|e| e.to_string())
}

fn is_empty_or_absent(dir: &Path) -> Result<bool, String> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_none()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(format!("{}: {e}", dir.display())),
    }
}
