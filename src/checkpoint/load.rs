//! Recovery's first half: loads a shard's checkpoints into memory, after checking each file against
//! its manifest entry (size, CRC-32, row count, positions). Files the manifest does not name (a
//! checkpoint or manifest half-written when the process died, or files a compaction replaced) are never
//! read as data: they are moved to `set-aside/` and reported.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::error::CheckpointError;
use super::manifest::{CheckpointFile, Manifest, MANIFEST_FILE};
use super::schema::events_of;
use crate::event::StoredEvent;

pub use crate::layout::SET_ASIDE_DIR;

/// What to do when a checkpoint named by the manifest is damaged and the WAL no longer holds its events.
/// (When the WAL still holds them, the checkpoint is set aside and the WAL replayed instead: nothing is
/// lost, whatever the policy.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CheckpointDamage {
    /// Refuse to open, and say which file and which events: the operator restores it or chooses to go on.
    #[default]
    Refuse,
    /// Move the file to `set-aside/`, report the events lost, and open with the rest.
    SetAside,
}

/// A file moved out of the way, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetAsideFile {
    pub path: PathBuf,
    pub reason: String,
}

/// What loading the checkpoints found (part of the shard's recovery report).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckpointSummary {
    pub files: u32,
    pub events: u64,
    /// The last position the checkpoints cover: the WAL is replayed after it.
    pub covered_position: u64,
    /// Events of damaged checkpoints set aside under `CheckpointDamage::SetAside`, in no other place.
    pub events_lost: u64,
    /// Files moved to `set-aside/`, with the reason.
    pub set_aside: Vec<SetAsideFile>,
    pub duration: Duration,
}

/// The result of loading: the manifest in force afterwards (damaged checkpoints taken out) and the summary.
#[derive(Debug, Clone, Default)]
pub struct CheckpointLoad {
    pub manifest: Manifest,
    pub summary: CheckpointSummary,
}

/// Loads the checkpoints of one shard in position order, handing each event to `on_event`.
/// `wal_first_position` is the first position of the oldest WAL segment, if any.
pub fn load_checkpoints(
    dir: &Path,
    shard: u32,
    policy: CheckpointDamage,
    wal_first_position: Option<u64>,
    mut on_event: impl FnMut(StoredEvent),
) -> Result<CheckpointLoad, CheckpointError> {
    let started = Instant::now();
    std::fs::create_dir_all(dir).map_err(CheckpointError::io("create", dir))?;
    let manifest = Manifest::load(dir, shard)?;
    // WAL segments are deleted only once a manifest covers them: a WAL that starts after position 1
    // with no manifest means the manifest was lost, not that there never were checkpoints.
    if !crate::layout::manifest_file(dir).exists() {
        if let Some(first) = wal_first_position.filter(|&first| first > 1) {
            if policy == CheckpointDamage::Refuse {
                return Err(CheckpointError::ManifestMissing { dir: dir.to_path_buf(), manifest: MANIFEST_FILE, wal_first_position: first });
            }
            tracing::error!(shard, "{MANIFEST_FILE} is missing; events before position {first} are lost unless it is restored");
        }
    }
    let mut load = CheckpointLoad { manifest: Manifest::empty(shard), ..Default::default() };
    set_aside_strays(dir, &manifest, &mut load.summary.set_aside)?;

    let mut entries = manifest.checkpoints.iter();
    while let Some(entry) = entries.next() {
        let path = dir.join(&entry.file);
        let reason = match read_checkpoint(&path, entry, load.summary.covered_position) {
            Ok(events) => {
                load.summary.events += events.len() as u64;
                load.summary.files += 1;
                load.summary.covered_position = entry.last_position;
                load.manifest.checkpoints.push(entry.clone());
                events.into_iter().for_each(&mut on_event);
                continue;
            }
            Err(reason) => reason,
        };
        if wal_first_position.is_some_and(|first| first <= load.summary.covered_position + 1) {
            // The WAL still holds everything from here on (segments are deleted oldest first), so this
            // checkpoint and all later ones are redundant: replay the WAL instead.
            set_aside(dir, &entry.file, format!("{reason}; its events are replayed from the WAL"), &mut load.summary.set_aside)?;
            for later in entries.by_ref() {
                set_aside(dir, &later.file, "follows a damaged checkpoint; replayed from the WAL".into(), &mut load.summary.set_aside)?;
            }
            break;
        }
        match policy {
            CheckpointDamage::Refuse => {
                return Err(CheckpointError::Damaged {
                    path,
                    reason,
                    first_position: entry.first_position,
                    last_position: entry.last_position,
                    events: entry.events,
                    set_aside_dir: crate::layout::set_aside_dir(dir).display().to_string(),
                })
            }
            CheckpointDamage::SetAside => {
                tracing::error!(
                    shard,
                    file = %path.display(),
                    events = entry.events,
                    "damaged checkpoint set aside ({reason}); its events (positions {}..={}) are lost unless the file is restored",
                    entry.first_position,
                    entry.last_position
                );
                set_aside(dir, &entry.file, reason, &mut load.summary.set_aside)?;
                load.summary.events_lost += entry.events;
                load.summary.covered_position = entry.last_position;
            }
        }
    }
    if load.manifest != manifest {
        load.manifest.store(dir)?;
    }
    load.summary.duration = started.elapsed();
    Ok(load)
}

