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

use super::{AppendAck, EachReceiver, PendingSend, Store};
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
    /// The group sent before this one on the same lane, until this one has left: a group never overtakes
    /// it into the shard's inbox, so a shard sees a producer's events in the order they were sent.
    prev: RefCell<Option<Rc<Group>>>,
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
    fn new(store: &Store, shard: usize, prev: Option<Rc<Group>>) -> Rc<Group> {
        Rc::new(Group { store: store.clone(), shard, prev: RefCell::new(prev), state: RefCell::new(GroupState::Filling(Vec::new())) })
    }

    fn is_filling(&self) -> bool {
        matches!(&*self.state.borrow(), GroupState::Filling(_))
    }

    fn len(&self) -> usize {
        match &*self.state.borrow() {
            GroupState::Filling(events) => events.len(),
            _ => 0,
        }
    }

    /// Sends the group if it is still filling, once the group before it on its lane has left.
    fn poll_dispatch(&self, cx: &mut Context<'_>) -> Poll<()> {
        if !self.is_filling() {
            return Poll::Ready(());
        }
        let prev = self.prev.borrow().clone();
        if let Some(prev) = prev {
            if prev.poll_left(cx).is_pending() {
                return Poll::Pending;
            }
        }
        self.prev.take();
        let mut state = self.state.borrow_mut();
        if let GroupState::Filling(events) = &mut *state {
            let events = std::mem::take(events);
            debug_assert!(!events.is_empty());
            *state = match self.store.dispatch_each(self.shard, events) {
                (None, rx) => GroupState::Sent(rx),
                (Some(send), rx) => GroupState::Sending(send, rx),
            };
        }
        Poll::Ready(())
    }

    /// `Ready` once the group has left the producer: it is in the shard's inbox, answered, or failed.
    fn poll_left(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.poll_dispatch(cx).is_pending() {
            return Poll::Pending;
        }
        let mut state = self.state.borrow_mut();
        let GroupState::Sending(send, _) = &mut *state else { return Poll::Ready(()) };
        let Poll::Ready(sent) = send.as_mut().poll(cx) else { return Poll::Pending };
        let GroupState::Sending(_, rx) = std::mem::replace(&mut *state, GroupState::Done(Vec::new())) else { unreachable!() };
        // Refused (the store closed): an empty result list reads as closed.
        if sent.is_ok() {
            *state = GroupState::Sent(rx);
        }
        Poll::Ready(())
    }

    /// `Ready` once the shard's results are in (or the group failed).
    fn poll_done(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.poll_left(cx).is_pending() {
            return Poll::Pending;
        }
        let mut state = self.state.borrow_mut();
        let GroupState::Sent(rx) = &mut *state else { return Poll::Ready(()) };
        *state = match Pin::new(rx).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Ok((results, _spent))) => GroupState::Done(results.into_iter().map(|r| Some(r.map_err(Error::from))).collect()),
            Poll::Ready(Err(_canceled)) => GroupState::Done(Vec::new()),
        };
        Poll::Ready(())
    }

    /// Whether the shard has answered (or the group failed), without waiting or sending.
    fn is_done(&self) -> bool {
        !self.is_filling() && self.poll_done(&mut Context::from_waker(std::task::Waker::noop())).is_ready()
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
        if lane.filling.as_ref().is_some_and(|g| !g.is_filling()) {
            // Awaiting one of its acks sent it: it is the lane's latest group in flight.
            lane.in_flight = lane.filling.take();
        }
        let store = &self.store;
        let group = lane.filling.get_or_insert_with(|| Group::new(store, shard, lane.in_flight.clone())).clone();
        let index = match &mut *group.state.borrow_mut() {
            GroupState::Filling(events) => {
                events.push((events.len(), event));
                events.len() - 1
            }
            _ => unreachable!("a lane's filling group is still filling"),
        };
        let idle = lane.in_flight.as_ref().is_none_or(|g| g.is_done());
        if idle || group.len() >= self.max_group_events {
            // At most one group per lane waits for room in the inbox: memory stays bounded.
            if let Some(previous) = lane.in_flight.take() {
                Left(&previous).await;
            }
            lane.filling = None;
            Left(&group).await_dispatched().await;
            lane.in_flight = Some(group.clone());
        }
        Ok(AckFuture { group, index })
    }

    /// Sends every group still filling, and waits until each has left for its shard's inbox.
    pub async fn flush(&mut self) {
        for lane in &mut self.lanes {
            if let Some(group) = lane.filling.take() {
                Left(&group).await;
                lane.in_flight = Some(group);
            }
        }
    }
}

/// Resolves once a group has left the producer (it is in the shard's inbox, answered, or failed).
struct Left<'a>(&'a Group);

impl Left<'_> {
    /// Resolves once the group is dispatched (sent, or waiting for room in the inbox).
    async fn await_dispatched(self) {
        std::future::poll_fn(|cx| self.0.poll_dispatch(cx)).await
    }
}

impl Future for Left<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.0.poll_left(cx)
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
