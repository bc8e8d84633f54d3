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
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use uuid::Uuid;

use super::checkpointer::Checkpointer;
use super::index::LocalIndex;
use super::shared::{write_key, ShardShared};
use crate::checkpoint::{load_checkpoints, CheckpointDamage, CheckpointSettings};
use crate::coordinator::AppendAck;
use crate::error::Error;
use crate::event::{Event, NewEvent, StoredEvent};
use crate::query::{Query, TenantStats};
use crate::wal::io::{WalFile, WalStorage};
use crate::wal::record::append_frame;
use crate::wal::recovery::{recover, MidLogCorruption, RecoveryReport};
use crate::wal::segment::list_segments;
use crate::wal::writer::{CurrentFile, WalWriter};
use crate::wal::{FsyncMode, GroupCommit, WalError};

/// Each event with its index in the client's batch.
pub type AppendReply = oneshot::Sender<Result<Vec<(usize, AppendAck)>, Error>>;

pub(crate) enum ShardMsg {
    Append { events: Vec<(usize, NewEvent)>, reply: AppendReply },
    /// Phase one of a batch that spans shards and carries expected versions: check this shard's part
    /// and hold its entities until `Commit` or `Abort`. Refused at once, never queued, if another such
    /// batch holds one of them, so two batches cannot wait on each other.
    Prepare { txn: u64, events: Vec<(usize, NewEvent)>, reply: oneshot::Sender<Result<(), Error>> },
    /// Append the prepared part (its checks still hold: nothing else could touch its entities).
    Commit { txn: u64, reply: AppendReply },
    Abort { txn: u64 },
    Query { query: Query, want: usize, reply: oneshot::Sender<Vec<StoredEvent>> },
    /// Counts of one tenant's acknowledged events on this shard.
    TenantStats { tenant_id: String, reply: oneshot::Sender<TenantStats> },
    /// Run a task on this shard's executor (the HTTP front end lives there).
    Spawn(LocalTaskFactory),
    /// Flush, fdatasync, stop.
    Close { reply: oneshot::Sender<Result<(), Error>> },
    /// Stop at once without flushing: a crash, for tests.
    Halt,
    /// Write a checkpoint of everything acknowledged and synced so far, now.
    Checkpoint { reply: oneshot::Sender<u64> },
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
}

struct Waiter {
    acks: Vec<(usize, AppendAck)>,
    reply: AppendReply,
    accepted: std::time::Instant,
}

/// Records accepted but not yet handed to the WAL.
#[derive(Default)]
struct Pending {
    frames: Vec<u8>,
    first_position: u64,
    last_position: u64,
}

struct Core {
    shared: Arc<ShardShared>,
    index: LocalIndex,
    next_position: u64,
    last_timestamp_us: i64,
    pending: Pending,
    commit: GroupCommit<Waiter>,
    closing: bool,
    /// Reused for index keys.
    scratch: String,
    /// Cross-shard batches between Prepare and Commit/Abort, and the entities they hold.
    prepared: HashMap<u64, Vec<(usize, NewEvent)>>,
    held: HashMap<(String, String), u64>,
    /// Appends to held entities, in arrival order, until their entities are released.
    parked: std::collections::VecDeque<(Vec<(usize, NewEvent)>, AppendReply)>,
    checkpointer: Rc<Checkpointer>,
}

impl Core {
    fn shard(&self) -> u32 {
        self.shared.index
    }

    fn failed_error(&self) -> Option<Error> {
        let disk_full = self.shared.failed_for_space();
        self.shared.failure().map(|reason| Error::ShardFailed { shard: self.shard(), reason: reason.to_string(), disk_full })
    }

    /// Makes acknowledged positions visible, then answers their waiters (so a caller reads its writes).
    fn release(&mut self, waiters: Vec<Waiter>) {
        self.shared.publish(self.commit.acked());
        if waiters.is_empty() {
            return;
        }
        let mut latency = self.shared.stats.latency.lock().unwrap();
        for waiter in waiters {
            latency.append_ns.saturating_record(waiter.accepted.elapsed().as_nanos() as u64);
            let _ = waiter.reply.send(Ok(waiter.acks));
        }
    }

    /// A write or fdatasync failed: nothing more is acknowledged, by this process, ever.
    fn fail(&mut self, error: &WalError) {
        self.shared.fail(error.to_string(), error.is_no_space());
        self.pending = Pending::default();
        for waiter in self.commit.drain_all() {
            let _ = waiter.reply.send(Err(self.failed_error().expect("just failed")));
        }
    }

