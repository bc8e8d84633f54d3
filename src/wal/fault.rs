//! Fault injection for tests, behind the [`WalStorage`] seam: failed or torn writes, ENOSPC, failed
//! fdatasync, and power cuts.
//!
//! A power cut is simulated with a shadow of each file's durable contents: every write is remembered
//! until an fdatasync of that file succeeds. [`FaultPlan::power_cut`] (called once the store has
//! stopped) puts back the durable bytes over every write that was never synced, and removes files whose
//! directory entry was never synced, which is what a machine that lost power may show.

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use glommio::io::BufferedFile;

use super::io::{FileStorage, WalFile, WalStorage};

/// How a failing write fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteFault {
    /// EIO, nothing written.
    Io,
    /// ENOSPC, nothing written.
    NoSpace,
    /// Only the first half of the write (whole 512-byte sectors) reaches the file, then EIO.
    Torn,
}

#[derive(Default)]
struct Shadow {
    /// Contents as of the last successful fdatasync (beyond its end: zeros).
    durable: Vec<u8>,
    /// Writes since then, in order.
    unsynced: Vec<(u64, Vec<u8>)>,
    /// Whether the file's directory entry survives a power cut.
    entry_durable: bool,
}

#[derive(Default)]
struct PlanState {
    writes_ok: u64,
    fsyncs_ok: u64,
    fail_writes_after: Option<(u64, WriteFault)>,
    fail_fsyncs_after: Option<u64>,
    files: HashMap<PathBuf, Shadow>,
}

/// The faults to inject and the durable shadow of every file; shared by all shards of a store.
#[derive(Default)]
pub struct FaultPlan {
    state: Mutex<PlanState>,
}

impl FaultPlan {
    pub fn new() -> Arc<FaultPlan> {
        Arc::new(FaultPlan::default())
    }

    /// After `ok` more successful writes, every write fails with `fault`.
    pub fn fail_writes_after(&self, ok: u64, fault: WriteFault) {
        let mut state = self.state.lock().unwrap();
        state.fail_writes_after = Some((state.writes_ok + ok, fault));
    }

    /// After `ok` more successful fdatasyncs, every fdatasync fails with EIO.
    pub fn fail_fsyncs_after(&self, ok: u64) {
        let mut state = self.state.lock().unwrap();
        state.fail_fsyncs_after = Some(state.fsyncs_ok + ok);
    }

    /// Number of successful (writes, fdatasyncs) so far.
    pub fn counts(&self) -> (u64, u64) {
        let state = self.state.lock().unwrap();
        (state.writes_ok, state.fsyncs_ok)
    }

    /// Drops every byte not covered by a completed fdatasync, as a power cut would. Call only after the
    /// store has stopped (see `Store::halt`).
    pub fn power_cut(&self) -> io::Result<()> {
        let mut state = self.state.lock().unwrap();
        for (path, shadow) in state.files.drain() {
            if !shadow.entry_durable {
                std::fs::remove_file(&path)?;
                continue;
            }
            let file = match std::fs::OpenOptions::new().write(true).open(&path) {
                Ok(file) => file,
                // Removed since it was tracked (recovery deletes a segment that holds nothing, then syncs
                // the directory): there is nothing left to put back.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for (offset, data) in &shadow.unsynced {
                let start = *offset as usize;
                let mut restore = vec![0u8; data.len()];
                if start < shadow.durable.len() {
                    let end = (start + data.len()).min(shadow.durable.len());
                    restore[..end - start].copy_from_slice(&shadow.durable[start..end]);
                }
                file.write_all_at(&restore, *offset)?;
            }
            file.sync_all()?;
        }
        Ok(())
    }

    fn track(&self, path: &Path, durable: Vec<u8>, entry_durable: bool) {
        let mut state = self.state.lock().unwrap();
        state.files.insert(path.to_path_buf(), Shadow { durable, unsynced: Vec::new(), entry_durable });
    }

