//! Object storage: the data directory's history shipped to `s3://BUCKET/PREFIX` (or `file:///DIR`), and
//! rebuilt from there (`tidelog restore`). See the README ("Object storage") and docs/FORMAT.md ("Object
//! store").
//!
//! The shipper runs beside the shards on the side runtime and only reads the files they write; the
//! shards wait for nothing it does, except that a shard keeps a WAL segment until the shipped
//! checkpoints cover it.

mod delta;
mod error;
mod hydrate;
pub mod remote;
pub mod restore;
mod scan;
mod shipper;
mod status;

use std::sync::Arc;

pub use error::ShipError;
pub use hydrate::fetch_missing_checkpoints;
pub use remote::Remote;
pub use restore::{download, RestoreReport};
pub use status::{ShipStatus, ShipStatusSnapshot};

/// Where to ship and how often (`--object-store`, `--ship-interval-ms`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectStoreConfig {
    pub url: String,
    /// The most an acknowledged append waits before a round ships it (the recovery point objective).
    pub ship_interval_ms: u32,
    /// Tiering: shipped checkpoint files kept on the local disk, at most this many bytes (the oldest go
    /// first); `None`: all. A dropped file is fetched back when the store opens.
    pub local_checkpoint_budget_bytes: Option<u64>,
    /// Tiering: shipped checkpoint files older than this are dropped from the local disk; `None`: never.
    pub local_checkpoint_max_age_s: Option<u64>,
    /// The Delta Lake table each shipped checkpoint is appended to (`s3://...` or `file://...`); `None`:
    /// no table. Default: `<url>/tables/events`.
    pub delta_table: Option<String>,
}

impl ObjectStoreConfig {
    pub fn new(url: impl Into<String>) -> ObjectStoreConfig {
        let url = url.into();
        ObjectStoreConfig {
            delta_table: Some(default_delta_table(&url)),
            url,
            ship_interval_ms: DEFAULT_SHIP_INTERVAL_MS,
            local_checkpoint_budget_bytes: None,
            local_checkpoint_max_age_s: None,
        }
    }
}

pub const DEFAULT_SHIP_INTERVAL_MS: u32 = 1000;

/// The Delta table's place when none is given: `tables/events` under the store's prefix.
pub fn default_delta_table(url: &str) -> String {
    format!("{}/{}", url.trim_end_matches('/'), DELTA_TABLE_PATH)
}

pub const DELTA_TABLE_PATH: &str = "tables/events";

/// The running shipper of a store.
pub struct ShipHandle {
    status: Arc<ShipStatus>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl ShipHandle {
    /// Starts shipping `data_dir` on the side runtime.
    pub(crate) fn start(
        config: &ObjectStoreConfig,
        data_dir: std::path::PathBuf,
        shards: Vec<Arc<crate::shard::ShardShared>>,
    ) -> Result<ShipHandle, ShipError> {
        let remote = Remote::open(&config.url)?;
        let status = Arc::new(ShipStatus::new(&config.url, config.ship_interval_ms, config.delta_table.clone()));
        let shipper = shipper::Shipper::new(remote, data_dir, shards, status.clone(), config);
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let task = crate::side_runtime::side_runtime().spawn(shipper.run(stopped));
        Ok(ShipHandle { status, stop: Some(stop), task: Some(task) })
    }

    pub fn status(&self) -> ShipStatusSnapshot {
        self.status.snapshot()
    }

    /// Ships once more (the shards are closed: everything is in the files), then stops. Blocks.
    pub(crate) fn finish(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = futures_lite::future::block_on(task);
        }
    }

    /// Stops at once, without a last round (what a crash leaves).
    pub(crate) fn abort(&mut self) {
        self.stop.take();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
