//! The part of a shard that any thread may read: the events (a lock-free slot array by position, over
//! the shard's arena) and the id and entity indexes (DashMaps). Only the shard's own executor writes them.
//!
//! Events enter the maps when the shard accepts them, before they are durable; readers see only
//! positions up to `visible_position`, which the shard raises when it acknowledges. So a reader never
//! sees an unacknowledged event, and a batch becomes visible all at once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use dashmap::DashMap;
use foldhash::fast::RandomState;
use uuid::Uuid;

use super::ids::IdIndex;
use super::index::in_order_run;
use super::ordered_keys::OrderedKeys;
use super::slots::PositionSlots;
use super::stats::ShardStats;
use super::txn::{CommitClock, Parts};
use crate::event::StoredEvent;
use crate::query::{fold_state, sort_key, EntityState, Order, Page, PageFrom, Query};

/// An entity's events on this shard, in version order.
#[derive(Debug, Default)]
pub struct EntityEntry {
    pub positions: Vec<u64>,
    pub last_version: u64,
    /// Timestamps never decrease in version order, so version order is also (timestamp, position) order.
    pub ts_sorted: bool,
    pub last_timestamp_us: i64,
}

pub struct ShardShared {
    pub index: u32,
    /// position -> event: a lock-free, append-only slot array (see `slots.rs`). Positions are dense, so
    /// a slot per position is both the smallest index (16 bytes an event, no hashing) and the fastest
    /// (two dependent loads, no lock). An empty slot is a position lost to corruption.
    events: std::sync::Arc<PositionSlots>,
    /// Events recovered at open and the last recovered position: positions after it are dense, so the
    /// visible event count follows from the visible position.
    recovered_count: AtomicU64,
    recovered_last_position: AtomicU64,
    /// The store's event ids, shared by all shards (see `ids.rs`).
    ids: std::sync::Arc<IdIndex>,
    /// In `ENTITY_MAP_PARTS` parts, each under its own lock: a reader that walks the map (an SQL scan
    /// listing a tenant's entities) holds one part at a time, so an append waits at most for one part.
    by_entity: DashMap<Box<str>, EntityEntry, RandomState>,
    /// Each event type's in-order time keys (`tenant \0 type`), shared with the shard's local index; see
    /// `type_query`.
    by_type: DashMap<Box<str>, std::sync::Arc<OrderedKeys>, RandomState>,
    visible_position: AtomicU64,
    /// This shard's parts of cross-shard batches that readers may have to hide.
    pub parts: Parts,
    /// The store's commit order of cross-shard batches, shared by all shards.
    pub clock: std::sync::Arc<CommitClock>,
    /// Shared by all shards of a store.
    published: std::sync::Arc<event_listener::Event>,
    failure: OnceLock<String>,
    /// The position the checkpoints in the object store cover; `u64::MAX` when the store ships nowhere
    /// (the local checkpoints are enough). A WAL segment is deleted only once this covers it.
    remote_cover: AtomicU64,
    failed_for_space: std::sync::atomic::AtomicBool,
    pub stats: ShardStats,
    /// The store's watch over this shard's executor (`wake_watch.rs`).
    pub wake: super::WakeWatch,
}

/// Parts (locks) of a shard's entity map.
const ENTITY_MAP_PARTS: usize = 64;

/// What one call of [`ShardShared::scan_after`] found.
#[derive(Debug, Default)]
pub struct ScanSlice {
    pub events: Vec<StoredEvent>,
    /// The last position the slice looked at (or the position it started after): resume after it.
    pub scanned_to: u64,
    /// Whether it looked as far as the reader may see now.
    pub reached_end: bool,
}

/// The index key of a name within a tenant (an entity id or an event type). `tenant_id` cannot contain
/// NUL, so the key is unambiguous.
pub fn entity_key(tenant_id: &str, name: &str) -> String {
    let mut key = String::with_capacity(tenant_id.len() + 1 + name.len());
    write_key(&mut key, tenant_id, name);
    key
}

/// Writes the key of [`entity_key`] into a reused buffer, so hot paths do not allocate one per event.
pub fn write_key<'a>(buf: &'a mut String, tenant_id: &str, name: &str) -> &'a str {
    buf.clear();
    buf.push_str(tenant_id);
    buf.push('\0');
    buf.push_str(name);
    buf
}