    fn tenant_stats(&self, tenant_id: &str) -> TenantStats {
        let mut stats = self.index.tenant_stats(tenant_id);
        // The index also holds accepted events that are not acknowledged yet: take them off.
        for position in self.shared.visible_position() + 1..self.next_position {
            if let Some(event) = self.shared.get_any(position).filter(|e| e.tenant_id() == tenant_id) {
                stats.events -= 1;
                if let Some(n) = stats.event_types.get_mut(event.event_type()) {
                    *n -= 1;
                }
            }
        }
        stats.event_types.retain(|_, n| *n > 0);
        stats.entities = self.shared.entity_count(tenant_id);
        stats
    }

    fn now_us(&mut self) -> i64 {
        // Server-assigned timestamps never go back within a shard, even if the clock does.
        self.last_timestamp_us = crate::time::now_us().max(self.last_timestamp_us);
        self.last_timestamp_us
    }

    /// Checks and applies one shard's part of a batch. Either all of its new events are accepted (one
    /// contiguous range of positions, framed as one batch) or none is.
    fn accept(&mut self, events: Vec<(usize, NewEvent)>, reply: AppendReply) {
        if let Some(err) = self.failed_error() {
            let _ = reply.send(Err(err));
            return;
        }
        let plan = match self.plan(&events) {
            Ok(plan) => plan,
            Err(err) => {
                let _ = reply.send(Err(err));
                return;
            }
        };
        let new_count = plan.iter().filter(|p| matches!(p, Planned::New { .. })).count();
        let batch_has_ids = plan.iter().any(|p| matches!(p, Planned::SameBatch(_)));
        let mut acks: Vec<(usize, AppendAck)> = Vec::with_capacity(events.len());
        let mut wait_for = 0u64;
        let mut written = 0usize;
        // Acks of this batch's new events by id, for repeats of an id within the batch.
        let mut new_acks: HashMap<Uuid, usize, RandomState> = HashMap::default();
        for ((index, event), planned) in events.into_iter().zip(plan) {
            let ack = match planned {
                Planned::Existing(position) => {
                    let stored = self.shared.get_any(position).expect("indexed event exists");
                    ack_of(self.shard(), &stored, true)
                }
                Planned::SameBatch(id) => AppendAck { duplicate: true, ..acks[new_acks[&id]].1.clone() },
                Planned::New { version } => {
                    written += 1;
                    let stored = self.encode(event, version);
                    append_frame(&mut self.pending.frames, stored.bytes(), written < new_count);
                    let ack = ack_of(self.shard(), &stored, false);
                    if batch_has_ids {
                        new_acks.insert(ack.id, acks.len());
                    }
                    self.index.insert(&stored, &mut self.scratch);
                    self.shared.insert(stored, &mut self.scratch);
                    ack
                }
            };
            wait_for = wait_for.max(ack.position);
            acks.push((index, ack));
        }
        self.shared.stats.events_appended.fetch_add(written as u64, Ordering::Relaxed);
        let waiter = Waiter { acks, reply, accepted: std::time::Instant::now() };
        if let Some(waiter) = self.commit.wait(wait_for, waiter) {
            let _ = waiter.reply.send(Ok(waiter.acks));
        }
    }

