//! The data directory's metadata file and its lock.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::layout::{self, META_FILE};
use crate::wal::segment::{FORMAT_VERSION, MIN_FORMAT_VERSION};


#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Meta {
    pub format_version: u32,
    pub shards: usize,
    /// Mixed into the ids the store generates (`shard::IdIndex::generate`); absent in directories made
    /// before it existed, which get one when they are next opened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_salt: Option<u64>,
}

/// A new directory's id salt: 40 random bits.
fn new_id_salt() -> u64 {
    fastrand::u64(..) & ((1 << 40) - 1)
}

fn dir_error(dir: &Path, reason: impl Into<String>) -> Error {
    Error::DataDir { path: dir.display().to_string(), reason: reason.into() }
}

/// Reads the metadata, or writes it (atomically) for a new directory. `shards == 0` takes what the
/// directory says, or `default_shards` for a new one.
pub(crate) fn load_or_create(dir: &Path, shards: usize, default_shards: usize) -> Result<Meta, Error> {
    let path = layout::meta_file(dir);
    match std::fs::read(&path) {
        Ok(bytes) => {
            let mut meta: Meta = serde_json::from_slice(&bytes)
                .map_err(|e| dir_error(dir, format!("{META_FILE} is unreadable: {e}")))?;
            if !(MIN_FORMAT_VERSION..=FORMAT_VERSION).contains(&meta.format_version) {
                return Err(dir_error(
                    dir,
                    format!("format version {}, this build reads {MIN_FORMAT_VERSION} to {FORMAT_VERSION}", meta.format_version),
                ));
            }
            if shards != 0 && shards != meta.shards {
                return Err(dir_error(
                    dir,
                    format!(
                        "it was created with {} shards and cannot be opened with {shards}: events are placed by \
                         shard count, so re-sharding would split entities (open it with --shards {})",
                        meta.shards, meta.shards
                    ),
                ));
            }
            if meta.format_version < FORMAT_VERSION || meta.id_salt.is_none() {
                // Older data is read as is; what this build writes from now on (part headers) an older
                // build could not read, so the directory says so before anything is written. A directory
                // without an id salt gets one now: ids generated from here on depend on it staying put.
                meta.format_version = FORMAT_VERSION;
                meta.id_salt = meta.id_salt.or_else(|| Some(new_id_salt()));
                store(&path, &meta)?;
            }
            Ok(meta)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let meta = Meta {
                format_version: FORMAT_VERSION,
                shards: if shards == 0 { default_shards } else { shards },
                id_salt: Some(new_id_salt()),
            };
            store(&path, &meta)?;
            Ok(meta)
        }
        Err(e) => Err(Error::io(format!("read {}", path.display()), e)),
    }
}

/// Why an existing directory's metadata could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}: {source}", path.display())]
    Unreadable { path: PathBuf, source: serde_json::Error },
}

/// Reads the metadata of an existing directory and changes nothing (no lock, no upgrade of an older
/// version): for checks of a directory that may be in use, like `tidelog inspect`.
pub fn read(dir: &Path) -> Result<Meta, ReadError> {
    let path = layout::meta_file(dir);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| ReadError::Unreadable { path, source }),
        Err(source) => Err(ReadError::Io { path, source }),
    }
}

fn store(path: &Path, meta: &Meta) -> Result<(), Error> {
    let bytes = serde_json::to_vec_pretty(meta).expect("serialisable");
    crate::durable::replace_file(path, &bytes).map_err(|e| Error::io(format!("{} {}", e.op, e.path.display()), e.source))
}

/// An exclusive lock on the data directory, held while the store is open (released by the kernel if
/// the process dies).
pub(crate) struct DirLock(#[allow(dead_code)] File);

pub(crate) fn lock(dir: &Path) -> Result<DirLock, Error> {
    let path = layout::lock_file(dir);
    let file = File::create(&path).map_err(|e| Error::io(format!("create {}", path.display()), e))?;
    // SAFETY: flock on a valid, owned file descriptor.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(dir_error(dir, "it is in use by another tidelog process"));
    }
    Ok(DirLock(file))
}
