//! Routing appends: each event to the shard that owns its entity, directly when the caller runs on that
//! shard's executor. Batches that span shards are in `batch.rs`.

use std::collections::HashMap;

use futures_channel::oneshot;
use uuid::Uuid;

use super::{Sending, Store};
use crate::error::Error;
use crate::event::{validate_batch, NewEvent};
use crate::shard::{append_local, shard_for, AppendAck, Reply, ShardError, ShardMsg, Spent};

impl Store {
    /// Appends one event.
    pub async fn append(&self, event: NewEvent) -> Result<AppendAck, Error> {
        Ok(self.append_batch(vec![event]).await?.pop().expect("one ack per event"))
    }

    /// Like [`Store::append`], but fails with [`Error::Overloaded`] instead of waiting when the owning
    /// shard's queue is full (a server answers 503 rather than holding requests in memory).
    pub async fn try_append(&self, event: NewEvent) -> Result<AppendAck, Error> {
        Ok(self.try_append_batch(vec![event]).await?.pop().expect("one ack per event"))
    }

    /// Like [`Store::append_batch`], but fails with [`Error::Overloaded`] instead of waiting when a shard
    /// it needs has a full queue. Nothing is sent to any shard then.
    pub async fn try_append_batch(&self, events: Vec<NewEvent>) -> Result<Vec<AppendAck>, Error> {
        self.append_admitted(events, true).await
    }

    /// Appends a batch. Invalid input rejects the whole batch before anything is written. Each shard's
    /// part is written in one WAL write and becomes visible all at once. A version or id conflict rejects
    /// the whole batch, also when it spans shards (expected versions and ids are then checked on every
    /// shard before any shard writes). Acks come back in the batch's order.
    pub async fn append_batch(&self, events: Vec<NewEvent>) -> Result<Vec<AppendAck>, Error> {
        self.append_admitted(events, false).await
    }

    async fn append_admitted(&self, events: Vec<NewEvent>, fail_fast: bool) -> Result<Vec<AppendAck>, Error> {
        validate_batch(&events, &self.inner.config.limits)?;
        let n = self.shard_count();
        let total = events.len();
        let mut parts: Vec<Vec<(usize, NewEvent)>> = (0..n).map(|_| Vec::new()).collect();
        // The shard of each id's first use in this batch: a shard cannot see the other shards' parts.
        let mut batch_ids: HashMap<Uuid, usize> = HashMap::new();
        for (index, event) in events.into_iter().enumerate() {
            let shard = shard_for(&event.tenant_id, &event.entity_id, n);
            if let Some(id) = event.id {
                // Stored on another shard, or the same id for entities of two shards in this batch: an
                // early answer, before any shard plans (its errors come first, whatever the order). The
                // shards' atomic claim in the store's id index is what decides a race.
                let elsewhere = self.inner.shards[0].shared.id_owner(&id).is_some_and(|(owner, _)| owner as usize != shard);
                if elsewhere || *batch_ids.entry(id).or_insert(shard) != shard {
                    return Err(Error::IdConflict { id, index });
                }
            }
            parts[shard].push((index, event));
        }
        let shards_involved = parts.iter().filter(|p| !p.is_empty()).count();
        if fail_fast {
            // Checked for every shard before anything is sent, so a refused batch leaves no part behind.
            let full = (0..n).find(|&s| !parts[s].is_empty() && self.inner.shards[s].inbox.is_full());
            if let Some(shard) = full {
                return Err(Error::Overloaded { shard: shard as u32 });
            }
        }
        let checked = |e: &NewEvent| e.expected_version.is_some() || e.id.is_some();
        if shards_involved > 1 {
            if parts.iter().flatten().any(|(_, e)| checked(e)) {
                return self.append_prepared(parts, total).await;
            }
            return self.append_parts(parts, total).await;
        }
        let mut replies = Vec::new();
        for (shard, part) in parts.into_iter().enumerate().filter(|(_, p)| !p.is_empty()) {
            let (reply, rx) = oneshot::channel();
            self.send_append(shard, part, Reply::Batch(reply)).await?;
            replies.push(rx);
        }
        collect_acks(replies, total).await
    }