/// Checks one checkpoint against its manifest entry without loading it anywhere (for `tidelog inspect`).
pub fn check_checkpoint(dir: &Path, entry: &CheckpointFile) -> Result<(), String> {
    read_checkpoint(&dir.join(&entry.file), entry, 0).map(drop)
}

/// Reads and checks one checkpoint completely before any of its events is used; the error is a reason
/// for the operator.
fn read_checkpoint(path: &Path, entry: &CheckpointFile, after_position: u64) -> Result<Vec<StoredEvent>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read it: {e}"))?;
    if bytes.len() as u64 != entry.size_bytes {
        return Err(format!("it is {} bytes, the manifest says {} (truncated or replaced)", bytes.len(), entry.size_bytes));
    }
    if crc32fast::hash(&bytes) != entry.crc32 {
        return Err("its CRC-32 does not match the manifest (the file changed after it was written)".into());
    }
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))
        .and_then(|b| b.with_batch_size(8192).build())
        .map_err(|e| format!("not a readable Parquet file: {e}"))?;
    let mut events = Vec::with_capacity(entry.events as usize);
    for batch in reader {
        let batch = batch.map_err(|e| format!("unreadable row group: {e}"))?;
        events_of(&batch, |e| events.push(e))?;
    }
    if events.len() as u64 != entry.events {
        return Err(format!("{} rows, the manifest says {}", events.len(), entry.events));
    }
    let mut previous = after_position.max(entry.first_position.saturating_sub(1));
    for event in &events {
        if event.position() <= previous || event.position() > entry.last_position {
            return Err(format!("position {} out of order or outside {}..={}", event.position(), entry.first_position, entry.last_position));
        }
        previous = event.position();
    }
    Ok(events)
}

/// Moves every file the manifest does not name out of the way.
fn set_aside_strays(dir: &Path, manifest: &Manifest, found: &mut Vec<SetAsideFile>) -> Result<(), CheckpointError> {
    let named: std::collections::HashSet<&str> = manifest.checkpoints.iter().map(|c| c.file.as_str()).collect();
    let mut strays = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(CheckpointError::io("list", dir))? {
        let entry = entry.map_err(CheckpointError::io("list", dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == MANIFEST_FILE || name == SET_ASIDE_DIR || named.contains(name.as_str()) {
            continue;
        }
        strays.push(name);
    }
    strays.sort();
    for name in strays {
        let reason = if name.ends_with(".tmp") {
            "unfinished write (the process stopped before it was complete)".to_string()
        } else {
            "not named by the manifest (written or replaced when the process stopped)".to_string()
        };
        set_aside(dir, &name, reason, found)?;
    }
    Ok(())
}

fn set_aside(dir: &Path, name: &str, reason: String, found: &mut Vec<SetAsideFile>) -> Result<(), CheckpointError> {
    let aside = crate::layout::set_aside_dir(dir);
    std::fs::create_dir_all(&aside).map_err(CheckpointError::io("create", &aside))?;
    let from = dir.join(name);
    let mut to = aside.join(name);
    let mut n = 1;
    while to.exists() {
        to = aside.join(format!("{name}.{n}"));
        n += 1;
    }
    match std::fs::rename(&from, &to) {
        Ok(()) => {}
        // A manifest entry whose file is gone: nothing to move, the reason says so.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => to = from,
        Err(e) => return Err(CheckpointError::io("set aside", &from)(e)),
    }
    tracing::warn!(file = %to.display(), "checkpoint file set aside: {reason}");
    found.push(SetAsideFile { path: to, reason });
    Ok(crate::durable::sync_dir(dir)?)
}
