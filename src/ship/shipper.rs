//! The shipper: every `ship_interval_ms` it copies what the data directory holds that the object store
//! does not yet (sealed WAL segments, the open segment's new whole records, checkpoints and their
//! manifest, `tidelog.json`, `EPOCHS`), then deletes there what the shipped checkpoints make redundant.
//!
//! It runs on the side runtime (`side_runtime.rs`), never on a shard: it only reads the files the shards
//! write. A shard learns one thing from it, the position the shipped checkpoints cover, and deletes a
//! local WAL segment only once that covers it (`ShardShared::remote_cover`). A round that fails is
//! retried with back-off; nothing local is deleted on its account, and appends never wait for it.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use object_store::path::Path as Key;
use object_store::{ObjectStore, PutPayload};

use super::error::ShipError;
use super::delta::DeltaSink;
use super::remote::{self, parse_wal_name, Remote, WalObject};
use super::scan::{whole_records_end, written_len};
use super::status::ShipStatus;
use super::ObjectStoreConfig;
use crate::checkpoint::Manifest;
use crate::shard::ShardShared;
use crate::wal::record::{decode_frame, BadFrame, Frame};
use crate::wal::segment::{list_segments, SEGMENT_HEADER_BYTES};

/// How much of a segment one read takes.
const READ_STEP_BYTES: usize = 1 << 20;
/// Parts of one open segment before they are merged into one (a long-lived, slowly written segment
/// would otherwise leave thousands of small objects for a restore to fetch).
const MAX_PARTS: usize = 64;
/// Longest wait between failed rounds.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How often an idle store refreshes SHIPPED.json.
const SHIPPED_REFRESH_US: i64 = 60_000_000;
/// How long closing the store waits for the last round.
pub const FINAL_ROUND_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Shipper {
    remote: Remote,
    data_dir: PathBuf,
    shards: Vec<ShardShip>,
    status: Arc<ShipStatus>,
    ship_interval_ms: u32,
    /// The object store's listing was read and its `tidelog.json` matches this directory's.
    ready: bool,
    epochs_shipped: Option<Vec<u8>>,
    /// The time last written to SHIPPED.json.
    shipped_marked_us: Option<i64>,
    tiering: Tiering,
    /// The Delta table's URL, and its writer once the store's id is read (`prepare`).
    delta_url: Option<String>,
    /// `id_salt` of the data directory, which names its shards' transactions in the table.
    store_id: Option<String>,
    delta: Option<DeltaSink>,
}

/// Which shipped checkpoint files leave the local disk.
#[derive(Clone, Copy)]
struct Tiering {
    budget_bytes: Option<u64>,
    max_age_s: Option<u64>,
}

/// What one shard has in the object store (as far as this process knows).
struct ShardShip {
    shared: Arc<ShardShared>,
    wal_dir: PathBuf,
    checkpoint_dir: PathBuf,
    /// The WAL segments there, by first position.
    segments: BTreeMap<u64, SegmentShip>,
    checkpoints: HashSet<String>,
    manifest_shipped: Option<Vec<u8>>,
    /// The same, parsed (`None` if it does not parse).
    manifest: Option<Manifest>,
}

/// One segment's parts in the object store.
#[derive(Default)]
struct SegmentShip {
    /// (offset, size) of each part, by offset.
    parts: Vec<(u64, u64)>,
    /// Bytes shipped: the parts are contiguous up to here.
    shipped_bytes: u64,
    /// Shipped to its end and sealed (a successor exists): nothing more to do.
    done: bool,
    /// Ship again from offset 0, replacing every part: the segment was the newest when this process
    /// started, and recovery may have cut its tail.
    reship: bool,
    /// Where the last read of the open segment stopped, and for how many rounds in a row it stopped
    /// there at a record that does not check.
    last_end: u64,
    stuck_rounds: u32,
}

/// Rounds stopped at the same bad record before it is reported as damage.
const STUCK_ROUNDS: u32 = 5;


