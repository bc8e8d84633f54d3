use std::path::PathBuf;

/// Errors of the WAL layer.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("{op} {}: {source}", .path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("short write to {}: {written} of {expected} bytes", .path.display())]
    ShortWrite { path: PathBuf, written: usize, expected: usize },
    #[error("WAL segment {}: {reason}; move the file aside to open the store without its records", .path.display())]
    BadSegment { path: PathBuf, reason: String },
    #[error(
        "mid-log corruption in {}: {detail}; refusing to open in strict recovery (--strict-recovery, \
         MidLogCorruption::Fail): open without it to skip the damaged records and report them",
        .path.display()
    )]
    MidLogCorruption { path: PathBuf, detail: String },
    /// An earlier write or fdatasync failed; the WAL acknowledges nothing more.
    #[error("the WAL stopped after an earlier write or fdatasync error")]
    Stopped,
}

impl WalError {
    /// Whether this is the disk running out of space (ENOSPC).
    pub fn is_no_space(&self) -> bool {
        matches!(self, WalError::Io { source, .. } if source.raw_os_error() == Some(libc::ENOSPC))
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> WalError {
        let path = path.into();
        move |source| WalError::Io { op, path, source }
    }
}
