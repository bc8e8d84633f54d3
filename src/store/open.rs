//! Opening a store (every shard recovers on its own core, in parallel) and closing it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures_channel::oneshot;
use glommio::{LocalExecutorBuilder, Placement};

use super::fanout::control_every_shard;
use super::{Inner, ShardHandle, Store};
use crate::config::StoreConfig;
use crate::epoch::{self, Epochs};
use crate::error::Error;
use crate::meta;
use crate::shard::{decide, run_shard, CommitClock, Decisions, IdIndex, Opening, ShardContext, ShardMsg, ShardShared};
#[cfg(feature = "fault-injection")]
use crate::wal::fault::FaultyStorage;
use crate::wal::io::FileStorage;
use crate::wal::BatchDecision;

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
        // Tiering may have dropped local copies of shipped checkpoints: recovery needs them back.
        #[cfg(feature = "object-store")]
        if let Some(object_store) = &config.object_store {
            crate::ship::fetch_missing_checkpoints(&object_store.url, dir, meta.shards)
                .map_err(|e| Error::ObjectStore(format!("fetching checkpoints the local disk dropped: {e}")))?;
        }
        let online = glommio::CpuSet::online().ok();

        let mut shards = Vec::with_capacity(meta.shards);
        let mut executors = Vec::with_capacity(meta.shards);
        let mut recovered = Vec::with_capacity(meta.shards);
        let mut failure = None;
        let published = Arc::new(event_listener::Event::new());
        let checkpoint_dirs: Vec<PathBuf> = (0..meta.shards).map(|k| crate::layout::checkpoint_dir(dir, k)).collect();
        let ids = Arc::new(IdIndex::new(meta.shards, meta.id_salt.expect("set when the metadata is loaded")));
        let clock: Arc<CommitClock> = Arc::default();
        for k in 0..meta.shards {
            let (inbox, inbox_rx) = flume::bounded(config.queue_capacity);
            let (control, control_rx) = flume::unbounded();
            let checkpoint_dir = checkpoint_dirs[k].clone();
            let shared = Arc::new(ShardShared::with_indexes(k as u32, published.clone(), ids.clone(), clock.clone()));
            #[cfg(feature = "object-store")]
            if config.object_store.is_some() {
                shared.require_remote_cover();
            }
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
            #[cfg(feature = "fault-injection")]
            let fault_plan = config.fault_plan.clone();
            let core = cores[k % cores.len()];
            let mut builder = LocalExecutorBuilder::new(Placement::Fixed(core))
                .name(&format!("tidelog-shard-{k}"))
                .preempt_timer(crate::shard::PREEMPT_TIMER)
                .blocking_thread_pool_placement(blocking_threads_on(online.as_ref(), core));
            let spin_us = config.spin_before_park_us_or_default();
            if spin_us > 0 {
                builder = builder.spin_before_park(std::time::Duration::from_micros(spin_us.into()));
            }
            let spawned = builder
                .spawn(move || async move {
                    #[cfg(feature = "fault-injection")]
                    if let Some(plan) = fault_plan {
                        return run_shard(FaultyStorage { plan }, ctx, opening).await;
                    }
                    run_shard(FileStorage, ctx, opening).await
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
        // A watch that wakes an executor sleeping through its own timers (`shard/wake_watch.rs`).
        if let Err(e) = crate::shard::watch_wakes(shards.iter().map(|s| Arc::downgrade(&s.shared)).collect()) {
            failure = failure.or(Some(Error::io("start the shards' wake watch".to_string(), e)));
        }
        // Shards recover in parallel, each on its own core. Phase one: every shard reads its checkpoints
        // and WAL and reports the cross-shard parts it found; the batches are decided from all of them.
        let mut scans = Vec::with_capacity(meta.shards);
        for (scan, _, _) in &mut recovered {
            match futures_lite::future::block_on(scan) {
                Ok(Ok(scan)) => scans.push(scan),
                Ok(Err(e)) => failure = failure.or(Some(e.into())),
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
                Ok(Err(e)) => failure = failure.or(Some(e.into())),
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
        // The shipper starts once the directory is recovered (and its new epoch written).
        #[cfg(feature = "object-store")]
        let shipper = match (&config.object_store, &failure) {
            (Some(object_store), None) => {
                let shards = shards.iter().map(|s| s.shared.clone()).collect();
                match crate::ship::ShipHandle::start(object_store, config.data_dir.clone(), shards) {
                    Ok(handle) => Some(handle),
                    Err(e) => {
                        failure = Some(e.into());
                        None
                    }
                }
            }
            _ => None,
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
                #[cfg(feature = "object-store")]
                shipper: Mutex::new(shipper),
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

    /// Flushes and fdatasyncs every shard, then stops them. Closing again does nothing. Do not call it
    /// from a shard's own executor.
    pub fn close(&self) -> Result<(), Error> {
        assert!(!crate::shard::on_shard_thread(), "Store::close blocks: call it off the shards' executors");
        if !self.stop_sending() {
            return Ok(());
        }
        let replies = control_every_shard(&self.inner.shards, |reply| ShardMsg::Close { reply });
        let mut result = Ok(());
        for rx in replies {
            if let Ok(Err(e)) = futures_lite::future::block_on(rx) {
                result = result.and(Err(e.into()));
            }
        }
        // The shards are closed, everything they wrote is in the files: the shipper's last round ships it.
        // Taken out of the mutex first: a /health on a shard reads the status under it meanwhile.
        #[cfg(feature = "object-store")]
        if let Some(mut shipper) = self.inner.shipper.lock().unwrap().take() {
            shipper.finish();
        }
        self.join_executors();
        result
    }

    /// Stops every shard at once, without flushing or syncing: what a crash leaves behind, for tests.
    #[doc(hidden)]
    pub fn halt(&self) {
        self.stop_sending();
        #[cfg(feature = "object-store")]
        if let Some(mut shipper) = self.inner.shipper.lock().unwrap().take() {
            shipper.abort();
        }
        control_every_shard(&self.inner.shards, |_: oneshot::Sender<()>| ShardMsg::Halt);
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
}

/// Blocking threads per shard executor (see [`blocking_threads_on`]).
const BLOCKING_THREADS_PER_SHARD: usize = 2;

/// Two blocking threads on the shard's core: the WAL's fdatasync runs on one, so it never queues behind a
/// checkpoint's file writes on the other (a shard writes one checkpoint at a time, and its WAL has one
/// fdatasync in flight). Unbound if the core is not among the CPUs glommio sees.
fn blocking_threads_on(online: Option<&glommio::CpuSet>, core: usize) -> glommio::PoolPlacement {
    match online.map(|cpus| cpus.clone().filter(|l| l.cpu == core)) {
        Some(set) if !set.is_empty() => glommio::PoolPlacement::Fenced(BLOCKING_THREADS_PER_SHARD, set),
        _ => glommio::PoolPlacement::Unbound(BLOCKING_THREADS_PER_SHARD),
    }
}
