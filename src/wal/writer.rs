//! The WAL writer of one shard: appends framed records to the current segment and rolls to a new
//! segment when the current one is full.

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;

use super::error::WalError;
use super::io::{WalFile, WalStorage};
use super::segment::{encode_header, segment_path, SEGMENT_HEADER_BYTES};

/// The segment a shard continues writing after recovery.
pub struct OpenSegment<F> {
    pub file: F,
    pub path: PathBuf,
    /// Offset of the next record.
    pub end_offset: u64,
    pub size_bytes: u64,
}

struct Current<F> {
    file: Rc<F>,
    path: PathBuf,
    size_bytes: u64,
    offset: u64,
    /// A new segment's header, written with its first records (one write, as before the roll).
    header: Option<[u8; SEGMENT_HEADER_BYTES]>,
}

/// The file an fdatasync must cover: always the segment being written (earlier ones were synced when
/// the writer rolled past them).
pub type CurrentFile<F> = Rc<RefCell<Option<(Rc<F>, PathBuf)>>>;

pub struct WalWriter<S: WalStorage> {
    storage: Rc<S>,
    wal_dir: PathBuf,
    shard: u32,
    segment_size_bytes: u64,
    current: Option<Current<S::File>>,
    shared_file: CurrentFile<S::File>,
}

impl<S: WalStorage> WalWriter<S> {
    pub fn new(
        storage: Rc<S>,
        wal_dir: PathBuf,
        shard: u32,
        segment_size_bytes: u64,
        open: Option<OpenSegment<S::File>>,
    ) -> WalWriter<S> {
        let current = open.map(|o| Current { file: Rc::new(o.file), path: o.path, size_bytes: o.size_bytes, offset: o.end_offset, header: None });
        let shared_file = Rc::new(RefCell::new(current.as_ref().map(|c| (c.file.clone(), c.path.clone()))));
        WalWriter { storage, wal_dir, shard, segment_size_bytes, current, shared_file }
    }

    pub fn current_file(&self) -> CurrentFile<S::File> {
        self.shared_file.clone()
    }

    /// Writes `frames` (whole records, the first at `first_position`) in one write. They all land in one
    /// segment, so a batch never straddles two files.
    pub async fn write(&mut self, frames: Vec<u8>, first_position: u64) -> Result<(), WalError> {
        debug_assert!(!frames.is_empty());
        let len_bytes = frames.len() as u64;
        let fits = self.current.as_ref().is_some_and(|c| c.offset + len_bytes <= c.size_bytes);
        if !fits {
            self.roll(first_position, len_bytes).await?;
        }
        let current = self.current.as_mut().expect("a segment is open after roll");
        match current.header.take() {
            Some(header) => {
                debug_assert_eq!(current.offset, SEGMENT_HEADER_BYTES as u64);
                let mut buf = Vec::with_capacity(SEGMENT_HEADER_BYTES + frames.len());
                buf.extend_from_slice(&header);
                buf.extend_from_slice(&frames);
                write_all(&*current.file, &current.path, buf, 0).await?;
            }
            None => write_all(&*current.file, &current.path, frames, current.offset).await?,
        }
        current.offset += len_bytes;
        Ok(())
    }

    /// fdatasync of the current segment (earlier segments were synced when they were closed).
    pub async fn sync(&self) -> Result<(), WalError> {
        match &self.current {
            Some(c) => c.file.fdatasync().await.map_err(WalError::io("fdatasync", &c.path)),
            None => Ok(()),
        }
    }

    /// Closes the segment being written, once an fdatasync in flight on it (the syncer's) is done; no
    /// write may follow. The shard calls this before its executor stops: a file only dropped then would
    /// never be closed, and a process that opens stores again and again would run out of descriptors.
    pub async fn close_file(&mut self) -> Result<(), WalError> {
        // The syncer finds no file from now on; the clone it may hold for an fdatasync is given back
        // when that completes.
        self.shared_file.borrow_mut().take();
        let Some(Current { mut file, path, .. }) = self.current.take() else { return Ok(()) };
        let file = loop {
            match Rc::try_unwrap(file) {
                Ok(file) => break file,
                Err(shared) => {
                    file = shared;
                    glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
                }
            }
        };
        file.close().await.map_err(WalError::io("close segment", &path))
    }

    async fn roll(&mut self, first_position: u64, frames_len_bytes: u64) -> Result<(), WalError> {
        // Records of the old segment must be durable before any record of the new one can be: recovery
        // reads segments in order, and an acknowledged record must never sit behind a lost one.
        self.sync().await?;
        let path = segment_path(&self.wal_dir, first_position);
        let size_bytes = self.segment_size_bytes.max(SEGMENT_HEADER_BYTES as u64 + frames_len_bytes);
        let file = self.storage.create(&path, size_bytes).await.map_err(WalError::io("create segment", &path))?;
        // The new file's directory entry must survive a crash before records in it are acknowledged.
        self.storage.sync_dir(&self.wal_dir).await.map_err(WalError::io("fsync directory", &self.wal_dir))?;
        let file = Rc::new(file);
        *self.shared_file.borrow_mut() = Some((file.clone(), path.clone()));
        let header = Some(encode_header(self.shard, first_position));
        self.current = Some(Current { file, path, size_bytes, offset: SEGMENT_HEADER_BYTES as u64, header });
        Ok(())
    }
}

async fn write_all<F: WalFile>(file: &F, path: &std::path::Path, buf: Vec<u8>, offset: u64) -> Result<(), WalError> {
    let expected = buf.len();
    let written = file.write_at(buf, offset).await.map_err(WalError::io("write", path))?;
    if written != expected {
        // A short write (e.g. the disk filled up mid-write) is a failed write: nothing after it is
        // acknowledged, and recovery cuts the partial record.
        return Err(WalError::ShortWrite { path: path.to_path_buf(), written, expected });
    }
    Ok(())
}
