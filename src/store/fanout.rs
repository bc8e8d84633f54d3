//! Asking every shard: the one fan-out the store's operations share.

use futures_channel::oneshot;

use super::{ShardHandle, Store};
use crate::error::Error;
use crate::shard::{LocalTaskFactory, ShardMsg};

impl Store {
    /// Writes a checkpoint on every shard now (of what is acknowledged and fdatasynced), deletes the WAL
    /// segments it covers, and returns each shard's checkpointed position. A failed checkpoint is logged
    /// and counted in [`ShardStatus::checkpoint_failures`]; the WAL still holds its events.
    pub async fn checkpoint(&self) -> Result<Vec<u64>, Error> {
        self.ask_every_shard(|reply| ShardMsg::Checkpoint { reply }).await
    }

    /// Sends the message `ask` makes to every shard (waiting for room in each inbox), then gathers the
    /// answers in shard order: the shards work on it at the same time.
    pub(super) async fn ask_every_shard<T>(&self, ask: impl Fn(oneshot::Sender<T>) -> ShardMsg) -> Result<Vec<T>, Error> {
        let mut replies = Vec::with_capacity(self.shard_count());
        for shard in 0..self.shard_count() {
            let (reply, rx) = oneshot::channel();
            self.send(shard, ask(reply)).await?;
            replies.push(rx);
        }
        let mut answers = Vec::with_capacity(replies.len());
        for rx in replies {
            answers.push(rx.await.map_err(|_| Error::Closed)?);
        }
        Ok(answers)
    }

    /// Runs `make(shard)` as a task on every shard's executor (the future is built there, so it need not
    /// be Send). Tasks end with the executor when the store closes.
    pub async fn spawn_on_shards<F, Fut>(&self, make: F) -> Result<(), Error>
    where
        F: Fn(usize) -> Fut + Clone + Send + 'static,
        Fut: std::future::Future<Output = ()> + 'static,
    {
        for shard in 0..self.shard_count() {
            self.spawn_on(shard, make.clone()).await?;
        }
        Ok(())
    }

    /// Runs `make(shard)` as a task on one shard's executor.
    pub async fn spawn_on<F, Fut>(&self, shard: usize, make: F) -> Result<(), Error>
    where
        F: FnOnce(usize) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + 'static,
    {
        let factory: LocalTaskFactory = Box::new(move || Box::pin(make(shard)));
        self.send(shard, ShardMsg::Spawn(factory)).await
    }
}

/// Sends the message `ask` makes to every shard on its control channel, which never waits (close, halt,
/// the last handle's drop), and returns the answers' receivers of the shards that took it.
pub(super) fn control_every_shard<T>(shards: &[ShardHandle], ask: impl Fn(oneshot::Sender<T>) -> ShardMsg) -> Vec<oneshot::Receiver<T>> {
    let mut replies = Vec::with_capacity(shards.len());
    for shard in shards {
        let (reply, rx) = oneshot::channel();
        if shard.control.send(ask(reply)).is_ok() {
            replies.push(rx);
        }
    }
    replies
}