impl Shipper {
    pub fn new(remote: Remote, data_dir: PathBuf, shards: Vec<Arc<ShardShared>>, status: Arc<ShipStatus>, config: &ObjectStoreConfig) -> Shipper {
        let shards = shards
            .into_iter()
            .enumerate()
            .map(|(k, shared)| ShardShip {
                shared,
                wal_dir: crate::layout::wal_dir(&data_dir, k),
                checkpoint_dir: crate::layout::checkpoint_dir(&data_dir, k),
                segments: BTreeMap::new(),
                checkpoints: HashSet::new(),
                manifest_shipped: None,
                manifest: None,
            })
            .collect();
        Shipper { remote, data_dir, shards, status, ship_interval_ms: config.ship_interval_ms, ready: false, epochs_shipped: None, shipped_marked_us: None, tiering: Tiering { budget_bytes: config.local_checkpoint_budget_bytes, max_age_s: config.local_checkpoint_max_age_s }, delta_url: config.delta_table.clone(), store_id: None, delta: None }
    }

    /// Ships every interval until `stop` fires, then once more (the shards are closed by then, so that
    /// round ships everything they wrote).
    pub async fn run(mut self, mut stop: tokio::sync::oneshot::Receiver<()>) {
        let interval = Duration::from_millis(u64::from(self.ship_interval_ms.max(1)));
        let mut failures: u32 = 0;
        loop {
            let started = Instant::now();
            // A round in progress is abandoned when the store closes (a round is idempotent): the last
            // round below then ships everything, within its time limit.
            let ok = tokio::select! {
                ok = self.round_reported() => ok,
                _ = &mut stop => break,
            };
            if ok {
                failures = 0;
            } else {
                failures = failures.saturating_add(1);
            }
            let wait = match failures {
                0 => interval.saturating_sub(started.elapsed()),
                n => (interval * 2u32.saturating_pow(n.min(16))).min(MAX_BACKOFF),
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = &mut stop => break,
            }
        }
        if tokio::time::timeout(FINAL_ROUND_TIMEOUT, self.round_reported()).await.is_err() {
            self.status.round_failed(format!("the last round did not finish within {} s", FINAL_ROUND_TIMEOUT.as_secs()));
            tracing::error!("object store: the last round before closing did not finish in time");
        }
    }

    async fn round_reported(&mut self) -> bool {
        let started_us = crate::time::now_us();
        match self.round(started_us).await {
            Ok(()) => {
                self.status.round_ok(started_us);
                true
            }
            Err(e) => {
                tracing::warn!(url = %self.remote.url, "object store: shipping failed (retrying; nothing local is deleted until it succeeds): {e}");
                self.status.round_failed(e.to_string());
                false
            }
        }
    }

    /// Ships everything; on success records `started_us` as what the object store holds everything up to.
    async fn round(&mut self, started_us: i64) -> Result<(), ShipError> {
        if !self.ready {
            self.prepare().await?;
            self.ready = true;
        }
        let uploaded_before = self.status.uploaded_objects();
        for k in 0..self.shards.len() {
            self.ship_wal(k).await?;
            self.ship_checkpoints(k).await?;
            self.drop_local_checkpoints(k).await?;
        }
        let epochs = read_optional(crate::layout::epochs_file(&self.data_dir)).await?;
        if let Some(epochs) = epochs.filter(|e| self.epochs_shipped.as_ref() != Some(e)) {
            self.put(&Key::from(remote::EPOCHS_KEY), epochs.clone()).await?;
            self.epochs_shipped = Some(epochs);
        }
        // An idle store's rounds upload nothing: SHIPPED.json is then refreshed once a minute, not every
        // round (a request a second adds up on a bill). Its time only understates what is shipped.
        let idle = self.status.uploaded_objects() == uploaded_before;
        if idle && self.shipped_marked_us.is_some_and(|t| started_us - t < SHIPPED_REFRESH_US) {
            self.append_all_to_delta().await;
            return Ok(());
        }
        let shipped = serde_json::json!({ "shipped_through_us": started_us });
        self.put(&Key::from(remote::SHIPPED_KEY), serde_json::to_vec(&shipped).expect("json")).await?;
        self.shipped_marked_us = Some(started_us);
        self.append_all_to_delta().await;
        Ok(())
    }

