//! Parquet checkpoints: each shard writes its events to Parquet files (arrow + parquet, Snappy) so
//! recovery loads them column by column instead of replaying the whole WAL, and the WAL segments they
//! cover can be deleted. A manifest names the files in force. See `docs/FORMAT.md` ("Checkpoints").

mod error;
mod load;
mod manifest;
pub mod schema;
mod writer;

pub use error::CheckpointError;
pub use load::{check_checkpoint, load_checkpoints, CheckpointDamage, CheckpointLoad, CheckpointSummary, SetAsideFile, SET_ASIDE_DIR};
pub use manifest::{BatchIds, CheckpointFile, Manifest, MANIFEST_FILE};
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

/// Picks the checkpoints to merge, size-tiered so each event is rewritten only a few times: the oldest
/// `min_files` consecutive files smaller than `target_events` that are of one size class (classes are
/// powers of 4). If none line up but more than `2 * min_files` small files exist, the consecutive
/// `min_files` small files with the fewest events, so the count stays bounded whatever sizes arrive.
/// Indexes into `checkpoints`, or None.
pub fn plan_compaction(checkpoints: &[CheckpointFile], target_events: u64, min_files: usize) -> Option<std::ops::Range<usize>> {
    let min_files = min_files.max(2);
    let small = |i: usize| checkpoints[i].events < target_events;
    let class = |i: usize| (64 - checkpoints[i].events.max(1).leading_zeros()) / 2;
    let windows = || (0..checkpoints.len().saturating_sub(min_files - 1)).map(|start| start..start + min_files);
    let all_small = |w: &std::ops::Range<usize>| w.clone().all(small);
    if let Some(w) = windows().find(|w| all_small(w) && w.clone().all(|i| class(i) == class(w.start))) {
        return Some(w);
    }
    if (0..checkpoints.len()).filter(|&i| small(i)).count() > 2 * min_files {
        return windows().filter(all_small).min_by_key(|w| checkpoints[w.clone()].iter().map(|c| c.events).sum::<u64>());
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
                let f = CheckpointFile { file: String::new(), first_position: first, last_position: first + events - 1, events, size_bytes: 0, crc32: 0, batches: Default::default() };
                first += events;
                f
            })
            .collect()
    }

    #[test]
    fn compaction_is_size_tiered_and_bounded() {
        assert_eq!(plan_compaction(&files(&[1, 1, 1]), 10, 4), None);
        assert_eq!(plan_compaction(&files(&[5, 5, 5, 5]), 100, 4), Some(0..4));
        // A merged file is in a higher class: it waits for peers instead of being rewritten each time.
        assert_eq!(plan_compaction(&files(&[20, 5, 5, 5]), 100, 4), None);
        assert_eq!(plan_compaction(&files(&[20, 5, 5, 5, 5]), 100, 4), Some(1..5));
        assert_eq!(plan_compaction(&files(&[20, 20, 20, 20, 5]), 100, 4), Some(0..4));
        // Files at or over the target are never merged.
        assert_eq!(plan_compaction(&files(&[100, 100, 100, 100]), 100, 4), None);
        // Sizes that never line up: once there are too many small files, the lightest run is merged.
        let mixed = files(&[1, 5, 1, 5, 1, 5, 1, 5, 1, 20]);
        assert_eq!(plan_compaction(&mixed[..8], 100, 4), None);
        assert_eq!(plan_compaction(&mixed, 100, 4), Some(0..4));
    }
}
