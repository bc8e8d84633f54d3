//! The data directory's layout: the one place that names its files and folders (`docs/FORMAT.md`, "Data
//! directory"). Everything that opens, checks or reports on a data directory builds its paths here.
//!
//! ```text
//! <data-dir>/
//!   tidelog.json                        META_FILE: format version and shard count (meta.rs)
//!   EPOCHS                              EPOCHS_FILE: one entry per open (epoch.rs)
//!   LOCK                                LOCK_FILE: flock(2)-ed while a process has the store open
//!   shard-<k>/                          shard_dir
//!   shard-<k>/wal/                      wal_dir: the segments (named by wal::segment)
//!   shard-<k>/checkpoints/              checkpoint_dir: the Parquet files (named by checkpoint::writer)
//!   shard-<k>/checkpoints/MANIFEST.json manifest_file: the checkpoints in force
//!   shard-<k>/checkpoints/set-aside/    set_aside_dir: files recovery would not load
//! ```
//!
//! The names of the files inside `wal/` and `checkpoints/` (positions, zero-padded) stay with the code that
//! parses them back: `wal::segment::segment_path` and `checkpoint::checkpoint_name`.

use std::path::{Path, PathBuf};

/// The store's metadata, in the data directory.
pub const META_FILE: &str = "tidelog.json";
/// The epochs, in the data directory.
pub const EPOCHS_FILE: &str = "EPOCHS";
/// The lock, in the data directory.
pub const LOCK_FILE: &str = "LOCK";
/// The manifest, in a shard's checkpoint directory.
pub const MANIFEST_FILE: &str = "MANIFEST.json";
/// Where recovery moves the files it would not load, in a shard's checkpoint directory.
pub const SET_ASIDE_DIR: &str = "set-aside";

pub fn meta_file(data_dir: &Path) -> PathBuf {
    data_dir.join(META_FILE)
}

pub fn epochs_file(data_dir: &Path) -> PathBuf {
    data_dir.join(EPOCHS_FILE)
}

pub fn lock_file(data_dir: &Path) -> PathBuf {
    data_dir.join(LOCK_FILE)
}

/// Shard `shard`'s folder.
pub fn shard_dir(data_dir: &Path, shard: usize) -> PathBuf {
    data_dir.join(format!("shard-{shard}"))
}

/// Shard `shard`'s WAL segments.
pub fn wal_dir(data_dir: &Path, shard: usize) -> PathBuf {
    shard_dir(data_dir, shard).join("wal")
}

/// Shard `shard`'s checkpoints and their manifest.
pub fn checkpoint_dir(data_dir: &Path, shard: usize) -> PathBuf {
    shard_dir(data_dir, shard).join("checkpoints")
}

/// The manifest of a checkpoint directory.
pub fn manifest_file(checkpoint_dir: &Path) -> PathBuf {
    checkpoint_dir.join(MANIFEST_FILE)
}

/// The set-aside folder of a checkpoint directory.
pub fn set_aside_dir(checkpoint_dir: &Path) -> PathBuf {
    checkpoint_dir.join(SET_ASIDE_DIR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_format() {
        let dir = Path::new("/data");
        assert_eq!(meta_file(dir), Path::new("/data/tidelog.json"));
        assert_eq!(epochs_file(dir), Path::new("/data/EPOCHS"));
        assert_eq!(lock_file(dir), Path::new("/data/LOCK"));
        assert_eq!(wal_dir(dir, 3), Path::new("/data/shard-3/wal"));
        let checkpoints = checkpoint_dir(dir, 0);
        assert_eq!(checkpoints, Path::new("/data/shard-0/checkpoints"));
        assert_eq!(manifest_file(&checkpoints), Path::new("/data/shard-0/checkpoints/MANIFEST.json"));
        assert_eq!(set_aside_dir(&checkpoints), Path::new("/data/shard-0/checkpoints/set-aside"));
    }
}
