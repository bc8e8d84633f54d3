//! The I/O seam: everything the WAL does to files goes through these two traits, so tests can put a
//! fault-injecting layer (`wal::fault`) between the WAL and glommio.
//!
//! Segments are buffered files: a write completes once its bytes are in the kernel's page cache, which
//! survives the process being killed; `fdatasync` (on the executor's blocking thread, so the executor
//! never waits on the device) makes them survive a power cut. The write itself is a `pwrite` on the executor thread: ext4
//! cannot do buffered writes without blocking inside io_uring, so there every write would go through an
//! io-wq worker thread and back (~25 us), against ~1-2 us for the copy into the page cache. Writes are
//! cut into slices of `WRITE_SLICE_BYTES` with a yield between them, so one large write does not hold
//! the executor. `docs/WAL-IO.md` has the measurements behind this.

use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd};
use std::os::unix::fs::FileExt;
use std::path::Path;

use glommio::io::{BufferedFile, OpenOptions};

/// Creates and opens segment files. Implementations live on one glommio executor (futures are !Send).
#[allow(async_fn_in_trait)]
pub trait WalStorage: 'static {
    type File: WalFile;
    /// Creates a new file (failing if it exists) and pre-allocates `size_bytes`.
    async fn create(&self, path: &Path, size_bytes: u64) -> io::Result<Self::File>;
    /// Opens an existing file for reading and writing.
    async fn open(&self, path: &Path) -> io::Result<Self::File>;
    /// Makes the directory entries of `dir` durable.
    async fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

#[allow(async_fn_in_trait)]
pub trait WalFile: 'static {
    /// Writes `buf` at `offset` (no alignment needed); returns the bytes written.
    async fn write_at(&self, buf: Vec<u8>, offset: u64) -> io::Result<usize>;
    async fn fdatasync(&self) -> io::Result<()>;
    async fn size_bytes(&self) -> io::Result<u64>;
    /// Reads the whole file.
    async fn read_all(&self) -> io::Result<Vec<u8>>;
    /// Zeroes `[offset, offset + len)` and keeps the space allocated.
    async fn zero_range(&self, offset: u64, len: u64) -> io::Result<()>;
    /// Closes the file now. A glommio file that is only dropped is closed later by its executor's
    /// reactor, and never if that executor is stopping.
    async fn close(self) -> io::Result<()>;
}

/// The real thing: buffered files through glommio's io_uring reactor.
#[derive(Default)]
pub struct FileStorage;

impl WalStorage for FileStorage {
    type File = BufferedFile;

    async fn create(&self, path: &Path, size_bytes: u64) -> io::Result<BufferedFile> {
        let file = OpenOptions::new().read(true).write(true).create_new(true).buffered_open(path).await?;
        // Allocated up front, so appends do not allocate blocks, and unwritten space reads as zeros.
        file.pre_allocate(size_bytes, false).await?;
        Ok(file)
    }

    async fn open(&self, path: &Path) -> io::Result<BufferedFile> {
        Ok(OpenOptions::new().read(true).write(true).buffered_open(path).await?)
    }

    async fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let dir = glommio::io::Directory::open(dir).await?;
        dir.sync().await?;
        Ok(())
    }
}

const READ_CHUNK_BYTES: u64 = 8 << 20;
/// The most one `pwrite` copies before the writer yields to the shard's other tasks (~0.1 ms of copying).
pub const WRITE_SLICE_BYTES: usize = 1 << 20;

impl WalFile for BufferedFile {
    async fn write_at(&self, buf: Vec<u8>, offset: u64) -> io::Result<usize> {
        // SAFETY: the descriptor belongs to `self`, which outlives this borrow; ManuallyDrop keeps the
        // temporary `File` from closing it.
        let file = ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(self.as_raw_fd()) });
        let mut written = 0;
        for (i, slice) in buf.chunks(WRITE_SLICE_BYTES).enumerate() {
            if i > 0 {
                futures_lite::future::yield_now().await;
            }
            file.write_all_at(slice, offset + written as u64)?;
            written += slice.len();
        }
        Ok(written)
    }

    async fn fdatasync(&self) -> io::Result<()> {
        // On the executor's blocking thread, not through io_uring: io_uring punts an fsync to an io-wq
        // worker pinned to the shard's core, which waits while the idle executor spins before parking
        // (`spin_before_park`): 231 us p50 against 105 us this way (`examples/sync_probe.rs`,
        // `docs/WAL-IO.md`). The job gets its own descriptor, so the file can close whatever happens to
        // this future.
        // SAFETY: the descriptor belongs to `self`, which outlives this borrow; the clone is independent
        // (`F_DUPFD_CLOEXEC`).
        let file = std::fs::File::from(unsafe { BorrowedFd::borrow_raw(self.as_raw_fd()) }.try_clone_to_owned()?);
        glommio::executor()
            .spawn_blocking(move || file.sync_data())
            .await
    }

    async fn size_bytes(&self) -> io::Result<u64> {
        Ok(self.file_size().await?)
    }

    async fn read_all(&self) -> io::Result<Vec<u8>> {
        let size = self.file_size().await?;
        let mut out = Vec::with_capacity(size as usize);
        let mut offset = 0;
        while offset < size {
            let want = READ_CHUNK_BYTES.min(size - offset) as usize;
            let chunk = self.read_at(offset, want).await?;
            if chunk.is_empty() {
                break;
            }
            out.extend_from_slice(&chunk[..chunk.len().min(want)]);
            offset += chunk.len() as u64;
        }
        Ok(out)
    }

    async fn zero_range(&self, offset: u64, len: u64) -> io::Result<()> {
        // Punching a hole zeroes the range (partial blocks included); allocating it again keeps later
        // writes from paying for block allocation.
        self.deallocate(offset, len).await?;
        self.pre_allocate(offset + len, true).await?;
        Ok(())
    }

    async fn close(self) -> io::Result<()> {
        Ok(BufferedFile::close(self).await?)
    }
}