    /// The first event of `events` whose entity a prepared cross-shard batch holds.
    fn held_by_other<'a>(&self, events: &'a [(usize, NewEvent)]) -> Option<&'a (usize, NewEvent)> {
        if self.held.is_empty() {
            return None;
        }
        events.iter().find(|(_, e)| self.held.contains_key(&(e.tenant_id.clone(), e.entity_id.clone())))
    }

    fn append(&mut self, events: Vec<(usize, NewEvent)>, reply: AppendReply) {
        if self.held_by_other(&events).is_some() || !self.parked.is_empty() {
            // Keep arrival order: once anything waits, later appends wait behind it.
            self.parked.push_back((events, reply));
        } else {
            self.accept(events, reply);
        }
    }

    fn prepare(&mut self, txn: u64, events: Vec<(usize, NewEvent)>) -> Result<(), Error> {
        if let Some(err) = self.failed_error() {
            return Err(err);
        }
        if let Some((index, event)) = self.held_by_other(&events) {
            return Err(Error::Contended {
                index: *index,
                tenant_id: event.tenant_id.clone(),
                entity_id: event.entity_id.clone(),
            });
        }
        self.plan(&events)?;
        for (_, event) in &events {
            self.held.insert((event.tenant_id.clone(), event.entity_id.clone()), txn);
        }
        self.prepared.insert(txn, events);
        Ok(())
    }

    /// Ends a prepared batch (appending it on commit), then lets waiting appends through.
    fn finish(&mut self, txn: u64, commit: Option<AppendReply>) {
        let events = self.prepared.remove(&txn);
        self.held.retain(|_, t| *t != txn);
        match (events, commit) {
            (Some(events), Some(reply)) => self.accept(events, reply),
            (None, Some(reply)) => {
                let _ = reply.send(Err(Error::Closed));
            }
            (_, None) => {}
        }
        while let Some((events, _)) = self.parked.front() {
            if self.held_by_other(events).is_some() {
                break;
            }
            let (events, reply) = self.parked.pop_front().expect("front exists");
            self.accept(events, reply);
        }
    }

    fn encode(&mut self, event: NewEvent, version: u64) -> StoredEvent {
        let position = self.next_position;
        self.next_position += 1;
        if self.pending.frames.is_empty() {
            self.pending.first_position = position;
        }
        self.pending.last_position = position;
        let timestamp_us = match event.timestamp_us {
            Some(ts) => ts,
            None => self.now_us(),
        };
        StoredEvent::encode(&Event {
            position,
            timestamp_us,
            version,
            id: *event.id.unwrap_or_else(Uuid::now_v7).as_bytes(),
            tenant_id: event.tenant_id,
            entity_id: event.entity_id,
            event_type: event.event_type,
            payload: event.payload,
            metadata: event.metadata,
        })
    }

    /// Decides, without changing anything, what each event becomes; fails the whole part on a version or
    /// id conflict.
    fn plan(&self, events: &[(usize, NewEvent)]) -> Result<Vec<Planned>, Error> {
        let mut versions: HashMap<(&str, &str), u64, RandomState> = HashMap::default();
        let mut key = String::new();
        let mut ids: HashMap<Uuid, (&str, &str), RandomState> = HashMap::default();
        let mut plan = Vec::with_capacity(events.len());
        for (index, event) in events {
            if let Some(id) = event.id {
                if let Some(position) = self.shared.position_of_any(&id) {
                    let existing = self.shared.get_any(position).expect("indexed event exists");
                    if existing.tenant_id() != event.tenant_id || existing.entity_id() != event.entity_id {
                        return Err(Error::IdConflict { id, index: *index });
                    }
                    plan.push(Planned::Existing(position));
                    continue;
                }
                if let Some(owner) = ids.get(&id) {
                    if *owner != (event.tenant_id.as_str(), event.entity_id.as_str()) {
                        return Err(Error::IdConflict { id, index: *index });
                    }
                    plan.push(Planned::SameBatch(id));
                    continue;
                }
                ids.insert(id, (&event.tenant_id, &event.entity_id));
            }
            let entity = (event.tenant_id.as_str(), event.entity_id.as_str());
            let current = match versions.get(&entity) {
                Some(v) => *v,
                None => self.shared.entity_version_any(write_key(&mut key, entity.0, entity.1)),
            };
            if let Some(expected) = event.expected_version {
                if expected != current {
                    return Err(Error::VersionConflict {
                        index: *index,
                        tenant_id: event.tenant_id.clone(),
                        entity_id: event.entity_id.clone(),
                        expected,
                        current,
                    });
                }
            }
            versions.insert(entity, current + 1);
            plan.push(Planned::New { version: current + 1 });
        }
        Ok(plan)
    }
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

