//! Tiering's other half: checkpoint files the local disk dropped (the object store holds them) are fetched
//! back before the store opens, since recovery loads every checkpoint its manifest names.

use std::path::Path;

use super::error::ShipError;
use super::remote::{self, Remote};
use crate::checkpoint::Manifest;

/// For each shard of `data_dir`, downloads the checkpoint files its manifest names that are not on the
/// local disk. Blocks (on the side runtime); returns how many it fetched.
pub fn fetch_missing_checkpoints(url: &str, data_dir: &Path, shards: usize) -> Result<u32, ShipError> {
    let mut missing = Vec::new();
    for k in 0..shards {
        let dir = crate::layout::checkpoint_dir(data_dir, k);
        // A manifest that does not load is recovery's to report, not this step's.
        let Ok(manifest) = Manifest::load(&dir, k as u32) else { continue };
        missing.extend(manifest.checkpoints.iter().filter(|c| !dir.join(&c.file).exists()).map(|c| (k, dir.clone(), c.file.clone())));
    }
    if missing.is_empty() {
        return Ok(0);
    }
    let remote = Remote::open(url)?;
    // On a thread of its own: `Store::open` may be called from inside a tokio runtime (an application's),
    // where blocking on another runtime is refused.
    let fetch = || crate::side_runtime::side_runtime().block_on(async {
        use object_store::ObjectStore;
        for (k, dir, file) in &missing {
            let key = remote::checkpoint_key(*k, file);
            let bytes = remote.store.get(&key).await.map_err(ShipError::remote("fetch", &key))?.bytes().await.map_err(ShipError::remote("fetch", &key))?;
            let path = dir.join(file);
            crate::durable::replace_file(&path, &bytes).map_err(|e| ShipError::Io { op: e.op, path: e.path, source: e.source })?;
            tracing::info!(shard = k, file = %file, size_bytes = bytes.len(), "checkpoint fetched from the object store");
        }
        Ok(missing.len() as u32)
    });
    std::thread::scope(|s| s.spawn(fetch).join()).map_err(|_| ShipError::Failed("fetching checkpoints panicked".into()))?
}
