//! Recovery: replays a shard's segments in order, applying an explicit corruption policy, and reports
//! what it kept, skipped and truncated. See `docs/FORMAT.md` for the rules.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::error::WalError;
use super::io::{WalFile, WalStorage};
use super::record::{decode_frame, Frame, PartHeader, HEADER_BYTES};
use super::segment::{check_header, list_segments, Header, SEGMENT_HEADER_BYTES};
use super::writer::OpenSegment;
use crate::event::StoredEvent;

/// What to do with a damaged record that has valid records after it. (A damaged tail is always cut
/// off: it is what a crash during a write leaves.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MidLogCorruption {
    /// Skip the damaged bytes, count the lost positions, and open.
    #[default]
    Skip,
    /// Refuse to open.
    Fail,
}

/// What reading one shard's WAL at open found (the shard adds what its checkpoints held:
/// `shard::RecoveryReport`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WalRecovery {
    pub shard: u32,
    pub segments: u32,
    pub records_recovered: u64,
    /// Positions missing from the log: records lost to mid-log corruption or a missing segment.
    pub records_skipped: u64,
    /// Bytes of damaged regions skipped in the middle of the log.
    pub corrupt_bytes_skipped: u64,
    /// Bytes cut off the end of the last segment (a torn or unfinished final write).
    pub bytes_truncated: u64,
    /// Whole records cut off with the tail because an earlier write never reached the disk (a power cut
    /// that wrote later sectors back before earlier ones): never acknowledged at `FSYNC_INTERVAL=0`,
    /// within the last N ms at N. Counted in `bytes_truncated` too.
    pub records_after_lost_write: u64,
    pub last_position: u64,
    /// Segments not read because a checkpoint covers all of their records.
    pub segments_covered: u32,
    pub duration: Duration,
    /// Cross-shard parts found in the WAL whose batch was kept: every participant has its part durably.
    pub batch_parts_kept: u64,
    /// Cross-shard parts found in the WAL whose batch was dropped (presumed abort): a participant lacks
    /// its part. Their events are not loaded; their positions stay taken (never reused).
    pub batch_parts_dropped: u64,
    /// Events of the dropped parts (not counted in `records_recovered`).
    pub records_dropped_with_batches: u64,
    /// The decision on every cross-shard batch with a part in this shard's WAL, in log order.
    pub batches: Vec<BatchDecision>,
}

/// What recovery decided about one cross-shard batch found in the WAL (every such batch is in doubt
/// until every participant has been asked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchDecision {
    pub batch: u128,
    /// The shards that hold a part, as the part headers name them.
    pub participants: Vec<u32>,
    pub outcome: BatchOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchOutcome {
    /// Every participant has its part whole, in its WAL or in a checkpoint: the batch is loaded.
    Kept,
    /// These participants have no whole part (never written, lost to a crash, or damaged): the parts
    /// found are not loaded (presumed abort). The batch was never acknowledged, unless the loss is
    /// within what the fsync interval allows (docs/BATCHES.md).
    DroppedMissingParts { missing: Vec<u32> },
}

impl BatchDecision {
    pub fn kept(&self) -> bool {
        self.outcome == BatchOutcome::Kept
    }
}

impl std::fmt::Display for BatchDecision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "batch {:032x} over shards {:?}: ", self.batch, self.participants)?;
        match &self.outcome {
            BatchOutcome::Kept => write!(f, "kept"),
            BatchOutcome::DroppedMissingParts { missing } => write!(f, "dropped, no part on shards {missing:?}"),
        }
    }
}

impl std::fmt::Display for WalRecovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} records recovered from {} WAL segments ({} covered by checkpoints, not read), {} skipped ({} corrupt bytes), \
             {} bytes truncated ({} records after a write lost to a power cut), last position {}, {:.1} ms",
            self.records_recovered,
            self.segments,
            self.segments_covered,
            self.records_skipped,
            self.corrupt_bytes_skipped,
            self.bytes_truncated,
            self.records_after_lost_write,
            self.last_position,
            self.duration.as_secs_f64() * 1000.0
        )?;
        if self.batch_parts_kept + self.batch_parts_dropped > 0 {
            write!(
                f,
                "; cross-shard batches: {} parts kept, {} dropped ({} records, the batch lacked a part elsewhere)",
                self.batch_parts_kept, self.batch_parts_dropped, self.records_dropped_with_batches
            )?;
        }
        Ok(())
    }
}

/// What recovery hands the shard, in log order.
#[derive(Debug)]
pub enum WalItem {
    Event(StoredEvent),
    /// The header of a cross-shard part, followed by the `events_present` events of the part that were
    /// recovered: fewer than `header.events` only if mid-log corruption took some (the part is then not
    /// whole). Not handed over for a part a checkpoint covers.
    Part { header: PartHeader, events_present: u32 },
}

