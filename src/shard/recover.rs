//! Opening a shard: its Parquet checkpoints first (in position order), then the WAL after the position
//! they cover, into the shard's maps and local indexes.

use super::actor::ShardContext;
use super::index::LocalIndex;
use crate::checkpoint::{load_checkpoints, Manifest};
use crate::error::Error;
use crate::event::StoredEvent;
use crate::wal::io::WalStorage;
use crate::wal::recovery::{recover, RecoveryReport};
use crate::wal::segment::list_segments;
use crate::wal::writer::OpenSegment;

/// A recovered shard, ready to serve.
pub(crate) struct Recovered<F> {
    pub report: RecoveryReport,
    pub index: LocalIndex,
    /// The latest timestamp recovered: server-assigned timestamps continue from it.
    pub last_timestamp_us: i64,
    /// The segment to continue writing, if any.
    pub open_segment: Option<OpenSegment<F>>,
    pub manifest: Manifest,
}

pub(crate) async fn recover_shard<S: WalStorage>(storage: &S, ctx: &ShardContext) -> Result<Recovered<S::File>, Error> {
    let shared = &ctx.shared;
    std::fs::create_dir_all(&ctx.wal_dir).map_err(|e| Error::io(format!("create {}", ctx.wal_dir.display()), e))?;
    let mut index = LocalIndex::default();
    let mut last_timestamp_us = i64::MIN;
    let mut scratch = String::new();
    let mut insert = |event: StoredEvent| {
        last_timestamp_us = last_timestamp_us.max(event.timestamp_us());
        index.insert(&event, &mut scratch, shared);
        shared.insert(event, &mut scratch);
    };
    let segments = list_segments(&ctx.wal_dir).map_err(|e| Error::io(format!("list {}", ctx.wal_dir.display()), e))?;
    let wal_first_position = segments.first().map(|(first, _)| *first);
    let loaded = load_checkpoints(&ctx.checkpoint_dir, shared.index, ctx.checkpoint_damage, wal_first_position, &mut insert)?;
    let (mut report, open_segment) =
        recover(storage, &ctx.wal_dir, shared.index, ctx.mid_log_corruption, loaded.summary.covered_position, insert).await?;
    report.checkpoints = loaded.summary;
    shared.recovered(report.events(), report.last_position);
    Ok(Recovered { report, index, last_timestamp_us, open_segment, manifest: loaded.manifest })
}