impl ShardShared {
    pub fn new(index: u32, published: std::sync::Arc<event_listener::Event>) -> ShardShared {
        let ids = IdIndex::new(index as usize + 1, 0);
        ShardShared::with_indexes(index, published, std::sync::Arc::new(ids), Default::default())
    }

    /// A shard of a store whose shards share `ids` and `clock`.
    pub fn with_indexes(
        index: u32,
        published: std::sync::Arc<event_listener::Event>,
        ids: std::sync::Arc<IdIndex>,
        clock: std::sync::Arc<CommitClock>,
    ) -> ShardShared {
        let events = ids.events_of(index);
        ShardShared {
            index,
            published,
            ids,
            parts: Parts::default(),
            clock,
            events,
            recovered_count: AtomicU64::new(0),
            recovered_last_position: AtomicU64::new(0),
            by_entity: DashMap::with_hasher_and_shard_amount(RandomState::default(), ENTITY_MAP_PARTS),
            by_type: DashMap::default(),
            visible_position: AtomicU64::new(0),
            failure: OnceLock::new(),
            remote_cover: AtomicU64::new(u64::MAX),
            failed_for_space: Default::default(),
            stats: ShardStats::default(),
            wake: Default::default(),
        }
    }

    pub fn visible_position(&self) -> u64 {
        self.visible_position.load(Ordering::Acquire)
    }

    /// Called by the shard after the maps hold everything up to `position`.
    pub(crate) fn publish(&self, position: u64) {
        debug_assert!(position >= self.visible_position(), "visibility went back");
        if self.visible_position.swap(position, Ordering::AcqRel) != position {
            // Live readers (streams) wait on this; with none listening it is one atomic load.
            self.published.notify(usize::MAX);
        }
    }

    /// Notified whenever any shard of the store makes new events visible.
    pub fn published(&self) -> &event_listener::Event {
        &self.published
    }

    /// One slice of a reader's walk forward from position `after`: the visible events of `tenant_id` after
    /// it, in position order, that pass `filter`, reading at most `max_positions` positions (with an
    /// entity, at most that many of the entity's positions) and returning at most `max_events`. The work
    /// is bounded whatever the store's size, so a caller on a shard's executor can yield between slices
    /// (see `server::stream`). The slice says how far it looked (a reader resumes after it) and whether
    /// that was the end of what is visible.
    pub fn scan_after(
        &self,
        tenant_id: &str,
        entity_id: Option<&str>,
        after: u64,
        max_events: usize,
        max_positions: u64,
        filter: impl Fn(&StoredEvent) -> bool,
    ) -> ScanSlice {
        let at = self.clock.snapshot();
        // A reader resumes after what it looked at: it must not look past a part it cannot see yet, or it
        // would never come back for it.
        let visible = match self.parts.first_hidden_from(after + 1, at.seq) {
            Some(hidden) => (hidden - 1).min(self.visible_position()),
            None => self.visible_position(),
        };
        let max_positions = max_positions.max(1);
        let (positions, last_looked): (Box<dyn Iterator<Item = u64>>, u64) = match entity_id {
            Some(entity) => {
                let positions = self.entity_positions_between(tenant_id, entity, after, visible, max_positions as usize);
                // Fewer than asked for: the entity has no more positions up to `visible`.
                let last = match positions.last() {
                    Some(&last) if positions.len() as u64 == max_positions => last,
                    _ => visible.max(after),
                };
                (Box::new(positions.into_iter()), last)
            }
            None => {
                let last = visible.min(after.saturating_add(max_positions)).max(after);
                (Box::new(after + 1..=last), last)
            }
        };
        let mut events = Vec::new();
        for position in positions {
            let Some(event) = self.get_any(position) else { continue };
            if event.tenant_id() == tenant_id && filter(&event) {
                events.push(event);
                if events.len() == max_events {
                    return ScanSlice { events, scanned_to: position, reached_end: position >= visible };
                }
            }
        }
        ScanSlice { events, scanned_to: last_looked, reached_end: last_looked >= visible }
    }

