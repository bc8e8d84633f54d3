//! The shard's tasks on its executor: the acceptor (validates against current versions, assigns
//! positions, encodes, frames), the writer (one WAL write per batch of accepted appends, group commit),
//! and in interval mode the syncer (fdatasync every N ms while bytes are unsynced).

use std::cell::RefCell;
use std::collections::HashMap;

use foldhash::fast::RandomState;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_channel::oneshot;
use uuid::Uuid;

use super::checkpointer::Checkpointer;
use super::holds::{entity_hashes, Holds};
use super::index::LocalIndex;
use super::ids::RESERVED;
use super::shared::{write_key, ShardShared};
use super::txn::{BatchState, CommitClock};
use crate::checkpoint::{CheckpointDamage, CheckpointSettings};
use super::ack::Spent;
use super::AppendAck;
use super::error::ShardError;
use crate::event::{Event, NewEvent, StoredEvent};
use crate::query::{Page, PageFrom, Query, TenantStats};
use crate::wal::io::WalStorage;
use super::RecoveryReport;
use crate::wal::recovery::MidLogCorruption;
use super::recover::{scan_shard, Decisions, ShardScan};
use crate::wal::record::PartHeader;
use crate::wal::writer::WalWriter;
use crate::wal::{CommitSink, FsyncMode, Wal, WalError};

/// Each event with its index in the client's batch, and the events given back (see [`Spent`]).
pub type AppendReply = oneshot::Sender<Result<(Vec<(usize, AppendAck)>, Spent), ShardError>>;
/// One result per event of a group of independent appends, in the group's order, and the events given
/// back; and the group's size.
pub type EachReply = (oneshot::Sender<(Vec<Result<AppendAck, ShardError>>, Spent)>, usize);

/// How an append is answered.
pub(crate) enum Reply {
    /// An atomic batch (or one event): every ack, or one error for all.
    Batch(AppendReply),
    /// This shard's part of a batch that spans shards: answered like a batch, and visible only once its
    /// batch commits (every part acknowledged).
    Part(AppendReply, Arc<BatchState>),
    /// Independent events (a producer's group): a result each.
    Each(EachReply),
}

impl Reply {
    /// Answers every event with the error `make` builds: a failed shard acknowledges nothing.
    fn fail_all(self, mut make: impl FnMut() -> ShardError) {
        match self {
            Reply::Batch(reply) => {
                let _ = reply.send(Err(make()));
            }
            Reply::Part(reply, batch) => {
                batch.abort();
                let _ = reply.send(Err(make()));
            }
            Reply::Each(reply) => {
                let n = reply_len(&reply);
                let _ = reply.0.send(((0..n).map(|_| Err(make())).collect(), Spent::new(Vec::new())));
            }
        }
    }

    /// Answers with `acks` and, for independent events, the `errors` of the ones refused at once.
    /// A part's batch commits here if this was its last part (before the caller hears of it).
    fn answer(self, acks: Vec<(usize, AppendAck)>, errors: Vec<(usize, ShardError)>, spent: Spent, clock: &CommitClock) {
        match self {
            Reply::Batch(reply) => {
                debug_assert!(errors.is_empty());
                let _ = reply.send(Ok((acks, spent)));
            }
            Reply::Part(reply, batch) => {
                debug_assert!(errors.is_empty());
                batch.part_acked(clock);
                let _ = reply.send(Ok((acks, spent)));
            }
            Reply::Each(reply) => {
                let mut results: Vec<Option<Result<AppendAck, ShardError>>> = (0..reply_len(&reply)).map(|_| None).collect();
                for (index, ack) in acks {
                    results[index] = Some(Ok(ack));
                }
                for (index, error) in errors {
                    results[index] = Some(Err(error));
                }
                let _ = reply.0.send((results.into_iter().map(|r| r.expect("one result per event")).collect(), spent));
            }
        }
    }
}

fn reply_len(reply: &EachReply) -> usize {
    reply.1
}

