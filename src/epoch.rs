//! Epochs of a data directory: each open of the store starts one and records, durably and before any
//! append can be acknowledged, the first position each shard will give in it. A stream cursor names its
//! epoch, so a cursor handed out before a power loss can be translated: positions the loss took back
//! are given to new events after the restart, and a reader whose cursor is past them resumes from the
//! end of what survived instead of skipping the new events. Design: `docs/CURSORS.md`; bytes:
//! `docs/FORMAT.md` (Epochs).

use std::path::Path;

use crate::error::Error;

pub use crate::layout::EPOCHS_FILE;
const MAGIC: [u8; 8] = *b"TLEPOCHS";
const EPOCHS_FORMAT_VERSION: u32 = 1;
const HEADER_BYTES: usize = 8 + 4 + 4 + 8;
const TRAILER_BYTES: usize = 4;

/// One open of the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochEntry {
    /// 1, 2, 3, ... in the order of opens.
    pub epoch: u64,
    /// When the open recorded it (µs since the Unix epoch), for operators.
    pub opened_at_us: i64,
    /// Per shard, the position its first event of this epoch takes (the recovered last position + 1).
    pub first_positions: Vec<u64>,
}

/// Every epoch of a data directory, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Epochs {
    shards: usize,
    entries: Vec<EpochEntry>,
}

/// Why a cursor's epoch cannot be used with this store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownEpoch {
    pub epoch: u64,
    pub current: u64,
}

impl Epochs {
    /// No epoch (a store whose open failed).
    pub(crate) fn none(shards: usize) -> Epochs {
        Epochs { shards, entries: Vec::new() }
    }

    /// The epoch of this open.
    pub fn current(&self) -> u64 {
        self.entries.last().map_or(0, |e| e.epoch)
    }

    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    /// Where a reader resumes on `shard` now, given that it had read up to `position` there in
    /// `epoch` (0: a cursor from before epochs were recorded). Every later epoch began at a position at
    /// or below which everything it had read and that still exists lies; from its first position on,
    /// the events are new to that reader. So the reader resumes after the smallest such start, minus
    /// one, or at `position` if that is smaller: it never skips an event, and it is shown again only
    /// what it had read and a power loss took away (nothing).
    pub fn resume_position(&self, epoch: u64, shard: usize, position: u64) -> Result<u64, UnknownEpoch> {
        if epoch > self.current() {
            return Err(UnknownEpoch { epoch, current: self.current() });
        }
        Ok(self
            .entries
            .iter()
            .filter(|e| e.epoch > epoch)
            .map(|e| e.first_positions[shard].saturating_sub(1))
            .fold(position, u64::min))
    }

    fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(HEADER_BYTES + self.entries.len() * (16 + 8 * self.shards) + TRAILER_BYTES);
        bytes.extend_from_slice(&MAGIC);
        bytes.extend_from_slice(&EPOCHS_FORMAT_VERSION.to_le_bytes());
        bytes.extend_from_slice(&(self.shards as u32).to_le_bytes());
        bytes.extend_from_slice(&(self.entries.len() as u64).to_le_bytes());
        for entry in &self.entries {
            bytes.extend_from_slice(&entry.epoch.to_le_bytes());
            bytes.extend_from_slice(&entry.opened_at_us.to_le_bytes());
            for p in &entry.first_positions {
                bytes.extend_from_slice(&p.to_le_bytes());
            }
        }
        let crc = crc32fast::hash(&bytes);
        bytes.extend_from_slice(&crc.to_le_bytes());
        bytes
    }

    fn decode(bytes: &[u8], shards: usize) -> Result<Epochs, String> {
        if bytes.len() < HEADER_BYTES + TRAILER_BYTES {
            return Err(format!("{} bytes, shorter than its header", bytes.len()));
        }
        let (body, trailer) = bytes.split_at(bytes.len() - TRAILER_BYTES);
        if crc32fast::hash(body).to_le_bytes() != trailer {
            return Err("CRC mismatch".into());
        }
        let u32_at = |at: usize| u32::from_le_bytes(body[at..at + 4].try_into().expect("4 bytes"));
        let u64_at = |at: usize| u64::from_le_bytes(body[at..at + 8].try_into().expect("8 bytes"));
        if body[..8] != MAGIC {
            return Err("not an epochs file (magic)".into());
        }
        if u32_at(8) != EPOCHS_FORMAT_VERSION {
            return Err(format!("epochs format version {}, this build reads {EPOCHS_FORMAT_VERSION}", u32_at(8)));
        }
        if u32_at(12) as usize != shards {
            return Err(format!("written for {} shards, the store has {shards}", u32_at(12)));
        }
        let count = u64_at(16);
        let entry_bytes = 16 + 8 * shards;
        if (body.len() - HEADER_BYTES) as u64 != count.saturating_mul(entry_bytes as u64) {
            return Err(format!("{} entry bytes for {count} entries", body.len() - HEADER_BYTES));
        }
        let mut entries = Vec::with_capacity(count as usize);
        for k in 0..count as usize {
            let at = HEADER_BYTES + k * entry_bytes;
            let entry = EpochEntry {
                epoch: u64_at(at),
                opened_at_us: u64_at(at + 8) as i64,
                first_positions: (0..shards).map(|s| u64_at(at + 16 + 8 * s)).collect(),
            };
            if entry.epoch != k as u64 + 1 {
                return Err(format!("entry {k} is epoch {}, expected {}", entry.epoch, k + 1));
            }
            entries.push(entry);
        }
        Ok(Epochs { shards, entries })
    }
}

