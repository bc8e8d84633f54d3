//! The targets (issue #5, tightened by the write-path issue #9). They are printed next to the measured
//! figure with the ratio; they never change what is measured and never fail the run. Targets set
//! against a peer (at least SQLite's rate, twice stoolap's) are the `tidelog_advantage` of the peer
//! ratios table.

/// Batches of 1,000 on 2 shards, FSYNC_INTERVAL=100.
pub const BATCH_INGEST_2_SHARDS_EVENTS_PER_S: f64 = 1_500_000.0;
/// 1,024 concurrent single-event appenders, FSYNC_INTERVAL=0, 2 shards.
pub const DURABLE_1024_APPENDERS_EVENTS_PER_S: f64 = 300_000.0;
pub const POINT_READ_P99_US: f64 = 1.0;
pub const ENTITY_HISTORY_P99_US: f64 = 30.0;
pub const LATEST_OF_ENTITY_P99_US: f64 = 5.0;
/// Issue #4: 1,000,000 events of ~200 bytes recovered (with checkpoints) within this many seconds.
pub const RECOVERY_1M_EVENTS_S: f64 = 1.0;