    /// An entity's positions in `after + 1..=visible`, at most `max`, in order. Holds the entity map's
    /// lock only to copy them.
    fn entity_positions_between(&self, tenant_id: &str, entity_id: &str, after: u64, visible: u64, max: usize) -> Vec<u64> {
        let key = entity_key(tenant_id, entity_id);
        let Some(entry) = self.by_entity.get(key.as_str()) else { return Vec::new() };
        let start = entry.positions.partition_point(|&p| p <= after);
        let end = entry.positions.partition_point(|&p| p <= visible).max(start);
        entry.positions[start..end.min(start.saturating_add(max))].to_vec()
    }

    /// The store ships to an object store: from now on WAL segments wait for shipped checkpoints. Set
    /// before the shard starts.
    #[cfg(feature = "object-store")]
    pub(crate) fn require_remote_cover(&self) {
        self.remote_cover.store(0, Ordering::Release);
    }

    /// The shipped checkpoints now cover `position`. Set by the shipper alone; it can go back, when
    /// recovery set a damaged checkpoint aside and the smaller manifest was shipped.
    #[cfg(feature = "object-store")]
    pub(crate) fn set_remote_cover(&self, position: u64) {
        self.remote_cover.store(position, Ordering::Release);
    }

    /// See `remote_cover` (the field).
    pub fn remote_cover(&self) -> u64 {
        self.remote_cover.load(Ordering::Acquire)
    }

    /// Why the shard stopped accepting writes, if it did.
    pub fn failure(&self) -> Option<&str> {
        self.failure.get().map(String::as_str)
    }

    pub(crate) fn fail(&self, reason: String, no_space: bool) {
        if self.failure.set(reason).is_ok() {
            self.failed_for_space.store(no_space, Ordering::Release);
        }
    }

    /// Whether the failure was a full disk (ENOSPC).
    pub fn failed_for_space(&self) -> bool {
        self.failed_for_space.load(Ordering::Acquire)
    }

    /// Acknowledged (visible) events.
    pub fn event_count(&self) -> u64 {
        let last = self.recovered_last_position.load(Ordering::Acquire);
        self.recovered_count.load(Ordering::Acquire) + self.visible_position().saturating_sub(last)
    }

    /// Whether an entity has an event on this shard at or below `visible` that a reader at commit number
    /// `at` sees.
    pub(crate) fn entity_seen(&self, tenant_id: &str, entity_id: &str, visible: u64, at: u64) -> bool {
        self.by_entity
            .get(entity_key(tenant_id, entity_id).as_str())
            .is_some_and(|e| e.positions.iter().take_while(|&&p| p <= visible).any(|&p| !self.parts.hidden(p, at)))
    }

    /// Called once recovery has inserted every recovered event.
    pub(crate) fn recovered(&self, count: u64, last_position: u64) {
        self.recovered_count.store(count, Ordering::Release);
        self.recovered_last_position.store(last_position, Ordering::Release);
        self.publish(last_position);
    }

    /// Adds an event to the maps (shard executor only). Positions arrive in increasing order. `scratch`
    /// is a reusable buffer, so the common case allocates nothing but the event. Returns whether it is
    /// its entity's first event.
    pub(crate) fn insert(&self, event: StoredEvent, scratch: &mut String) -> bool {
        let position = event.position();
        let ts = event.timestamp_us();
        let version = event.version();
        self.ids.store(self.index, event.id(), position);
        write_key(scratch, event.tenant_id(), event.entity_id());
        let update = |entry: &mut EntityEntry| {
            entry.ts_sorted &= entry.positions.is_empty() || ts >= entry.last_timestamp_us;
            entry.last_timestamp_us = entry.last_timestamp_us.max(ts);
            entry.positions.push(position);
            entry.last_version = version;
        };
        let first = match self.by_entity.get_mut(scratch.as_str()) {
            Some(mut entry) => {
                update(&mut entry);
                false
            }
            None => {
                let mut entry = EntityEntry { ts_sorted: true, ..Default::default() };
                update(&mut entry);
                self.by_entity.insert(scratch.as_str().into(), entry);
                true
            }
        };
        self.events.insert(position, event);
        first
    }