/// Recovers the shard, reports, then serves until closed. Runs on the shard's executor.
pub(crate) async fn run_shard<S: WalStorage>(
    storage: S,
    ctx: ShardContext,
    on_recovered: impl FnOnce(Result<RecoveryReport, Error>),
) {
    let storage = Rc::new(storage);
    let shared = ctx.shared.clone();
    let mut index = LocalIndex::default();
    let mut last_timestamp_us = i64::MIN;
    let mut scratch = String::new();
    if let Err(e) = std::fs::create_dir_all(&ctx.wal_dir) {
        on_recovered(Err(Error::io(format!("create {}", ctx.wal_dir.display()), e)));
        return;
    }
    let mut insert = |event: StoredEvent| {
        last_timestamp_us = last_timestamp_us.max(event.timestamp_us());
        index.insert(&event, &mut scratch);
        shared.insert(event, &mut scratch);
    };
    // Checkpoints first (in position order), then the WAL after the position they cover.
    let wal_first_position = match list_segments(&ctx.wal_dir) {
        Ok(segments) => segments.first().map(|(first, _)| *first),
        Err(e) => {
            on_recovered(Err(Error::io(format!("list {}", ctx.wal_dir.display()), e)));
            return;
        }
    };
    let loaded = match load_checkpoints(&ctx.checkpoint_dir, shared.index, ctx.checkpoint_damage, wal_first_position, &mut insert) {
        Ok(loaded) => loaded,
        Err(e) => {
            on_recovered(Err(e.into()));
            return;
        }
    };
    let recovered = recover(&*storage, &ctx.wal_dir, shared.index, ctx.mid_log_corruption, loaded.summary.covered_position, insert).await;
    let (mut report, open_segment) = match recovered {
        Ok(r) => r,
        Err(e) => {
            on_recovered(Err(e.into()));
            return;
        }
    };
    report.checkpoints = loaded.summary;
    shared.recovered(report.events(), report.last_position);
    let checkpointer = Rc::new(Checkpointer::new(
        ctx.checkpoint_dir.clone(),
        ctx.wal_dir.clone(),
        shared.clone(),
        ctx.checkpoints,
        loaded.manifest,
    ));
    let core = Rc::new(RefCell::new(Core {
        shared: shared.clone(),
        index,
        next_position: report.last_position + 1,
        last_timestamp_us,
        pending: Pending::default(),
        commit: GroupCommit::new(ctx.fsync, report.last_position),
        closing: false,
        scratch,
        prepared: HashMap::new(),
        held: HashMap::new(),
        parked: Default::default(),
        checkpointer: checkpointer.clone(),
    }));
    on_recovered(Ok(report));

    let wal = WalWriter::new(storage, ctx.wal_dir.clone(), shared.index, ctx.segment_size_bytes, open_segment);
    let current_file = wal.current_file();
    let (wake_tx, wake_rx) = local_channel::new_bounded::<()>(1);
    let (space_tx, space_rx) = local_channel::new_bounded::<()>(1);
    let (done_tx, done_rx) = local_channel::new_bounded::<Result<(), Error>>(1);
    let writer = glommio::spawn_local(writer_task(core.clone(), wal, wake_rx, space_tx, done_tx));
    let syncer = match ctx.fsync {
        FsyncMode::IntervalMs(ms) => Some(glommio::spawn_local(syncer_task(core.clone(), current_file, ms))),
        FsyncMode::Always => None,
    };

    let checkpoints = glommio::spawn_local(checkpoint_task(core.clone(), checkpointer));

    acceptor(core, ctx.inbox, ctx.max_pending_bytes, wake_tx, space_rx, done_rx).await;
    drop(checkpoints);
    drop(writer);
    drop(syncer);
}

async fn acceptor(
    core: Rc<RefCell<Core>>,
    inbox: flume::Receiver<ShardMsg>,
    max_pending_bytes: usize,
    wake: LocalSender<()>,
    space: LocalReceiver<()>,
    done: LocalReceiver<Result<(), Error>>,
) {
    let handle = |msg: ShardMsg| {
        let (core, wake, done) = (&core, &wake, &done);
        async move {
            match msg {
                ShardMsg::Append { events, reply } => core.borrow_mut().append(events, reply),
                ShardMsg::Prepare { txn, events, reply } => {
                    let _ = reply.send(core.borrow_mut().prepare(txn, events));
                }
                ShardMsg::Commit { txn, reply } => core.borrow_mut().finish(txn, Some(reply)),
                ShardMsg::Spawn(factory) => {
                    glommio::spawn_local(factory()).detach();
                }
                ShardMsg::Abort { txn } => core.borrow_mut().finish(txn, None),
                ShardMsg::Query { query, want, reply } => {
                    let core = core.borrow();
                    let started = std::time::Instant::now();
                    let events = core.index.query(&core.shared, &query, want);
                    core.shared.stats.record_query(started.elapsed());
                    let _ = reply.send(events);
                }
                ShardMsg::TenantStats { tenant_id, reply } => {
                    let _ = reply.send(core.borrow().tenant_stats(&tenant_id));
                }
                ShardMsg::Close { reply } => {
                    core.borrow_mut().closing = true;
                    let _ = wake.try_send(());
                    let closed = done.recv().await.unwrap_or(Ok(()));
                    if closed.is_ok() {
                        // Everything is synced: a last checkpoint makes the next open fast.
                        checkpoint_now(core).await;
                    }
                    let _ = reply.send(closed);
                    return true;
                }
                ShardMsg::Checkpoint { reply } => {
                    let _ = reply.send(checkpoint_now(core).await);
                }
                ShardMsg::Halt => return true,
            }
            false
        }
    };
    // With every sender gone nobody waits for an answer: close all the same.
    let closed = || ShardMsg::Close { reply: oneshot::channel().0 };
    loop {
        if handle(inbox.recv_async().await.unwrap_or_else(|_| closed())).await {
            return;
        }
        // Whatever else is queued joins the same WAL write.
        while core.borrow().pending.frames.len() < max_pending_bytes {
            match inbox.try_recv() {
                Ok(msg) => {
                    if handle(msg).await {
                        return;
                    }
                }
                Err(_) => break,
            }
        }
        let _ = wake.try_send(());
        // Back-pressure: take no more until the writer has drained (callers wait on the bounded inbox).
        while core.borrow().pending.frames.len() >= max_pending_bytes {
            let _ = space.recv().await;
        }
        futures_lite::future::yield_now().await;
    }
}

