//! What a shard counts and measures: counters its thread raises and anyone reads, latency histograms,
//! and the status of a shard at one moment (counters plus the shard's state).

use std::sync::atomic::{AtomicU64, Ordering};

/// The shard's counters, listed once: the atomics the shard raises ([`ShardCounters`]) and the fields of
/// a [`ShardStatus`] are made from the same list, so they cannot drift apart.
macro_rules! shard_counters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// Counters of one shard: raised by its thread, read by any.
        #[derive(Debug, Default)]
        pub struct ShardCounters {
            $($(#[$doc])* pub $name: AtomicU64,)*
        }

        /// One shard at one moment: its state and its counters.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct ShardStatus {
            pub shard: u32,
            /// Events the shard holds (acknowledged and visible).
            pub events: u64,
            pub visible_position: u64,
            /// Why the shard stopped accepting writes, if it did.
            pub failure: Option<String>,
            /// Messages waiting in the shard's inbox.
            pub queue_depth: usize,
            $($(#[$doc])* pub $name: u64,)*
        }

        impl super::ShardShared {
            /// This shard's status now; `queue_depth` is its inbox's length, which the store knows.
            pub fn status(&self, queue_depth: usize) -> ShardStatus {
                let counters = &self.stats.counters;
                ShardStatus {
                    shard: self.index,
                    events: self.event_count(),
                    visible_position: self.visible_position(),
                    failure: self.failure().map(str::to_string),
                    queue_depth,
                    $($name: counters.$name.load(Ordering::Relaxed),)*
                }
            }
        }
    };
}

shard_counters! {
    events_appended,
    /// Append calls taken on the shard's own thread, with no channel or wake (HTTP handlers, producers
    /// running there).
    direct_appends,
    wal_writes,
    wal_bytes,
    fsyncs,
    /// The last position the shard's checkpoints cover.
    checkpointed_position,
    checkpoints_written,
    checkpoint_failures,
    compactions,
    wal_segments_deleted,
    /// Times the store's watch woke the shard's executor after it made no progress for a while
    /// (`wake_watch.rs`).
    stall_wakes,
}

/// Counters and latencies of one shard.
#[derive(Debug, Default)]
pub struct ShardStats {
    pub counters: ShardCounters,
    /// Recorded on the shard's thread (queries also on the calling thread); read by metrics.
    pub latency: std::sync::Mutex<ShardLatency>,
}

/// Latency distributions of one shard.
#[derive(Debug, Clone)]
pub struct ShardLatency {
    /// From the shard accepting an append to its acknowledgement, ns.
    pub append_ns: hdrhistogram::Histogram<u64>,
    pub fsync_ns: hdrhistogram::Histogram<u64>,
    pub query_ns: hdrhistogram::Histogram<u64>,
    /// Events made durable by one fdatasync (group commit size).
    pub events_per_fsync: hdrhistogram::Histogram<u64>,
}

impl Default for ShardLatency {
    fn default() -> ShardLatency {
        let h = || hdrhistogram::Histogram::new_with_bounds(1, 100_000_000_000, 2).expect("valid bounds");
        ShardLatency { append_ns: h(), fsync_ns: h(), query_ns: h(), events_per_fsync: h() }
    }
}

impl ShardStats {
    pub(crate) fn record_fsync(&self, elapsed: std::time::Duration, events: u64) {
        self.counters.fsyncs.fetch_add(1, Ordering::Relaxed);
        let mut latency = self.latency.lock().unwrap();
        latency.fsync_ns.saturating_record(elapsed.as_nanos() as u64);
        if events > 0 {
            latency.events_per_fsync.saturating_record(events);
        }
    }

    /// Called from any thread (queries run on the caller's executor too): a sample is dropped rather
    /// than wait for the shard or a metrics scrape holding the histograms.
    pub(crate) fn record_query(&self, elapsed: std::time::Duration) {
        if let Ok(mut latency) = self.latency.try_lock() {
            latency.query_ns.saturating_record(elapsed.as_nanos() as u64);
        }
    }
}
