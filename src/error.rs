//! The store's error type: what `Store` returns. Each layer below has its own (`ValidationError`,
//! `QueryError`, `WalError`, `CheckpointError`, `ShardError`) and converts into this one.

use uuid::Uuid;

use crate::checkpoint::CheckpointError;
use crate::event::ValidationError;
use crate::query::QueryError;
use crate::shard::ShardError;
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
    Checkpoint(#[from] CheckpointError),
    /// Shipping to or restoring from an object store (`ship::ShipError`, as text).
    #[error("object store: {0}")]
    ObjectStore(String),
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

/// A shard's error as the store reports it: the same cases, under the store's names (callers match on
/// `Error::VersionConflict` whichever shard refused).
impl From<ShardError> for Error {
    fn from(e: ShardError) -> Error {
        match e {
            ShardError::VersionConflict { index, tenant_id, entity_id, expected, current } => {
                Error::VersionConflict { index, tenant_id, entity_id, expected, current }
            }
            ShardError::IdConflict { id, index } => Error::IdConflict { id, index },
            ShardError::Contended { index, tenant_id, entity_id } => Error::Contended { index, tenant_id, entity_id },
            ShardError::Failed { shard, reason, disk_full } => Error::ShardFailed { shard, reason, disk_full },
            ShardError::Closed => Error::Closed,
            ShardError::Wal(e) => Error::Wal(e),
            ShardError::Checkpoint(e) => Error::Checkpoint(e),
            ShardError::Io { context, source } => Error::Io { context, source },
        }
    }
}