pub(crate) enum ShardMsg {
    Append { events: Vec<(usize, NewEvent)>, reply: AppendReply },
    /// This shard's part of a cross-shard batch without expected versions or ids (nothing to check).
    AppendPart { events: Vec<(usize, NewEvent)>, reply: AppendReply, batch: Arc<BatchState> },
    /// Independent single-event appends (a producer's group): each is checked and acknowledged on its
    /// own, and all are answered together. Indexes are 0..n in order.
    AppendEach { events: Vec<(usize, NewEvent)>, reply: EachReply },
    /// Phase one of a cross-shard batch with expected versions or ids: check this shard's part, claim its
    /// ids and hold its entities until `Commit` or `Abort`. Refused at once, never queued, if another
    /// such batch holds one of them, so two batches cannot wait on each other.
    /// Answered with the number of events the part will write (0: it only repeats stored events).
    Prepare { batch: Arc<BatchState>, events: Vec<(usize, NewEvent)>, reply: oneshot::Sender<Result<usize, ShardError>> },
    /// Apply the prepared part as planned at prepare (nothing could touch its entities or ids since).
    Commit { txn: u128, reply: AppendReply },
    /// Give up a prepared part: its claims and holds are released before `done` is answered.
    Abort { txn: u128, done: Option<oneshot::Sender<()>> },
    /// A cross-shard batch with a part here was decided: appends waiting on its entities may go.
    Decided { txn: u128 },
    /// One page of a query (`crate::query::PageMerge`).
    Query { query: Query, want: usize, at: u64, from: PageFrom, reply: oneshot::Sender<Page> },
    /// Counts of one tenant's events on this shard visible at commit number `at`.
    TenantStats { tenant_id: String, at: u64, reply: oneshot::Sender<TenantStats> },
    /// Run a task on this shard's executor (the HTTP front end lives there).
    Spawn(LocalTaskFactory),
    /// Flush, fdatasync, stop.
    Close { reply: oneshot::Sender<Result<(), ShardError>> },
    /// Stop at once without flushing: a crash, for tests.
    Halt,
    /// Write a checkpoint of everything acknowledged and synced so far, now.
    Checkpoint { reply: oneshot::Sender<u64> },
}

/// The shard an executor thread runs: its shared part (to recognise it) and its core.
type LocalShard = (Arc<ShardShared>, std::rc::Weak<RefCell<Core>>);

thread_local! {
    /// A reused buffer for index keys in `Core::plan` (which only reads the shard, so it cannot borrow
    /// the shard's own scratch buffer mutably).
    static KEY: std::cell::Cell<String> = const { std::cell::Cell::new(String::new()) };
    /// The shard this thread runs, if any: callers on it append without a channel or a wake.
    static LOCAL_SHARD: RefCell<Option<LocalShard>> = const { RefCell::new(None) };
}

/// Appends on the shard whose `shared` this is, directly, when the calling task runs on that shard's
/// executor (the HTTP handlers do); the reply comes from the same thread. Gives the append back when the
/// caller is elsewhere, the shard is closing or busy, or its staged bytes are at their bound: then it
/// goes through the shard's bounded inbox like any other.
pub(crate) fn append_local(
    shared: &Arc<ShardShared>,
    events: Vec<(usize, NewEvent)>,
    reply: Reply,
) -> Result<(), (Vec<(usize, NewEvent)>, Reply)> {
    LOCAL_SHARD.with(|local| {
        let local = local.borrow();
        let core = match local.as_ref() {
            Some((mine, core)) if Arc::ptr_eq(mine, shared) => core.upgrade(),
            _ => None,
        };
        let Some(core) = core else { return Err((events, reply)) };
        let Ok(mut core) = core.try_borrow_mut() else { return Err((events, reply)) };
        if core.closing || core.wal.staged_bytes() >= core.max_pending_bytes {
            return Err((events, reply));
        }
        core.append(events, reply);
        core.wal.flush();
        core.shared.stats.counters.direct_appends.fetch_add(1, Ordering::Relaxed);
        Ok(())
    })
}

/// Whether the calling thread runs a shard's executor (where nothing may block).
pub(crate) fn on_shard_thread() -> bool {
    LOCAL_SHARD.with(|local| local.borrow().is_some())
}

/// Builds a task on the shard's thread (its future need not be Send).
pub type LocalTaskFactory = Box<dyn FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>> + Send>;

/// Everything a shard needs to start.
pub(crate) struct ShardContext {
    pub shared: Arc<ShardShared>,
    pub wal_dir: PathBuf,
    pub fsync: FsyncMode,
    pub segment_size_bytes: u64,
    pub mid_log_corruption: MidLogCorruption,
    pub checkpoint_dir: PathBuf,
    pub checkpoints: CheckpointSettings,
    pub checkpoint_damage: CheckpointDamage,
    pub max_pending_bytes: usize,
    pub inbox: flume::Receiver<ShardMsg>,
    /// Messages that must never wait for room (see `store::ShardHandle::control`): taken before
    /// the inbox.
    pub control: flume::Receiver<ShardMsg>,
}

pub(crate) struct Waiter {
    acks: Vec<(usize, AppendAck)>,
    /// Independent events refused at once (only for `Reply::Each`).
    errors: Vec<(usize, ShardError)>,
    /// Handed back with the answer.
    spent: Spent,
    reply: Reply,
    accepted: std::time::Instant,
}

/// Why a failed shard refuses appends.
fn failed_error(shared: &ShardShared) -> Option<ShardError> {
    let disk_full = shared.failed_for_space();
    shared.failure().map(|reason| ShardError::Failed { shard: shared.index, reason: reason.to_string(), disk_full })
}

/// What the shard does when its WAL acknowledges or fails.
struct ShardSink {
    shared: Arc<ShardShared>,
    /// `FSYNC_INTERVAL=0`: what is acknowledged is fdatasynced.
    acked_is_synced: bool,
}

