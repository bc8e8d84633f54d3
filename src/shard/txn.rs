//! Batches that span shards, as readers see them: each shard's part is written and acknowledged like
//! any batch, but stays hidden until every part is acknowledged; then the shard that acknowledged the
//! last part gives the batch the next number of the store's commit order, in one step for all shards.
//! A reader reads at a snapshot of that order (`CommitClock::snapshot`): a part is visible to it iff its
//! batch's number is at or below the snapshot, so a read over several shards sees a batch wholly or not
//! at all. See `docs/BATCHES.md`.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

/// A batch not decided yet (or never to be: see `ABORTED`).
const UNDECIDED: u64 = 0;
/// A batch one of whose parts failed: hidden for good (recovery drops its parts at the next open).
const ABORTED: u64 = u64::MAX;

/// The store's commit order of cross-shard batches. One per store, shared by its shards.
#[derive(Debug, Default)]
pub struct CommitClock {
    /// The number of the last committed batch: readers read at it.
    published: AtomicU64,
    /// Orders the two stores of a commit against other commits (never held across anything else: two
    /// atomic stores; readers never take it).
    order: Mutex<()>,
    /// Readers holding a snapshot. Parts of committed batches are forgotten only while none does.
    readers: AtomicU64,
}

/// A reader's place in the commit order; held for the length of one read.
pub struct Snapshot<'a> {
    clock: &'a CommitClock,
    pub seq: u64,
}

impl Drop for Snapshot<'_> {
    fn drop(&mut self) {
        self.clock.readers.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A snapshot that outlives the borrow of its clock: a read that runs across tasks (an SQL scan's
/// partitions). Held as long as the read runs, so parts committed meanwhile stay listed until it ends.
pub struct OwnedSnapshot {
    clock: Arc<CommitClock>,
    pub seq: u64,
}

impl Drop for OwnedSnapshot {
    fn drop(&mut self) {
        self.clock.readers.fetch_sub(1, Ordering::SeqCst);
    }
}

impl std::fmt::Debug for OwnedSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnedSnapshot").field("seq", &self.seq).finish()
    }
}

impl CommitClock {
    pub fn snapshot_owned(self: &Arc<Self>) -> OwnedSnapshot {
        // As in `snapshot`: counted before `published` is read.
        self.readers.fetch_add(1, Ordering::SeqCst);
        OwnedSnapshot { clock: self.clone(), seq: self.published.load(Ordering::SeqCst) }
    }

    pub fn snapshot(&self) -> Snapshot<'_> {
        // Counted before reading `published` (both SeqCst): a pruner that sees no reader knows every later
        // snapshot is at or past what it read of `published`.
        self.readers.fetch_add(1, Ordering::SeqCst);
        Snapshot { clock: self, seq: self.published.load(Ordering::SeqCst) }
    }

    /// The current commit number, for a read of one event or one shard's part (no cross-shard tear possible).
    pub fn now(&self) -> u64 {
        self.published.load(Ordering::SeqCst)
    }

    fn commit(&self, batch: &BatchState) {
        let _order = self.order.lock().unwrap_or_else(|e| e.into_inner());
        let seq = self.published.load(Ordering::SeqCst) + 1;
        // The batch's number first, then the clock: a reader that sees the clock at `seq` sees the number.
        batch.seq.store(seq, Ordering::SeqCst);
        self.published.store(seq, Ordering::SeqCst);
    }

    /// A commit number every current and future snapshot is at or past, if no reader holds one now.
    fn quiet_floor(&self) -> Option<u64> {
        let floor = self.published.load(Ordering::SeqCst);
        (self.readers.load(Ordering::SeqCst) == 0).then_some(floor)
    }
}