/// One record as the scan reads it.
enum ScanItem {
    Event(StoredEvent),
    Part(PartHeader),
}

/// Replays every segment under `wal_dir`, handing each recovered event (and part header) to `on_item`
/// in position order.
/// Returns the report and the last segment, positioned for appending.
pub async fn recover<S: WalStorage>(
    storage: &S,
    wal_dir: &Path,
    shard: u32,
    policy: MidLogCorruption,
    covered_position: u64,
    mut on_event: impl FnMut(WalItem),
) -> Result<(WalRecovery, Option<OpenSegment<S::File>>), WalError> {
    let started = Instant::now();
    // Positions up to `covered_position` come from checkpoints: the log continues after it.
    let mut report = WalRecovery { shard, last_position: covered_position, ..WalRecovery::default() };
    let mut seen_position = 0u64;
    let segments = list_segments(wal_dir).map_err(WalError::io("list", wal_dir))?;
    let mut open_segment = None;
    for (index, (first_position, path)) in segments.iter().enumerate() {
        let is_last = index + 1 == segments.len();
        // Every record of a segment comes before the next segment's first position.
        if !is_last && segments[index + 1].0 <= covered_position + 1 {
            report.segments_covered += 1;
            continue;
        }
        let file = storage.open(path).await.map_err(WalError::io("open", path))?;
        let data = file.read_all().await.map_err(WalError::io("read", path))?;
        report.segments += 1;
        let header = check_header(&data, shard, *first_position)
            .map_err(|reason| WalError::BadSegment { path: path.clone(), reason })?;
        if header == Header::Empty {
            // Created but never written (a crash right after the roll), or its first write was torn
            // before the header reached the disk: nothing in it was ever durable.
            if is_last {
                report.bytes_truncated += data.iter().rposition(|&b| b != 0).map_or(0, |i| i as u64 + 1);
                drop(file);
                std::fs::remove_file(path).map_err(WalError::io("remove empty segment", path))?;
                storage.sync_dir(wal_dir).await.map_err(WalError::io("fsync directory", wal_dir))?;
            }
            continue;
        }
        let mut scan = SegmentScan {
            path,
            data: &data,
            policy,
            report: &mut report,
            covered_position,
            seen_position: &mut seen_position,
            on_event: &mut on_event,
        };
        let end = scan.run(is_last)?;
        if is_last {
            open_segment = Some(truncate_after(file, path.clone(), &data, end, &mut report).await?);
        }
    }
    report.duration = started.elapsed();
    Ok((report, open_segment))
}

struct SegmentScan<'a, F> {
    path: &'a PathBuf,
    data: &'a [u8],
    policy: MidLogCorruption,
    report: &'a mut WalRecovery,
    /// Records up to here are in checkpoints: read past, not delivered.
    covered_position: u64,
    /// The last position read, delivered or not: positions only go up.
    seen_position: &'a mut u64,
    on_event: &'a mut F,
}

