//! The manifest: which checkpoint files are in force and the WAL position they cover. Replaced
//! atomically (temporary file, fdatasync, rename, fsync of the directory), so a reader sees the old
//! manifest or the new one, never a mix.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::CheckpointError;

pub use crate::layout::MANIFEST_FILE;
/// Version 2 added `batches` to each checkpoint; a version-1 manifest (none) is read as is.
pub const MANIFEST_FORMAT_VERSION: u32 = 2;
const MIN_MANIFEST_FORMAT_VERSION: u32 = 1;

/// One checkpoint file: every stored event of positions `first_position..=last_position`, in position
/// order (positions lost to WAL corruption are absent, so `events` may be smaller than the range).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointFile {
    pub file: String,
    pub first_position: u64,
    pub last_position: u64,
    pub events: u64,
    pub size_bytes: u64,
    /// CRC-32 (ISO-HDLC, as crc32fast) of the whole file.
    pub crc32: u32,
    /// The cross-shard batches whose part on this shard the file holds: recovery asks for them when
    /// another participant's part of one is still in its WAL (docs/BATCHES.md).
    #[serde(default, skip_serializing_if = "BatchIds::is_empty")]
    pub batches: BatchIds,
}

/// Ids of cross-shard batches, as ascending inclusive ranges of consecutive ids. The ids of one open are
/// a counter under a fixed high half, so the parts a shard holds mostly form long runs: a few bytes for
/// many batches. Serialised as `[["<first>", "<last>"], ...]`, each id as 32 lowercase hex digits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchIds(Vec<(u128, u128)>);

impl BatchIds {
    pub fn from_ids(mut ids: Vec<u128>) -> BatchIds {
        ids.sort_unstable();
        ids.dedup();
        let mut ranges: Vec<(u128, u128)> = Vec::new();
        for id in ids {
            match ranges.last_mut() {
                Some((_, last)) if last.checked_add(1) == Some(id) => *last = id,
                _ => ranges.push((id, id)),
            }
        }
        BatchIds(ranges)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, id: u128) -> bool {
        let i = self.0.partition_point(|&(_, last)| last < id);
        self.0.get(i).is_some_and(|&(first, _)| first <= id)
    }

    /// Every id of `self` and of `other`.
    pub fn union(&self, other: &BatchIds) -> BatchIds {
        let mut ranges: Vec<(u128, u128)> = self.0.iter().chain(&other.0).copied().collect();
        ranges.sort_unstable();
        let mut merged: Vec<(u128, u128)> = Vec::with_capacity(ranges.len());
        for (first, last) in ranges {
            match merged.last_mut() {
                Some((_, end)) if first <= end.saturating_add(1) => *end = (*end).max(last),
                _ => merged.push((first, last)),
            }
        }
        BatchIds(merged)
    }
}

impl Serialize for BatchIds {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let ranges: Vec<[String; 2]> = self.0.iter().map(|(a, b)| [format!("{a:032x}"), format!("{b:032x}")]).collect();
        ranges.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for BatchIds {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<BatchIds, D::Error> {
        let ranges: Vec<[String; 2]> = Vec::deserialize(deserializer)?;
        let parse = |s: &str| u128::from_str_radix(s, 16).map_err(serde::de::Error::custom);
        let mut out = Vec::with_capacity(ranges.len());
        for [a, b] in &ranges {
            let (a, b) = (parse(a)?, parse(b)?);
            if b < a || out.last().is_some_and(|&(_, last)| a <= last) {
                return Err(serde::de::Error::custom("batch id ranges out of order"));
            }
            out.push((a, b));
        }
        Ok(BatchIds(out))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    pub shard: u32,
    /// Checkpoints in position order; their ranges do not overlap.
    pub checkpoints: Vec<CheckpointFile>,
}

impl Default for Manifest {
    fn default() -> Manifest {
        Manifest::empty(0)
    }
}

impl Manifest {
    pub fn empty(shard: u32) -> Manifest {
        Manifest { format_version: MANIFEST_FORMAT_VERSION, shard, checkpoints: Vec::new() }
    }

    /// The last position the checkpoints cover (0: none). WAL records up to it are redundant.
    pub fn covered_position(&self) -> u64 {
        self.checkpoints.last().map_or(0, |c| c.last_position)
    }

    pub fn events(&self) -> u64 {
        self.checkpoints.iter().map(|c| c.events).sum()
    }

    /// The cross-shard batches whose part on this shard the checkpoints hold.
    pub fn batches(&self) -> BatchIds {
        self.checkpoints.iter().fold(BatchIds::default(), |all, c| all.union(&c.batches))
    }

    fn check(&self, shard: u32) -> Result<(), String> {
        if !(MIN_MANIFEST_FORMAT_VERSION..=MANIFEST_FORMAT_VERSION).contains(&self.format_version) {
            return Err(format!(
                "format version {}, this build reads {MIN_MANIFEST_FORMAT_VERSION} to {MANIFEST_FORMAT_VERSION}",
                self.format_version
            ));
        }
        if self.shard != shard {
            return Err(format!("belongs to shard {}", self.shard));
        }
        let mut after = 0u64;
        for c in &self.checkpoints {
            if c.first_position <= after || c.last_position < c.first_position {
                return Err(format!("checkpoint {} overlaps or goes back", c.file));
            }
            after = c.last_position;
        }
        Ok(())
    }

    /// Reads the manifest of `dir`; a missing one is an empty manifest (no checkpoint written yet).
    pub fn load(dir: &Path, shard: u32) -> Result<Manifest, CheckpointError> {
        let path = crate::layout::manifest_file(dir);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Manifest::empty(shard)),
            Err(e) => return Err(CheckpointError::io("read", &path)(e)),
        };
        Manifest::from_bytes(&bytes, shard).map_err(|reason| CheckpointError::BadManifest { path, reason })
    }

