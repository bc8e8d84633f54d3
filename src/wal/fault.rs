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
        self.cut_power(None)
    }

    /// A power cut in which the disk had written back some of the unsynced sectors and not others, in
    /// any order: each 512-byte sector that unsynced writes touched holds, independently, its durable
    /// contents or what one of those writes left in it (the page cache may have written an earlier
    /// version back before a later write changed the sector). A sector is written whole or not at all.
    /// `seed` makes the choice repeatable.
    pub fn power_cut_reordered(&self, seed: u64) -> io::Result<()> {
        self.cut_power(Some(seed))
    }

    fn cut_power(&self, reorder_seed: Option<u64>) -> io::Result<()> {
        let mut rng = reorder_seed.map(fastrand::Rng::with_seed);
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
            let len_bytes = file.metadata()?.len();
            for (offset, mut bytes) in after_power_cut(&shadow, rng.as_mut()) {
                // A sector past the end of the file was never part of it.
                bytes.truncate(len_bytes.saturating_sub(offset) as usize);
                file.write_all_at(&bytes, offset)?;
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

/// The simulated disk writes sectors of this size whole or not at all.
const SECTOR_BYTES: u64 = super::segment::SECTOR_BYTES as u64;

/// What each range of a file touched by unsynced writes holds after a power cut: `(offset, bytes)` to
/// write over the file. Without `rng` every unsynced write is lost; with it, sector by sector, a random
/// version among "durable" and "after each unsynced write that touched it".
fn after_power_cut(shadow: &Shadow, rng: Option<&mut fastrand::Rng>) -> Vec<(u64, Vec<u8>)> {
    let durable_at = |offset: u64, len: usize| {
        let mut bytes = vec![0u8; len];
        let start = offset as usize;
        if start < shadow.durable.len() {
            let end = (start + len).min(shadow.durable.len());
            bytes[..end - start].copy_from_slice(&shadow.durable[start..end]);
        }
        bytes
    };
    let Some(rng) = rng else {
        return shadow.unsynced.iter().map(|(offset, data)| (*offset, durable_at(*offset, data.len()))).collect();
    };
    // Every sector the unsynced writes touched, with its successive versions.
    let mut sectors: std::collections::BTreeMap<u64, Vec<Vec<u8>>> = std::collections::BTreeMap::new();
    for (offset, data) in &shadow.unsynced {
        let end = offset + data.len() as u64;
        let mut sector = offset / SECTOR_BYTES * SECTOR_BYTES;
        while sector < end {
            let versions = sectors.entry(sector).or_insert_with(|| vec![durable_at(sector, SECTOR_BYTES as usize)]);
            let mut next = versions.last().expect("starts with the durable version").clone();
            let from = sector.max(*offset);
            let to = (sector + SECTOR_BYTES).min(end);
            next[(from - sector) as usize..(to - sector) as usize]
                .copy_from_slice(&data[(from - offset) as usize..(to - offset) as usize]);
            versions.push(next);
            sector += SECTOR_BYTES;
        }
    }
    sectors.into_iter().map(|(sector, mut versions)| {
        let pick = rng.usize(..versions.len());
        (sector, versions.swap_remove(pick))
    }).collect()
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

    async fn close(self) -> io::Result<()> {
        WalFile::close(self.inner).await
    }
}
