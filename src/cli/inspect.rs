//! The data directory's checks: `inspect` (read-only, like fsck: no lock, no recovery) and `recover` (opens
//! the store and prints what recovery found). Paths come from `tidelog::layout`, the metadata from
//! `tidelog::meta`.

use std::path::{Path, PathBuf};

use clap::Args;
use tidelog::meta::ReadError;
use tidelog::{layout, Store};

#[derive(Args)]
pub struct InspectArgs {
    /// The data directory (default: --data-dir).
    pub dir: Option<PathBuf>,
}

pub fn inspect(dir: &Path) -> Result<(), String> {
    let meta = tidelog::meta::read(dir).map_err(|e| match e {
        ReadError::Io { .. } => format!("{e} (is this a tidelog data directory?)"),
        ReadError::Unreadable { .. } => e.to_string(),
    })?;
    println!("{}: format version {}, {} shards", dir.display(), meta.format_version, meta.shards);
    let mut damaged = false;
    for k in 0..meta.shards {
        let shard = k as u32;
        let checkpoint_dir = layout::checkpoint_dir(dir, k);
        let manifest = tidelog::checkpoint::Manifest::load(&checkpoint_dir, shard).map_err(|e| e.to_string())?;
        println!(
            "shard {shard}: {} checkpoints, {} events, covering positions up to {}",
            manifest.checkpoints.len(),
            manifest.events(),
            manifest.covered_position()
        );
        for entry in &manifest.checkpoints {
            let verdict = match tidelog::checkpoint::check_checkpoint(&checkpoint_dir, entry) {
                Ok(()) => "ok".to_string(),
                Err(reason) => {
                    damaged = true;
                    format!("DAMAGED: {reason}")
                }
            };
            println!("  {}: {} events, {:.1} MiB: {verdict}", entry.file, entry.events, entry.size_bytes as f64 / (1 << 20) as f64);
        }
        let wal_dir = layout::wal_dir(dir, k);
        let covered = manifest.covered_position();
        let segments = if wal_dir.exists() { tidelog::wal::inspect_shard(&wal_dir, shard, covered).map_err(|e| e.to_string())? } else { Vec::new() };
        let records: u64 = segments.iter().map(|s| s.records).sum();
        println!("shard {shard}: {} segments, {records} records after the checkpoints", segments.len());
        for s in &segments {
            let name = s.path.file_name().and_then(|n| n.to_str()).unwrap_or("?");
            let range = match (s.first_position, s.last_position) {
                (Some(a), Some(b)) => format!("positions {a}..={b}"),
                _ => "no records".to_string(),
            };
            let mut problems = Vec::new();
            if let Some(reason) = &s.bad_header {
                problems.push(format!("BAD HEADER: {reason}"));
            }
            if s.records_skipped > 0 || s.corrupt_bytes > 0 {
                problems.push(format!("{} records lost, {} corrupt bytes", s.records_skipped, s.corrupt_bytes));
            }
            if s.torn_tail_bytes > 0 {
                problems.push(format!("{} bytes of unfinished write at the end (recovery cuts them off)", s.torn_tail_bytes));
            }
            damaged |= s.bad_header.is_some() || s.records_skipped > 0 || s.corrupt_bytes > 0;
            let verdict = if problems.is_empty() { "ok".to_string() } else { problems.join("; ") };
            println!("  {name}: {} records, {range}, {:.1} MiB: {verdict}", s.records, s.size_bytes as f64 / (1 << 20) as f64);
        }
    }
    if damaged {
        Err("damage found (see above); opening the store skips damaged records, --strict-recovery refuses".into())
    } else {
        Ok(())
    }
}

/// `tidelog recover`: each shard's recovery report, then the cross-shard batches recovery dropped.
pub fn recover(store: &Store) -> Result<(), String> {
    for report in store.recovery_reports() {
        println!("{report}");
    }
    for decision in store.batch_decisions().iter().filter(|d| !d.kept()) {
        println!("{decision}");
    }
    Ok(())
}
