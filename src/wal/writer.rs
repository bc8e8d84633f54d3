//! The WAL writer of one shard: appends framed records to the current segment with block-aligned
//! O_DIRECT writes, and rolls to a new segment when the current one is full.

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;

use super::error::WalError;
use super::io::{WalFile, WalStorage};
use super::segment::{align_down, align_up, encode_header, segment_path, SEGMENT_HEADER_BYTES};

/// The segment a shard continues writing after recovery.
pub struct OpenSegment<F> {
    pub file: F,
    pub path: PathBuf,
    /// Offset of the next record.
    pub end_offset: u64,
    /// Bytes of the block that holds `end_offset`, from its start up to `end_offset`.
    pub tail: Vec<u8>,
    pub size_bytes: u64,
}

struct Current<F> {
    file: Rc<F>,
    path: PathBuf,
    size_bytes: u64,
    offset: u64,
    tail: Vec<u8>,
}

/// The file the periodic syncer should fdatasync: always the segment being written.
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
        let current = open.map(|o| Current {
            file: Rc::new(o.file),
            path: o.path,
            size_bytes: o.size_bytes,
            offset: o.end_offset,
            tail: o.tail,
        });
        let shared_file = Rc::new(RefCell::new(current.as_ref().map(|c| (c.file.clone(), c.path.clone()))));
        WalWriter { storage, wal_dir, shard, segment_size_bytes, current, shared_file }
    }

    pub fn current_file(&self) -> CurrentFile<S::File> {
        self.shared_file.clone()
    }

    /// Writes `frames` (whole records, the first at `first_position`) in one write. They all land in one
    /// segment, so a batch never straddles two files.
    pub async fn write(&mut self, frames: &[u8], first_position: u64) -> Result<(), WalError> {
        debug_assert!(!frames.is_empty());
        let fits = self.current.as_ref().is_some_and(|c| c.offset + frames.len() as u64 <= c.size_bytes);
        if !fits {
            self.roll(first_position, frames.len() as u64).await?;
        }
        let current = self.current.as_mut().expect("a segment is open after roll");
        let block_start = align_down(current.offset);
        debug_assert_eq!(current.tail.len() as u64, current.offset - block_start);
        let used = current.tail.len() + frames.len();
        let buf_len = align_up(used as u64) as usize;

        let mut buf = current.file.alloc_buffer(buf_len);
        let bytes = buf.as_bytes_mut();
        bytes[..current.tail.len()].copy_from_slice(&current.tail);
        bytes[current.tail.len()..used].copy_from_slice(frames);
        // Zero padding marks the end of the log (docs/FORMAT.md).
        bytes[used..].fill(0);

        let new_offset = current.offset + frames.len() as u64;
        let new_tail_len = (new_offset - align_down(new_offset)) as usize;
        let new_tail = bytes[used - new_tail_len..used].to_vec();

        let written = current.file.write_at(buf, block_start).await.map_err(WalError::io("write", &current.path))?;
        if written != buf_len {
            return Err(WalError::ShortWrite { path: current.path.clone(), written, expected: buf_len });
        }
        current.offset = new_offset;
        current.tail = new_tail;
        Ok(())
    }

    /// fdatasync of the current segment (earlier segments were synced when they were closed).
    pub async fn sync(&self) -> Result<(), WalError> {
        match &self.current {
            Some(c) => c.file.fdatasync().await.map_err(WalError::io("fdatasync", &c.path)),
            None => Ok(()),
        }
    }

    async fn roll(&mut self, first_position: u64, frames_len_bytes: u64) -> Result<(), WalError> {
        // Records of the old segment must be durable before any record of the new one can be: recovery
        // reads segments in order, and an acknowledged record must never sit behind a lost one.
        self.sync().await?;
        let path = segment_path(&self.wal_dir, first_position);
        let size_bytes = self.segment_size_bytes.max(align_up(SEGMENT_HEADER_BYTES as u64 + frames_len_bytes));
        let file = self.storage.create(&path, size_bytes).await.map_err(WalError::io("create segment", &path))?;
        // The new file's directory entry must survive a crash before records in it are acknowledged.
        self.storage.sync_dir(&self.wal_dir).await.map_err(WalError::io("fsync directory", &self.wal_dir))?;
        let file = Rc::new(file);
        *self.shared_file.borrow_mut() = Some((file.clone(), path.clone()));
        // The header goes out with the first write, in the same block as the first records.
        self.current = Some(Current {
            file,
            path,
            size_bytes,
            offset: SEGMENT_HEADER_BYTES as u64,
            tail: encode_header(self.shard, first_position).to_vec(),
        });
        Ok(())
    }
}