    /// The Delta table's appends come after the round's shipping and fail apart from it: a table that
    /// refuses commits (another schema there, a conflict past the retries) never holds back the WAL's
    /// shipping, and so never the recovery point. Its error shows in `/health` and is retried next round.
    async fn append_all_to_delta(&mut self) {
        let (Some(url), Some(store_id)) = (self.delta_url.as_deref(), self.store_id.as_deref()) else { return };
        if self.delta.is_none() {
            match DeltaSink::new(url, store_id, self.shards.len()) {
                Ok(sink) => self.delta = Some(sink),
                Err(e) => {
                    tracing::warn!("object store: opening the Delta table failed (retried next round): {e}");
                    self.status.delta_failed(e.to_string());
                    return;
                }
            }
        }
        for k in 0..self.shards.len() {
            if let Err(e) = self.append_to_delta(k).await {
                tracing::warn!(shard = k, "object store: appending to the Delta table failed (retried next round): {e}");
                self.status.delta_failed(e.to_string());
                return;
            }
        }
        self.status.delta_ok();
    }

    /// Checks that the prefix is this store's (or empty) and reads what is already there.
    async fn prepare(&mut self) -> Result<(), ShipError> {
        let meta_path = crate::layout::meta_file(&self.data_dir);
        let local = read_optional(meta_path.clone()).await?.ok_or_else(|| ShipError::Failed(format!("{} is missing", meta_path.display())))?;
        let key = Key::from(remote::META_KEY);
        match self.remote.store.get(&key).await {
            Ok(found) => {
                let theirs = found.bytes().await.map_err(ShipError::remote("read", &key))?;
                if !same_store(&local, &theirs) {
                    return Err(ShipError::OtherStore { url: self.remote.url.clone() });
                }
            }
            Err(object_store::Error::NotFound { .. }) => self.put(&key, local.clone()).await?,
            Err(e) => return Err(ShipError::remote("read", &key)(e)),
        }
        if self.delta_url.is_some() {
            let store_id = serde_json::from_slice::<serde_json::Value>(&local)
                .ok()
                .and_then(|v| v.get("id_salt").map(|s| s.to_string().trim_matches('"').to_string()))
                .ok_or_else(|| ShipError::Failed(format!("{} has no id_salt", meta_path.display())))?;
            self.store_id = Some(store_id);
        }
        for k in 0..self.shards.len() {
            let wal = list(&*self.remote.store, &remote::wal_prefix(k)).await?;
            let shard = &mut self.shards[k];
            for (name, size) in wal {
                if let Some(WalObject::Part { first_position, offset }) = parse_wal_name(&name) {
                    shard.segments.entry(first_position).or_default().parts.push((offset, size));
                }
            }
            for segment in shard.segments.values_mut() {
                segment.parts.sort_unstable();
                segment.shipped_bytes = contiguous_end(&segment.parts);
            }
            let wal_dir = shard.wal_dir.clone();
            let local = blocking(move || list_segments(&wal_dir).map_err(ShipError::io("list", &wal_dir))).await?;
            // The newest local segment may have lost its tail to recovery: shipped again from its start.
            let newest = local.last().map(|s| s.0);
            if let Some(newest) = newest {
                self.shards[k].segments.entry(newest).or_default().reship = true;
            }
            // Parts of segments after the newest local one are of a lost future (a power cut lost a
            // segment a round had shipped unsynced records of; its positions are written again, into a
            // segment of the same name): deleted, never continued.
            let lost: Vec<u64> = self.shards[k].segments.keys().copied().filter(|&f| newest.is_none_or(|n| f > n)).collect();
            for first in lost {
                let parts = self.shards[k].segments.remove(&first).map(|s| s.parts).unwrap_or_default();
                for (offset, _) in parts {
                    self.delete(&remote::part_key(k, first, offset)).await?;
                }
            }
            let checkpoints = list(&*self.remote.store, &remote::checkpoint_prefix(k)).await?;
            let shard = &mut self.shards[k];
            shard.checkpoints.extend(checkpoints.into_iter().map(|c| c.0).filter(|name| name.ends_with(".parquet")));
            let key = Key::from(format!("{}/{}", remote::checkpoint_prefix(k), crate::layout::MANIFEST_FILE));
            match self.remote.store.get(&key).await {
                Ok(found) => {
                    let bytes = found.bytes().await.map_err(ShipError::remote("read", &key))?.to_vec();
                    shard.manifest = Manifest::from_bytes(&bytes, k as u32).ok();
                    if let Some(manifest) = &shard.manifest {
                        shard.shared.set_remote_cover(manifest.covered_position());
                    }
                    shard.manifest_shipped = Some(bytes);
                }
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(ShipError::remote("read", &key)(e)),
            }
        }
        Ok(())
    }

