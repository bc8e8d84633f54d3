//! Queries: what can be asked, how an event is matched (on its archived form), and how the shards'
//! sorted answers are merged.

mod merge;
mod pages;
mod state;

pub use merge::{merge_sorted, Merged};
pub use pages::{Page, PageFrom, PageMerge, QUERY_PAGE_EVENTS};
pub use state::{fold_state, EntityState};

use crate::event::StoredEvent;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// Oldest first: by timestamp, then position.
    #[default]
    Asc,
    /// Newest first.
    Desc,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeFilter {
    Exact(String),
    Prefix(String),
}

/// A query within one tenant. Results are ordered by (timestamp, position) across all shards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub tenant_id: String,
    pub entity_id: Option<String>,
    pub event_type: Option<TypeFilter>,
    /// Inclusive lower bound, UTC microseconds.
    pub since_us: Option<i64>,
    /// Exclusive upper bound.
    pub until_us: Option<i64>,
    /// The store as it was at this instant: only events with timestamp <= as_of.
    pub as_of_us: Option<i64>,
    /// Default: the store's `default_query_limit`.
    pub limit: Option<usize>,
    pub offset: usize,
    pub order: Order,
}

impl Query {
    pub fn tenant(tenant_id: impl Into<String>) -> Query {
        Query {
            tenant_id: tenant_id.into(),
            entity_id: None,
            event_type: None,
            since_us: None,
            until_us: None,
            as_of_us: None,
            limit: None,
            offset: 0,
            order: Order::Asc,
        }
    }
    pub fn entity(mut self, entity_id: impl Into<String>) -> Query {
        self.entity_id = Some(entity_id.into());
        self
    }
    pub fn event_type(mut self, event_type: impl Into<String>) -> Query {
        self.event_type = Some(TypeFilter::Exact(event_type.into()));
        self
    }
    pub fn event_type_prefix(mut self, prefix: impl Into<String>) -> Query {
        self.event_type = Some(TypeFilter::Prefix(prefix.into()));
        self
    }
    pub fn since_us(mut self, us: i64) -> Query {
        self.since_us = Some(us);
        self
    }
    pub fn until_us(mut self, us: i64) -> Query {
        self.until_us = Some(us);
        self
    }
    pub fn as_of_us(mut self, us: i64) -> Query {
        self.as_of_us = Some(us);
        self
    }
    pub fn limit(mut self, limit: usize) -> Query {
        self.limit = Some(limit);
        self
    }
    pub fn offset(mut self, offset: usize) -> Query {
        self.offset = offset;
        self
    }
    pub fn order(mut self, order: Order) -> Query {
        self.order = order;
        self
    }

    /// Timestamps this query admits, as an inclusive range (empty when `lo > hi`).
    pub fn time_range(&self) -> (i64, i64) {
        let lo = self.since_us.unwrap_or(i64::MIN);
        let mut hi = self.until_us.map_or(i64::MAX, |u| u.saturating_sub(1));
        if let Some(as_of) = self.as_of_us {
            hi = hi.min(as_of);
        }
        (lo, hi)
    }

    /// Whether `event` (of this query's tenant) passes the type and time filters.
    #[inline]
    pub fn matches(&self, event: &StoredEvent) -> bool {
        let archived = event.archived();
        let (lo, hi) = self.time_range();
        let ts = archived.timestamp_us.to_native();
        if ts < lo || ts > hi {
            return false;
        }
        if let Some(entity) = &self.entity_id {
            if archived.entity_id.as_str() != entity {
                return false;
            }
        }
        match &self.event_type {
            None => true,
            Some(TypeFilter::Exact(t)) => archived.event_type.as_str() == t,
            Some(TypeFilter::Prefix(p)) => archived.event_type.as_str().starts_with(p.as_str()),
        }
    }
}

/// A page of results.
#[derive(Debug, Clone)]
pub struct QueryResult {
    pub events: Vec<StoredEvent>,
    /// More events match after this page.
    pub has_more: bool,
}

/// Counts of one tenant's events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantStats {
    pub events: u64,
    pub entities: u64,
    pub event_types: std::collections::BTreeMap<String, u64>,
}

impl TenantStats {
    pub fn merge(&mut self, other: TenantStats) {
        self.events += other.events;
        self.entities += other.entities;
        for (event_type, n) in other.event_types {
            *self.event_types.entry(event_type).or_default() += n;
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("limit {limit} is over the maximum of {max}")]
    LimitTooLarge { limit: usize, max: usize },
    #[error("limit must be at least 1")]
    ZeroLimit,
    #[error("invalid tenant_id: {0}")]
    Tenant(String),
}

/// The sort key of results: timestamp, then position, then shard.
#[inline]
pub fn sort_key(event: &StoredEvent) -> (i64, u64) {
    let archived = event.archived();
    (archived.timestamp_us.to_native(), archived.position.to_native())
}