    /// After an aborted batch's part at `first..=last` (shard executor only): each entity of the part
    /// whose latest event is in it continues from its version before the part, so readers never see a gap
    /// in its versions and a writer that read its state can go on. Recovery drops the part too (an
    /// aborted batch has a part that was never written). An entity that got a later event meanwhile (a
    /// part of another batch, which does not wait for an undecided one) keeps the gap.
    pub(crate) fn roll_back_versions(&self, first: u64, last: u64, scratch: &mut String) {
        let mut done = std::collections::HashSet::new();
        for position in first..=last {
            let Some(event) = self.get_any(position) else { continue };
            write_key(scratch, event.tenant_id(), event.entity_id());
            if !done.insert(scratch.clone()) {
                continue;
            }
            let Some(mut entry) = self.by_entity.get_mut(scratch.as_str()) else { continue };
            if entry.positions.last().is_some_and(|&p| (first..=last).contains(&p)) {
                let before = entry.positions.partition_point(|&p| p < first);
                let previous = entry.positions[..before].iter().rev().find(|&&p| !self.parts.aborted(p));
                entry.last_version = previous.and_then(|&p| self.get_any(p)).map_or(0, |e| e.version());
            }
        }
    }

    /// An event by position, including ones not yet visible (those: shard executor only). Lock-free.
    pub(crate) fn get_any(&self, position: u64) -> Option<StoredEvent> {
        self.events.get(position)
    }

    /// A new id for the event this shard stores at `position` (see [`IdIndex::generate`]).
    pub(crate) fn new_id(&self, position: u64, now_us: i64) -> Uuid {
        self.ids.generate(self.index, position, now_us)
    }

    /// Where an event id is stored or claimed, on any shard, visible or not.
    pub(crate) fn id_owner(&self, id: &Uuid) -> Option<(u32, u64)> {
        self.ids.owner(id)
    }

    /// Claims a client-given id for this shard: fails with the current owner if the id is stored or
    /// claimed already. One atomic step across all shards.
    pub(crate) fn claim_id(&self, id: Uuid) -> Result<(), (u32, u64)> {
        self.ids.claim(self.index, id)
    }

    /// Gives back an id claimed by [`ShardShared::claim_id`] and never written.
    pub(crate) fn release_id(&self, id: &Uuid) {
        self.ids.release(self.index, id);
    }

    /// A stored event by id and its shard, on any shard, visible or not.
    pub(crate) fn id_event(&self, id: &Uuid) -> Option<(u32, StoredEvent)> {
        self.ids.event(id)
    }

    /// The latest version of an entity, including unacknowledged events (shard executor only).
    pub(crate) fn entity_version_any(&self, key: &str) -> u64 {
        self.by_entity.get(key).map_or(0, |e| e.last_version)
    }

    /// The latest position of an entity, including unacknowledged events (shard executor only).
    pub(crate) fn entity_last_position_any(&self, key: &str) -> Option<u64> {
        self.by_entity.get(key).and_then(|e| e.positions.last().copied())
    }

    /// A visible event by position.
    pub fn get_position(&self, position: u64) -> Option<StoredEvent> {
        self.get_position_at(position, self.clock.now())
    }

    /// An event by position if a reader at commit number `at` sees it.
    pub fn get_position_at(&self, position: u64, at: u64) -> Option<StoredEvent> {
        if !self.visible_at(position, at) {
            return None;
        }
        self.get_any(position)
    }

    /// Whether a reader at commit number `at` sees the event at `position` (if there is one).
    pub fn visible_at(&self, position: u64, at: u64) -> bool {
        position <= self.visible_position() && !self.parts.hidden(position, at)
    }

    /// Visible positions of an entity, in version order. A cross-shard part is all of an entity's
    /// events on its shard in that batch, so hiding by part keeps the entity's versions gap-free.
    fn entity_positions(&self, tenant_id: &str, entity_id: &str, at: u64) -> (Vec<u64>, bool) {
        let visible = self.visible_position();
        let key = entity_key(tenant_id, entity_id);
        let Some(entry) = self.by_entity.get(key.as_str()) else {
            return (Vec::new(), true);
        };
        let entry_sorted = entry.ts_sorted;
        // Copy the positions and let go of the map's lock before touching the events.
        let end = entry.positions.partition_point(|&p| p <= visible);
        let mut positions = entry.positions[..end].to_vec();
        drop(entry);
        positions.retain(|&p| !self.parts.hidden(p, at));
        (positions, entry_sorted)
    }

