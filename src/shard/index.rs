//! Indexes only the shard's own executor uses: time order per tenant and per (tenant, event type). The
//! cross-shard queries run here, on the shard's core, without locks.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::RangeInclusive;
use std::sync::Arc;

use super::ordered_keys::OrderedKeys;

use super::shared::{entity_key, write_key, ShardShared};
use crate::event::StoredEvent;
use crate::query::{Merged, Order, Page, PageFrom, Query, TenantStats, TypeFilter};

/// Events in time order, keyed (timestamp_us, position). Server-assigned timestamps never go back within
/// a shard, so keys mostly arrive in increasing order: those are appended to a sorted Vec (16 bytes a
/// key). A key below the last one (a client-supplied earlier timestamp) goes to a B-tree, whose nodes,
/// about half full under in-order inserts, cost twice that per key.
///
/// The in-order keys of an event type's index are also readable from other threads (`OrderedKeys`, shared
/// through `ShardShared`), so a query by type can run on the calling thread while no key came late.
#[derive(Default)]
struct TimeIndex {
    in_order: Arc<OrderedKeys>,
    late: BTreeSet<(i64, u64)>,
}

impl TimeIndex {
    fn insert(&mut self, key: (i64, u64)) {
        if self.in_order.last().is_none_or(|last| key > last) {
            self.in_order.push(key);
        } else {
            if self.late.is_empty() {
                self.in_order.mark_late();
            }
            self.late.insert(key);
        }
    }

    fn len(&self) -> usize {
        self.in_order.len() + self.late.len()
    }

    /// The keys in `range`, as two sorted runs (to be merged).
    fn runs(&self, range: RangeInclusive<(i64, u64)>) -> (InOrderRun<'_>, std::iter::Copied<std::collections::btree_set::Range<'_, (i64, u64)>>) {
        (in_order_run(&self.in_order, &range), self.late.range(range).copied())
    }
}

/// The in-order keys within a range, either way round.
pub(crate) type InOrderRun<'a> = std::iter::Map<std::ops::Range<usize>, Box<dyn Fn(usize) -> (i64, u64) + 'a>>;

/// The keys of `keys` (published so far) that fall in `range`.
pub(crate) fn in_order_run<'a>(keys: &'a OrderedKeys, range: &RangeInclusive<(i64, u64)>) -> InOrderRun<'a> {
    let n = keys.len();
    let start = keys.partition_point(n, |k| k < range.start());
    let end = keys.partition_point(n, |k| k <= range.end());
    (start..end.max(start)).map(Box::new(move |i| keys.get(i)))
}

/// A tenant's events in time order, and where each of its entities first appeared.
#[derive(Default)]
struct TenantIndex {
    times: TimeIndex,
    /// The position of each entity's first event, ascending (positions arrive in order): entities are
    /// counted from it without walking the shard's entity map.
    entity_firsts: Vec<u64>,
}

#[derive(Default)]
pub struct LocalIndex {
    by_tenant: HashMap<Box<str>, TenantIndex, foldhash::fast::RandomState>,
    /// Keyed by `tenant \0 event_type`, ordered so that a type prefix is a key range.
    by_type: BTreeMap<Box<str>, TimeIndex>,
}

impl LocalIndex {
    /// Adds an event to the shard's maps (`shared`) and to these indexes; a new event type's in-order keys
    /// are registered with `shared` for readers on other threads. Positions arrive in increasing order.
    pub fn add(&mut self, event: StoredEvent, scratch: &mut String, shared: &ShardShared) {
        let key = (event.timestamp_us(), event.position());
        let tenant = match self.by_tenant.get_mut(event.tenant_id()) {
            Some(tenant) => tenant,
            None => self.by_tenant.entry(event.tenant_id().into()).or_default(),
        };
        tenant.times.insert(key);
        write_key(scratch, event.tenant_id(), event.event_type());
        match self.by_type.get_mut(scratch.as_str()) {
            Some(index) => index.insert(key),
            None => {
                let index = self.by_type.entry(scratch.as_str().into()).or_default();
                shared.register_type(scratch, index.in_order.clone());
                index.insert(key);
            }
        };
        if shared.insert(event, scratch) {
            tenant.entity_firsts.push(key.1);
        }
    }

