//! Opening a shard, in two phases (docs/BATCHES.md, "Crashes"):
//! 1. [`scan_shard`]: its Parquet checkpoints are loaded (in position order) and its WAL after the
//!    position they cover is read, but not loaded yet; the cross-shard part headers found are reported
//!    ([`ShardScan`]) with the batches the checkpoints hold.
//! 2. Once the store has decided every batch from all shards' scans ([`decide`]), [`Scanned::load`]
//!    loads the WAL's events into the shard's maps and indexes, without the parts of dropped batches.

use std::collections::HashMap;

use super::actor::ShardContext;
use super::index::LocalIndex;
use super::shared::ShardShared;
use crate::checkpoint::{load_checkpoints, BatchIds, Manifest};
use super::error::ShardError;
use crate::event::StoredEvent;
use crate::wal::io::WalStorage;
use crate::wal::record::PartHeader;
use super::recovery_report::RecoveryReport;
use crate::wal::recovery::{recover, BatchDecision, BatchOutcome, WalItem};
use crate::wal::segment::list_segments;
use crate::wal::writer::OpenSegment;

/// What phase one of a shard's recovery tells the store: the cross-shard parts in its WAL, and the
/// batches whose part its checkpoints hold.
#[derive(Debug, Clone, Default)]
pub(crate) struct ShardScan {
    pub shard: u32,
    /// Each part header found, and whether every event it announces was recovered after it.
    pub parts: Vec<(PartHeader, bool)>,
    pub checkpointed: BatchIds,
}

/// The store's decisions, by batch id: every batch with a part in some shard's WAL.
pub(crate) type Decisions = HashMap<u128, BatchDecision>;

/// Decides every cross-shard batch found in a WAL: kept iff every participant has its part whole, in
/// its WAL or in a checkpoint; otherwise dropped (presumed abort). A batch is acknowledged only once
/// every part is durable per the fsync interval, so an acknowledged batch is kept unless a power cut
/// took a part the interval allowed it to lose.
pub(crate) fn decide(scans: &[ShardScan]) -> Decisions {
    let mut found: HashMap<u128, (Vec<u32>, Vec<u32>)> = HashMap::new();
    for scan in scans {
        for (header, whole) in &scan.parts {
            let entry = found.entry(header.batch).or_insert_with(|| (header.participants.clone(), Vec::new()));
            if *whole {
                entry.1.push(scan.shard);
            }
        }
    }
    found
        .into_iter()
        .map(|(batch, (participants, whole_on))| {
            let missing: Vec<u32> = participants
                .iter()
                .copied()
                .filter(|s| !whole_on.contains(s))
                .filter(|&s| !scans.iter().any(|scan| scan.shard == s && scan.checkpointed.contains(batch)))
                .collect();
            let outcome = if missing.is_empty() { BatchOutcome::Kept } else { BatchOutcome::DroppedMissingParts { missing } };
            (batch, BatchDecision { batch, participants, outcome })
        })
        .collect()
}

/// A shard after phase one: checkpoints loaded, the WAL read and held until the batches are decided.
pub(crate) struct Scanned<F> {
    report: RecoveryReport,
    loader: Loader,
    wal: Vec<WalItem>,
    open_segment: Option<OpenSegment<F>>,
    manifest: Manifest,
}

/// A recovered shard, ready to serve.
pub(crate) struct Recovered<F> {
    pub report: RecoveryReport,
    pub index: LocalIndex,
    /// The latest timestamp recovered: server-assigned timestamps continue from it.
    pub last_timestamp_us: i64,
    /// The segment to continue writing, if any.
    pub open_segment: Option<OpenSegment<F>>,
    pub manifest: Manifest,
    /// The kept cross-shard parts loaded from the WAL (first, last position, batch id): the checkpoint
    /// that later covers one records its batch.
    pub parts: Vec<(u64, u64, u128)>,
}

struct Loader {
    index: LocalIndex,
    last_timestamp_us: i64,
    scratch: String,
}

impl Loader {
    fn insert(&mut self, event: StoredEvent, shared: &ShardShared) {
        self.last_timestamp_us = self.last_timestamp_us.max(event.timestamp_us());
        self.index.add(event, &mut self.scratch, shared);
    }
}

