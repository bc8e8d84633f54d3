//! The shard layer's errors: what an append, a prepare or a close on one shard can meet. The store
//! turns each into its own `Error` (`crate::error`).

use uuid::Uuid;

use crate::checkpoint::CheckpointError;
use crate::wal::WalError;

#[derive(Debug, thiserror::Error)]
pub enum ShardError {
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
    /// The shard stopped acknowledging after a write or fdatasync error (rule: never ack on hope).
    #[error("shard {shard} stopped accepting writes after an I/O error: {reason}")]
    Failed {
        shard: u32,
        reason: String,
        /// The failure was ENOSPC.
        disk_full: bool,
    },
    #[error("the store is closed")]
    Closed,
    #[error(transparent)]
    Wal(#[from] WalError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl ShardError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> ShardError {
        ShardError::Io { context: context.into(), source }
    }
}
