//! Pipelined appends from one caller, like a Kafka producer's `send`: many single-event appends in
//! flight, each acknowledged on its own with the same guarantee as [`Store::append`].
//!
//! Events bound for one shard travel in groups: one message to the shard and one answer back carry a
//! whole group, so the cross-thread hops and wakes are paid per group, not per event. A group leaves
//! when it is full, when its shard has nothing of this producer's in flight (so a lone event is not
//! held back), when one of its acks is awaited, or on [`Producer::flush`]. Groups to one shard arrive in
//! the order they were sent, so a shard acknowledges a producer's events in the order they were sent.
//! Each event is its own append: a version conflict or a duplicate id concerns that event only.
//!
//! A producer and its ack futures belong to one thread (they are not `Send`).

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use crate::coordinator::{AppendAck, EachReceiver, PendingSend, Store};
use crate::error::Error;
use crate::event::{validate_event, NewEvent};
use crate::shard::shard_for;

/// Events per group unless set with [`Producer::with_max_group_events`].
pub const DEFAULT_MAX_GROUP_EVENTS: usize = 512;

/// See the module documentation. Made by [`Store::producer`].
pub struct Producer {
    store: Store,
    lanes: Vec<Lane>,
    max_group_events: usize,
}

#[derive(Default)]
struct Lane {
    filling: Option<Rc<Group>>,
    in_flight: Option<Rc<Group>>,
}

struct Group {
    store: Store,
    shard: usize,
    state: RefCell<GroupState>,
}

enum GroupState {
    Filling(Vec<(usize, NewEvent)>),
    /// Waiting for room in the shard's inbox.
    Sending(PendingSend, EachReceiver),
    Sent(EachReceiver),
    /// Each result is taken by its event's future.
    Done(Vec<Option<Result<AppendAck, Error>>>),
}

impl Group {
    fn len(&self) -> usize {
        match &*self.state.borrow() {
            GroupState::Filling(events) => events.len(),
            _ => 0,
        }
    }

    /// Sends the group if it is still filling.
    fn dispatch(&self) {
        let mut state = self.state.borrow_mut();
        if let GroupState::Filling(events) = &mut *state {
            let events = std::mem::take(events);
            let n = events.len();
            *state = match self.store.dispatch_each(self.shard, events) {
                (None, rx) => GroupState::Sent(rx),
                (Some(send), rx) => GroupState::Sending(send, rx),
            };
            debug_assert!(n > 0);
        }
    }

    /// Advances the group as far as it can go; `Ready` once its results are in.
    fn poll_done(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.dispatch();
        let mut state = self.state.borrow_mut();
        loop {
            let next = match &mut *state {
                GroupState::Filling(_) => unreachable!("dispatched above"),
                GroupState::Sending(send, _) => match send.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(sent) => {
                        let GroupState::Sending(_, rx) = std::mem::replace(&mut *state, GroupState::Done(Vec::new())) else {
                            unreachable!()
                        };
                        match sent {
                            Ok(()) => GroupState::Sent(rx),
                            // Refused (the store closed): dropping `rx` with nothing sent reads as closed.
                            Err(_) => GroupState::Done(Vec::new()),
                        }
                    }
                },
                GroupState::Sent(rx) => match Pin::new(rx).poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(results)) => GroupState::Done(results.into_iter().map(Some).collect()),
                    Poll::Ready(Err(_canceled)) => GroupState::Done(Vec::new()),
                },
                GroupState::Done(_) => return Poll::Ready(()),
            };
            *state = next;
        }
    }

    /// Whether the shard has answered (or the group failed), without waiting.
    fn is_done(&self) -> bool {
        let filling = matches!(&*self.state.borrow(), GroupState::Filling(_));
        !filling && self.poll_done(&mut Context::from_waker(std::task::Waker::noop())).is_ready()
    }

    fn take(&self, index: usize) -> Result<AppendAck, Error> {
        match &mut *self.state.borrow_mut() {
            // An empty result list: the group never reached a shard that answered.
            GroupState::Done(results) => results.get_mut(index).and_then(Option::take).unwrap_or(Err(Error::Closed)),
            _ => unreachable!("taken only once done"),
        }
    }
}

impl Producer {
    pub(crate) fn new(store: Store) -> Producer {
        let lanes = (0..store.shard_count()).map(|_| Lane::default()).collect();
        Producer { store, lanes, max_group_events: DEFAULT_MAX_GROUP_EVENTS }
    }

    /// Events per group at most (at least 1).
    pub fn with_max_group_events(mut self, max_group_events: usize) -> Producer {
        self.max_group_events = max_group_events.max(1);
        self
    }

    /// Queues one event and returns the future of its ack. Invalid input is refused here, before anything
    /// is sent. Waits only while the shard's inbox is full (back-pressure).
    pub async fn send(&mut self, event: NewEvent) -> Result<AckFuture, Error> {
        validate_event(&event, &self.store.config().limits)?;
        let shard = shard_for(&event.tenant_id, &event.entity_id, self.lanes.len());
        let lane = &mut self.lanes[shard];
        let group = lane
            .filling
            .get_or_insert_with(|| Rc::new(Group { store: self.store.clone(), shard, state: RefCell::new(GroupState::Filling(Vec::new())) }))
            .clone();
        let index = match &mut *group.state.borrow_mut() {
            GroupState::Filling(events) => {
                events.push((events.len(), event));
                events.len() - 1
            }
            _ => unreachable!("a lane's filling group is still filling"),
        };
        let idle = lane.in_flight.as_ref().is_none_or(|g| g.is_done());
        if idle || group.len() >= self.max_group_events {
            if let Some(previous) = lane.in_flight.take() {
                // At most one group waits for inbox room per lane: memory stays bounded.
                WaitSent(&previous).await;
            }
            lane.filling = None;
            group.dispatch();
            lane.in_flight = Some(group.clone());
        }
        Ok(AckFuture { group, index })
    }

    /// Sends every group still filling, and waits until each is in its shard's inbox.
    pub async fn flush(&mut self) {
        for lane in &mut self.lanes {
            if let Some(group) = lane.filling.take() {
                group.dispatch();
                WaitSent(&group).await;
                lane.in_flight = Some(group);
            }
        }
    }
}

/// Resolves once a group has left the producer (it is in the shard's inbox or answered).
struct WaitSent<'a>(&'a Group);

impl Future for WaitSent<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let group = self.0;
        let sending = matches!(&*group.state.borrow(), GroupState::Sending(..));
        if sending {
            // Drives the send; `Ready` here may also mean the answer is in, which is past sent.
            if group.poll_done(cx).is_pending() && matches!(&*group.state.borrow(), GroupState::Sending(..)) {
                return Poll::Pending;
            }
        }
        Poll::Ready(())
    }
}

/// The ack of one event sent through a [`Producer`].
#[must_use = "an append is acknowledged only when its future resolves"]
pub struct AckFuture {
    group: Rc<Group>,
    index: usize,
}

impl Future for AckFuture {
    type Output = Result<AppendAck, Error>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.group.poll_done(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => Poll::Ready(self.group.take(self.index)),
        }
    }
}

impl Store {
    /// A pipelined appender for one caller; see [`Producer`].
    pub fn producer(&self) -> Producer {
        Producer::new(self.clone())
    }
}