async fn writer_task<S: WalStorage>(
    core: Rc<RefCell<Core>>,
    mut wal: WalWriter<S>,
    wake: LocalReceiver<()>,
    space: LocalSender<()>,
    done: LocalSender<Result<(), Error>>,
) {
    loop {
        let _ = wake.recv().await;
        loop {
            let pending = {
                let mut core = core.borrow_mut();
                if core.shared.failure().is_some() {
                    break;
                }
                std::mem::take(&mut core.pending)
            };
            if pending.frames.is_empty() {
                break;
            }
            let shared = core.borrow().shared.clone();
            if let Err(e) = wal.write(&pending.frames, pending.first_position).await {
                core.borrow_mut().fail(&e);
                break;
            }
            shared.stats.wal_writes.fetch_add(1, Ordering::Relaxed);
            shared.stats.wal_bytes.fetch_add(pending.frames.len() as u64, Ordering::Relaxed);
            let released = core.borrow_mut().commit.on_written(pending.last_position);
            core.borrow_mut().release(released);
            if core.borrow().commit.mode() == FsyncMode::Always {
                let (started, synced_before) = (std::time::Instant::now(), core.borrow().commit.synced());
                if let Err(e) = wal.sync().await {
                    core.borrow_mut().fail(&e);
                    break;
                }
                shared.stats.record_fsync(started.elapsed(), pending.last_position - synced_before);
                let released = core.borrow_mut().commit.on_synced(pending.last_position);
                core.borrow_mut().release(released);
            }
            let _ = space.try_send(());
        }
        if core.borrow().closing {
            let result = close_wal(&core, &wal).await;
            let _ = done.send(result).await;
            return;
        }
    }
}

async fn close_wal<S: WalStorage>(core: &Rc<RefCell<Core>>, wal: &WalWriter<S>) -> Result<(), Error> {
    if let Some(err) = core.borrow().failed_error() {
        return Err(err);
    }
    wal.sync().await?;
    let mut core = core.borrow_mut();
    let written = core.commit.written();
    let released = core.commit.on_synced(written);
    core.release(released);
    Ok(())
}

async fn syncer_task<F: WalFile>(core: Rc<RefCell<Core>>, current_file: CurrentFile<F>, interval_ms: u32) {
    let interval = Duration::from_millis(interval_ms as u64);
    loop {
        glommio::timer::sleep(interval).await;
        let (target, file) = {
            let core = core.borrow();
            if core.shared.failure().is_some() || !core.commit.has_unsynced() {
                continue;
            }
            // Read together, with no await between: `target` is covered by `file` or by earlier
            // segments, which were synced when the writer rolled past them.
            (core.commit.written(), current_file.borrow().clone())
        };
        let Some((file, path)) = file else { continue };
        let (started, synced_before) = (std::time::Instant::now(), core.borrow().commit.synced());
        match file.fdatasync().await {
            Ok(()) => {
                let mut core = core.borrow_mut();
                core.shared.stats.record_fsync(started.elapsed(), target.saturating_sub(synced_before));
                let released = core.commit.on_synced(target);
                core.release(released);
            }
            Err(e) => core.borrow_mut().fail(&WalError::io("fdatasync", path)(e)),
        }
    }
}

/// Checkpoints everything synced so far; returns the position the checkpoints cover afterwards.
async fn checkpoint_now(core: &Rc<RefCell<Core>>) -> u64 {
    let (checkpointer, synced) = {
        let core = core.borrow();
        (core.checkpointer.clone(), core.commit.synced())
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
            core.commit.synced()
        };
        if checkpointer.due(synced) {
            checkpointer.run(synced).await;
        }
    }
}