impl CommitSink<Waiter> for ShardSink {
    /// Makes acknowledged positions visible, then answers their waiters (so a caller reads its writes).
    fn release(&self, acked: u64, waiters: Vec<Waiter>) {
        self.shared.publish(acked);
        if self.acked_is_synced {
            // Before the parts' callers hear of it: once a caller has every ack, its batch is settled.
            self.shared.parts.on_synced(acked, &self.shared.clock);
        }
        if waiters.is_empty() {
            return;
        }
        let mut latency = self.shared.stats.latency.lock().unwrap();
        for waiter in waiters {
            latency.append_ns.saturating_record(waiter.accepted.elapsed().as_nanos() as u64);
            waiter.reply.answer(waiter.acks, waiter.errors, waiter.spent, &self.shared.clock);
        }
    }

    /// A write or fdatasync failed: nothing more is acknowledged, by this process, ever.
    fn fail(&self, error: &WalError, waiters: Vec<Waiter>) {
        self.shared.fail(error.to_string(), error.is_no_space());
        for waiter in waiters {
            waiter.reply.fail_all(|| failed_error(&self.shared).expect("just failed"));
        }
    }

    fn wrote(&self, bytes: u64) {
        self.shared.stats.counters.wal_writes.fetch_add(1, Ordering::Relaxed);
        self.shared.stats.counters.wal_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    fn synced(&self, elapsed: Duration, events: u64) {
        self.shared.stats.record_fsync(elapsed, events);
    }
}

struct Core {
    shared: Arc<ShardShared>,
    index: LocalIndex,
    next_position: u64,
    last_timestamp_us: i64,
    wal: Rc<Wal<Waiter>>,
    max_pending_bytes: usize,
    closing: bool,
    /// Reused for index keys.
    scratch: String,
    /// Cross-shard batches between Prepare and Commit/Abort: their part, its plan, and its batch.
    prepared: HashMap<u128, Prepared>,
    /// Batches whose Abort arrived before their Prepare.
    aborted_early: std::collections::HashSet<u128>,
    holds: Holds,
    checkpointer: Rc<Checkpointer>,
}

impl Core {
    fn shard(&self) -> u32 {
        self.shared.index
    }

    fn failed_error(&self) -> Option<ShardError> {
        failed_error(&self.shared)
    }

    fn tenant_stats(&self, tenant_id: &str, at: u64) -> TenantStats {
        let mut stats = self.index.tenant_stats(tenant_id);
        // The index also holds accepted events that are not acknowledged yet, and parts of cross-shard
        // batches the reader at `at` does not see: take them off.
        let visible = self.shared.visible_position();
        let hidden = self.shared.parts.hidden_ranges(visible, at);
        let not_seen = hidden.iter().flat_map(|&(first, last)| first..=last).chain(visible + 1..self.next_position);
        for position in not_seen {
            if let Some(event) = self.shared.get_any(position).filter(|e| e.tenant_id() == tenant_id) {
                stats.events -= 1;
                if let Some(n) = stats.event_types.get_mut(event.event_type()) {
                    *n -= 1;
                }
            }
        }
        stats.event_types.retain(|_, n| *n > 0);
        // Entities counted from where each first appeared; only those first seen in a hidden part need a
        // look at their other events.
        let firsts = self.index.entity_firsts(tenant_id);
        let mut entities = firsts.partition_point(|&p| p <= visible) as u64;
        for &(first, last) in &hidden {
            let lo = firsts.partition_point(|&p| p < first);
            let hi = firsts.partition_point(|&p| p <= last);
            for &position in &firsts[lo..hi] {
                let event = self.shared.get_any(position).expect("an indexed event is in the maps");
                if !self.shared.entity_seen(tenant_id, event.entity_id(), visible, at) {
                    entities -= 1;
                }
            }
        }
        stats.entities = entities;
        stats
    }

    /// What a checkpoint may cover: fdatasynced, and not at or past a part whose batch is not settled
    /// (a crash could still take one of its other parts away).
    fn checkpointable(&self) -> u64 {
        let synced = self.wal.synced();
        match self.shared.parts.checkpoint_limit() {
            Some(first) => synced.min(first - 1),
            None => synced,
        }
    }

    fn now_us(&mut self) -> i64 {
        // Server-assigned timestamps never go back within a shard, even if the clock does.
        self.last_timestamp_us = crate::time::now_us().max(self.last_timestamp_us);
        self.last_timestamp_us
    }