    /// Parses a manifest's bytes (a local file's, or a shipped copy) and checks it is shard `shard`'s and
    /// well formed.
    pub fn from_bytes(bytes: &[u8], shard: u32) -> Result<Manifest, String> {
        let manifest: Manifest = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        manifest.check(shard)?;
        Ok(manifest)
    }

    /// Replaces the manifest of `dir` atomically and durably (blocking: run it off the executor).
    pub fn store(&self, dir: &Path) -> Result<(), CheckpointError> {
        let bytes = serde_json::to_vec_pretty(self).expect("serialisable");
        Ok(crate::durable::replace_file(&crate::layout::manifest_file(dir), &bytes)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(first: u64, last: u64) -> CheckpointFile {
        CheckpointFile { file: format!("{first}-{last}"), first_position: first, last_position: last, events: last - first + 1, size_bytes: 1, crc32: 0, batches: BatchIds::default() }
    }

    #[test]
    fn batch_ids_are_ranges_that_round_trip() {
        let ids = BatchIds::from_ids(vec![5, 3, 4, 9, (1 << 64) | 1, 4]);
        assert_eq!(ids.0, vec![(3, 5), (9, 9), ((1 << 64) | 1, (1 << 64) | 1)]);
        assert!(ids.contains(4) && ids.contains(9) && !ids.contains(6) && !ids.contains(2) && !ids.contains(1 << 64));
        let json = serde_json::to_string(&ids).unwrap();
        assert_eq!(serde_json::from_str::<BatchIds>(&json).unwrap(), ids);
        let more = ids.union(&BatchIds::from_ids(vec![6, 7, 8]));
        assert_eq!(more.0[0], (3, 9));
        let mut m = Manifest::empty(0);
        m.checkpoints = vec![file(1, 10)];
        m.checkpoints[0].batches = ids.clone();
        assert_eq!(m.batches(), ids);
    }

    #[test]
    fn a_version_1_manifest_still_loads() {
        let dir = tempfile::tempdir().unwrap();
        let v1 = r#"{"format_version": 1, "shard": 0, "checkpoints": [{"file": "a", "first_position": 1,
            "last_position": 3, "events": 3, "size_bytes": 1, "crc32": 0}]}"#;
        std::fs::write(crate::layout::manifest_file(dir.path()), v1).unwrap();
        let m = Manifest::load(dir.path(), 0).unwrap();
        assert!(m.batches().is_empty() && m.covered_position() == 3);
    }

    #[test]
    fn round_trip_and_checks() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Manifest::load(dir.path(), 3).unwrap(), Manifest::empty(3));
        let mut m = Manifest::empty(3);
        m.checkpoints = vec![file(1, 10), file(11, 30)];
        m.store(dir.path()).unwrap();
        let back = Manifest::load(dir.path(), 3).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.covered_position(), 30);
        assert!(matches!(Manifest::load(dir.path(), 2), Err(CheckpointError::BadManifest { .. })));
        m.checkpoints = vec![file(1, 10), file(5, 30)];
        m.store(dir.path()).unwrap();
        assert!(Manifest::load(dir.path(), 3).unwrap_err().to_string().contains("overlaps"));
        std::fs::write(crate::layout::manifest_file(dir.path()), b"{\"format_ver").unwrap();
        assert!(matches!(Manifest::load(dir.path(), 3), Err(CheckpointError::BadManifest { .. })));
    }
}