    async fn ship_wal(&mut self, k: usize) -> Result<(), ShipError> {
        let wal_dir = self.shards[k].wal_dir.clone();
        let local = blocking(move || list_segments(&wal_dir).map_err(ShipError::io("list", &wal_dir))).await?;
        let cover = self.shards[k].shared.remote_cover();
        for (i, (first, path)) in local.iter().enumerate() {
            let next = local.get(i + 1).map(|s| s.0);
            // A segment every record of which the shipped checkpoints hold is not needed there.
            if next.is_some_and(|next| next <= cover.saturating_add(1)) {
                continue;
            }
            let segment = self.shards[k].segments.entry(*first).or_default();
            if segment.done {
                continue;
            }
            let from = if segment.reship { 0 } else { segment.shipped_bytes };
            let path = path.clone();
            // A sealed segment is never written again: all of it goes. The open one: its whole records.
            let (bytes, stop) = match next {
                Some(_) => (blocking(move || read_sealed(&path, from)).await?, Stop::End),
                None => blocking(move || read_records(&path, from)).await?,
            };
            let end = from + bytes.len() as u64;
            if !bytes.is_empty() {
                self.ship_part(k, *first, from, bytes).await?;
            }
            let segment = self.shards[k].segments.get_mut(first).expect("entry made above");
            segment.done = next.is_some();
            // A record that does not check, at the same place round after round, is damage (kept by
            // recovery's skip policy), not a write being copied in: said, since nothing after it ships
            // until the segment is sealed.
            segment.stuck_rounds = if stop == Stop::Bad && segment.last_end == end { segment.stuck_rounds + 1 } else { 0 };
            segment.last_end = end;
            if segment.stuck_rounds >= STUCK_ROUNDS {
                return Err(ShipError::Failed(format!(
                    "shard {k}: the record at offset {end} of WAL segment {first:020}.log does not check (damaged?); \
                     nothing after it is shipped until the segment is sealed"
                )));
            }
            if segment.parts.len() >= MAX_PARTS && !segment.reship {
                self.merge_parts(k, *first).await?;
            }
        }
        Ok(())
    }