    /// Checks and applies one shard's part of a batch (or a group of independent events).
    fn accept(&mut self, events: Vec<(usize, NewEvent)>, reply: Reply) {
        if self.shared.failure().is_some() {
            reply.fail_all(|| self.failed_error().expect("failed"));
            return;
        }
        if let Reply::Part(_, batch) = &reply {
            if batch.aborted() {
                // Its caller gave up before every part was sent: nothing of it may be written.
                reply.fail_all(|| ShardError::Closed);
                return;
            }
        }
        match reply {
            Reply::Batch(_) | Reply::Part(..) => match self.plan(&events) {
                Ok(plan) => self.accept_planned(events, plan, reply),
                Err(err) => {
                    let mut err = Some(err);
                    reply.fail_all(|| err.take().expect("one batch, one error"));
                }
            },
            Reply::Each(_) => {
                let accepted = std::time::Instant::now();
                let (mut acks, mut errors, mut wait_for) = (Vec::with_capacity(events.len()), Vec::new(), 0u64);
                // One clock read for the group, as for a batch; each event is planned and applied on its
                // own, so a later event sees the versions an earlier one set.
                let now_us = self.now_us();
                let mut events = events;
                for k in 0..events.len() {
                    match self.plan(&events[k..=k]) {
                        Ok(plan) => wait_for = wait_for.max(self.apply(&mut events[k..=k], plan, now_us, &mut acks)),
                        Err(err) => errors.push((events[k].0, err)),
                    }
                }
                self.wait(wait_for, Waiter { acks, errors, spent: Spent::new(events), reply, accepted });
            }
        }
    }

    /// Applies a planned batch or part. A part's positions are registered as hidden until its batch
    /// commits, and its entities held against later single appends until it is decided.
    fn accept_planned(&mut self, mut events: Vec<(usize, NewEvent)>, plan: Vec<Planned>, reply: Reply) {
        let accepted = std::time::Instant::now();
        let mut acks: Vec<(usize, AppendAck)> = Vec::with_capacity(events.len());
        let first = self.next_position;
        if let Reply::Part(_, batch) = &reply {
            let new_events = plan.iter().filter(|p| matches!(p, Planned::New { .. })).count();
            if new_events > 0 && batch.writers().len() > 1 {
                // The part's durable record: recovery keeps the part only if every writer has its own.
                let header = PartHeader { batch: batch.id, events: new_events as u32, participants: batch.writers().to_vec() };
                self.wal.stage_part_header(first, &header);
            }
        }
        let now_us = self.now_us();
        let wait_for = self.apply(&mut events, plan, now_us, &mut acks);
        if let Reply::Part(_, batch) = &reply {
            if self.next_position > first {
                // Registered before anything of the part can be acknowledged, so never seen early.
                self.shared.parts.add(first, self.next_position - 1, batch.clone());
                self.checkpointer.note_part(first, self.next_position - 1, batch.id);
                // Decided already (its other parts acked first, or aborted): its Decided came before it.
                if !batch.decided_yet() {
                    self.holds.hold_undecided(batch.id, first, self.next_position - 1);
                }
            } else {
                // Only repeats of stored events: nothing here to sync or to hide.
                batch.part_synced();
            }
        }
        self.wait(wait_for, Waiter { acks, errors: Vec::new(), spent: Spent::new(events), reply, accepted });
    }

    fn wait(&self, wait_for: u64, waiter: Waiter) {
        if let Some(waiter) = self.wal.wait(wait_for, waiter) {
            waiter.reply.answer(waiter.acks, waiter.errors, waiter.spent, &self.shared.clock);
        }
    }

    /// Applies planned events: either all of the new ones are accepted (one contiguous range of
    /// positions, framed as one batch) or, on a plan error before this, none is. New events without a
    /// timestamp get `now_us`. Pushes an ack per event and returns the position the last one needs.
    fn apply(
        &mut self,
        events: &mut [(usize, NewEvent)],
        plan: Vec<Planned>,
        now_us: i64,
        acks: &mut Vec<(usize, AppendAck)>,
    ) -> u64 {
        let new_count = plan.iter().filter(|p| matches!(p, Planned::New { .. })).count();
        let batch_has_ids = plan.iter().any(|p| matches!(p, Planned::SameBatch(_)));
        let mut wait_for = 0u64;
        let mut written = 0usize;
        // Acks of this batch's new events by id, for repeats of an id within the batch.
        let mut new_acks: HashMap<Uuid, usize, RandomState> = HashMap::default();
        for ((index, event), planned) in events.iter_mut().zip(plan) {
            let index = *index;
            let ack = match planned {
                Planned::Existing(position) => {
                    let stored = self.shared.get_any(position).expect("indexed event exists");
                    ack_of(self.shard(), &stored, true)
                }
                Planned::SameBatch(id) => AppendAck { duplicate: true, ..acks[new_acks[&id]].1.clone() },
                Planned::New { version } => {
                    written += 1;
                    let stored = self.encode(event, version, now_us);
                    self.wal.stage(stored.position(), stored.bytes(), written < new_count);
                    let ack = ack_of(self.shard(), &stored, false);
                    if batch_has_ids {
                        new_acks.insert(ack.id, acks.len());
                    }
                    self.index.add(stored, &mut self.scratch, &self.shared);
                    ack
                }
            };
            wait_for = wait_for.max(ack.position);
            acks.push((index, ack));
        }
        self.shared.stats.counters.events_appended.fetch_add(written as u64, Ordering::Relaxed);
        wait_for
    }

