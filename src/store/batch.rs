//! Batches that span shards, all or nothing: parts appended at once and committed together
//! (`append_parts`), or checked everywhere before anything is written (`append_prepared`, two phases).
//! The design is in `docs/BATCHES.md`.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures_channel::oneshot;

use super::append::collect_acks;
use super::{Sending, Store};
use crate::error::Error;
use crate::event::NewEvent;
use crate::shard::{AppendAck, BatchState, Reply, ShardMsg};

impl Store {
    /// A new cross-shard batch over the shards with a non-empty part; each participant is told through
    /// its control channel when the batch is decided.
    fn new_batch(&self, parts: &[Vec<(usize, NewEvent)>]) -> Arc<BatchState> {
        let id = (u128::from(self.inner.txn_epoch) << 64) | u128::from(self.inner.next_txn.fetch_add(1, Ordering::Relaxed));
        let participants: Vec<u32> = (0..parts.len()).filter(|&s| !parts[s].is_empty()).map(|s| s as u32).collect();
        let on_decided = participants
            .iter()
            .map(|&s| {
                let control = self.inner.shards[s as usize].control.clone();
                Box::new(move |txn: u128| {
                    let _ = control.send(ShardMsg::Decided { txn });
                }) as Box<dyn Fn(u128) + Send + Sync>
            })
            .collect();
        Arc::new(BatchState::new(id, participants, on_decided))
    }

    /// A batch that spans shards with nothing to check: every shard appends its part at once; each part
    /// stays hidden until the last one is acknowledged, which commits the batch for every reader at once.
    pub(super) async fn append_parts(&self, parts: Vec<Vec<(usize, NewEvent)>>, total: usize) -> Result<Vec<AppendAck>, Error> {
        let batch = self.new_batch(&parts);
        // Until every part is handed over, leaving (an error, or the caller giving up) aborts the batch:
        // the parts already sent stay hidden, and recovery drops them.
        let mut unsent = AbortUnsent(Some(batch.clone()));
        let mut replies = Vec::new();
        for (shard, part) in parts.into_iter().enumerate().filter(|(_, p)| !p.is_empty()) {
            let (reply, rx) = oneshot::channel();
            self.send_append(shard, part, Reply::Part(reply, batch.clone())).await?;
            replies.push(rx);
        }
        unsent.0 = None;
        collect_acks(replies, total).await
    }

    /// A batch that spans shards and carries expected versions or client ids: every shard first checks
    /// its part, claims its ids and holds its entities (prepare); only if all agree is it appended
    /// everywhere as planned (commit), so a version or id conflict anywhere writes nothing anywhere.
    pub(super) async fn append_prepared(&self, parts: Vec<Vec<(usize, NewEvent)>>, total: usize) -> Result<Vec<AppendAck>, Error> {
        let batch = self.new_batch(&parts);
        let txn = batch.id;
        let mut guard = AbortOnDrop { store: self, txn, shards: Vec::new() };
        let mut votes = Vec::new();
        for (shard, part) in parts.into_iter().enumerate().filter(|(_, p)| !p.is_empty()) {
            let (reply, rx) = oneshot::channel();
            self.send(shard, ShardMsg::Prepare { batch: batch.clone(), events: part, reply }).await?;
            guard.shards.push(shard);
            votes.push(rx);
        }
        let mut writers = Vec::new();
        for (vote, &shard) in votes.into_iter().zip(&guard.shards) {
            match vote.await.map_err(|_| Error::Closed).and_then(|v| v.map_err(Error::from)) {
                Ok(0) => {}
                Ok(_) => writers.push(shard as u32),
                Err(e) => {
                    // Answered only once every shard has let go of its claims and holds: a client that
                    // reuses the batch's ids or entities right after the refusal finds them free.
                    self.abort_and_wait(txn, std::mem::take(&mut guard.shards)).await;
                    return Err(e);
                }
            }
        }
        // The parts' WAL headers name only the shards that write events: a part that only repeats stored
        // events writes nothing, so recovery must not wait for it.
        batch.set_writers(writers);
        // Every shard agreed. The commits go out with no await between them (and on the control channels,
        // which never wait), so a caller that gives up now cannot leave the batch committed on some only.
        let mut replies = Vec::new();
        let sending = Sending::start(&self.inner)?;
        for &shard in &guard.shards {
            let (reply, rx) = oneshot::channel();
            self.inner.shards[shard].control.send(ShardMsg::Commit { txn, reply }).map_err(|_| Error::Closed)?;
            replies.push(rx);
        }
        drop(sending);
        guard.shards.clear();
        collect_acks(replies, total).await
    }

    /// Aborts a prepared batch on `shards` and waits until each has released it.
    async fn abort_and_wait(&self, txn: u128, shards: Vec<usize>) {
        let mut released = Vec::with_capacity(shards.len());
        {
            // Sent while counted as a send under way, so each Abort is queued ahead of any Close or Halt
            // and is answered. A closed store stops its shards anyway: no wait then.
            let sending = Sending::start(&self.inner);
            for shard in shards {
                let (done, rx) = oneshot::channel();
                let done = sending.is_ok().then_some(done);
                if self.inner.shards[shard].control.send(ShardMsg::Abort { txn, done }).is_ok() && sending.is_ok() {
                    released.push(rx);
                }
            }
        }
        for rx in released {
            let _ = rx.await;
        }
    }
}

/// Aborts a batch some of whose parts may not have been handed to their shards.
struct AbortUnsent(Option<Arc<BatchState>>);

impl Drop for AbortUnsent {
    fn drop(&mut self) {
        if let Some(batch) = self.0.take() {
            batch.abort();
        }
    }
}

/// Releases the entities a prepared batch holds unless it was committed, whatever way the caller leaves.
struct AbortOnDrop<'a> {
    store: &'a Store,
    txn: u128,
    shards: Vec<usize>,
}

impl Drop for AbortOnDrop<'_> {
    fn drop(&mut self) {
        for &shard in &self.shards {
            let _ = self.store.inner.shards[shard].control.send(ShardMsg::Abort { txn: self.txn, done: None });
        }
    }
}