    /// Uploads `bytes` as the part of segment `first` at `offset`; a part at 0 replaces all earlier ones.
    async fn ship_part(&mut self, k: usize, first: u64, offset: u64, bytes: Vec<u8>) -> Result<(), ShipError> {
        let size_bytes = bytes.len() as u64;
        self.put(&remote::part_key(k, first, offset), bytes).await?;
        if offset == 0 {
            // Each stale part is forgotten only once it is deleted: one left behind (a failed delete) is
            // deleted by the next try, which ships part 0 again (nothing below advances until then).
            let stale: Vec<u64> = self.shards[k].segments[&first].parts.iter().map(|p| p.0).filter(|&o| o != 0).collect();
            for stale_offset in stale {
                self.delete(&remote::part_key(k, first, stale_offset)).await?;
                self.shards[k].segments.get_mut(&first).expect("known segment").parts.retain(|p| p.0 != stale_offset);
            }
        }
        let segment = self.shards[k].segments.get_mut(&first).expect("known segment");
        segment.parts.retain(|p| p.0 != offset);
        segment.parts.push((offset, size_bytes));
        segment.parts.sort_unstable();
        segment.shipped_bytes = offset + size_bytes;
        segment.reship = false;
        Ok(())
    }

    /// Replaces a segment's parts by one part at offset 0 (a long-lived, slowly written segment would
    /// otherwise leave many small objects for a restore to fetch).
    async fn merge_parts(&mut self, k: usize, first: u64) -> Result<(), ShipError> {
        let path = crate::wal::segment::segment_path(&self.shards[k].wal_dir, first);
        let end = self.shards[k].segments[&first].shipped_bytes;
        let bytes = blocking(move || read_range(&path, 0, end as usize)).await?;
        if bytes.len() as u64 != end {
            return Ok(()); // the segment went away (trimmed): its parts go once a shipped checkpoint covers it
        }
        self.ship_part(k, first, 0, bytes).await
    }

    async fn ship_checkpoints(&mut self, k: usize) -> Result<(), ShipError> {
        let dir = self.shards[k].checkpoint_dir.clone();
        let Some(bytes) = read_optional(crate::layout::manifest_file(&dir)).await? else { return Ok(()) };
        if self.shards[k].manifest_shipped.as_ref() == Some(&bytes) {
            return Ok(());
        }
        let manifest = Manifest::from_bytes(&bytes, k as u32)
            .map_err(|e| ShipError::Failed(format!("{}: {e}", crate::layout::manifest_file(&dir).display())))?;
        // The files first, then the manifest naming them: a reader of the object store never finds a
        // manifest naming a file that is not there.
        for c in &manifest.checkpoints {
            if self.shards[k].checkpoints.contains(&c.file) {
                continue;
            }
            // Gone: a compaction replaced it after the manifest was read; the next round ships the new one.
            let Some(data) = read_optional(dir.join(&c.file)).await? else { return Ok(()) };
            self.put(&remote::checkpoint_key(k, &c.file), data).await?;
            self.shards[k].checkpoints.insert(c.file.clone());
        }
        let key = Key::from(format!("{}/{}", remote::checkpoint_prefix(k), crate::layout::MANIFEST_FILE));
        self.put(&key, bytes.clone()).await?;
        let cover = manifest.covered_position();
        let shard = &mut self.shards[k];
        shard.manifest_shipped = Some(bytes);
        shard.manifest = Some(manifest.clone());
        shard.shared.set_remote_cover(cover);
        // What the shipped manifest makes redundant there: files a compaction replaced, and segments
        // every record of which it covers.
        let named: HashSet<&str> = manifest.checkpoints.iter().map(|c| c.file.as_str()).collect();
        // Only files a named file's range covers (a compaction merged them): a manifest that names fewer
        // (recovery set a damaged file aside) must not take the shipped copies with it.
        let merged_into_named = |file: &str| {
            crate::checkpoint::parse_checkpoint_name(file).is_some_and(|(first, last)| {
                manifest.checkpoints.iter().any(|c| c.first_position <= first && last <= c.last_position)
            })
        };
        let replaced: Vec<String> =
            shard.checkpoints.iter().filter(|f| !named.contains(f.as_str()) && merged_into_named(f)).cloned().collect();
        let firsts: Vec<u64> = shard.segments.keys().copied().collect();
        let covered: Vec<u64> = firsts.windows(2).filter(|w| w[1] <= cover.saturating_add(1)).map(|w| w[0]).collect();
        for file in replaced {
            self.delete(&remote::checkpoint_key(k, &file)).await?;
            self.shards[k].checkpoints.remove(&file);
        }
        for first in covered {
            let parts = self.shards[k].segments.remove(&first).map(|s| s.parts).unwrap_or_default();
            for (offset, _) in parts {
                self.delete(&remote::part_key(k, first, offset)).await?;
            }
        }
        Ok(())
    }