    /// An entity's events matching `query`, sorted in its order, at most `want` of them.
    pub fn entity_query(&self, query: &Query, entity_id: &str, want: usize) -> Vec<StoredEvent> {
        let started = std::time::Instant::now();
        let events = self.entity_query_inner(query, entity_id, want);
        self.stats.record_query(started.elapsed());
        events
    }

    fn entity_query_inner(&self, query: &Query, entity_id: &str, want: usize) -> Vec<StoredEvent> {
        let (positions, ts_sorted) = self.entity_positions(&query.tenant_id, entity_id, self.clock.now());
        let fetch = |p: &u64| self.get_any(*p);
        // The positions are the entity's (of the query's tenant), so only a type or time filter needs the
        // events' bytes: without one, no event is read here (a cache miss each).
        let filtered = query.event_type.is_some() || query.time_range() != (i64::MIN, i64::MAX);
        if ts_sorted {
            let matching = |e: &StoredEvent| !filtered || query.matches(e);
            match query.order {
                Order::Asc => positions.iter().filter_map(fetch).filter(matching).take(want).collect(),
                Order::Desc => positions.iter().rev().filter_map(fetch).filter(matching).take(want).collect(),
            }
        } else {
            let mut events: Vec<StoredEvent> = positions.iter().filter_map(fetch).filter(|e| query.matches(e)).collect();
            events.sort_by_key(sort_key);
            if query.order == Order::Desc {
                events.reverse();
            }
            events.truncate(want);
            events
        }
    }

    /// An entity's state: its visible events with timestamp <= `as_of_us`, folded in version order.
    pub fn entity_state(&self, tenant_id: &str, entity_id: &str, as_of_us: Option<i64>) -> Option<EntityState> {
        let (positions, _) = self.entity_positions(tenant_id, entity_id, self.clock.now());
        let as_of = as_of_us.unwrap_or(i64::MAX);
        let events: Vec<StoredEvent> = positions
            .iter()
            .filter_map(|p| self.get_any(*p))
            .filter(|e| e.timestamp_us() <= as_of)
            .collect();
        fold_state(&events)
    }
}

impl ShardShared {
    /// Makes an event type's in-order keys readable from other threads (shard executor only, once per type).
    pub(crate) fn register_type(&self, key: &str, keys: std::sync::Arc<OrderedKeys>) {
        self.by_type.insert(key.into(), keys);
    }

    /// One page of the visible events of one event type of a tenant in the query's time range and order,
    /// at most `want`, read on the calling thread. `None` when this shard must answer itself: an event of
    /// that type arrived with an earlier timestamp than one before it, so its in-order keys are not all of them.
    pub fn type_query(&self, query: &Query, event_type: &str, want: usize, at: u64, from: PageFrom) -> Option<Page> {
        let started = std::time::Instant::now();
        let visible = from.visible.unwrap_or_else(|| self.visible_position());
        let keys = match self.by_type.get(entity_key(&query.tenant_id, event_type).as_str()) {
            Some(keys) => keys.clone(),
            None => return Some(Page { events: Vec::new(), visible }),
        };
        if keys.has_late() {
            return None;
        }
        let (lo, hi) = query.time_range();
        let Some(range) = from.range(lo, hi, query.order).filter(|_| want > 0) else {
            return Some(Page { events: Vec::new(), visible });
        };
        let run = in_order_run(&keys, &range);
        let fetch = |(_, position): (i64, u64)| (position <= visible).then(|| self.get_position_at(position, at)).flatten();
        let events = match query.order {
            Order::Asc => run.filter_map(fetch).take(want).collect(),
            Order::Desc => run.rev().filter_map(fetch).take(want).collect(),
        };
        self.stats.record_query(started.elapsed());
        Some(Page { events, visible })
    }

    /// Positions of a tenant's events of one type with timestamps in `lo_us..=hi_us`, at most `visible`,
    /// in position order, read on the calling thread (SQL scans). `None` when the type's in-order keys
    /// are not all of them (see `type_query`): the caller scans every position instead.
    pub fn type_positions(&self, tenant_id: &str, event_type: &str, lo_us: i64, hi_us: i64, visible: u64) -> Option<Vec<u64>> {
        let keys = match self.by_type.get(entity_key(tenant_id, event_type).as_str()) {
            Some(keys) => keys.clone(),
            None => return Some(Vec::new()),
        };
        if keys.has_late() {
            return None;
        }
        if lo_us > hi_us {
            return Some(Vec::new());
        }
        let mut positions: Vec<u64> =
            in_order_run(&keys, &((lo_us, 0)..=(hi_us, u64::MAX))).map(|(_, p)| p).filter(|&p| p <= visible).collect();
        positions.sort_unstable();
        Some(positions)
    }

