//! Parquet checkpoints: each shard writes its events to Parquet files (arrow + parquet, Snappy) so
//! recovery loads them column by column instead of replaying the whole WAL, and the WAL segments they
//! cover can be deleted. A manifest names the files in force. See `docs/FORMAT.md` ("Checkpoints").

mod error;
pub mod export;
mod load;
mod manifest;
pub mod schema;
mod writer;

pub use error::CheckpointError;
pub use load::{check_checkpoint, load_checkpoints, CheckpointDamage, CheckpointLoad, SetAsideFile, SET_ASIDE_DIR};
pub use manifest::{sync_dir as sync_dir_of, CheckpointFile, Manifest, MANIFEST_FILE};
pub(crate) use writer::blocking;
pub use writer::{checkpoint_name, parse_checkpoint_name, write_events};

/// When a shard writes checkpoints and how it keeps their number down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointSettings {
    /// Off: the WAL is never trimmed and recovery replays all of it.
    pub enabled: bool,
    /// Write a checkpoint once this many events arrived since the last one (0: never by count).
    pub every_events: u64,
    /// ... or once this many seconds passed with new events (0: never by time).
    pub every_interval_s: u64,
    /// Merge checkpoints smaller than this (in events) ...
    pub compact_target_events: u64,
    /// ... once at least this many of them are in a row.
    pub compact_min_files: usize,
}

impl Default for CheckpointSettings {
    fn default() -> CheckpointSettings {
        CheckpointSettings {
            enabled: true,
            every_events: 1_000_000,
            every_interval_s: 300,
            compact_target_events: 10_000_000,
            compact_min_files: 4,
        }
    }
}

/// Picks the checkpoints to merge: the oldest run of at least `min_files` consecutive files each
/// smaller than `target_events`, cut so the merged file stays within the target. Indexes into
/// `checkpoints`, or None.
pub fn plan_compaction(checkpoints: &[CheckpointFile], target_events: u64, min_files: usize) -> Option<std::ops::Range<usize>> {
    let min_files = min_files.max(2);
    let mut start = 0;
    while start < checkpoints.len() {
        let run_end = checkpoints[start..].iter().position(|c| c.events >= target_events).map_or(checkpoints.len(), |n| start + n);
        if run_end - start >= min_files {
            let mut total = 0;
            let mut end = start;
            while end < run_end && total + checkpoints[end].events <= target_events {
                total += checkpoints[end].events;
                end += 1;
            }
            if end - start >= 2 {
                return Some(start..end);
            }
        }
        start = run_end + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(sizes: &[u64]) -> Vec<CheckpointFile> {
        let mut first = 1;
        sizes
            .iter()
            .map(|&events| {
                let f = CheckpointFile { file: String::new(), first_position: first, last_position: first + events - 1, events, size_bytes: 0, crc32: 0 };
                first += events;
                f
            })
            .collect()
    }

    #[test]
    fn compaction_merges_the_oldest_run_of_small_files_within_the_target() {
        assert_eq!(plan_compaction(&files(&[1, 1, 1]), 10, 4), None);
        assert_eq!(plan_compaction(&files(&[1, 1, 1, 1]), 10, 4), Some(0..4));
        assert_eq!(plan_compaction(&files(&[10, 1, 1, 1, 1, 1]), 10, 4), Some(1..6));
        assert_eq!(plan_compaction(&files(&[4, 4, 4, 4]), 10, 4), Some(0..2));
        assert_eq!(plan_compaction(&files(&[1, 1, 20, 1, 1, 1, 1]), 10, 4), Some(3..7));
        assert_eq!(plan_compaction(&files(&[9, 9, 9, 9]), 10, 4), None);
    }
}