    /// Appends the events of shipped checkpoint files the Delta table does not hold yet, a commit per file,
    /// in position order. A file tiering dropped from the local disk is read from the object store.
    async fn append_to_delta(&mut self, k: usize) -> Result<(), ShipError> {
        let Some(delta) = self.delta.as_mut() else { return Ok(()) };
        let Some(manifest) = self.shards[k].manifest.as_ref() else { return Ok(()) };
        let mut files = manifest.checkpoints.clone();
        let committed = delta.committed(k).await?;
        files.sort_by_key(|c| c.first_position);
        for c in files.into_iter().filter(|c| c.last_position > committed) {
            let bytes = match read_optional(self.shards[k].checkpoint_dir.join(&c.file)).await? {
                Some(bytes) => Bytes::from(bytes),
                None => {
                    let key = remote::checkpoint_key(k, &c.file);
                    let found = self.remote.store.get(&key).await.map_err(ShipError::remote("read", &key))?;
                    found.bytes().await.map_err(ShipError::remote("read", &key))?
                }
            };
            let events = delta.append(k, bytes, c.last_position).await?;
            if events > 0 {
                self.status.delta_committed(events);
            }
        }
        Ok(())
    }

    /// Tiering: deletes local checkpoint files the object store holds (named by the shipped manifest)
    /// beyond the size budget, oldest first, and those older than the age limit. The local manifest
    /// still names them; the next open fetches them back (`hydrate.rs`).
    async fn drop_local_checkpoints(&mut self, k: usize) -> Result<(), ShipError> {
        let Tiering { budget_bytes, max_age_s } = self.tiering;
        if budget_bytes.is_none() && max_age_s.is_none() {
            return Ok(());
        }
        let Some(manifest) = self.shards[k].manifest.as_ref() else { return Ok(()) };
        let dir = self.shards[k].checkpoint_dir.clone();
        let files: Vec<String> =
            manifest.checkpoints.iter().map(|c| c.file.clone()).filter(|f| self.shards[k].checkpoints.contains(f)).collect();
        let dropped = blocking(move || -> Result<u32, ShipError> {
            // In position order, so the oldest events leave first.
            let local: Vec<(PathBuf, u64, std::time::SystemTime)> = files
                .iter()
                .map(|f| dir.join(f))
                .filter_map(|p| std::fs::metadata(&p).ok().map(|m| (p, m.len(), m.modified().unwrap_or(std::time::SystemTime::now()))))
                .collect();
            let mut total_bytes: u64 = local.iter().map(|l| l.1).sum();
            let mut dropped = 0;
            for (path, size_bytes, modified) in local {
                let over_budget = budget_bytes.is_some_and(|b| total_bytes > b);
                let too_old = max_age_s.is_some_and(|s| modified.elapsed().is_ok_and(|age| age.as_secs() > s));
                if !over_budget && !too_old {
                    continue;
                }
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(ShipError::io("remove", &path)(e)),
                }
                total_bytes -= size_bytes;
                dropped += 1;
            }
            Ok(dropped)
        })
        .await?;
        if dropped > 0 {
            tracing::debug!(shard = k, dropped, "shipped checkpoint files dropped from the local disk");
        }
        Ok(())
    }

    async fn put(&self, key: &Key, bytes: Vec<u8>) -> Result<(), ShipError> {
        let size_bytes = bytes.len();
        self.remote.store.put(key, PutPayload::from(Bytes::from(bytes))).await.map_err(ShipError::remote("upload", key))?;
        self.status.uploaded(size_bytes);
        Ok(())
    }

    async fn delete(&self, key: &Key) -> Result<(), ShipError> {
        match self.remote.store.delete(key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {
                self.status.deleted();
                Ok(())
            }
            Err(e) => Err(ShipError::remote("delete", key)(e)),
        }
    }
}