    /// Hands an append to its shard: directly when the caller runs on that shard's executor, else through
    /// the shard's inbox (waiting while it is full).
    pub(super) async fn send_append(&self, shard: usize, events: Vec<(usize, NewEvent)>, reply: Reply) -> Result<(), Error> {
        let (events, reply) = match self.try_local(shard, events, reply)? {
            None => return Ok(()),
            Some(given_back) => given_back,
        };
        self.send(shard, append_msg(events, reply)).await
    }

    /// The direct path of [`Store::send_append`]; gives the append back when it cannot be taken here.
    #[allow(clippy::type_complexity)]
    fn try_local(&self, shard: usize, events: Vec<(usize, NewEvent)>, reply: Reply) -> Result<Option<(Vec<(usize, NewEvent)>, Reply)>, Error> {
        let _sending = Sending::start(&self.inner)?;
        Ok(append_local(&self.inner.shards[shard].shared, events, reply).err())
    }

    /// Starts a group of independent appends to one shard (see [`crate::Producer`]). Returns the answer's
    /// receiver and, when the shard's inbox was full, the send still to be driven to completion.
    pub(crate) fn dispatch_each(&self, shard: usize, events: Vec<(usize, NewEvent)>) -> (Option<PendingSend>, EachReceiver) {
        let n = events.len();
        let (reply, rx) = oneshot::channel();
        let (events, reply) = match self.try_local(shard, events, Reply::Each((reply, n))) {
            // Closed: the reply is dropped, and the receiver reports it.
            Err(_) | Ok(None) => return (None, rx),
            Ok(Some(given_back)) => given_back,
        };
        let msg = {
            let Ok(_sending) = Sending::start(&self.inner) else { return (None, rx) };
            match self.inner.shards[shard].inbox.try_send(append_msg(events, reply)) {
                Ok(()) | Err(flume::TrySendError::Disconnected(_)) => return (None, rx),
                Err(flume::TrySendError::Full(msg)) => msg,
            }
        };
        let store = self.clone();
        (Some(Box::pin(async move { store.send(shard, msg).await })), rx)
    }
}

/// The answer to a group of independent appends, with the events given back (dropped by the receiver).
pub(crate) type EachReceiver = oneshot::Receiver<(Vec<Result<AppendAck, ShardError>>, Spent)>;
/// A send waiting for room in a shard's inbox.
pub(crate) type PendingSend = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), Error>>>>;

fn append_msg(events: Vec<(usize, NewEvent)>, reply: Reply) -> ShardMsg {
    match reply {
        Reply::Batch(reply) => ShardMsg::Append { events, reply },
        Reply::Part(reply, batch) => ShardMsg::AppendPart { events, reply, batch },
        Reply::Each(reply) => ShardMsg::AppendEach { events, reply },
    }
}

/// Puts each shard's acks back in the batch's order.
pub(super) async fn collect_acks(
    replies: Vec<oneshot::Receiver<Result<(Vec<(usize, AppendAck)>, Spent), ShardError>>>,
    total: usize,
) -> Result<Vec<AppendAck>, Error> {
    let mut acks: Vec<Option<AppendAck>> = vec![None; total];
    let mut first_error = None;
    for rx in replies {
        match rx.await {
            // The events given back are freed here, on the thread that built them.
            Ok(Ok((part, _spent))) => part.into_iter().for_each(|(index, ack)| acks[index] = Some(ack)),
            Ok(Err(e)) => first_error = first_error.or(Some(e.into())),
            Err(_) => first_error = first_error.or(Some(Error::Closed)),
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(acks.into_iter().map(|a| a.expect("every event acknowledged")).collect()),
    }
}

