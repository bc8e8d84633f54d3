//! The coordinator: the `Send + Sync` handle applications use. It validates input, routes appends to
//! the owning shards over bounded channels, fans queries out and merges the shards' sorted answers.
//! Reads scoped to one entity or id go straight to the shards' maps from the calling thread.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures_channel::oneshot;
use glommio::{ExecutorJoinHandle, LocalExecutorBuilder, Placement};
use uuid::Uuid;

use crate::checkpoint::Manifest;
use crate::config::StoreConfig;
use crate::error::Error;
use crate::epoch::{self, Epochs};
use crate::event::{validate_batch, validate_tenant, NewEvent, StoredEvent};
use crate::meta::{self, DirLock};
use crate::query::{
    merge_sorted, sort_key, EntityState, Page, PageFrom, PageMerge, Query, QueryError, QueryResult, TenantStats, TypeFilter, QUERY_PAGE_EVENTS,
};
use crate::shard::{
    append_local, decide, run_shard, shard_for, BatchState, Decisions, Opening, CommitClock, IdIndex, LocalTaskFactory, Reply, ShardContext, ShardMsg,
    ShardShared,
};
use crate::wal::fault::FaultyStorage;
use crate::wal::io::FileStorage;
use crate::wal::{BatchDecision, RecoveryReport};

/// What an append returns for each event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendAck {
    pub id: Uuid,
    pub shard: u32,
    pub position: u64,
    pub version: u64,
    pub timestamp_us: i64,
    /// The id was already stored: this is the original event, nothing was written.
    pub duplicate: bool,
}

/// Counters of one shard at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardStatus {
    pub shard: u32,
    pub events: u64,
    pub visible_position: u64,
    pub events_appended: u64,
    /// Append calls taken on the shard's own thread (no channel, no wake).
    pub direct_appends: u64,
    pub wal_writes: u64,
    pub wal_bytes: u64,
    pub fsyncs: u64,
    pub failure: Option<String>,
    /// Messages waiting in the shard's inbox.
    pub queue_depth: usize,
    /// The last position the shard's checkpoints cover.
    pub checkpointed_position: u64,
    pub checkpoints_written: u64,
    pub checkpoint_failures: u64,
    pub compactions: u64,
    pub wal_segments_deleted: u64,
}

struct ShardHandle {
    inbox: flume::Sender<ShardMsg>,
    /// Unbounded, for the few messages that must never wait for room, because they are sent where no
    /// one can wait (drop glue) or where waiting could stall a core on its own full inbox (commit, abort,
    /// close). Each is bounded in number by something else: one commit or abort per prepared part, one
    /// close or halt per store.
    control: flume::Sender<ShardMsg>,
    shared: Arc<ShardShared>,
}

struct Inner {
    config: StoreConfig,
    shards: Vec<ShardHandle>,
    executors: Mutex<Vec<ExecutorJoinHandle<()>>>,
    recovery: Vec<RecoveryReport>,
    /// What recovery decided about each cross-shard batch found in a WAL at open, by batch id.
    batch_decisions: Vec<BatchDecision>,
    closed: AtomicBool,
    /// Sends to the shards under way (see [`Sending`]). Close and halt wait for them after setting
    /// `closed`, so no message lands in an inbox behind the stop message: nothing would ever answer it,
    /// and its caller would wait forever.
    sending: AtomicUsize,
    next_txn: AtomicU64,
    /// The high 64 bits of every batch id of this open: the open's time in µs, so ids never repeat across
    /// opens (see `docs/FORMAT.md`).
    txn_epoch: u64,
    clock: Arc<CommitClock>,
    /// This open's epoch and the earlier ones (stream cursors).
    epochs: Epochs,
    /// Held until the shards have stopped; released by close, so the directory can be reopened.
    lock: Mutex<Option<DirLock>>,
}

