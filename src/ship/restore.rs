//! `tidelog restore`: rebuilds a data directory from what was shipped (checkpoints, WAL segments and
//! parts, `tidelog.json`, `EPOCHS`). Opening the directory afterwards is an ordinary recovery.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use object_store::path::Path as Key;
use serde::Serialize;

use super::error::ShipError;
use super::remote::{self, parse_wal_name, Remote, WalObject};
use super::shipper::{blocking, list};

/// Zeros after every restored segment: a sealed segment is shipped up to its last non-zero byte, and its
/// last record may end with zero bytes (at most a few; this is far more than enough). It is also where the
/// writer continues a restored open segment.
const PAD_BYTES: u64 = 1 << 20;

#[derive(Debug, Default, Serialize)]
pub struct RestoreReport {
    pub from: String,
    pub data_dir: PathBuf,
    /// When the last complete shipping round started (µs since the Unix epoch): every append acknowledged
    /// before it was shipped.
    pub shipped_through_us: Option<i64>,
    pub files: u64,
    pub bytes: u64,
    pub shards: Vec<ShardRestore>,
}

#[derive(Debug, Default, Serialize)]
pub struct ShardRestore {
    pub checkpoints: u64,
    pub segments: u64,
    /// Parts after a gap (none unless the object store lost objects): not restored.
    pub parts_skipped: u64,
}

/// Downloads everything under the object store's prefix into `data_dir`, which must be empty or absent.
pub async fn download(remote: &Remote, data_dir: &Path) -> Result<RestoreReport, ShipError> {
    let mut report = RestoreReport { from: remote.url.clone(), data_dir: data_dir.to_path_buf(), ..RestoreReport::default() };
    let meta = get(remote, &Key::from(remote::META_KEY))
        .await?
        .ok_or_else(|| ShipError::Failed(format!("{} holds no tidelog store (no {})", remote.url, remote::META_KEY)))?;
    let shards = serde_json::from_slice::<serde_json::Value>(&meta)
        .ok()
        .and_then(|v| v.get("shards").and_then(|s| s.as_u64()))
        .ok_or_else(|| ShipError::Failed(format!("{} in {} is not a tidelog.json", remote::META_KEY, remote.url)))?;
    if let Some(shipped) = get(remote, &Key::from(remote::SHIPPED_KEY)).await? {
        report.shipped_through_us =
            serde_json::from_slice::<serde_json::Value>(&shipped).ok().and_then(|v| v.get("shipped_through_us").and_then(|t| t.as_i64()));
    }
    for k in 0..shards as usize {
        let mut shard = ShardRestore::default();
        let checkpoint_dir = crate::layout::checkpoint_dir(data_dir, k);
        let manifest = get(remote, &Key::from(format!("{}/{}", remote::checkpoint_prefix(k), crate::layout::MANIFEST_FILE))).await?;
        if let Some(manifest) = manifest {
            let parsed = crate::checkpoint::Manifest::from_bytes(&manifest, k as u32)
                .map_err(|e| ShipError::Failed(format!("shard {k}'s shipped manifest: {e}")))?;
            for c in &parsed.checkpoints {
                let data = get(remote, &remote::checkpoint_key(k, &c.file))
                    .await?
                    .ok_or_else(|| ShipError::Failed(format!("shard {k}: checkpoint {} is named but missing", c.file)))?;
                write(&mut report, checkpoint_dir.join(&c.file), data, 0).await?;
                shard.checkpoints += 1;
            }
            write(&mut report, crate::layout::manifest_file(&checkpoint_dir), manifest, 0).await?;
        }
        let mut parts: BTreeMap<u64, Vec<(u64, u64)>> = BTreeMap::new();
        for (name, size) in list(&*remote.store, &remote::wal_prefix(k)).await? {
            if let Some(WalObject::Part { first_position, offset }) = parse_wal_name(&name) {
                parts.entry(first_position).or_default().push((offset, size));
            }
        }
        let wal_dir = crate::layout::wal_dir(data_dir, k);
        for (first, mut offsets) in parts {
            offsets.sort_unstable();
            // Parts are contiguous from offset 0; one after a gap cannot be placed.
            let mut data = Vec::new();
            for (offset, _) in offsets {
                if offset != data.len() as u64 {
                    shard.parts_skipped += 1;
                    continue;
                }
                let key = remote::part_key(k, first, offset);
                // Listed, then gone: the source is still shipping (and cleaning up); restore again.
                let part = get(remote, &key).await?.ok_or_else(|| {
                    ShipError::Failed(format!("{key} was listed but is gone: is the source still shipping? Restore again"))
                })?;
                data.extend(part);
            }
            if !data.is_empty() {
                write(&mut report, crate::wal::segment::segment_path(&wal_dir, first), data, PAD_BYTES).await?;
                shard.segments += 1;
            }
        }
        std::fs::create_dir_all(&wal_dir).map_err(ShipError::io("create", &wal_dir))?;
        std::fs::create_dir_all(&checkpoint_dir).map_err(ShipError::io("create", &checkpoint_dir))?;
        report.shards.push(shard);
    }
    if let Some(epochs) = get(remote, &Key::from(remote::EPOCHS_KEY)).await? {
        write(&mut report, crate::layout::epochs_file(data_dir), epochs, 0).await?;
    }
    // tidelog.json last: a directory without it is not a store, so an interrupted restore is not mistaken
    // for a complete one.
    write(&mut report, crate::layout::meta_file(data_dir), meta, 0).await?;
    Ok(report)
}

async fn get(remote: &Remote, key: &Key) -> Result<Option<Vec<u8>>, ShipError> {
    use object_store::ObjectStore;
    match remote.store.get(key).await {
        Ok(found) => Ok(Some(found.bytes().await.map_err(ShipError::remote("read", key))?.to_vec())),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(ShipError::remote("read", key)(e)),
    }
}

/// Writes `data` then `pad_bytes` zeros (sparse) to `path`, durably, creating its directory.
async fn write(report: &mut RestoreReport, path: PathBuf, data: Vec<u8>, pad_bytes: u64) -> Result<(), ShipError> {
    report.files += 1;
    report.bytes += data.len() as u64;
    blocking(move || {
        let dir = path.parent().expect("a file in a directory").to_path_buf();
        std::fs::create_dir_all(&dir).map_err(ShipError::io("create", &dir))?;
        let file = std::fs::File::create(&path).map_err(ShipError::io("create", &path))?;
        use std::io::Write;
        (&file).write_all(&data).map_err(ShipError::io("write", &path))?;
        if pad_bytes > 0 {
            file.set_len(data.len() as u64 + pad_bytes).map_err(ShipError::io("extend", &path))?;
        }
        file.sync_all().map_err(ShipError::io("fsync", &path))?;
        crate::durable::sync_dir(&dir).map_err(|e| ShipError::Io { op: e.op, path: e.path, source: e.source })
    })
    .await
}
