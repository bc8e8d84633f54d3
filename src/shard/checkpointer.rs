//! The shard's checkpoint task: decides when to write a checkpoint, writes it from the in-memory
//! events, installs it in the manifest, deletes the WAL segments it makes redundant, and merges small
//! checkpoints. One checkpoint at a time (the close path waits for a running one).
//!
//! Order of a checkpoint, each step durable before the next (docs/FORMAT.md):
//! 1. the Parquet file (`.tmp`, fdatasync, rename, fsync of the directory);
//! 2. the manifest naming it, the same way;
//! 3. only then the WAL segments whose every record it covers.
//!
//! A crash between any two steps leaves either a stray file (set aside at the next open) or segments
//! that recovery skips because the manifest covers them: nothing lost, nothing doubled.
//!
//! A checkpoint only ever covers fdatasynced WAL positions, so the WAL and the checkpoints never
//! disagree about what exists after a crash. A failed checkpoint is logged and retried later; it never
//! fails the shard, since everything it would hold is still in the WAL.

use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use glommio::sync::Semaphore;

use super::shared::ShardShared;
use crate::checkpoint::{
    blocking, checkpoint_name, plan_compaction, write_events, BatchIds, CheckpointError, CheckpointFile, CheckpointSettings, Manifest,
};
use crate::wal::segment::list_segments;

/// How long to wait before trying again after a checkpoint failed.
const RETRY_AFTER: Duration = Duration::from_secs(10);

pub(crate) struct Checkpointer {
    dir: PathBuf,
    wal_dir: PathBuf,
    shared: Arc<ShardShared>,
    settings: CheckpointSettings,
    manifest: RefCell<Manifest>,
    busy: Semaphore,
    last_done: Cell<Instant>,
    retry_at: Cell<Option<Instant>>,
    /// Cross-shard parts on this shard not yet in a checkpoint (first, last position, batch id), in
    /// position order: the checkpoint that takes one records its batch id, so that this shard can still
    /// vouch for the part at a later recovery once its WAL segment is gone.
    parts: RefCell<Vec<(u64, u64, u128)>>,
    /// The covered position the WAL was last trimmed to.
    trimmed_to: Cell<u64>,
}

impl Checkpointer {
    pub fn new(dir: PathBuf, wal_dir: PathBuf, shared: Arc<ShardShared>, settings: CheckpointSettings, manifest: Manifest) -> Checkpointer {
        shared.stats.counters.checkpointed_position.store(manifest.covered_position(), Ordering::Relaxed);
        Checkpointer {
            dir,
            wal_dir,
            shared,
            settings,
            manifest: RefCell::new(manifest),
            busy: Semaphore::new(1),
            last_done: Cell::new(Instant::now()),
            retry_at: Cell::new(None),
            parts: RefCell::new(Vec::new()),
            trimmed_to: Cell::new(0),
        }
    }

    /// A cross-shard part written (or recovered and kept) at `first..=last`. Not kept without
    /// checkpoints: nothing would ever take it off the list.
    pub fn note_part(&self, first: u64, last: u64, batch: u128) {
        if self.settings.enabled {
            self.parts.borrow_mut().push((first, last, batch));
        }
    }

    pub fn covered_position(&self) -> u64 {
        self.manifest.borrow().covered_position()
    }

    /// What a WAL segment may be deleted for: the checkpoints' covered position, and with an object
    /// store, only as far as the shipped checkpoints cover too.
    fn trimmable_position(&self) -> u64 {
        self.covered_position().min(self.shared.remote_cover())
    }

    /// Whether the shipped checkpoints caught up since the WAL was last trimmed.
    pub fn trim_due(&self) -> bool {
        self.trimmable_position() > self.trimmed_to.get()
    }

    /// Whether a checkpoint is due with the WAL synced up to `synced_position`.
    pub fn due(&self, synced_position: u64) -> bool {
        let s = &self.settings;
        let new_events = synced_position.saturating_sub(self.covered_position());
        if !s.enabled || new_events == 0 || self.retry_at.get().is_some_and(|t| Instant::now() < t) {
            return false;
        }
        (s.every_events > 0 && new_events >= s.every_events)
            || (s.every_interval_s > 0 && self.last_done.get().elapsed() >= Duration::from_secs(s.every_interval_s))
    }

    /// Checkpoints everything up to `synced_position` (if anything is new), then trims the WAL and
    /// compacts. Logs and remembers a failure instead of returning it: the data is safe in the WAL.
    pub async fn run(&self, synced_position: u64) {
        if !self.settings.enabled {
            return;
        }
        // The permit is returned when `_turn` drops, also if this future is dropped mid-way.
        let Ok(_turn) = self.busy.acquire_permit(1).await else { return };
        let started = Instant::now();
        match self.checkpoint(synced_position).await {
            Ok(Some(file)) => {
                self.retry_at.set(None);
                tracing::info!(
                    shard = self.shared.index,
                    file = %file.file,
                    events = file.events,
                    size_bytes = file.size_bytes,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "checkpoint written"
                );
            }
            Ok(None) => {}
            Err(e) => {
                self.shared.stats.counters.checkpoint_failures.fetch_add(1, Ordering::Relaxed);
                self.retry_at.set(Some(Instant::now() + RETRY_AFTER));
                tracing::error!(shard = self.shared.index, "checkpoint failed (the WAL keeps everything; retrying later): {e}");
            }
        }
        self.last_done.set(Instant::now());
    }