/// An open store. Cheap to clone; every clone is the same store.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl Store {
    /// Opens (or creates) the store in `config.data_dir`: starts one executor per shard, each pinned to a
    /// core, and recovers every shard's WAL in parallel. Blocks until all shards are ready.
    pub fn open(mut config: StoreConfig) -> Result<Store, Error> {
        let dir = &config.data_dir;
        std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
        // Absolute from here on: glommio cannot open a relative directory to fsync it.
        config.data_dir = std::fs::canonicalize(dir).map_err(|e| Error::io(format!("resolve {}", dir.display()), e))?;
        let dir = &config.data_dir;
        let lock = meta::lock(dir)?;
        let cores: Vec<usize> = core_affinity::get_core_ids()
            .map(|ids| ids.into_iter().map(|c| c.id).collect())
            .filter(|ids: &Vec<usize>| !ids.is_empty())
            .unwrap_or_else(|| vec![0]);
        let meta = meta::load_or_create(dir, config.shards, cores.len())?;

        let mut shards = Vec::with_capacity(meta.shards);
        let mut executors = Vec::with_capacity(meta.shards);
        let mut recovered = Vec::with_capacity(meta.shards);
        let mut failure = None;
        let published = Arc::new(event_listener::Event::new());
        let checkpoint_dirs: Vec<PathBuf> = (0..meta.shards).map(|k| crate::layout::checkpoint_dir(dir, k)).collect();
        // The checkpoints' event counts size the id maps (a hint: the WAL tail adds to it).
        let expected_events: Vec<usize> = (0..meta.shards)
            .map(|k| Manifest::load(&checkpoint_dirs[k], k as u32).map_or(0, |m| m.events() as usize))
            .collect();
        let ids = Arc::new(IdIndex::new(&expected_events));
        let clock: Arc<CommitClock> = Arc::default();
        for k in 0..meta.shards {
            let (inbox, inbox_rx) = flume::bounded(config.queue_capacity);
            let (control, control_rx) = flume::unbounded();
            let checkpoint_dir = checkpoint_dirs[k].clone();
            let shared = Arc::new(ShardShared::with_indexes(k as u32, published.clone(), ids.clone(), clock.clone()));
            let ctx = ShardContext {
                shared: shared.clone(),
                wal_dir: crate::layout::wal_dir(dir, k),
                checkpoint_dir,
                checkpoints: config.checkpoints,
                checkpoint_damage: config.checkpoint_damage,
                fsync: config.fsync,
                segment_size_bytes: config.segment_size_bytes,
                mid_log_corruption: config.mid_log_corruption,
                max_pending_bytes: config.max_pending_bytes,
                inbox: inbox_rx,
                control: control_rx,
            };
            let (scanned, scan_rx) = oneshot::channel();
            let (decide_tx, decisions) = oneshot::channel();
            let (recovered_tx, report_rx) = oneshot::channel();
            let opening = Opening { scanned, decisions, recovered: recovered_tx };
            let fault_plan = config.fault_plan.clone();
            let mut builder = LocalExecutorBuilder::new(Placement::Fixed(cores[k % cores.len()]))
                .name(&format!("tidelog-shard-{k}"))
                .preempt_timer(crate::shard::PREEMPT_TIMER);
            if config.spin_before_park_us > 0 {
                builder = builder.spin_before_park(std::time::Duration::from_micros(config.spin_before_park_us.into()));
            }
            let spawned = builder
                .spawn(move || async move {
                    match fault_plan {
                        Some(plan) => run_shard(FaultyStorage { plan }, ctx, opening).await,
                        None => run_shard(FileStorage, ctx, opening).await,
                    }
                });
            match spawned {
                Ok(handle) => executors.push(handle),
                Err(e) => {
                    failure = Some(Error::io(format!("start executor of shard {k}"), e.into()));
                    break;
                }
            }
            shards.push(ShardHandle { inbox, control, shared });
            recovered.push((scan_rx, decide_tx, report_rx));
        }
        // Shards recover in parallel, each on its own core. Phase one: every shard reads its checkpoints
        // and WAL and reports the cross-shard parts it found; the batches are decided from all of them.
        let mut scans = Vec::with_capacity(meta.shards);
        for (scan, _, _) in &mut recovered {
            match futures_lite::future::block_on(scan) {
                Ok(Ok(scan)) => scans.push(scan),
                Ok(Err(e)) => failure = failure.or(Some(e)),
                Err(_) => failure = failure.or(Some(Error::Closed)),
            }
        }
        let decisions = Arc::new(if failure.is_none() { decide(&scans) } else { Decisions::default() });
        // Phase two: each shard loads its WAL without the dropped parts (if every shard could scan: a
        // shard that gets no decisions stops).
        let mut recovery = Vec::with_capacity(meta.shards);
        let mut reports = Vec::with_capacity(meta.shards);
        for (_, decide_tx, report) in recovered {
            if failure.is_none() {
                let _ = decide_tx.send(decisions.clone());
            }
            reports.push(report);
        }
        for report in reports {
            match futures_lite::future::block_on(report) {
                Ok(Ok(report)) => recovery.push(report),
                Ok(Err(e)) => failure = failure.or(Some(e)),
                Err(_) => failure = failure.or(Some(Error::Closed)),
            }
        }
        // A new epoch, durable before the store takes an append: stream cursors name it (src/epoch.rs).
        let epochs = match failure {
            None => {
                let last_positions: Vec<u64> = recovery.iter().map(|r| r.last_position).collect();
                epoch::begin(&config.data_dir, &last_positions).unwrap_or_else(|e| {
                    failure = Some(e);
                    Epochs::none(meta.shards)
                })
            }
            Some(_) => Epochs::none(meta.shards),
        };
        let store = Store {
            inner: Arc::new(Inner {
                epochs,
                config,
                shards,
                executors: Mutex::new(executors),
                recovery,
                batch_decisions: {
                    let mut all: Vec<BatchDecision> = decisions.values().cloned().collect();
                    all.sort_by_key(|d| d.batch);
                    all
                },
                closed: AtomicBool::new(false),
                sending: AtomicUsize::new(0),
                next_txn: AtomicU64::new(1),
                txn_epoch: crate::time::now_us().max(0) as u64,
                clock,
                lock: Mutex::new(Some(lock)),
            }),
        };
        match failure {
            Some(e) => {
                store.halt();
                Err(e)
            }
            None => Ok(store),
        }
    }

    /// The epochs of the data directory, this open's last: a stream cursor names one, so positions a
    /// power loss gave back never make a resumed stream skip events (`docs/CURSORS.md`).
    pub fn epochs(&self) -> &Epochs {
        &self.inner.epochs
    }

    /// What recovery found in each shard when the store was opened.
    pub fn recovery_reports(&self) -> &[RecoveryReport] {
        &self.inner.recovery
    }

    /// What recovery decided, at open, about each cross-shard batch it found in a WAL (each shard's
    /// report lists the ones with a part on it), in batch id order.
    pub fn batch_decisions(&self) -> &[BatchDecision] {
        &self.inner.batch_decisions
    }

    pub fn shard_count(&self) -> usize {
        self.inner.shards.len()
    }

    pub fn config(&self) -> &StoreConfig {
        &self.inner.config
    }

    /// The shard that owns an entity.
    pub fn shard_of(&self, tenant_id: &str, entity_id: &str) -> usize {
        shard_for(tenant_id, entity_id, self.shard_count())
    }

    /// Appends one event.
    pub async fn append(&self, event: NewEvent) -> Result<AppendAck, Error> {
        Ok(self.append_batch(vec![event]).await?.pop().expect("one ack per event"))
    }

    /// Like [`Store::append`], but fails with [`Error::Overloaded`] instead of waiting when the owning
    /// shard's queue is full (a server answers 503 rather than holding requests in memory).
    pub async fn try_append(&self, event: NewEvent) -> Result<AppendAck, Error> {
        Ok(self.try_append_batch(vec![event]).await?.pop().expect("one ack per event"))
    }

    /// Like [`Store::append_batch`], but fails with [`Error::Overloaded`] instead of waiting when a shard
    /// it needs has a full queue. Nothing is sent to any shard then.
    pub async fn try_append_batch(&self, events: Vec<NewEvent>) -> Result<Vec<AppendAck>, Error> {
        self.append_admitted(events, true).await
    }

    /// Appends a batch. Invalid input rejects the whole batch before anything is written. Each shard's
    /// part is written in one WAL write and becomes visible all at once. A version or id conflict rejects
    /// the whole batch, also when it spans shards (expected versions and ids are then checked on every
    /// shard before any shard writes). Acks come back in the batch's order.
    pub async fn append_batch(&self, events: Vec<NewEvent>) -> Result<Vec<AppendAck>, Error> {
        self.append_admitted(events, false).await
    }

    async fn append_admitted(&self, events: Vec<NewEvent>, fail_fast: bool) -> Result<Vec<AppendAck>, Error> {
        validate_batch(&events, &self.inner.config.limits)?;
        let n = self.shard_count();
        let total = events.len();
        let mut parts: Vec<Vec<(usize, NewEvent)>> = (0..n).map(|_| Vec::new()).collect();
        // The shard of each id's first use in this batch: a shard cannot see the other shards' parts.
        let mut batch_ids: HashMap<Uuid, usize> = HashMap::new();
        for (index, event) in events.into_iter().enumerate() {
            let shard = shard_for(&event.tenant_id, &event.entity_id, n);
            if let Some(id) = event.id {
                // Stored on another shard, or the same id for entities of two shards in this batch: an
                // early answer, before any shard plans (its errors come first, whatever the order). The
                // shards' atomic claim in the store's id index is what decides a race.
                let elsewhere = self.inner.shards[0].shared.id_owner(&id).is_some_and(|(owner, _)| owner as usize != shard);
                if elsewhere || *batch_ids.entry(id).or_insert(shard) != shard {
                    return Err(Error::IdConflict { id, index });
                }
            }
            parts[shard].push((index, event));
        }
        let shards_involved = parts.iter().filter(|p| !p.is_empty()).count();
        if fail_fast {
            // Checked for every shard before anything is sent, so a refused batch leaves no part behind.
            let full = (0..n).find(|&s| !parts[s].is_empty() && self.inner.shards[s].inbox.is_full());
            if let Some(shard) = full {
                return Err(Error::Overloaded { shard: shard as u32 });
            }
        }
        let checked = |e: &NewEvent| e.expected_version.is_some() || e.id.is_some();
        if shards_involved > 1 {
            if parts.iter().flatten().any(|(_, e)| checked(e)) {
                return self.append_prepared(parts, total).await;
            }
            return self.append_parts(parts, total).await;
        }
        let mut replies = Vec::new();
        for (shard, part) in parts.into_iter().enumerate().filter(|(_, p)| !p.is_empty()) {
            let (reply, rx) = oneshot::channel();
            self.send_append(shard, part, Reply::Batch(reply)).await?;
            replies.push(rx);
        }
        collect_acks(replies, total).await
    }

    /// Hands an append to its shard: directly when the caller runs on that shard's executor, else through
    /// the shard's inbox (waiting while it is full).
    async fn send_append(&self, shard: usize, events: Vec<(usize, NewEvent)>, reply: Reply) -> Result<(), Error> {
        let (events, reply) = match self.try_local(shard, events, reply)? {
            None => return Ok(()),
            Some(given_back) => given_back,
        };
        self.send(shard, append_msg(events, reply)).await
    }

    /// The direct path of [`Store::send_append`]; gives the append back when it cannot be taken here.
    #[allow(clippy::type_complexity)]
    fn try_local(&self, shard: usize, events: Vec<(usize, NewEvent)>, reply: Reply) -> Result<Option<(Vec<(usize, NewEvent)>, Reply)>, Error> {
        let _sending = Sending::start(&self.inner)?;
        Ok(append_local(&self.inner.shards[shard].shared, events, reply).err())
    }

    /// Starts a group of independent appends to one shard (see [`crate::Producer`]). Returns the answer's
    /// receiver and, when the shard's inbox was full, the send still to be driven to completion.
    pub(crate) fn dispatch_each(&self, shard: usize, events: Vec<(usize, NewEvent)>) -> (Option<PendingSend>, EachReceiver) {
        let n = events.len();
        let (reply, rx) = oneshot::channel();
        let (events, reply) = match self.try_local(shard, events, Reply::Each((reply, n))) {
            // Closed: the reply is dropped, and the receiver reports it.
            Err(_) | Ok(None) => return (None, rx),
            Ok(Some(given_back)) => given_back,
        };
        let msg = {
            let Ok(_sending) = Sending::start(&self.inner) else { return (None, rx) };
            match self.inner.shards[shard].inbox.try_send(append_msg(events, reply)) {
                Ok(()) | Err(flume::TrySendError::Disconnected(_)) => return (None, rx),
                Err(flume::TrySendError::Full(msg)) => msg,
            }
        };
        let store = self.clone();
        (Some(Box::pin(async move { store.send(shard, msg).await })), rx)
    }

    /// A new cross-shard batch over the shards with a non-empty part; each participant is told through
    /// its control channel when the batch is decided.
    fn new_batch(&self, parts: &[Vec<(usize, NewEvent)>]) -> Arc<BatchState> {
        let id = (u128::from(self.inner.txn_epoch) << 64) | u128::from(self.inner.next_txn.fetch_add(1, Ordering::Relaxed));
        let participants: Vec<u32> = (0..parts.len()).filter(|&s| !parts[s].is_empty()).map(|s| s as u32).collect();
        let on_decided = participants
            .iter()
            .map(|&s| {
                let control = self.inner.shards[s as usize].control.clone();
                Box::new(move |txn: u128| {
                    let _ = control.send(ShardMsg::Decided { txn });
                }) as Box<dyn Fn(u128) + Send + Sync>
            })
            .collect();
        Arc::new(BatchState::new(id, participants, on_decided))
    }

    /// A batch that spans shards with nothing to check: every shard appends its part at once; each part
    /// stays hidden until the last one is acknowledged, which commits the batch for every reader at once.
    async fn append_parts(&self, parts: Vec<Vec<(usize, NewEvent)>>, total: usize) -> Result<Vec<AppendAck>, Error> {
        let batch = self.new_batch(&parts);
        // Until every part is handed over, leaving (an error, or the caller giving up) aborts the batch:
        // the parts already sent stay hidden, and recovery drops them.
        let mut unsent = AbortUnsent(Some(batch.clone()));
        let mut replies = Vec::new();
        for (shard, part) in parts.into_iter().enumerate().filter(|(_, p)| !p.is_empty()) {
            let (reply, rx) = oneshot::channel();
            self.send_append(shard, part, Reply::Part(reply, batch.clone())).await?;
            replies.push(rx);
        }
        unsent.0 = None;
        collect_acks(replies, total).await
    }

    /// A batch that spans shards and carries expected versions or client ids: every shard first checks
    /// its part, claims its ids and holds its entities (prepare); only if all agree is it appended
    /// everywhere as planned (commit), so a version or id conflict anywhere writes nothing anywhere.
    async fn append_prepared(&self, parts: Vec<Vec<(usize, NewEvent)>>, total: usize) -> Result<Vec<AppendAck>, Error> {
        let batch = self.new_batch(&parts);
        let txn = batch.id;
        let mut guard = AbortOnDrop { store: self, txn, shards: Vec::new() };
        let mut votes = Vec::new();
        for (shard, part) in parts.into_iter().enumerate().filter(|(_, p)| !p.is_empty()) {
            let (reply, rx) = oneshot::channel();
            self.send(shard, ShardMsg::Prepare { batch: batch.clone(), events: part, reply }).await?;
            guard.shards.push(shard);
            votes.push(rx);
        }
        let mut writers = Vec::new();
        for (vote, &shard) in votes.into_iter().zip(&guard.shards) {
            if vote.await.map_err(|_| Error::Closed)?? > 0 {
                writers.push(shard as u32);
            }
        }
        // The parts' WAL headers name only the shards that write events: a part that only repeats stored
        // events writes nothing, so recovery must not wait for it.
        batch.set_writers(writers);
        // Every shard agreed. The commits go out with no await between them (and on the control channels,
        // which never wait), so a caller that gives up now cannot leave the batch committed on some only.
        let mut replies = Vec::new();
        let sending = Sending::start(&self.inner)?;
        for &shard in &guard.shards {
            let (reply, rx) = oneshot::channel();
            self.inner.shards[shard].control.send(ShardMsg::Commit { txn, reply }).map_err(|_| Error::Closed)?;
            replies.push(rx);
        }
        drop(sending);
        guard.shards.clear();
        collect_acks(replies, total).await
    }

    /// Counts of one tenant's acknowledged events, over all shards.
    pub async fn tenant_stats(&self, tenant_id: &str) -> Result<TenantStats, Error> {
        validate_tenant(tenant_id).map_err(|e| QueryError::Tenant(e.reason))?;
        // One snapshot for every shard: a cross-shard batch counts wholly or not at all.
        let at = self.inner.clock.snapshot();
        let answers = self.ask_every_shard(|reply| ShardMsg::TenantStats { tenant_id: tenant_id.to_string(), at: at.seq, reply }).await?;
        let mut total = TenantStats::default();
        answers.into_iter().for_each(|stats| total.merge(stats));
        Ok(total)
    }

    /// Writes a checkpoint on every shard now (of what is acknowledged and fdatasynced), deletes the WAL
    /// segments it covers, and returns each shard's checkpointed position. A failed checkpoint is logged
    /// and counted in [`ShardStatus::checkpoint_failures`]; the WAL still holds its events.
    pub async fn checkpoint(&self) -> Result<Vec<u64>, Error> {
        self.ask_every_shard(|reply| ShardMsg::Checkpoint { reply }).await
    }

    /// Sends the message `ask` makes to every shard (waiting for room in each inbox), then gathers the
    /// answers in shard order: the shards work on it at the same time.
    async fn ask_every_shard<T>(&self, ask: impl Fn(oneshot::Sender<T>) -> ShardMsg) -> Result<Vec<T>, Error> {
        let mut replies = Vec::with_capacity(self.shard_count());
        for shard in 0..self.shard_count() {
            let (reply, rx) = oneshot::channel();
            self.send(shard, ask(reply)).await?;
            replies.push(rx);
        }
        let mut answers = Vec::with_capacity(replies.len());
        for rx in replies {
            answers.push(rx.await.map_err(|_| Error::Closed)?);
        }
        Ok(answers)
    }

    /// A shard's readable state (for streams and tools).
    /// A place in the commit order for a read that spans shards and tasks (SQL): positions of a
    /// cross-shard batch are visible to it on every shard or on none (`ShardShared::get_position_at`).
    pub fn read_snapshot(&self) -> crate::shard::OwnedSnapshot {
        self.inner.clock.snapshot_owned()
    }

    pub fn shard(&self, shard: usize) -> &ShardShared {
        &self.inner.shards[shard].shared
    }

    /// The latency histograms of a shard (a copy).
    pub fn shard_latency(&self, shard: usize) -> crate::shard::ShardLatency {
        let latency = self.inner.shards[shard].shared.stats.latency.lock().unwrap();
        crate::shard::ShardLatency {
            append_ns: latency.append_ns.clone(),
            fsync_ns: latency.fsync_ns.clone(),
            query_ns: latency.query_ns.clone(),
            events_per_fsync: latency.events_per_fsync.clone(),
        }
    }

    /// Runs `make(shard)` as a task on every shard's executor (the future is built there, so it need not
    /// be Send). Tasks end with the executor when the store closes.
    pub async fn spawn_on_shards<F, Fut>(&self, make: F) -> Result<(), Error>
    where
        F: Fn(usize) -> Fut + Clone + Send + 'static,
        Fut: std::future::Future<Output = ()> + 'static,
    {
        for shard in 0..self.shard_count() {
            self.spawn_on(shard, make.clone()).await?;
        }
        Ok(())
    }

    /// Runs `make(shard)` as a task on one shard's executor.
    pub async fn spawn_on<F, Fut>(&self, shard: usize, make: F) -> Result<(), Error>
    where
        F: FnOnce(usize) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + 'static,
    {
        let factory: LocalTaskFactory = Box::new(move || Box::pin(make(shard)));
        self.send(shard, ShardMsg::Spawn(factory)).await
    }

    /// An event by id, if it exists in `tenant_id`.
    pub fn get(&self, tenant_id: &str, id: &Uuid) -> Option<StoredEvent> {
        let (shard, _) = self.inner.shards[0].shared.id_stored(id)?;
        self.inner.shards.get(shard as usize)?.shared.get_by_id(tenant_id, id)
    }

    /// Runs a query. Entity queries read the owning shard's maps directly; the others run on every shard
    /// and are merged by (timestamp, position).
    pub async fn query(&self, query: &Query) -> Result<QueryResult, Error> {
        validate_tenant(&query.tenant_id).map_err(|e| QueryError::Tenant(e.reason))?;
        let limit = query.limit.unwrap_or(self.inner.config.default_query_limit);
        if limit == 0 {
            return Err(QueryError::ZeroLimit.into());
        }
        let max = self.inner.config.max_query_limit;
        if limit > max {
            return Err(QueryError::LimitTooLarge { limit, max }.into());
        }
        match &query.entity_id {
            Some(entity_id) => {
                let want = query.offset.saturating_add(limit).saturating_add(1);
                let shard = &self.inner.shards[self.shard_of(&query.tenant_id, entity_id)];
                let lists = vec![shard.shared.entity_query(query, entity_id, want)];
                let (events, has_more) = merge_sorted(lists, query.order, query.offset, limit, sort_key);
                Ok(QueryResult { events, has_more })
            }
            None => self.query_pages(query, limit).await,
        }
    }

    /// A query over every shard, merged by (timestamp, position) and read in pages (`PageMerge`): a deep
    /// offset costs many bounded reads, never one long read on a shard's core. A query by one event type
    /// reads the shards' shared in-order keys on the calling thread; otherwise (or where an event of that
    /// type came out of time order) each shard answers its pages on its own executor.
    async fn query_pages(&self, query: &Query, limit: usize) -> Result<QueryResult, Error> {
        // One snapshot for every shard and page: a cross-shard batch is in the answer wholly or not at all.
        let at = self.inner.clock.snapshot();
        let mut merge = PageMerge::new(self.shard_count(), query.order, query.offset, limit);
        let first = merge.first_page_events();
        let mut asked = Vec::with_capacity(self.shard_count());
        for shard in 0..self.shard_count() {
            asked.push(self.ask_page(shard, query, first, at.seq, PageFrom::default()).await?);
        }
        for (shard, page) in asked.into_iter().enumerate() {
            merge.add(shard, page.get().await?, first);
        }
        while let Some((shard, from)) = merge.run() {
            // Between pages: let the executor run other tasks (appends) when this runs on a shard's.
            futures_lite::future::yield_now().await;
            let page = self.ask_page(shard, query, QUERY_PAGE_EVENTS, at.seq, from).await?.get().await?;
            merge.add(shard, page, QUERY_PAGE_EVENTS);
        }
        let (events, has_more) = merge.finish();
        Ok(QueryResult { events, has_more })
    }

    /// Starts reading one page of `query` from a shard: on the calling thread when its type index allows,
    /// else as a message to the shard.
    async fn ask_page(&self, shard: usize, query: &Query, want: usize, at: u64, from: PageFrom) -> Result<AskedPage, Error> {
        if let Some(TypeFilter::Exact(event_type)) = &query.event_type {
            if let Some(page) = self.inner.shards[shard].shared.type_query(query, event_type, want, at, from) {
                return Ok(AskedPage::Ready(page));
            }
        }
        let (reply, rx) = oneshot::channel();
        self.send(shard, ShardMsg::Query { query: query.clone(), want, at, from, reply }).await?;
        Ok(AskedPage::Asked(rx))
    }

    /// An entity's state (payloads folded in version order), now or as of an instant.
    pub fn entity_state(&self, tenant_id: &str, entity_id: &str, as_of_us: Option<i64>) -> Option<EntityState> {
        self.inner.shards[self.shard_of(tenant_id, entity_id)].shared.entity_state(tenant_id, entity_id, as_of_us)
    }

    pub fn status(&self) -> Vec<ShardStatus> {
        self.inner
            .shards
            .iter()
            .map(|s| {
                let stats = &s.shared.stats;
                ShardStatus {
                    shard: s.shared.index,
                    events: s.shared.event_count(),
                    visible_position: s.shared.visible_position(),
                    events_appended: stats.events_appended.load(Ordering::Relaxed),
                    direct_appends: stats.direct_appends.load(Ordering::Relaxed),
                    wal_writes: stats.wal_writes.load(Ordering::Relaxed),
                    wal_bytes: stats.wal_bytes.load(Ordering::Relaxed),
                    fsyncs: stats.fsyncs.load(Ordering::Relaxed),
                    failure: s.shared.failure().map(str::to_string),
                    queue_depth: s.inbox.len(),
                    checkpointed_position: stats.checkpointed_position.load(Ordering::Relaxed),
                    checkpoints_written: stats.checkpoints_written.load(Ordering::Relaxed),
                    checkpoint_failures: stats.checkpoint_failures.load(Ordering::Relaxed),
                    compactions: stats.compactions.load(Ordering::Relaxed),
                    wal_segments_deleted: stats.wal_segments_deleted.load(Ordering::Relaxed),
                }
            })
            .collect()
    }

    /// Flushes and fdatasyncs every shard, then stops them. Closing again does nothing. Do not call it
    /// from a shard's own executor.
    pub fn close(&self) -> Result<(), Error> {
        assert!(!crate::shard::on_shard_thread(), "Store::close blocks: call it off the shards' executors");
        if !self.stop_sending() {
            return Ok(());
        }
        let mut replies = Vec::new();
        for shard in &self.inner.shards {
            let (reply, rx) = oneshot::channel();
            if shard.control.send(ShardMsg::Close { reply }).is_ok() {
                replies.push(rx);
            }
        }
        let mut result = Ok(());
        for rx in replies {
            if let Ok(Err(e)) = futures_lite::future::block_on(rx) {
                result = result.and(Err(e));
            }
        }
        self.join_executors();
        result
    }

    /// Stops every shard at once, without flushing or syncing: what a crash leaves behind, for tests.
    #[doc(hidden)]
    pub fn halt(&self) {
        self.stop_sending();
        for shard in &self.inner.shards {
            let _ = shard.control.send(ShardMsg::Halt);
        }
        self.join_executors();
    }

    fn join_executors(&self) {
        let executors = std::mem::take(&mut *self.inner.executors.lock().unwrap());
        for executor in executors {
            let _ = executor.join();
        }
        self.inner.lock.lock().unwrap().take();
    }

    /// Sets `closed` and waits until no send that missed it is still under way. Returns whether this
    /// call closed the store.
    fn stop_sending(&self) -> bool {
        let first = !self.inner.closed.swap(true, Ordering::SeqCst);
        while self.inner.sending.load(Ordering::SeqCst) != 0 {
            std::thread::yield_now();
        }
        first
    }

    async fn send(&self, shard: usize, msg: ShardMsg) -> Result<(), Error> {
        let _sending = Sending::start(&self.inner)?;
        self.inner.shards[shard].inbox.send_async(msg).await.map_err(|_| Error::Closed)
    }
}

