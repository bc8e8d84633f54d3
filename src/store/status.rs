//! Each shard's status.

use super::Store;
use crate::shard::ShardStatus;

impl Store {
    pub fn status(&self) -> Vec<ShardStatus> {
        self.inner.shards.iter().map(|s| s.shared.status(s.inbox.len())).collect()
    }
}