/// Phase one: loads the checkpoints and reads the WAL (cutting off a torn tail), without loading it.
pub(crate) async fn scan_shard<S: WalStorage>(storage: &S, ctx: &ShardContext) -> Result<(Scanned<S::File>, ShardScan), ShardError> {
    let shared = &ctx.shared;
    std::fs::create_dir_all(&ctx.wal_dir).map_err(|e| ShardError::io(format!("create {}", ctx.wal_dir.display()), e))?;
    let mut loader = Loader { index: LocalIndex::default(), last_timestamp_us: i64::MIN, scratch: String::new() };
    let segments = list_segments(&ctx.wal_dir).map_err(|e| ShardError::io(format!("list {}", ctx.wal_dir.display()), e))?;
    let wal_first_position = segments.first().map(|(first, _)| *first);
    let loaded = load_checkpoints(&ctx.checkpoint_dir, shared.index, ctx.checkpoint_damage, wal_first_position, &mut |event| {
        loader.insert(event, shared)
    })?;
    let mut wal = Vec::new();
    let mut parts = Vec::new();
    let (wal_report, open_segment) =
        recover(storage, &ctx.wal_dir, shared.index, ctx.mid_log_corruption, loaded.summary.covered_position, |item| {
            if let WalItem::Part { header, events_present } = &item {
                parts.push((header.clone(), *events_present == header.events));
            }
            wal.push(item);
        })
        .await?;
    let report = RecoveryReport { checkpoints: loaded.summary, wal: wal_report };
    let scan = ShardScan { shard: shared.index, parts, checkpointed: loaded.manifest.batches() };
    Ok((Scanned { report, loader, wal, open_segment, manifest: loaded.manifest }, scan))
}

impl<F> Scanned<F> {
    /// Phase two: loads the WAL's events, leaving out the parts of the batches `decisions` dropped.
    /// Their positions stay taken (the shard continues after the last position read), and the ids of
    /// their events are free again.
    pub(crate) fn load(self, shared: &ShardShared, decisions: &Decisions) -> Recovered<F> {
        let Scanned { mut report, mut loader, wal, open_segment, manifest } = self;
        let mut parts = Vec::new();
        // The part whose events come next: (events left, kept, batch, first position).
        let mut current: Option<(u32, bool, u128, u64)> = None;
        for item in wal {
            match item {
                WalItem::Part { header, events_present } => {
                    let decision = decisions.get(&header.batch).expect("every batch found is decided").clone();
                    let kept = decision.kept();
                    if kept {
                        report.wal.batch_parts_kept += 1;
                    } else {
                        report.wal.batch_parts_dropped += 1;
                    }
                    report.wal.batches.push(decision);
                    current = (events_present > 0).then_some((events_present, kept, header.batch, 0));
                }
                WalItem::Event(event) => {
                    if let Some((left, kept, batch, first)) = current.as_mut() {
                        let position = event.position();
                        if *first == 0 {
                            *first = position;
                        }
                        *left -= 1;
                        let kept = *kept;
                        if *left == 0 {
                            if kept {
                                parts.push((*first, position, *batch));
                            }
                            current = None;
                        }
                        if !kept {
                            report.wal.records_recovered -= 1;
                            report.wal.records_dropped_with_batches += 1;
                            continue;
                        }
                    }
                    loader.insert(event, shared);
                }
            }
        }
        shared.recovered(report.events(), report.last_position);
        Recovered {
            report,
            index: loader.index,
            last_timestamp_us: loader.last_timestamp_us,
            open_segment,
            manifest,
            parts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(shard: u32, parts: &[(u128, &[u32], bool)], checkpointed: &[u128]) -> ShardScan {
        ShardScan {
            shard,
            parts: parts.iter().map(|&(batch, p, whole)| (PartHeader { batch, events: 1, participants: p.to_vec() }, whole)).collect(),
            checkpointed: BatchIds::from_ids(checkpointed.to_vec()),
        }
    }

    #[test]
    fn a_batch_is_kept_iff_every_participant_has_its_part_in_its_wal_or_a_checkpoint() {
        let scans = [
            scan(0, &[(1, &[0, 1], true), (2, &[0, 1], true), (3, &[0, 2], true), (4, &[0, 1], false)], &[]),
            scan(1, &[(1, &[0, 1], true), (4, &[0, 1], true)], &[]),
            scan(2, &[], &[3]),
        ];
        let d = decide(&scans);
        assert_eq!(d[&1].outcome, BatchOutcome::Kept);
        assert_eq!(d[&2].outcome, BatchOutcome::DroppedMissingParts { missing: vec![1] }, "shard 1 never wrote its part");
        assert_eq!(d[&3].outcome, BatchOutcome::Kept, "shard 2 vouches from its checkpoint");
        assert_eq!(d[&4].outcome, BatchOutcome::DroppedMissingParts { missing: vec![0] }, "shard 0's part lost events");
    }
}