    fn append(&mut self, events: Vec<(usize, NewEvent)>, reply: Reply) {
        let part = matches!(reply, Reply::Part(..));
        if self.holds.may_block(part) {
            let keys = entity_hashes(&events);
            let shared = &self.shared;
            let scratch = &mut self.scratch;
            if self.holds.blocks(&events, &keys, part, &mut |t, e| shared.entity_last_position_any(write_key(scratch, t, e))) {
                self.holds.park(events, reply, keys);
                return;
            }
        }
        self.accept(events, reply);
    }

    fn prepare(&mut self, batch: Arc<BatchState>, events: Vec<(usize, NewEvent)>) -> Result<usize, ShardError> {
        if let Some(err) = self.failed_error() {
            return Err(err);
        }
        if self.aborted_early.remove(&batch.id) {
            // Its Abort overtook it on the control channel (another shard voted no first).
            return Err(ShardError::Closed);
        }
        let keys = entity_hashes(&events);
        if self.holds.held_by_prepared(&keys).is_some() {
            let (index, event) = events
                .iter()
                .find(|(_, e)| self.holds.held_by_prepared(&[super::holds::entity_hash(&e.tenant_id, &e.entity_id)]).is_some())
                .expect("a held entity");
            return Err(ShardError::Contended { index: *index, tenant_id: event.tenant_id.clone(), entity_id: event.entity_id.clone() });
        }
        let plan = self.plan(&events)?;
        let claimed = events.iter().filter_map(|(_, e)| e.id).filter(|id| self.shared.id_owner(id) == Some((self.shard(), RESERVED))).collect();
        self.holds.hold_prepared(batch.id, keys);
        let new_events = plan.iter().filter(|p| matches!(p, Planned::New { .. })).count();
        self.prepared.insert(batch.id, Prepared { events, plan, batch, claimed });
        Ok(new_events)
    }

    /// Applies a prepared part as planned (never re-planned: its entities and ids were held since).
    fn commit(&mut self, txn: u128, reply: AppendReply) {
        self.holds.release(txn);
        match self.prepared.remove(&txn) {
            Some(p) if self.shared.failure().is_none() => self.accept_planned(p.events, p.plan, Reply::Part(reply, p.batch)),
            Some(p) => Reply::Part(reply, p.batch).fail_all(|| self.failed_error().expect("failed")),
            None => {
                let _ = reply.send(Err(ShardError::Closed));
            }
        }
        self.unpark();
    }

    /// Releases a prepared part's claims and holds; `done` hears when they are gone. A Prepare not yet
    /// taken will claim nothing, so that case is done at once too.
    fn abort(&mut self, txn: u128, done: Option<oneshot::Sender<()>>) {
        self.holds.release(txn);
        match self.prepared.remove(&txn) {
            Some(p) => p.claimed.iter().for_each(|id| self.shared.release_id(id)),
            // Abort is only sent to shards its Prepare was sent to: that Prepare is still queued.
            None => {
                self.aborted_early.insert(txn);
            }
        }
        if let Some(done) = done {
            let _ = done.send(());
        }
        self.unpark();
    }

    /// A batch with a part here was decided: its entities are free for single appends again.
    fn decided(&mut self, txn: u128) {
        if let Some((first, last)) = self.shared.parts.aborted_part(txn) {
            // Before the appends it held go on.
            self.shared.roll_back_versions(first, last, &mut self.scratch);
        }
        self.holds.release(txn);
        self.shared.parts.on_synced(self.wal.synced(), &self.shared.clock);
        self.unpark();
    }

    fn unpark(&mut self) {
        let shared = &self.shared;
        let scratch = &mut self.scratch;
        for parked in self.holds.unblocked(|t, e| shared.entity_last_position_any(write_key(scratch, t, e))) {
            self.append(parked.events, parked.reply);
        }
    }

    /// Encodes an event into the shard's arena. Its strings are lent to the encoder and put back, so
    /// the caller's thread frees them (see [`Spent`]).
    fn encode(&mut self, event: &mut NewEvent, version: u64, now_us: i64) -> StoredEvent {
        let position = self.next_position;
        self.next_position += 1;
        let timestamp_us = event.timestamp_us.unwrap_or(now_us);
        let lent = Event {
            position,
            timestamp_us,
            version,
            id: *event.id.unwrap_or_else(|| self.shared.new_id(position, now_us)).as_bytes(),
            tenant_id: std::mem::take(&mut event.tenant_id),
            entity_id: std::mem::take(&mut event.entity_id),
            event_type: std::mem::take(&mut event.event_type),
            payload: std::mem::take(&mut event.payload),
            metadata: event.metadata.take(),
        };
        let stored = StoredEvent::encode(&lent);
        (event.tenant_id, event.entity_id, event.event_type, event.payload, event.metadata) =
            (lent.tenant_id, lent.entity_id, lent.event_type, lent.payload, lent.metadata);
        stored
    }