/// One cross-shard batch, shared by its parts on every shard.
pub struct BatchState {
    /// Unique across opens of the store (see `docs/FORMAT.md`): names the batch in every part's WAL header.
    pub id: u128,
    /// The shards that hold a part, ascending.
    pub participants: Vec<u32>,
    /// The participants whose part writes events, when some write none (a prepared batch whose part on
    /// a shard only repeats stored events): set by the coordinator before any part is written.
    writers: OnceLock<Vec<u32>>,
    /// Parts not acknowledged yet.
    unacked: AtomicU32,
    /// Parts not fdatasynced yet: a checkpoint covers a part only once none is left.
    unsynced: AtomicU32,
    seq: AtomicU64,
    /// Told when the batch is decided, so each participant releases the entities its part holds.
    on_decided: Vec<Box<dyn Fn(u128) + Send + Sync>>,
}

impl std::fmt::Debug for BatchState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchState").field("id", &self.id).field("seq", &self.seq).field("participants", &self.participants).finish()
    }
}

impl BatchState {
    pub fn new(id: u128, participants: Vec<u32>, on_decided: Vec<Box<dyn Fn(u128) + Send + Sync>>) -> BatchState {
        let parts = participants.len() as u32;
        assert!(parts >= 2, "a cross-shard batch has parts on two shards at least");
        BatchState {
            id,
            participants,
            writers: OnceLock::new(),
            unacked: AtomicU32::new(parts),
            unsynced: AtomicU32::new(parts),
            seq: AtomicU64::new(UNDECIDED),
            on_decided,
        }
    }

    /// A batch recovered whole at open: committed before any snapshot, settled.
    pub fn recovered(id: u128, participants: Vec<u32>) -> BatchState {
        BatchState {
            id,
            participants,
            writers: OnceLock::new(),
            unacked: AtomicU32::new(0),
            unsynced: AtomicU32::new(0),
            seq: AtomicU64::new(1),
            on_decided: Vec::new(),
        }
    }

    /// The shards whose part writes events: what each part's WAL header names, and what recovery asks
    /// for. Every participant unless the coordinator said otherwise.
    pub fn writers(&self) -> &[u32] {
        self.writers.get().unwrap_or(&self.participants)
    }

    /// Sets the writing participants (once, before any part is written).
    pub(crate) fn set_writers(&self, writers: Vec<u32>) {
        let _ = self.writers.set(writers);
    }

    /// One part is acknowledged; the last one commits the batch (before its own caller is answered, so
    /// the batch is visible once the caller has every ack). Returns whether this call committed it.
    pub(crate) fn part_acked(&self, clock: &CommitClock) -> bool {
        if self.unacked.fetch_sub(1, Ordering::AcqRel) != 1 || self.seq.load(Ordering::Acquire) == ABORTED {
            return false;
        }
        clock.commit(self);
        self.decided();
        true
    }

    /// A part failed: the batch never becomes visible.
    pub(crate) fn abort(&self) {
        if self.seq.compare_exchange(UNDECIDED, ABORTED, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            self.decided();
        }
    }

    fn decided(&self) {
        for tell in &self.on_decided {
            tell(self.id);
        }
    }

    pub(crate) fn part_synced(&self) {
        self.unsynced.fetch_sub(1, Ordering::AcqRel);
    }

    /// Committed and fdatasynced on every shard: no crash can take a part away any more.
    pub fn settled(&self) -> bool {
        self.unsynced.load(Ordering::Acquire) == 0 && self.committed()
    }

    /// Committed or aborted: nothing more will happen to it.
    pub fn decided_yet(&self) -> bool {
        self.seq.load(Ordering::Acquire) != UNDECIDED
    }

    pub fn aborted(&self) -> bool {
        self.seq.load(Ordering::Acquire) == ABORTED
    }

    pub fn committed(&self) -> bool {
        !matches!(self.seq.load(Ordering::Acquire), UNDECIDED | ABORTED)
    }

    fn visible_at(&self, at: u64) -> bool {
        let seq = self.seq.load(Ordering::Acquire);
        seq != UNDECIDED && seq != ABORTED && seq <= at
    }
}