impl<F: FnMut(WalItem)> SegmentScan<'_, F> {
    /// Scans records from the end of the header; returns the offset just past the last complete batch.
    fn run(&mut self, is_last: bool) -> Result<u64, WalError> {
        let mut offset = SEGMENT_HEADER_BYTES;
        let mut batch: Vec<ScanItem> = Vec::new();
        let mut batch_start = offset;
        let mut committed_end = offset;
        loop {
            match self.record_at(offset) {
                Some((item, batch_continues, size)) => {
                    if batch.is_empty() {
                        batch_start = offset;
                    }
                    if let ScanItem::Event(event) = &item {
                        *self.seen_position = event.position();
                    }
                    batch.push(item);
                    offset += size;
                    if !batch_continues {
                        self.commit(&mut batch)?;
                        committed_end = offset;
                    }
                }
                None if matches!(decode_frame(&self.data[offset..]), Frame::End) => {
                    if is_last && self.data[offset..].iter().any(|&b| b != 0) {
                        // Records after a write that never reached the disk: cut off with the tail.
                        self.report.records_after_lost_write += self.count_records_from(offset);
                    }
                    break;
                }
                None => match self.resync(offset) {
                    Some(next) if is_last && has_unwritten_sector(&self.data[offset..next], offset) => {
                        // A sector in the damage was never written: the write that held it did not reach
                        // the disk, so nothing after it was synced either (an fdatasync covers all
                        // earlier bytes). The log ends here; what a later write left behind goes too.
                        self.report.records_after_lost_write += self.count_records_from(next);
                        break;
                    }
                    Some(next) => {
                        // Valid records follow, so this is damage in the middle of the log, not a torn
                        // write. The batch around it was complete when written: keep what survives.
                        let detail = format!("{} damaged bytes at offset {offset}", next - offset);
                        if self.policy == MidLogCorruption::Fail {
                            return Err(WalError::MidLogCorruption { path: self.path.clone(), detail });
                        }
                        self.report.corrupt_bytes_skipped += (next - offset) as u64;
                        self.commit(&mut batch)?;
                        offset = next;
                    }
                    None => break,
                },
            }
        }
        if !batch.is_empty() {
            // An unfinished batch: its final record never reached the disk, so none of it counts.
            if !is_last {
                let detail = format!("unfinished batch at offset {batch_start} of a closed segment");
                if self.policy == MidLogCorruption::Fail {
                    return Err(WalError::MidLogCorruption { path: self.path.clone(), detail });
                }
                self.report.corrupt_bytes_skipped += (offset - batch_start) as u64;
            }
            committed_end = batch_start;
        }
        Ok(committed_end as u64)
    }

    /// The record at `offset`, if it is whole, checks out, and continues the position sequence (a part
    /// header has no position: it must announce a part, so the batch continues after it).
    fn record_at(&self, offset: usize) -> Option<(ScanItem, bool, usize)> {
        let Frame::Record { body, batch_continues, part_header } = decode_frame(self.data.get(offset..)?) else {
            return None;
        };
        let size = HEADER_BYTES + body.len();
        if part_header {
            let header = PartHeader::decode(body).filter(|_| batch_continues)?;
            return Some((ScanItem::Part(header), true, size));
        }
        let event = StoredEvent::decode(body).ok()?;
        (event.position() > *self.seen_position).then_some((ScanItem::Event(event), batch_continues, size))
    }

    /// How many whole records lie from `offset` to the end of the segment, past any damage.
    fn count_records_from(&self, mut offset: usize) -> u64 {
        let mut count = 0;
        loop {
            match self.record_at(offset) {
                Some((item, _, size)) => {
                    count += u64::from(matches!(item, ScanItem::Event(_)));
                    offset += size;
                }
                None => match self.resync(offset) {
                    Some(next) => offset = next,
                    None => return count,
                },
            }
        }
    }

    /// The offset of the next valid record after damaged bytes at `offset`, if any.
    fn resync(&self, offset: usize) -> Option<usize> {
        (offset + 8..self.data.len().saturating_sub(HEADER_BYTES)).step_by(8).find(|&o| self.record_at(o).is_some())
    }

    fn commit(&mut self, batch: &mut Vec<ScanItem>) -> Result<(), WalError> {
        // For each part header: how many events follow it in this batch, and whether a checkpoint holds
        // them (computed only for a batch that holds a part: most hold none).
        let has_part = batch.iter().any(|i| matches!(i, ScanItem::Part(_)));
        let mut following: Vec<(u32, bool)> = if has_part { vec![(0, false); batch.len()] } else { Vec::new() };
        let mut after = (0u32, false);
        for (i, item) in batch.iter().enumerate().rev().filter(|_| has_part) {
            match item {
                ScanItem::Event(e) => after = (after.0 + 1, after.1 || e.position() <= self.covered_position),
                ScanItem::Part(_) => {
                    following[i] = after;
                    after = (0, false);
                }
            }
        }
        for (i, item) in batch.drain(..).enumerate() {
            let event = match item {
                ScanItem::Event(event) => event,
                ScanItem::Part(header) => {
                    let (present, covered) = following[i];
                    if !covered {
                        (self.on_event)(WalItem::Part { header, events_present: present });
                    }
                    continue;
                }
            };
            let position = event.position();
            if position <= self.covered_position {
                continue;
            }
            let expected = self.report.last_position + 1;
            if position > expected {
                if self.policy == MidLogCorruption::Fail {
                    let detail = format!("positions {expected}..{} are missing", position - 1);
                    return Err(WalError::MidLogCorruption { path: self.path.clone(), detail });
                }
                self.report.records_skipped += position - expected;
            }
            self.report.last_position = position;
            self.report.records_recovered += 1;
            (self.on_event)(WalItem::Event(event));
        }
        Ok(())
    }
}

/// Whether `damage` (starting at file offset `offset`) holds a whole 512-byte sector of zeros. A segment
/// is zeros where nothing was ever written (pre-allocated, and recovery zeroes what it cuts off), and no
/// record has 512 zero bytes in a row (JSON text and names hold no NUL; the archive's padding and
/// pointers are a few bytes), so such a sector is one a write never reached. A flipped bit or a sector
/// the disk garbled is not zeros: that stays mid-log corruption.
fn has_unwritten_sector(damage: &[u8], offset: usize) -> bool {
    let sector = crate::wal::segment::SECTOR_BYTES;
    let first = offset.next_multiple_of(sector) - offset;
    damage.get(first..).is_some_and(|rest| rest.chunks_exact(sector).any(|s| s.iter().all(|&b| b == 0)))
}