    /// Decides, without changing anything, what each event becomes; fails the whole part on a version or
    /// id conflict.
    fn plan(&self, events: &[(usize, NewEvent)]) -> Result<Vec<Planned>, ShardError> {
        // Within a batch, later events of an entity see the versions earlier ones take; a lone event
        // needs no such map (and no allocation for it).
        let several = events.len() > 1;
        let mut versions: HashMap<(&str, &str), u64, RandomState> = HashMap::default();
        let mut key = KEY.take();
        let mut ids: HashMap<Uuid, (&str, &str), RandomState> = HashMap::default();
        let mut plan = Vec::with_capacity(events.len());
        let mut claimed: Vec<Uuid> = Vec::new();
        let give_back = |claimed: &[Uuid]| claimed.iter().for_each(|id| self.shared.release_id(id));
        for (index, event) in events {
            if let Some(id) = event.id {
                if let Some(owner) = ids.get(&id) {
                    if *owner != (event.tenant_id.as_str(), event.entity_id.as_str()) {
                        give_back(&claimed);
                        return Err(ShardError::IdConflict { id, index: *index });
                    }
                    plan.push(Planned::SameBatch(id));
                    continue;
                }
                // The store's id index decides, in one atomic step for all shards: stored here (a retry),
                // claimed by a prepared batch here (contended), elsewhere (a conflict), or ours now.
                let found = match self.shared.id_owner(&id) {
                    None => match self.shared.claim_id(id) {
                        Ok(()) => {
                            claimed.push(id);
                            None
                        }
                        Err(owner) => Some(owner),
                    },
                    owner => owner,
                };
                match found {
                    None => {}
                    Some((shard, position)) if shard == self.shard() && position != RESERVED => {
                        let existing = self.shared.get_any(position).expect("indexed event exists");
                        if existing.tenant_id() != event.tenant_id || existing.entity_id() != event.entity_id {
                            give_back(&claimed);
                            return Err(ShardError::IdConflict { id, index: *index });
                        }
                        plan.push(Planned::Existing(position));
                        continue;
                    }
                    Some((shard, _)) if shard == self.shard() => {
                        give_back(&claimed);
                        return Err(ShardError::Contended {
                            index: *index,
                            tenant_id: event.tenant_id.clone(),
                            entity_id: event.entity_id.clone(),
                        });
                    }
                    Some(_) => {
                        give_back(&claimed);
                        return Err(ShardError::IdConflict { id, index: *index });
                    }
                }
                if several {
                    ids.insert(id, (&event.tenant_id, &event.entity_id));
                }
            }
            let entity = (event.tenant_id.as_str(), event.entity_id.as_str());
            let current = match versions.get(&entity) {
                Some(v) => *v,
                None => self.shared.entity_version_any(write_key(&mut key, entity.0, entity.1)),
            };
            if let Some(expected) = event.expected_version {
                if expected != current {
                    give_back(&claimed);
                    KEY.set(key);
                    return Err(ShardError::VersionConflict {
                        index: *index,
                        tenant_id: event.tenant_id.clone(),
                        entity_id: event.entity_id.clone(),
                        expected,
                        current,
                    });
                }
            }
            if several {
                versions.insert(entity, current + 1);
            }
            plan.push(Planned::New { version: current + 1 });
        }
        KEY.set(key);
        Ok(plan)
    }
}

struct Prepared {
    events: Vec<(usize, NewEvent)>,
    plan: Vec<Planned>,
    batch: Arc<BatchState>,
    /// Ids this part claimed in the store's id index (given back on abort).
    claimed: Vec<Uuid>,
}

enum Planned {
    New { version: u64 },
    /// Already stored (idempotent retry): answer with the original.
    Existing(u64),
    /// The same id earlier in this batch.
    SameBatch(Uuid),
}

fn ack_of(shard: u32, event: &StoredEvent, duplicate: bool) -> AppendAck {
    AppendAck {
        id: event.id(),
        shard,
        position: event.position(),
        version: event.version(),
        timestamp_us: event.timestamp_us(),
        duplicate,
    }
}

/// How a shard and the store talk while the store opens: the shard sends its scan (phase one), waits
/// for the store's decisions on cross-shard batches, loads, and sends its report (phase two).
pub(crate) struct Opening {
    pub scanned: oneshot::Sender<Result<ShardScan, ShardError>>,
    pub decisions: oneshot::Receiver<Arc<Decisions>>,
    pub recovered: oneshot::Sender<Result<RecoveryReport, ShardError>>,
}

/// Recovers the shard (in two phases, see `recover.rs`), reports, then serves until closed. Runs on the
/// shard's executor.
pub(crate) async fn run_shard<S: WalStorage>(storage: S, ctx: ShardContext, opening: Opening) {
    let storage = Rc::new(storage);
    let shared = ctx.shared.clone();
    // Watched from the start (recovery included) until this function returns, whichever way.
    shared.wake.enter();
    let _left = LeaveOnDrop(shared.clone());
    let _beat = glommio::spawn_local({
        let shared = shared.clone();
        async move { shared.wake.beat_forever().await }
    });
    let scanned = match scan_shard(&*storage, &ctx).await {
        Ok((scanned, scan)) => {
            let _ = opening.scanned.send(Ok(scan));
            scanned
        }
        Err(e) => {
            let _ = opening.scanned.send(Err(e));
            return;
        }
    };
    // Waits without blocking the executor; the store drops the sender if another shard failed to scan.
    let Ok(decisions) = opening.decisions.await else {
        let _ = opening.recovered.send(Err(ShardError::Closed));
        return;
    };
    let recovered = scanned.load(&shared, &decisions);
    drop(decisions);
    let report = recovered.report;
    let checkpointer = Rc::new(Checkpointer::new(
        ctx.checkpoint_dir.clone(),
        ctx.wal_dir.clone(),
        shared.clone(),
        ctx.checkpoints,
        recovered.manifest,
    ));
    for (first, last, batch) in recovered.parts {
        checkpointer.note_part(first, last, batch);
    }
    let writer = WalWriter::new(storage, ctx.wal_dir.clone(), shared.index, ctx.segment_size_bytes, recovered.open_segment);
    let sink: Rc<dyn CommitSink<Waiter>> = Rc::new(ShardSink { shared: shared.clone(), acked_is_synced: matches!(ctx.fsync, FsyncMode::Always) });
    let wal = Rc::new(Wal::start(writer, ctx.fsync, report.last_position, sink));
    let core = Rc::new(RefCell::new(Core {
        shared: shared.clone(),
        index: recovered.index,
        next_position: report.last_position + 1,
        last_timestamp_us: recovered.last_timestamp_us,
        wal: wal.clone(),
        max_pending_bytes: ctx.max_pending_bytes,
        closing: false,
        scratch: String::new(),
        prepared: HashMap::new(),
        aborted_early: Default::default(),
        holds: Holds::default(),
        checkpointer: checkpointer.clone(),
    }));
    let _ = opening.recovered.send(Ok(report));

    LOCAL_SHARD.with(|local| *local.borrow_mut() = Some((shared.clone(), Rc::downgrade(&core))));
    let checkpoints = glommio::spawn_local(checkpoint_task(core.clone(), checkpointer));
    acceptor(core, wal, ctx.inbox, ctx.control, ctx.max_pending_bytes).await;
    LOCAL_SHARD.with(|local| local.borrow_mut().take());
    drop(checkpoints);
}

/// Takes the shard out of the store's wake watch when `run_shard` ends.
struct LeaveOnDrop(Arc<ShardShared>);

impl Drop for LeaveOnDrop {
    fn drop(&mut self) {
        self.0.wake.leave();
    }
}

async fn acceptor(
    core: Rc<RefCell<Core>>,
    wal: Rc<Wal<Waiter>>,
    inbox: flume::Receiver<ShardMsg>,
    control: flume::Receiver<ShardMsg>,
    max_pending_bytes: usize,
) {
    let handle = |msg: ShardMsg| {
        let (core, wal, inbox) = (&core, &wal, &inbox);
        async move {
            match msg {
                ShardMsg::Append { events, reply } => core.borrow_mut().append(events, Reply::Batch(reply)),
                ShardMsg::AppendPart { events, reply, batch } => core.borrow_mut().append(events, Reply::Part(reply, batch)),
                ShardMsg::AppendEach { events, reply } => core.borrow_mut().append(events, Reply::Each(reply)),
                ShardMsg::Prepare { batch, events, reply } => {
                    let _ = reply.send(core.borrow_mut().prepare(batch, events));
                }
                ShardMsg::Commit { txn, reply } => core.borrow_mut().commit(txn, reply),
                ShardMsg::Spawn(factory) => {
                    glommio::spawn_local(factory()).detach();
                }
                ShardMsg::Abort { txn, done } => core.borrow_mut().abort(txn, done),
                ShardMsg::Decided { txn } => core.borrow_mut().decided(txn),
                ShardMsg::Query { query, want, at, from, reply } => {
                    let core = core.borrow();
                    let started = std::time::Instant::now();
                    let page = core.index.query(&core.shared, &query, want, at, from);
                    core.shared.stats.record_query(started.elapsed());
                    let _ = reply.send(page);
                }
                ShardMsg::TenantStats { tenant_id, at, reply } => {
                    let _ = reply.send(core.borrow().tenant_stats(&tenant_id, at));
                }
                ShardMsg::Close { reply } => {
                    // Close comes on the control channel, possibly ahead of appends already queued: take
                    // those first (no new ones can arrive, the store refuses sends once closing), so
                    // every caller gets an answer.
                    while let Ok(msg) = inbox.try_recv() {
                        if let Some(reply) = queued_before_close(core, msg) {
                            let _ = reply.send(Err(ShardError::Closed));
                        }
                    }
                    core.borrow_mut().closing = true;
                    let closed = match wal.close().await {
                        Ok(()) => {
                            // Everything is synced: a last checkpoint makes the next open fast.
                            checkpoint_now(core).await;
                            Ok(())
                        }
                        Err(e) => Err(core.borrow().failed_error().unwrap_or_else(|| e.into())),
                    };
                    let _ = reply.send(closed);
                    return true;
                }
                ShardMsg::Checkpoint { reply } => {
                    let _ = reply.send(checkpoint_now(core).await);
                }
                ShardMsg::Halt => {
                    // Halt comes on the control channel, possibly ahead of queued messages: drop them, so
                    // their callers hear `Closed` (the store's senders keep the channel, and them, alive).
                    while inbox.try_recv().is_ok() {}
                    wal.halt().await;
                    return true;
                }
            }
            false
        }
    };
    // With every sender gone nobody waits for an answer: close all the same.
    let closed = || ShardMsg::Close { reply: oneshot::channel().0 };
    loop {
        let next = match control.try_recv() {
            Ok(msg) => msg,
            Err(_) => futures_lite::future::or(control.recv_async(), inbox.recv_async()).await.unwrap_or_else(|_| closed()),
        };
        if handle(next).await {
            return;
        }
        // Whatever else is queued joins the same WAL write.
        while wal.staged_bytes() < max_pending_bytes {
            let Ok(msg) = control.try_recv().or_else(|_| inbox.try_recv()) else { break };
            if handle(msg).await {
                return;
            }
        }
        wal.flush();
        // Back-pressure: take no more until the writer has drained (callers wait on the bounded inbox).
        while wal.staged_bytes() >= max_pending_bytes && core.borrow().shared.failure().is_none() {
            wal.wait_for_space().await;
        }
        futures_lite::future::yield_now().await;
    }
}

/// A message found in the inbox when Close arrived: appends and reads are still served (the WAL is
/// about to be flushed and synced); anything else gets its reply back to be answered `Closed`.
fn queued_before_close(core: &Rc<RefCell<Core>>, msg: ShardMsg) -> Option<oneshot::Sender<Result<usize, ShardError>>> {
    match msg {
        ShardMsg::Append { events, reply } => core.borrow_mut().append(events, Reply::Batch(reply)),
        ShardMsg::AppendPart { events, reply, batch } => core.borrow_mut().append(events, Reply::Part(reply, batch)),
        ShardMsg::AppendEach { events, reply } => core.borrow_mut().append(events, Reply::Each(reply)),
        ShardMsg::Prepare { reply, .. } => return Some(reply),
        ShardMsg::Commit { txn, reply } => core.borrow_mut().commit(txn, reply),
        ShardMsg::Abort { txn, done } => core.borrow_mut().abort(txn, done),
        ShardMsg::Decided { txn } => core.borrow_mut().decided(txn),
        ShardMsg::Query { query, want, at, from, reply } => {
            let core = core.borrow();
            let _ = reply.send(core.index.query(&core.shared, &query, want, at, from));
        }
        ShardMsg::TenantStats { tenant_id, at, reply } => {
            let _ = reply.send(core.borrow().tenant_stats(&tenant_id, at));
        }
        ShardMsg::Checkpoint { reply } => {
            let _ = reply.send(core.borrow().checkpointer.covered_position());
        }
        ShardMsg::Spawn(_) | ShardMsg::Close { .. } | ShardMsg::Halt => {}
    }
    None
}

/// Checkpoints everything synced so far; returns the position the checkpoints cover afterwards.
async fn checkpoint_now(core: &Rc<RefCell<Core>>) -> u64 {
    let (checkpointer, synced) = {
        let core = core.borrow();
        core.shared.parts.on_synced(core.wal.synced(), &core.shared.clock);
        (core.checkpointer.clone(), core.checkpointable())
    };
    checkpointer.run(synced).await;
    checkpointer.covered_position()
}

/// Writes checkpoints when they are due (checked a few times a second), and first deletes WAL segments
/// a checkpoint covered before the process last stopped.
async fn checkpoint_task(core: Rc<RefCell<Core>>, checkpointer: Rc<Checkpointer>) {
    if let Err(e) = checkpointer.trim_wal().await {
        tracing::error!(shard = core.borrow().shard(), "deleting covered WAL segments failed: {e}");
    }
    loop {
        glommio::timer::sleep(Duration::from_millis(200)).await;
        let synced = {
            let core = core.borrow();
            if core.shared.failure().is_some() || core.closing {
                return;
            }
            core.shared.parts.on_synced(core.wal.synced(), &core.shared.clock);
            core.checkpointable()
        };
        if checkpointer.due(synced) {
            checkpointer.run(synced).await;
        } else if checkpointer.trim_due() {
            // The object store caught up with a checkpoint written earlier.
            if let Err(e) = checkpointer.trim_wal().await {
                tracing::error!(shard = core.borrow().shard(), "deleting covered WAL segments failed: {e}");
            }
        }
    }
}
