//! Errors of the checkpoint layer.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("checkpoint {path}: {source}")]
    Parquet {
        path: PathBuf,
        #[source]
        source: parquet::errors::ParquetError,
    },
    #[error("checkpoint manifest {path} is unreadable: {reason}")]
    BadManifest { path: PathBuf, reason: String },
    /// A checkpoint named by the manifest does not read back as written, and the WAL no longer holds
    /// its events. Opening would lose them, so the operator decides.
    #[error(
        "checkpoint {path} is damaged ({reason}); it holds {events} events (positions {first_position}..={last_position}) \
         that are no longer in the WAL. Restore the file from a backup and open again, or open with \
         --checkpoint-damage set-aside to move it to {set_aside_dir} and open without those events"
    )]
    Damaged {
        path: PathBuf,
        reason: String,
        first_position: u64,
        last_position: u64,
        events: u64,
        set_aside_dir: String,
    },

/// The manifest is gone, but the data shows there were checkpoints: segments of the WAL were deleted
    /// because a manifest covered them.
    #[error(
        "{dir} has no {manifest} although the WAL starts at position {wal_first_position}: the events before it \
         were in checkpoints that no manifest names any more. Restore {manifest} from a backup and open again, or \
         open with --checkpoint-damage set-aside to set the checkpoint files aside and open without those events"
    )]
    ManifestMissing { dir: PathBuf, manifest: &'static str, wal_first_position: u64 },
}

impl From<crate::durable::StepError> for CheckpointError {
    fn from(e: crate::durable::StepError) -> CheckpointError {
        CheckpointError::Io { op: e.op, path: e.path, source: e.source }
    }
}

impl CheckpointError {
    /// Wraps an I/O error with what was done to which file.
    pub fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> CheckpointError + 'a {
        move |source| CheckpointError::Io { op, path: path.to_path_buf(), source }
    }
}