fn epochs_error(dir: &Path, reason: impl std::fmt::Display) -> Error {
    Error::DataDir { path: dir.display().to_string(), reason: format!("{EPOCHS_FILE}: {reason}") }
}

/// Starts a new epoch: reads the directory's epochs (none yet: an empty list), adds one whose shards
/// start after `last_positions` (what recovery kept), and makes the file durable before returning. Called
/// by the open, after recovery and before the store takes its first append.
pub fn begin(dir: &Path, last_positions: &[u64]) -> Result<Epochs, Error> {
    let shards = last_positions.len();
    let path = crate::layout::epochs_file(dir);
    let mut epochs = match std::fs::read(&path) {
        Ok(bytes) => Epochs::decode(&bytes, shards).map_err(|reason| epochs_error(dir, reason))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Epochs { shards, entries: Vec::new() },
        Err(e) => return Err(Error::io(format!("read {}", path.display()), e)),
    };
    epochs.entries.push(EpochEntry {
        epoch: epochs.current() + 1,
        opened_at_us: crate::time::now_us(),
        first_positions: last_positions.iter().map(|p| p + 1).collect(),
    });
    crate::durable::replace_file(&path, &epochs.encode())
        .map_err(|e| Error::io(format!("{} {}", e.op, e.path.display()), e.source))?;
    Ok(epochs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_resume() {
        let dir = tempfile::tempdir().unwrap();
        let first = begin(dir.path(), &[0, 0]).unwrap();
        assert_eq!(first.current(), 1);
        // Epoch 1 reached 100 and 50; a power loss kept 80 and 50.
        let second = begin(dir.path(), &[80, 50]).unwrap();
        // Epoch 2 reached 120 and 70; a clean close kept everything.
        let third = begin(dir.path(), &[120, 70]).unwrap();
        assert_eq!(third.current(), 3);
        assert_eq!(Epochs::decode(&std::fs::read(crate::layout::epochs_file(dir.path())).unwrap(), 2).unwrap(), third);
        assert_eq!(second.entries(), &third.entries()[..2]);
        // An epoch-1 cursor past what survived resumes at the end of what survived.
        assert_eq!(third.resume_position(1, 0, 100), Ok(80));
        assert_eq!(third.resume_position(1, 0, 60), Ok(60));
        assert_eq!(third.resume_position(1, 1, 50), Ok(50));
        // Epoch 2's cursors were not affected by the clean close; the current epoch's never are.
        assert_eq!(third.resume_position(2, 0, 120), Ok(120));
        assert_eq!(third.resume_position(3, 0, 500), Ok(500));
        // A cursor from before epochs: bounded by every epoch's start.
        assert_eq!(third.resume_position(0, 0, 100), Ok(0));
        assert_eq!(third.resume_position(4, 0, 1), Err(UnknownEpoch { epoch: 4, current: 3 }));
    }

    #[test]
    fn damage_and_a_shard_count_mismatch_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        begin(dir.path(), &[5, 6]).unwrap();
        let path = crate::layout::epochs_file(dir.path());
        let mut bytes = std::fs::read(&path).unwrap();
        assert!(Epochs::decode(&bytes, 3).unwrap_err().contains("2 shards"));
        bytes[HEADER_BYTES] ^= 1;
        assert!(Epochs::decode(&bytes, 2).unwrap_err().contains("CRC"));
        std::fs::write(&path, &bytes[..10]).unwrap();
        assert!(begin(dir.path(), &[5, 6]).unwrap_err().to_string().contains("EPOCHS"));
    }
}