/// The answer to a group of independent appends.
pub(crate) type EachReceiver = oneshot::Receiver<Vec<Result<AppendAck, Error>>>;
/// A send waiting for room in a shard's inbox.
pub(crate) type PendingSend = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), Error>>>>;

fn append_msg(events: Vec<(usize, NewEvent)>, reply: Reply) -> ShardMsg {
    match reply {
        Reply::Batch(reply) => ShardMsg::Append { events, reply },
        Reply::Part(reply, batch) => ShardMsg::AppendPart { events, reply, batch },
        Reply::Each(reply) => ShardMsg::AppendEach { events, reply },
    }
}

/// A send to the shards under way; refused once the store is closed. Counted in `Inner::sending` while it
/// lives. (SeqCst on both sides: either the sender sees `closed`, or `stop_sending` sees the count.)
struct Sending<'a>(&'a AtomicUsize);

impl<'a> Sending<'a> {
    fn start(inner: &'a Inner) -> Result<Sending<'a>, Error> {
        inner.sending.fetch_add(1, Ordering::SeqCst);
        let sending = Sending(&inner.sending);
        if inner.closed.load(Ordering::SeqCst) {
            return Err(Error::Closed);
        }
        Ok(sending)
    }
}

impl Drop for Sending<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Puts each shard's acks back in the batch's order.
async fn collect_acks(
    replies: Vec<oneshot::Receiver<Result<Vec<(usize, AppendAck)>, Error>>>,
    total: usize,
) -> Result<Vec<AppendAck>, Error> {
    let mut acks: Vec<Option<AppendAck>> = vec![None; total];
    let mut first_error = None;
    for rx in replies {
        match rx.await {
            Ok(Ok(part)) => part.into_iter().for_each(|(index, ack)| acks[index] = Some(ack)),
            Ok(Err(e)) => first_error = first_error.or(Some(e)),
            Err(_) => first_error = first_error.or(Some(Error::Closed)),
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(acks.into_iter().map(|a| a.expect("every event acknowledged")).collect()),
    }
}

/// Aborts a batch some of whose parts may not have been handed to their shards.
struct AbortUnsent(Option<Arc<BatchState>>);

impl Drop for AbortUnsent {
    fn drop(&mut self) {
        if let Some(batch) = self.0.take() {
            batch.abort();
        }
    }
}

/// A page of a query, read already or asked of its shard.
enum AskedPage {
    Ready(Page),
    Asked(oneshot::Receiver<Page>),
}

impl AskedPage {
    async fn get(self) -> Result<Page, Error> {
        match self {
            AskedPage::Ready(page) => Ok(page),
            AskedPage::Asked(rx) => rx.await.map_err(|_| Error::Closed),
        }
    }
}

/// Releases the entities a prepared batch holds unless it was committed, whatever way the caller leaves.
struct AbortOnDrop<'a> {
    store: &'a Store,
    txn: u128,
    shards: Vec<usize>,
}

impl Drop for AbortOnDrop<'_> {
    fn drop(&mut self) {
        for &shard in &self.shards {
            let _ = self.store.inner.shards[shard].control.send(ShardMsg::Abort { txn: self.txn });
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if !self.closed.swap(true, Ordering::SeqCst) {
            for shard in &self.shards {
                let (reply, _rx) = oneshot::channel();
                let _ = shard.control.send(ShardMsg::Close { reply });
            }
            // The last handle may go away on a shard's own executor (an HTTP task): joining there would
            // wait for itself. The executors then stop on their own once closed.
            if !crate::shard::on_shard_thread() {
                for executor in std::mem::take(&mut *self.executors.lock().unwrap()) {
                    let _ = executor.join();
                }
            }
        }
    }
}

// The handle is shared across threads by design; keep it that way.
const _: fn() = || {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Store>();
};