/// Whether two `tidelog.json` texts are the same store's (same shard count and id salt).
fn same_store(ours: &[u8], theirs: &[u8]) -> bool {
    let fields = |bytes: &[u8]| {
        serde_json::from_slice::<serde_json::Value>(bytes).ok().map(|v| (v.get("shards").cloned(), v.get("id_salt").cloned()))
    };
    matches!((fields(ours), fields(theirs)), (Some(a), Some(b)) if a == b)
}

/// Names (last path segment) and sizes of the objects under `prefix`.
pub(crate) async fn list(store: &dyn ObjectStore, prefix: &Key) -> Result<Vec<(String, u64)>, ShipError> {
    use futures_lite::StreamExt;
    let mut listing = store.list(Some(prefix));
    let mut out = Vec::new();
    while let Some(meta) = listing.next().await {
        let meta = meta.map_err(ShipError::remote("list", prefix))?;
        if let Some(name) = meta.location.filename() {
            out.push((name.to_string(), meta.size));
        }
    }
    Ok(out)
}

pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, ShipError> + Send + 'static) -> Result<T, ShipError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| ShipError::Failed(format!("a file task failed: {e}")))?
}

/// The file's bytes, or `None` if it does not exist.
async fn read_optional(path: PathBuf) -> Result<Option<Vec<u8>>, ShipError> {
    blocking(move || match std::fs::read(&path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ShipError::io("read", &path)(e)),
    })
    .await
}

/// Up to `len` bytes of `path` from `offset` (fewer at its end).
fn read_range(path: &Path, offset: u64, len: usize) -> Result<Vec<u8>, ShipError> {
    let Some(file) = open_optional(path)? else { return Ok(Vec::new()) };
    let mut buf = vec![0u8; len];
    let got = read_full_at(&file, path, offset, &mut buf)?;
    buf.truncate(got);
    Ok(buf)
}

/// The file, or `None` if it is gone (a trimmed segment).
fn open_optional(path: &Path) -> Result<Option<std::fs::File>, ShipError> {
    match std::fs::File::open(path) {
        Ok(file) => Ok(Some(file)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ShipError::io("open", path)(e)),
    }
}

/// Fills `buf` from `offset`, short only at the file's end; returns the bytes read.
fn read_full_at(file: &std::fs::File, path: &Path, offset: u64, buf: &mut [u8]) -> Result<usize, ShipError> {
    use std::os::unix::fs::FileExt;
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], offset + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ShipError::io("read", path)(e)),
        }
    }
    Ok(got)
}

/// Where a segment's parts stop being contiguous from offset 0.
fn contiguous_end(parts: &[(u64, u64)]) -> u64 {
    let mut end = 0;
    for &(offset, size) in parts {
        if offset != end {
            break;
        }
        end += size;
    }
    end
}

/// A sealed segment's bytes from `from` (0, or the end of a part) to its end: its last record, or, if a
/// damaged record stops the walk, its last non-zero byte (recovery of the restored copy judges the damage
/// as it would the local file's).
fn read_sealed(path: &Path, from: u64) -> Result<Vec<u8>, ShipError> {
    let (bytes, stop) = read_records(path, from)?;
    if stop == Stop::End {
        return Ok(bytes);
    }
    let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let mut bytes = read_range(path, from, len.saturating_sub(from) as usize)?;
    bytes.truncate(written_len(&bytes));
    Ok(bytes)
}

/// Why [`read_records`] stopped.
#[derive(Debug, PartialEq, Eq)]
enum Stop {
    /// Zeros (or the file's end): nothing was written after.
    End,
    /// A record that does not check: still being written, or damaged.
    Bad,
}

