//! The I/O seam: everything the WAL does to files goes through these two traits, so tests can put a
//! fault-injecting layer (`wal::fault`) between the WAL and glommio.

use std::io;
use std::path::Path;

use glommio::io::{DmaBuffer, DmaFile, OpenOptions};

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
    /// A buffer aligned for direct I/O. Its contents are unspecified.
    fn alloc_buffer(&self, size_bytes: usize) -> DmaBuffer;
    /// Writes the whole buffer at `offset` (both block-aligned); returns the bytes written.
    async fn write_at(&self, buf: DmaBuffer, offset: u64) -> io::Result<usize>;
    async fn fdatasync(&self) -> io::Result<()>;
    async fn size_bytes(&self) -> io::Result<u64>;
    /// Reads the whole file.
    async fn read_all(&self) -> io::Result<Vec<u8>>;
    /// Zeroes `[offset, offset + len)` (block-aligned) and keeps the space allocated.
    async fn zero_range(&self, offset: u64, len: u64) -> io::Result<()>;
}

/// The real thing: O_DIRECT files through glommio's io_uring reactor.
#[derive(Default)]
pub struct DmaStorage;

impl WalStorage for DmaStorage {
    type File = DmaFile;

    async fn create(&self, path: &Path, size_bytes: u64) -> io::Result<DmaFile> {
        let file = OpenOptions::new().read(true).write(true).create_new(true).dma_open(path).await?;
        file.pre_allocate(size_bytes, false).await?;
        Ok(file)
    }

    async fn open(&self, path: &Path) -> io::Result<DmaFile> {
        Ok(OpenOptions::new().read(true).write(true).dma_open(path).await?)
    }

    async fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let dir = glommio::io::Directory::open(dir).await?;
        dir.sync().await?;
        Ok(())
    }
}

const READ_CHUNK_BYTES: u64 = 8 << 20;

impl WalFile for DmaFile {
    fn alloc_buffer(&self, size_bytes: usize) -> DmaBuffer {
        self.alloc_dma_buffer(size_bytes)
    }

    async fn write_at(&self, buf: DmaBuffer, offset: u64) -> io::Result<usize> {
        Ok(DmaFile::write_at(self, buf, offset).await?)
    }

    async fn fdatasync(&self) -> io::Result<()> {
        Ok(DmaFile::fdatasync(self).await?)
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
            let chunk = self.read_at_aligned(offset, want).await?;
            if chunk.is_empty() {
                break;
            }
            out.extend_from_slice(&chunk[..chunk.len().min(want)]);
            offset += chunk.len() as u64;
        }
        Ok(out)
    }

    async fn zero_range(&self, offset: u64, len: u64) -> io::Result<()> {
        // Punching a hole zeroes the range; allocating it again keeps later writes from paying for
        // block allocation.
        self.deallocate(offset, len).await?;
        self.pre_allocate(offset + len, true).await?;
        Ok(())
    }
}
