//! The store: the `Send + Sync` handle applications use. It validates input, routes appends to the
//! owning shards over bounded channels, coordinates batches that span shards, fans queries out and
//! merges the shards' sorted answers. Reads scoped to one entity or id go straight to the shards' maps
//! from the calling thread.
//!
//! - `open.rs`: opening (every shard recovers on its own core, in parallel) and closing;
//! - `append.rs`: routing appends (to one shard, or independent groups for a [`Producer`]);
//! - `batch.rs`: batches that span shards, all or nothing;
//! - `read.rs`: queries, reads by id and entity, tenant counts;
//! - `fanout.rs`: the one way a question goes to every shard;
//! - `status.rs`: each shard's status;
//! - `producer.rs`, `export.rs`: pipelined appends, and the Parquet export.

mod append;
mod batch;
pub mod export;
mod fanout;
mod open;
pub mod producer;
mod read;
mod status;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use glommio::ExecutorJoinHandle;

use crate::config::StoreConfig;
use crate::epoch::Epochs;
use crate::meta::DirLock;
use crate::error::Error;
use crate::shard::{shard_for, CommitClock, RecoveryReport, ShardMsg, ShardShared};
use crate::wal::BatchDecision;

use fanout::control_every_shard;

pub(crate) use append::{EachReceiver, PendingSend};
pub use crate::shard::{AppendAck, ShardStatus};
pub use producer::{AckFuture, Producer};

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
    /// Ships the directory to the object store, if one is configured.
    #[cfg(feature = "object-store")]
    shipper: Mutex<Option<crate::ship::ShipHandle>>,
}

/// An open store. Cheap to clone; every clone is the same store.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl Store {
    /// How far the object store is behind, and its last error; `None` without one.
    #[cfg(feature = "object-store")]
    pub fn ship_status(&self) -> Option<crate::ship::ShipStatusSnapshot> {
        self.inner.shipper.lock().unwrap().as_ref().map(|s| s.status())
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

    /// A place in the commit order for a read that spans shards and tasks (SQL): positions of a
    /// cross-shard batch are visible to it on every shard or on none (`ShardShared::get_position_at`).
    pub fn read_snapshot(&self) -> crate::shard::OwnedSnapshot {
        self.inner.clock.snapshot_owned()
    }

    /// A shard's readable state (for streams and tools).
    pub fn shard(&self, shard: usize) -> &ShardShared {
        &self.inner.shards[shard].shared
    }

    /// The latency histograms of a shard (a copy).
    pub fn shard_latency(&self, shard: usize) -> crate::shard::ShardLatency {
        self.inner.shards[shard].shared.stats.latency.lock().unwrap().clone()
    }

    async fn send(&self, shard: usize, msg: ShardMsg) -> Result<(), Error> {
        let _sending = Sending::start(&self.inner)?;
        self.inner.shards[shard].inbox.send_async(msg).await.map_err(|_| Error::Closed)
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

impl Drop for Inner {
    fn drop(&mut self) {
        if !self.closed.swap(true, Ordering::SeqCst) {
            control_every_shard(&self.shards, |reply| ShardMsg::Close { reply });
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
