//! Durable file replacement, shared by every small file the store rewrites (metadata, manifests):
//! temporary file, fdatasync, rename, fsync of the directory. A reader sees the old file or the new one.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Which step failed, on which file.
#[derive(Debug)]
pub struct StepError {
    pub op: &'static str,
    pub path: PathBuf,
    pub source: std::io::Error,
}

fn step<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StepError + 'a {
    move |source| StepError { op, path: path.to_path_buf(), source }
}

/// `<path>.tmp`: where a new version of `path` is written before it replaces it.
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().expect("a file path").to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Makes the directory's entries (creations, renames, removals) durable.
pub fn sync_dir(dir: &Path) -> Result<(), StepError> {
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(step("fsync directory", dir))
}

/// Replaces `path` with `bytes` atomically and durably (blocking).
pub fn replace_file(path: &Path, bytes: &[u8]) -> Result<(), StepError> {
    let tmp = tmp_path(path);
    let mut file = std::fs::File::create(&tmp).map_err(step("create", &tmp))?;
    file.write_all(bytes).map_err(step("write", &tmp))?;
    file.sync_data().map_err(step("fdatasync", &tmp))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(step("rename", &tmp))?;
    sync_dir(path.parent().expect("a file in a directory"))
}
