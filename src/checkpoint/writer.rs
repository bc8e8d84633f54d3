//! Writes one checkpoint file from a shard's in-memory events, on the shard's executor, without
//! holding it up: events are encoded a few thousand at a time with a yield in between, and every
//! blocking file operation (write, fdatasync, rename) runs on the executor's blocking thread, which is
//! placed on the same core.
//!
//! The file appears under its final name only once it is complete and durable: it is written as
//! `<name>.tmp`, fdatasynced, renamed, and the directory fsynced.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parquet::arrow::ArrowWriter;

use super::error::CheckpointError;
use super::manifest::CheckpointFile;
use crate::durable::{sync_dir, tmp_path};
use super::schema::{schema, writer_properties, BatchBuilder};
use crate::event::StoredEvent;

/// Events encoded between yields to the shard's other tasks (about a millisecond of work).
const ROWS_PER_STEP: usize = 4096;

/// `<first>-<last>.parquet`, zero-padded so names sort by position.
pub fn checkpoint_name(first_position: u64, last_position: u64) -> String {
    format!("{first_position:020}-{last_position:020}.parquet")
}

/// The range a checkpoint file name stands for.
pub fn parse_checkpoint_name(name: &str) -> Option<(u64, u64)> {
    let (first, last) = name.strip_suffix(".parquet")?.split_once('-')?;
    Some((first.parse().ok()?, last.parse().ok()?))
}

/// Runs blocking file work on the executor's blocking thread (callers run on a glommio executor).
pub(crate) async fn blocking<R: Send + 'static>(work: impl FnOnce() -> R + Send + 'static) -> R {
    glommio::executor().spawn_blocking(work).await
}

/// Streams row groups to a file as the Arrow writer produces them, keeping a running CRC.
struct FileSink {
    path: PathBuf,
    file: Arc<File>,
    crc: crc32fast::Hasher,
    size_bytes: u64,
}

impl FileSink {
    async fn put(&mut self, bytes: Vec<u8>) -> Result<(), CheckpointError> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.crc.update(&bytes);
        self.size_bytes += bytes.len() as u64;
        let (file, path) = (self.file.clone(), self.path.clone());
        blocking(move || (&*file).write_all(&bytes).map_err(CheckpointError::io("write", &path))).await
    }
}

/// Writes `events` (in position order, covering `first_position..=last_position`) as the checkpoint file
/// in `dir`, plus `metadata` as Parquet key-value metadata; returns its manifest entry once the file is
/// durable under its final name. `without_tenant` leaves the tenant column out (exports).
pub async fn write_events(
    dir: &Path,
    name: &str,
    first_position: u64,
    last_position: u64,
    without_tenant: bool,
    metadata: Vec<(String, String)>,
    mut events: impl Iterator<Item = StoredEvent>,
) -> Result<CheckpointFile, CheckpointError> {
    let path = dir.join(name);
    let tmp = tmp_path(&path);
    let file = File::create(&tmp).map_err(CheckpointError::io("create", &tmp))?;
    let mut sink = FileSink { path: tmp.clone(), file: Arc::new(file), crc: crc32fast::Hasher::new(), size_bytes: 0 };
    let parquet_error = |source| CheckpointError::Parquet { path: tmp.clone(), source };
    let mut writer = ArrowWriter::try_new(Vec::new(), schema(without_tenant), Some(writer_properties(metadata)))
        .map_err(parquet_error)?;
    let mut rows = 0u64;
    let mut batch = BatchBuilder::new(without_tenant, ROWS_PER_STEP);
    loop {
        for event in events.by_ref().take(ROWS_PER_STEP) {
            debug_assert!((first_position..=last_position).contains(&event.position()));
            batch.push(&event);
        }
        if batch.is_empty() {
            break;
        }
        rows += batch.len() as u64;
        writer.write(&batch.finish()).map_err(parquet_error)?;
        // Completed row groups are now bytes in the writer's buffer: hand them to the file.
        let bytes = std::mem::take(writer.inner_mut());
        sink.put(bytes).await?;
        futures_lite::future::yield_now().await;
    }
    let rest = writer.into_inner().map_err(parquet_error)?;
    sink.put(rest).await?;
    let (file, size_bytes, crc32) = (sink.file.clone(), sink.size_bytes, sink.crc.finalize());
    let (dir_owned, tmp_owned, path_owned) = (dir.to_path_buf(), tmp.clone(), path.clone());
    blocking(move || {
        file.sync_data().map_err(CheckpointError::io("fdatasync", &tmp_owned))?;
        std::fs::rename(&tmp_owned, &path_owned).map_err(CheckpointError::io("rename", &tmp_owned))?;
        Ok::<(), CheckpointError>(sync_dir(&dir_owned)?)
    })
    .await?;
    Ok(CheckpointFile { file: name.to_string(), first_position, last_position, events: rows, size_bytes, crc32, batches: Default::default() })
}