/// Makes sure nothing but zeros follows `end` in the last segment, so stale bytes of an unfinished write
/// can never be read as records once new ones are written before them.
async fn truncate_after<F: WalFile>(
    file: F,
    path: PathBuf,
    data: &[u8],
    end: u64,
    report: &mut WalRecovery,
) -> Result<OpenSegment<F>, WalError> {
    let size_bytes = file.size_bytes().await.map_err(WalError::io("stat", &path))?;
    if let Some(last) = data[end as usize..].iter().rposition(|&b| b != 0) {
        report.bytes_truncated += last as u64 + 1;
        file.zero_range(end, size_bytes - end).await.map_err(WalError::io("zero range", &path))?;
    }
    // Always: after a SIGKILL the records read may sit in the page cache only, and the shard counts
    // everything recovered as durable (checkpoints may cover it at once). A cross-shard batch is kept
    // because every participant has its part; each participant syncs before any shard serves, so a later
    // power cut cannot take one part of a kept batch while a checkpoint holds another.
    file.fdatasync().await.map_err(WalError::io("fdatasync", &path))?;
    Ok(OpenSegment { file, path, end_offset: end, size_bytes })
}

/// What `inspect` finds in one segment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SegmentInspection {
    pub path: PathBuf,
    pub size_bytes: u64,
    pub records: u64,
    pub first_position: Option<u64>,
    pub last_position: Option<u64>,
    /// Positions missing before or inside this segment.
    pub records_skipped: u64,
    pub corrupt_bytes: u64,
    /// Non-zero bytes after the last complete batch (what recovery would cut off the last segment).
    pub torn_tail_bytes: u64,
    /// A header that does not check out.
    pub bad_header: Option<String>,
}

/// Reads a shard's segments without changing anything (recovery, by contrast, truncates torn tails).
/// Records up to `covered_position` (what the checkpoints hold) are read past, as recovery does.
pub fn inspect_shard(wal_dir: &Path, shard: u32, covered_position: u64) -> Result<Vec<SegmentInspection>, WalError> {
    let segments = list_segments(wal_dir).map_err(WalError::io("list", wal_dir))?;
    let mut report = WalRecovery { shard, last_position: covered_position, ..WalRecovery::default() };
    let mut seen_position = 0;
    let mut found = Vec::with_capacity(segments.len());
    for (first_position, path) in &segments {
        let data = std::fs::read(path).map_err(WalError::io("read", path))?;
        found.push(inspect_bytes(path, &data, *first_position, covered_position, &mut seen_position, &mut report)?);
    }
    Ok(found)
}

/// Inspects one segment's bytes as the first segment of `shard` (the fuzzing entry point: any input must
/// give an answer, never a panic).
pub fn inspect_segment_bytes(data: &[u8], shard: u32, first_position: u64) -> SegmentInspection {
    let mut report = WalRecovery { shard, ..WalRecovery::default() };
    inspect_bytes(Path::new("<bytes>"), data, first_position, 0, &mut 0, &mut report).expect("the Skip policy never fails")
}

/// Scans one segment with the Skip policy, continuing `report` (positions carry over between segments).
fn inspect_bytes(
    path: &Path,
    data: &[u8],
    first_position: u64,
    covered_position: u64,
    seen_position: &mut u64,
    report: &mut WalRecovery,
) -> Result<SegmentInspection, WalError> {
    let mut inspection =
        SegmentInspection { path: path.to_path_buf(), size_bytes: data.len() as u64, ..Default::default() };
    match check_header(data, report.shard, first_position) {
        Err(reason) => inspection.bad_header = Some(reason),
        Ok(Header::Empty) => {}
        Ok(Header::Valid) => {
            let before = (report.records_recovered, report.records_skipped, report.corrupt_bytes_skipped);
            let (mut first, mut last) = (None, None);
            let mut on_event = |item: WalItem| {
                if let WalItem::Event(e) = item {
                    first.get_or_insert(e.position());
                    last = Some(e.position());
                }
            };
            let path = path.to_path_buf();
            let mut scan = SegmentScan {
                path: &path,
                data,
                policy: MidLogCorruption::Skip,
                report,
                covered_position,
                seen_position,
                on_event: &mut on_event,
            };
            let end = scan.run(false)? as usize;
            inspection.records = report.records_recovered - before.0;
            inspection.records_skipped = report.records_skipped - before.1;
            inspection.corrupt_bytes = report.corrupt_bytes_skipped - before.2;
            inspection.first_position = first;
            inspection.last_position = last;
            inspection.torn_tail_bytes = data[end..].iter().rposition(|&b| b != 0).map_or(0, |i| i as u64 + 1);
        }
    }
    Ok(inspection)
}