    async fn checkpoint(&self, synced_position: u64) -> Result<Option<CheckpointFile>, CheckpointError> {
        let first = self.covered_position() + 1;
        if synced_position < first {
            return Ok(None);
        }
        let aborted = self.shared.parts.aborted_ranges(first, synced_position);
        let mut file = self.write_range(first, synced_position).await?;
        // A checkpoint only covers parts whose batch is settled or aborted (`Parts::checkpoint_limit`): it
        // names the settled ones, each part of a whole batch, and leaves the aborted ones out.
        let held = self
            .parts
            .borrow()
            .iter()
            .filter(|p| p.0 >= first && p.1 <= synced_position && !aborted.iter().any(|a| a.0 == p.0))
            .map(|p| p.2)
            .collect();
        file.batches = BatchIds::from_ids(held);
        let mut manifest = self.manifest.borrow().clone();
        manifest.checkpoints.push(file.clone());
        self.install(manifest).await?;
        self.parts.borrow_mut().retain(|p| p.1 > synced_position);
        self.shared.stats.counters.checkpoints_written.fetch_add(1, Ordering::Relaxed);
        self.trim_wal().await?;
        self.compact().await?;
        Ok(Some(file))
    }

    /// Writes the events of `first..=last` from memory as one checkpoint file, without the parts of
    /// aborted batches.
    async fn write_range(&self, first: u64, last: u64) -> Result<CheckpointFile, CheckpointError> {
        let shared = &self.shared;
        // Ascending ranges against ascending positions: one pass.
        let mut aborted = shared.parts.aborted_ranges(first, last).into_iter().peekable();
        let kept = move |p: &u64| {
            while aborted.next_if(|&(_, last)| last < *p).is_some() {}
            aborted.peek().is_none_or(|&(first, _)| first > *p)
        };
        let events = (first..=last).filter(kept).filter_map(|p| shared.get_any(p));
        let metadata = vec![
            ("tidelog.shard".to_string(), shared.index.to_string()),
            ("tidelog.first_position".to_string(), first.to_string()),
            ("tidelog.last_position".to_string(), last.to_string()),
        ];
        write_events(&self.dir, &checkpoint_name(first, last), first, last, false, metadata, events).await
    }

    /// Makes `manifest` the one in force (durably), then remembers it.
    async fn install(&self, manifest: Manifest) -> Result<(), CheckpointError> {
        let (dir, to_store) = (self.dir.clone(), manifest.clone());
        blocking(move || to_store.store(&dir)).await?;
        self.shared.stats.counters.checkpointed_position.store(manifest.covered_position(), Ordering::Relaxed);
        *self.manifest.borrow_mut() = manifest;
        Ok(())
    }

    /// Deletes the WAL segments whose every record is covered by the manifest in force. The newest
    /// segment is never touched: the writer appends to it.
    pub async fn trim_wal(&self) -> Result<(), CheckpointError> {
        let (wal_dir, covered) = (self.wal_dir.clone(), self.trimmable_position());
        let removed = blocking(move || -> Result<u32, CheckpointError> {
            let segments = list_segments(&wal_dir).map_err(CheckpointError::io("list", &wal_dir))?;
            let mut removed = 0;
            for pair in segments.windows(2) {
                if pair[1].0 > covered + 1 {
                    break;
                }
                std::fs::remove_file(&pair[0].1).map_err(CheckpointError::io("remove", &pair[0].1))?;
                removed += 1;
            }
            if removed > 0 {
                crate::durable::sync_dir(&wal_dir)?;
            }
            Ok(removed)
        })
        .await?;
        self.trimmed_to.set(covered);
        if removed > 0 {
            self.shared.stats.counters.wal_segments_deleted.fetch_add(removed as u64, Ordering::Relaxed);
            tracing::debug!(shard = self.shared.index, removed, covered, "WAL segments covered by checkpoints deleted");
        }
        Ok(())
    }

    /// Merges the oldest run of small checkpoints into one file (written from memory, like any
    /// checkpoint), installs the manifest, then deletes the files it replaced.
    async fn compact(&self) -> Result<(), CheckpointError> {
        let s = &self.settings;
        let manifest = self.manifest.borrow().clone();
        let Some(range) = plan_compaction(&manifest.checkpoints, s.compact_target_events, s.compact_min_files) else {
            return Ok(());
        };
        let replaced: Vec<CheckpointFile> = manifest.checkpoints[range.clone()].to_vec();
        let (first, last) = (replaced[0].first_position, replaced[replaced.len() - 1].last_position);
        let mut merged = self.write_range(first, last).await?;
        merged.batches = replaced.iter().fold(BatchIds::default(), |all, c| all.union(&c.batches));
        let mut next = manifest;
        next.checkpoints.splice(range, [merged.clone()]);
        self.install(next).await?;
        let dir = self.dir.clone();
        let names: Vec<String> = replaced.iter().map(|c| c.file.clone()).collect();
        blocking(move || -> Result<(), CheckpointError> {
            for name in &names {
                let path = dir.join(name);
                match std::fs::remove_file(&path) {
                    // Already gone: tiering dropped its local copy (the object store has it).
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(CheckpointError::io("remove", &path)(e)),
                    _ => {}
                }
            }
            Ok(crate::durable::sync_dir(&dir)?)
        })
        .await?;
        self.shared.stats.counters.compactions.fetch_add(1, Ordering::Relaxed);
        tracing::info!(shard = self.shared.index, file = %merged.file, merged = replaced.len(), events = merged.events, "checkpoints compacted");
        Ok(())
    }
}