    fn before_write(&self) -> Option<WriteFault> {
        let state = self.state.lock().unwrap();
        state.fail_writes_after.filter(|(after, _)| state.writes_ok >= *after).map(|(_, fault)| fault)
    }

    fn after_write(&self, path: &Path, offset: u64, data: &[u8]) {
        let mut state = self.state.lock().unwrap();
        state.writes_ok += 1;
        if let Some(shadow) = state.files.get_mut(path) {
            shadow.unsynced.push((offset, data.to_vec()));
        }
    }

    fn fsync(&self, path: &Path) -> io::Result<()> {
        let mut state = self.state.lock().unwrap();
        if state.fail_fsyncs_after.is_some_and(|after| state.fsyncs_ok >= after) {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        state.fsyncs_ok += 1;
        if let Some(shadow) = state.files.get_mut(path) {
            for (offset, data) in std::mem::take(&mut shadow.unsynced) {
                let end = offset as usize + data.len();
                if shadow.durable.len() < end {
                    shadow.durable.resize(end, 0);
                }
                shadow.durable[offset as usize..end].copy_from_slice(&data);
            }
        }
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) {
        let mut state = self.state.lock().unwrap();
        for (path, shadow) in state.files.iter_mut() {
            if path.parent() == Some(dir) {
                shadow.entry_durable = true;
            }
        }
    }
}

/// [`FileStorage`] with a [`FaultPlan`] in front of it.
pub struct FaultyStorage {
    pub(crate) plan: Arc<FaultPlan>,
}

pub struct FaultyFile {
    inner: BufferedFile,
    path: PathBuf,
    plan: Arc<FaultPlan>,
}

impl WalStorage for FaultyStorage {
    type File = FaultyFile;

    async fn create(&self, path: &Path, size_bytes: u64) -> io::Result<FaultyFile> {
        let inner = FileStorage.create(path, size_bytes).await?;
        self.plan.track(path, Vec::new(), false);
        Ok(FaultyFile { inner, path: path.to_path_buf(), plan: self.plan.clone() })
    }

    async fn open(&self, path: &Path) -> io::Result<FaultyFile> {
        let inner = FileStorage.open(path).await?;
        self.plan.track(path, std::fs::read(path)?, true);
        Ok(FaultyFile { inner, path: path.to_path_buf(), plan: self.plan.clone() })
    }

    async fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        FileStorage.sync_dir(dir).await?;
        self.plan.sync_dir(dir);
        Ok(())
    }
}

impl WalFile for FaultyFile {
    async fn write_at(&self, buf: Vec<u8>, offset: u64) -> io::Result<usize> {
        match self.plan.before_write() {
            None => {
                let data = buf.clone();
                let written = WalFile::write_at(&self.inner, buf, offset).await?;
                self.plan.after_write(&self.path, offset, &data[..written]);
                Ok(written)
            }
            Some(WriteFault::Io) => Err(io::Error::from_raw_os_error(libc::EIO)),
            Some(WriteFault::NoSpace) => Err(io::Error::from_raw_os_error(libc::ENOSPC)),
            Some(WriteFault::Torn) => {
                let keep = buf.len() / 2 / 512 * 512;
                if keep > 0 {
                    let part = buf[..keep].to_vec();
                    WalFile::write_at(&self.inner, part, offset).await?;
                    self.plan.after_write(&self.path, offset, &buf[..keep]);
                }
                Err(io::Error::from_raw_os_error(libc::EIO))
            }
        }
    }

    async fn fdatasync(&self) -> io::Result<()> {
        self.plan.fsync(&self.path)?;
        WalFile::fdatasync(&self.inner).await
    }

    async fn size_bytes(&self) -> io::Result<u64> {
        self.inner.size_bytes().await
    }

    async fn read_all(&self) -> io::Result<Vec<u8>> {
        self.inner.read_all().await
    }

    async fn zero_range(&self, offset: u64, len: u64) -> io::Result<()> {
        self.inner.zero_range(offset, len).await?;
        self.plan.after_write(&self.path, offset, &vec![0u8; len as usize]);
        Ok(())
    }
}
