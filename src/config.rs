//! Store settings.

use std::path::PathBuf;
#[cfg(feature = "fault-injection")]
use std::sync::Arc;

use crate::checkpoint::{CheckpointDamage, CheckpointSettings};
use crate::event::Limits;
#[cfg(feature = "fault-injection")]
use crate::wal::fault::FaultPlan;
use crate::wal::{FsyncMode, MidLogCorruption};

pub const DEFAULT_FSYNC_INTERVAL_MS: u32 = 100;
/// See `StoreConfig::spin_before_park_us`; chosen in `docs/WAL-IO.md`. At `FSYNC_INTERVAL=0` the default
/// is no spinning (`StoreConfig::spin_before_park_us_or_default`).
pub const DEFAULT_SPIN_BEFORE_PARK_US: u32 = 100;
pub const DEFAULT_SEGMENT_SIZE_BYTES: u64 = 64 << 20;

/// Limits of one SQL query (`POST /api/v1/sql`, `tidelog sql`; feature `sql`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqlLimits {
    /// Memory the query's operators (hash tables, sorts, the rows of a buffered answer) may hold.
    pub memory_limit_bytes: u64,
    /// From the request to the last row.
    pub timeout_ms: u64,
    /// Rows of a buffered JSON answer at most (the streamed formats have no row cap).
    pub max_json_rows: u64,
}

impl Default for SqlLimits {
    fn default() -> SqlLimits {
        SqlLimits { memory_limit_bytes: 256 << 20, timeout_ms: 30_000, max_json_rows: 100_000 }
    }
}

#[derive(Clone)]
pub struct StoreConfig {
    pub data_dir: PathBuf,
    /// Number of shards; 0 means one per available core. Fixed once the data directory exists.
    pub shards: usize,
    pub fsync: FsyncMode,
    pub segment_size_bytes: u64,
    pub limits: Limits,
    pub default_query_limit: usize,
    pub max_query_limit: usize,
    pub mid_log_corruption: MidLogCorruption,
    pub checkpoints: CheckpointSettings,
    /// What to do with a damaged checkpoint whose events the WAL no longer holds.
    pub checkpoint_damage: CheckpointDamage,
    /// Messages a shard's inbox holds before callers wait (back-pressure).
    pub queue_capacity: usize,
    /// Accepted-but-unwritten bytes a shard holds before it stops taking messages.
    pub max_pending_bytes: usize,
    /// How long an idle shard executor keeps polling before it sleeps, µs (0: sleep at once). A sleeping
    /// executor is woken through an eventfd and pays a membarrier on the way to sleep: tens of µs per
    /// append for a caller that waits on each one. Spinning costs CPU only after activity. `None`: the
    /// default for the fsync mode (see [`StoreConfig::spin_before_park_us_or_default`]).
    pub spin_before_park_us: Option<u32>,
    /// Ship the history to an object store (`--object-store`), see `crate::ship`.
    #[cfg(feature = "object-store")]
    pub object_store: Option<crate::ship::ObjectStoreConfig>,
    /// Tests only: put a fault-injecting layer under the WAL.
    #[cfg(feature = "fault-injection")]
    pub fault_plan: Option<Arc<FaultPlan>>,
}

impl StoreConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> StoreConfig {
        StoreConfig {
            data_dir: data_dir.into(),
            shards: 0,
            fsync: FsyncMode::IntervalMs(DEFAULT_FSYNC_INTERVAL_MS),
            segment_size_bytes: DEFAULT_SEGMENT_SIZE_BYTES,
            limits: Limits::default(),
            default_query_limit: 100,
            max_query_limit: 10_000,
            mid_log_corruption: MidLogCorruption::Skip,
            checkpoints: CheckpointSettings::default(),
            checkpoint_damage: CheckpointDamage::Refuse,
            queue_capacity: 4096,
            max_pending_bytes: 32 << 20,
            spin_before_park_us: None,
            #[cfg(feature = "object-store")]
            object_store: None,
            #[cfg(feature = "fault-injection")]
            fault_plan: None,
        }
    }

    pub fn shards(mut self, shards: usize) -> StoreConfig {
        self.shards = shards;
        self
    }

    /// `FSYNC_INTERVAL` in ms: 0 acknowledges only after fdatasync.
    pub fn fsync_interval_ms(mut self, interval_ms: u32) -> StoreConfig {
        self.fsync = FsyncMode::from_interval_ms(interval_ms);
        self
    }

    pub fn spin_before_park_us(mut self, spin_us: u32) -> StoreConfig {
        self.spin_before_park_us = Some(spin_us);
        self
    }

    /// The spin set, or the default: [`DEFAULT_SPIN_BEFORE_PARK_US`], but none at `FSYNC_INTERVAL=0`.
    /// There every append waits for an fdatasync (~100 µs) anyway, and a spinning executor keeps the
    /// threads pinned to its core (the fdatasync's, a caller's) from running until it parks: measured
    /// in `docs/WAL-IO.md`, spinning made durable appends slower at 1, 16 and 1,024 appenders.
    pub fn spin_before_park_us_or_default(&self) -> u32 {
        match (self.spin_before_park_us, self.fsync) {
            (Some(spin_us), _) => spin_us,
            (None, FsyncMode::Always) => 0,
            (None, _) => DEFAULT_SPIN_BEFORE_PARK_US,
        }
    }

    pub fn segment_size_bytes(mut self, size_bytes: u64) -> StoreConfig {
        self.segment_size_bytes = size_bytes;
        self
    }

    pub fn mid_log_corruption(mut self, policy: MidLogCorruption) -> StoreConfig {
        self.mid_log_corruption = policy;
        self
    }

    /// Checkpoint once this many events arrived since the last checkpoint (0: not by count).
    pub fn checkpoint_events(mut self, events: u64) -> StoreConfig {
        self.checkpoints.every_events = events;
        self
    }

    /// Checkpoint once this many seconds passed with new events (0: not by time).
    pub fn checkpoint_interval_s(mut self, interval_s: u64) -> StoreConfig {
        self.checkpoints.every_interval_s = interval_s;
        self
    }

    /// No checkpoints at all (not even on close): the WAL keeps everything and recovery replays it.
    pub fn without_checkpoints(mut self) -> StoreConfig {
        self.checkpoints.enabled = false;
        self
    }

    pub fn checkpoint_damage(mut self, policy: CheckpointDamage) -> StoreConfig {
        self.checkpoint_damage = policy;
        self
    }

    #[cfg(feature = "fault-injection")]
    pub fn fault_plan(mut self, plan: Arc<FaultPlan>) -> StoreConfig {
        self.fault_plan = Some(plan);
        self
    }
}
