//! The store's error type; each layer's errors convert into it.

use uuid::Uuid;

use crate::event::ValidationError;
use crate::query::QueryError;
use crate::wal::WalError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid event: {0}")]
    Invalid(#[from] ValidationError),
    #[error(
        "version conflict on entity {entity_id:?} of tenant {tenant_id:?} (events[{index}]): expected version \
         {expected}, current version {current}"
    )]
    VersionConflict { index: usize, tenant_id: String, entity_id: String, expected: u64, current: u64 },
    #[error("event id {id} (events[{index}]) is already used by another entity")]
    IdConflict { id: Uuid, index: usize },
    #[error(
        "entity {entity_id:?} of tenant {tenant_id:?} (events[{index}]) is held by a concurrent batch that spans \
         shards; retry"
    )]
    Contended { index: usize, tenant_id: String, entity_id: String },
    #[error("shard {shard} stopped accepting writes after an I/O error: {reason}")]
    ShardFailed {
        shard: u32,
        reason: String,
        /// The failure was ENOSPC.
        disk_full: bool,
    },
    #[error("shard {shard} has a full queue; retry later")]
    Overloaded { shard: u32 },
    #[error("the store is closed")]
    Closed,
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error(transparent)]
    Wal(#[from] WalError),
    #[error(transparent)]
    Checkpoint(#[from] crate::checkpoint::CheckpointError),
    #[error("data directory {path}: {reason}")]
    DataDir { path: String, reason: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io { context: context.into(), source }
    }
}