    /// A tenant's event types on this shard with their in-order keys, for SQL scans that need no more of
    /// an event than its type, timestamp and position. `None` when some type's keys are not all of its
    /// events (see `type_query`). Read the visible position first: a late event below it has marked its
    /// type already.
    #[cfg(feature = "sql")]
    pub(crate) fn tenant_types(&self, tenant_id: &str) -> Option<Vec<(Box<str>, std::sync::Arc<OrderedKeys>)>> {
        let prefix = entity_key(tenant_id, "");
        let mut types = Vec::new();
        for entry in self.by_type.iter() {
            if let Some(event_type) = entry.key().strip_prefix(prefix.as_str()) {
                if entry.value().has_late() {
                    return None;
                }
                types.push((event_type.into(), entry.value().clone()));
            }
        }
        Some(types)
    }

    /// A tenant's entity ids on this shard, for SQL scans that need no more of an event than its entity
    /// and position. Holds each part of the entity map's lock only while it copies that part's keys.
    #[cfg(feature = "sql")]
    pub(crate) fn tenant_entities(&self, tenant_id: &str) -> Vec<Box<str>> {
        let prefix = entity_key(tenant_id, "");
        self.by_entity.iter().filter_map(|entry| entry.key().strip_prefix(prefix.as_str()).map(Into::into)).collect()
    }

    /// A tenant's entities on this shard, each with its number of positions up to `visible` less those in
    /// `hidden` (disjoint ranges), those with none left out: counts per entity for SQL. Walks the entity
    /// map one part (lock) at a time and counts by binary search, as an entity's positions ascend.
    #[cfg(feature = "sql")]
    pub(crate) fn tenant_entity_counts(&self, tenant_id: &str, visible: u64, hidden: &[(u64, u64)]) -> Vec<(Box<str>, u64)> {
        let prefix = entity_key(tenant_id, "");
        self.by_entity
            .iter()
            .filter_map(|entry| {
                let entity = entry.key().strip_prefix(prefix.as_str())?;
                let n = visible_count(&entry.value().positions, visible, hidden);
                (n > 0).then(|| (entity.into(), n))
            })
            .collect()
    }

    /// One entity's number of positions up to `visible` less those in `hidden`, as
    /// [`ShardShared::tenant_entity_counts`] counts them.
    #[cfg(feature = "sql")]
    pub(crate) fn entity_count(&self, tenant_id: &str, entity_id: &str, visible: u64, hidden: &[(u64, u64)]) -> u64 {
        let key = entity_key(tenant_id, entity_id);
        self.by_entity.get(key.as_str()).map_or(0, |entry| visible_count(&entry.positions, visible, hidden))
    }

    /// An entity's positions up to `visible`, in version (and so position) order. Holds the entity map's
    /// lock only to copy them.
    pub fn entity_positions_upto(&self, tenant_id: &str, entity_id: &str, visible: u64) -> Vec<u64> {
        let key = entity_key(tenant_id, entity_id);
        let Some(entry) = self.by_entity.get(key.as_str()) else { return Vec::new() };
        let end = entry.positions.partition_point(|&p| p <= visible);
        entry.positions[..end].to_vec()
    }
}

/// How many of `positions` (ascending) are up to `visible` and in none of the disjoint `hidden` ranges:
/// the visible ones are a prefix, and each hidden range a stretch of it, so binary searches count them.
#[cfg(feature = "sql")]
fn visible_count(positions: &[u64], visible: u64, hidden: &[(u64, u64)]) -> u64 {
    let seen = &positions[..positions.partition_point(|&p| p <= visible)];
    let hidden_n: usize = hidden.iter().map(|&(first, last)| seen.partition_point(|&p| p <= last) - seen.partition_point(|&p| p < first)).sum();
    let n = (seen.len() - hidden_n) as u64;
    debug_assert_eq!(n, seen.iter().filter(|&&p| !hidden.iter().any(|&(first, last)| (first..=last).contains(&p))).count() as u64);
    n
}
