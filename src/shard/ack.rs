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