/// Reads a segment from `from` (0: its header first) in steps, walking the records; returns the bytes up
/// to the end of the last whole, checksummed record (empty if none) and why the walk stopped there.
/// Reads only as far as the records go (a segment's pre-allocated zeros are not read past the first step).
fn read_records(path: &Path, from: u64) -> Result<(Vec<u8>, Stop), ShipError> {
    let Some(file) = open_optional(path)? else { return Ok((Vec::new(), Stop::End)) };
    let records_from = if from == 0 { SEGMENT_HEADER_BYTES } else { 0 };
    let mut data: Vec<u8> = Vec::new();
    let mut end = records_from;
    let stop = loop {
        let filled = data.len();
        data.resize(filled + READ_STEP_BYTES, 0);
        let got = read_full_at(&file, path, from + filled as u64, &mut data[filled..])?;
        data.truncate(filled + got);
        let at_eof = got < READ_STEP_BYTES;
        if data.len() < records_from || (from == 0 && data[..SEGMENT_HEADER_BYTES].iter().all(|&b| b == 0)) {
            return Ok((Vec::new(), Stop::End)); // no header yet: nothing written
        }
        end += whole_records_end(&data[end..]);
        // A record (or header) cut by this read's end, not by the writer, needs the next read.
        let rest = &data[end..];
        if !at_eof && (rest.len() < crate::wal::record::HEADER_BYTES || decode_frame(rest) == Frame::Bad(BadFrame::Truncated)) {
            continue;
        }
        break match decode_frame(rest) {
            Frame::End => Stop::End,
            _ => Stop::Bad,
        };
    };
    if end == records_from {
        return Ok((Vec::new(), stop));
    }
    data.truncate(end);
    Ok((data, stop))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::record::append_frame;

    /// A segment file: header, records of 8 KiB (crossing the 1 MiB read steps), then zeros.
    fn segment(dir: &Path, records: usize) -> (PathBuf, Vec<u8>) {
        let mut bytes = crate::wal::segment::encode_header(0, 1).to_vec();
        for i in 0..records {
            append_frame(&mut bytes, &vec![(i % 250) as u8 + 1; 8192], false);
        }
        let path = dir.join("00000000000000000001.log");
        let mut file = bytes.clone();
        file.resize(bytes.len() + (3 << 20), 0);
        std::fs::write(&path, &file).unwrap();
        (path, bytes)
    }

    #[test]
    fn records_are_read_across_steps_up_to_the_last_whole_one() {
        let dir = tempfile::tempdir().unwrap();
        let (path, written) = segment(dir.path(), 300);
        let (bytes, stop) = read_records(&path, 0).unwrap();
        assert_eq!((bytes.len(), stop), (written.len(), Stop::End));
        assert_eq!(bytes, written);
        let from = (SEGMENT_HEADER_BYTES + 8200 * 130) as u64;
        let (rest, stop) = read_records(&path, from).unwrap();
        assert_eq!((rest.as_slice(), stop), (&written[from as usize..], Stop::End));
        // A damaged record in the middle: the walk stops before it; a sealed segment still ships it all.
        let mut damaged = std::fs::read(&path).unwrap();
        damaged[SEGMENT_HEADER_BYTES + 8200 * 200 + 100] ^= 1;
        std::fs::write(&path, &damaged).unwrap();
        let (bytes, stop) = read_records(&path, 0).unwrap();
        assert_eq!((bytes.len(), stop), (SEGMENT_HEADER_BYTES + 8200 * 200, Stop::Bad));
        assert_eq!(read_sealed(&path, 0).unwrap().len(), written.len());
        // Nothing written yet: nothing to ship.
        std::fs::write(&path, vec![0u8; 4096]).unwrap();
        assert!(read_records(&path, 0).unwrap().0.is_empty());
    }
}