    /// Where each of a tenant's entities first appeared (positions, ascending; accepted or not).
    pub fn entity_firsts(&self, tenant_id: &str) -> &[u64] {
        self.by_tenant.get(tenant_id).map_or(&[], |t| &t.entity_firsts)
    }

    /// Counts of a tenant's events (accepted, acknowledged or not) by type.
    pub fn tenant_stats(&self, tenant_id: &str) -> TenantStats {
        let prefix = entity_key(tenant_id, "");
        let event_types: std::collections::BTreeMap<String, u64> = self
            .by_type
            .range::<str, _>((std::ops::Bound::Included(prefix.as_str()), std::ops::Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix.as_str()))
            .map(|(k, index)| (k[prefix.len()..].to_string(), index.len() as u64))
            .collect();
        TenantStats { events: event_types.values().sum(), event_types, entities: 0 }
    }

    /// One page of the events matching `query` (which has no entity): visible ones only (at or below the
    /// page's pinned visible position), sorted in the query's order, after the page's start, at most `want`.
    pub fn query(&self, shared: &ShardShared, query: &Query, want: usize, at: u64, from: PageFrom) -> Page {
        let visible = from.visible.unwrap_or_else(|| shared.visible_position());
        let (lo, hi) = query.time_range();
        let Some(range) = from.range(lo, hi, query.order).filter(|_| want > 0) else {
            return Page { events: Vec::new(), visible };
        };
        let indexes: Vec<&TimeIndex> = match &query.event_type {
            Some(TypeFilter::Exact(t)) => {
                self.by_type.get(entity_key(&query.tenant_id, t).as_str()).into_iter().collect()
            }
            Some(TypeFilter::Prefix(p)) => {
                let start = entity_key(&query.tenant_id, p);
                self.by_type
                    .range::<str, _>((std::ops::Bound::Included(start.as_str()), std::ops::Bound::Unbounded))
                    .take_while(|(k, _)| k.starts_with(start.as_str()))
                    .map(|(_, index)| index)
                    .collect()
            }
            None => self.by_tenant.get(query.tenant_id.as_str()).map(|t| &t.times).into_iter().collect(),
        };
        let keys = ranges(&indexes, range, query.order);
        let events = Merged::new(keys, query.order, |k: &(i64, u64)| *k)
            .filter(|(_, position)| *position <= visible)
            .filter_map(|(_, position)| shared.get_position_at(position, at))
            .take(want)
            .collect();
        Page { events, visible }
    }
}

fn ranges<'a>(
    indexes: &[&'a TimeIndex],
    range: RangeInclusive<(i64, u64)>,
    order: Order,
) -> Vec<Box<dyn Iterator<Item = (i64, u64)> + 'a>> {
    let mut runs: Vec<Box<dyn Iterator<Item = (i64, u64)> + 'a>> = Vec::with_capacity(indexes.len() * 2);
    for index in indexes {
        let (in_order, late) = index.runs(range.clone());
        match order {
            Order::Asc => runs.push(Box::new(in_order)),
            Order::Desc => runs.push(Box::new(in_order.rev())),
        }
        if late.clone().next().is_some() {
            match order {
                Order::Asc => runs.push(Box::new(late)),
                Order::Desc => runs.push(Box::new(late.rev())),
            }
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_index_with_late_keys_reads_like_one_sorted_set() {
        let mut index = TimeIndex::default();
        let mut all = BTreeSet::new();
        // Mostly increasing timestamps, every 7th one earlier (a client-supplied timestamp).
        for position in 1..=2000u64 {
            let ts = if position % 7 == 0 { (position as i64 * 13) % 5000 } else { 10 * position as i64 };
            index.insert((ts, position));
            all.insert((ts, position));
        }
        assert!(!index.late.is_empty() && index.in_order.len() > index.late.len());
        assert_eq!(index.len(), all.len());
        for (lo, hi) in [(0, i64::MAX), (500, 9000), (4000, 4000), (30_000, 40_000), (-5, 3)] {
            let range = (lo, 0)..=(hi, u64::MAX);
            for order in [Order::Asc, Order::Desc] {
                let merged: Vec<(i64, u64)> = Merged::new(ranges(&[&index], range.clone(), order), order, |k| *k).collect();
                let mut expected: Vec<(i64, u64)> = all.range(range.clone()).copied().collect();
                if order == Order::Desc {
                    expected.reverse();
                }
                assert_eq!(merged, expected, "{lo}..={hi} {order:?}");
            }
        }
    }
}
