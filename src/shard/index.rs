//! Indexes only the shard's own executor uses: time order per tenant and per (tenant, event type). The
//! cross-shard queries run here, on the shard's core, without locks.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::RangeInclusive;

use super::shared::{entity_key, write_key, ShardShared};
use crate::event::StoredEvent;
use crate::query::{Merged, Order, Query, TenantStats, TypeFilter};

type TimeIndex = BTreeSet<(i64, u64)>;

#[derive(Default)]
pub struct LocalIndex {
    by_tenant: HashMap<Box<str>, TimeIndex, foldhash::fast::RandomState>,
    /// Keyed by `tenant \0 event_type`, ordered so that a type prefix is a key range.
    by_type: BTreeMap<Box<str>, TimeIndex>,
}

impl LocalIndex {
    pub fn insert(&mut self, event: &StoredEvent, scratch: &mut String) {
        let key = (event.timestamp_us(), event.position());
        match self.by_tenant.get_mut(event.tenant_id()) {
            Some(index) => index.insert(key),
            None => self.by_tenant.entry(event.tenant_id().into()).or_default().insert(key),
        };
        write_key(scratch, event.tenant_id(), event.event_type());
        match self.by_type.get_mut(scratch.as_str()) {
            Some(index) => index.insert(key),
            None => self.by_type.entry(scratch.as_str().into()).or_default().insert(key),
        };
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

    /// Events matching `query` (which has no entity), visible ones only, sorted in the query's order, at
    /// most `want`.
    pub fn query(&self, shared: &ShardShared, query: &Query, want: usize) -> Vec<StoredEvent> {
        let (lo, hi) = query.time_range();
        if lo > hi || want == 0 {
            return Vec::new();
        }
        let range = (lo, 0)..=(hi, u64::MAX);
        let visible = shared.visible_position();
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
            None => self.by_tenant.get(query.tenant_id.as_str()).into_iter().collect(),
        };
        let keys = ranges(&indexes, range, query.order);
        Merged::new(keys, query.order, |k: &(i64, u64)| *k)
            .filter(|(_, position)| *position <= visible)
            .filter_map(|(_, position)| shared.get_position(position))
            .take(want)
            .collect()
    }
}

fn ranges<'a>(
    indexes: &[&'a TimeIndex],
    range: RangeInclusive<(i64, u64)>,
    order: Order,
) -> Vec<Box<dyn Iterator<Item = (i64, u64)> + 'a>> {
    indexes
        .iter()
        .map(|index| {
            let iter = index.range(range.clone()).copied();
            match order {
                Order::Asc => Box::new(iter) as Box<dyn Iterator<Item = (i64, u64)>>,
                Order::Desc => Box::new(iter.rev()),
            }
        })
        .collect()
}
