//! What an append returns.

use uuid::Uuid;

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


/// An append's events, given back with its answer so that the receiver of the answer frees them: the
/// thread that built them, as a rule. glibc frees a block another thread allocated under that thread's
/// arena lock, contending with the builder's own allocations: freeing callers' events on the shard took
/// a quarter of the shards' time in batch ingest (`perf/README.md`).
pub struct Spent(#[allow(dead_code)] Vec<(usize, crate::event::NewEvent)>);

impl Spent {
    pub(crate) fn new(events: Vec<(usize, crate::event::NewEvent)>) -> Spent {
        Spent(events)
    }
}