/// A part on this shard: its positions and its batch.
#[derive(Debug, Clone)]
pub struct Part {
    pub first: u64,
    pub last: u64,
    pub batch: Arc<BatchState>,
    /// This shard has fdatasynced the part (counted once in the batch).
    synced: bool,
}

/// The cross-shard parts of one shard that some reader may still have to hide, in position order.
#[derive(Debug, Default)]
pub struct Parts {
    /// Written by the shard's executor only; read by readers on any thread (the write lock is held for a
    /// push or a retain of this short list).
    entries: RwLock<Vec<Part>>,
    /// `entries.len()`, so a shard with no open cross-shard batch costs readers one atomic load.
    len: AtomicUsize,
}

impl Parts {
    pub(crate) fn add(&self, first: u64, last: u64, batch: Arc<BatchState>) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        debug_assert!(entries.last().is_none_or(|p| p.last < first), "parts arrive in position order");
        entries.push(Part { first, last, batch, synced: false });
        self.len.store(entries.len(), Ordering::Release);
    }

    /// Whether `position` belongs to a part a reader at `at` must not see.
    pub fn hidden(&self, position: u64, at: u64) -> bool {
        if self.len.load(Ordering::Acquire) == 0 {
            return false;
        }
        self.part_at(position, |p| !p.batch.visible_at(at))
    }

    /// Whether `position` belongs to a part for which `test` holds.
    fn part_at(&self, position: u64, test: impl Fn(&Part) -> bool) -> bool {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        let i = entries.partition_point(|p| p.last < position);
        entries.get(i).is_some_and(|p| p.first <= position && test(p))
    }

    /// The first position at or after `from` that a reader at `at` must not see yet (hidden parts of
    /// undecided or later batches), if any: a resumable reader stops before it.
    pub fn first_hidden_from(&self, from: u64, at: u64) -> Option<u64> {
        if self.len.load(Ordering::Acquire) == 0 {
            return None;
        }
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        entries.iter().filter(|p| p.last >= from && !p.batch.visible_at(at)).map(|p| p.first.max(from)).next()
    }

    /// Positions of parts hidden at `at`, at or below `upto` (for counts over the shard's indexes).
    pub fn hidden_ranges(&self, upto: u64, at: u64) -> Vec<(u64, u64)> {
        if self.len.load(Ordering::Acquire) == 0 {
            return Vec::new();
        }
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        entries.iter().filter(|p| p.first <= upto && !p.batch.visible_at(at)).map(|p| (p.first, p.last.min(upto))).collect()
    }

    /// Marks the parts at or below `synced` as fdatasynced on this shard, and forgets the parts every
    /// reader now sees (committed before any snapshot that can still be taken) and that are settled.
    /// Shard executor only.
    pub(crate) fn on_synced(&self, synced: u64, clock: &CommitClock) {
        if self.len.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        for part in entries.iter_mut().filter(|p| !p.synced && p.last <= synced) {
            part.synced = true;
            part.batch.part_synced();
        }
        if let Some(floor) = clock.quiet_floor() {
            entries.retain(|p| !(p.batch.settled() && p.batch.visible_at(floor)));
        }
        self.len.store(entries.len(), Ordering::Release);
    }

    /// The first position a checkpoint must not cover: the start of the first part whose batch is not
    /// settled (a crash could still take one of its parts away, and recovery then drops this one too).
    /// An aborted batch's part does not stop checkpoints: they leave it out (`aborted_ranges`).
    pub fn checkpoint_limit(&self) -> Option<u64> {
        if self.len.load(Ordering::Acquire) == 0 {
            return None;
        }
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        entries.iter().find(|p| !p.batch.settled() && !p.batch.aborted()).map(|p| p.first)
    }

    /// The positions of `batch`'s part on this shard if that batch was aborted.
    pub fn aborted_part(&self, batch: u128) -> Option<(u64, u64)> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        entries.iter().find(|p| p.batch.id == batch && p.batch.aborted()).map(|p| (p.first, p.last))
    }

    /// Whether `position` belongs to an aborted batch's part.
    pub fn aborted(&self, position: u64) -> bool {
        if self.len.load(Ordering::Acquire) == 0 {
            return false;
        }
        self.part_at(position, |p| p.batch.aborted())
    }

    /// The positions of aborted batches' parts within `first..=last`, ascending. A checkpoint leaves them
    /// out and does not name their batch, so once it covers them no later recovery can find this part and
    /// the batch stays dropped, as readers saw it.
    pub fn aborted_ranges(&self, first: u64, last: u64) -> Vec<(u64, u64)> {
        if self.len.load(Ordering::Acquire) == 0 {
            return Vec::new();
        }
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        entries.iter().filter(|p| p.batch.aborted() && p.last >= first && p.first <= last).map(|p| (p.first, p.last)).collect()
    }

    /// The parts whose positions lie in `first..=last` (for a checkpoint's record of what it holds).
    pub fn ids_in(&self, first: u64, last: u64) -> Vec<u128> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        entries.iter().filter(|p| p.first >= first && p.last <= last).map(|p| p.batch.id).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(id: u128) -> Arc<BatchState> {
        Arc::new(BatchState::new(id, vec![0, 1], Vec::new()))
    }

    #[test]
    fn a_batch_is_hidden_until_its_last_part_is_acked_then_visible_to_later_snapshots_only() {
        let clock = CommitClock::default();
        let (a, b) = (Parts::default(), Parts::default());
        let t = batch(7);
        a.add(3, 5, t.clone());
        b.add(10, 12, t.clone());
        let before = clock.snapshot();
        assert!(a.hidden(4, before.seq) && b.hidden(11, before.seq));
        assert!(!t.part_acked(&clock), "one part of two");
        assert!(a.hidden(4, clock.now()), "acked on one shard only: still hidden");
        assert!(t.part_acked(&clock));
        let after = clock.snapshot();
        assert!(!a.hidden(4, after.seq) && !b.hidden(11, after.seq));
        assert!(a.hidden(4, before.seq) && b.hidden(11, before.seq), "an older snapshot still sees neither part");
        assert!(!a.hidden(2, before.seq) && !a.hidden(6, before.seq), "positions outside parts are never hidden");
        assert_eq!(a.first_hidden_from(1, before.seq), Some(3));
        assert_eq!(a.first_hidden_from(1, after.seq), None);
    }

    #[test]
    fn parts_are_forgotten_only_when_settled_and_no_reader_holds_an_older_snapshot() {
        let clock = CommitClock::default();
        let a = Parts::default();
        let t = batch(1);
        a.add(1, 2, t.clone());
        let old = clock.snapshot();
        t.part_acked(&clock);
        t.part_acked(&clock);
        assert_eq!(a.checkpoint_limit(), Some(1), "not synced anywhere yet");
        t.part_synced(); // the other shard
        a.on_synced(2, &clock);
        assert_eq!(a.checkpoint_limit(), None, "settled");
        assert!(a.hidden(1, old.seq), "kept while an older snapshot is held");
        drop(old);
        a.on_synced(2, &clock);
        assert!(!a.hidden(1, 0) && a.len.load(Ordering::Relaxed) == 0, "forgotten: visible to every snapshot from now on");
    }

    #[test]
    fn an_aborted_batch_stays_hidden() {
        let clock = CommitClock::default();
        let a = Parts::default();
        let t = batch(2);
        a.add(1, 1, t.clone());
        t.abort();
        assert!(!t.part_acked(&clock) && !t.part_acked(&clock));
        assert!(a.hidden(1, clock.snapshot().seq));
        assert_eq!(a.checkpoint_limit(), None, "checkpoints leave it out instead of waiting for it");
        assert_eq!(a.aborted_ranges(1, 10), vec![(1, 1)]);
        assert_eq!(a.aborted_ranges(2, 10), Vec::<(u64, u64)>::new());
    }
}
