//! The manifest: which checkpoint files are in force and the WAL position they cover. Replaced
//! atomically (temporary file, fdatasync, rename, fsync of the directory), so a reader sees the old
//! manifest or the new one, never a mix.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::CheckpointError;

pub const MANIFEST_FILE: &str = "MANIFEST.json";
pub const MANIFEST_FORMAT_VERSION: u32 = 1;

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

    fn check(&self, shard: u32) -> Result<(), String> {
        if self.format_version != MANIFEST_FORMAT_VERSION {
            return Err(format!("format version {}, this build reads {MANIFEST_FORMAT_VERSION}", self.format_version));
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
        let path = dir.join(MANIFEST_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Manifest::empty(shard)),
            Err(e) => return Err(CheckpointError::io("read", &path)(e)),
        };
        let manifest: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| CheckpointError::BadManifest { path: path.clone(), reason: e.to_string() })?;
        manifest.check(shard).map_err(|reason| CheckpointError::BadManifest { path, reason })?;
        Ok(manifest)
    }

    /// Replaces the manifest of `dir` atomically and durably (blocking: run it off the executor).
    pub fn store(&self, dir: &Path) -> Result<(), CheckpointError> {
        let bytes = serde_json::to_vec_pretty(self).expect("serialisable");
        Ok(crate::durable::replace_file(&dir.join(MANIFEST_FILE), &bytes)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(first: u64, last: u64) -> CheckpointFile {
        CheckpointFile { file: format!("{first}-{last}"), first_position: first, last_position: last, events: last - first + 1, size_bytes: 1, crc32: 0 }
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
        std::fs::write(dir.path().join(MANIFEST_FILE), b"{\"format_ver").unwrap();
        assert!(matches!(Manifest::load(dir.path(), 3), Err(CheckpointError::BadManifest { .. })));
    }
}
