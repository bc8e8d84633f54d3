//! A query over several shards read in pages: each shard answers at most a page at a time, in the
//! query's order, and the merge asks a shard for its next page only when it has used up the last one.
//! A deep `offset` then costs many bounded reads instead of one read of `offset + limit` events on a
//! shard's core (and as many events in memory at once).

use std::collections::VecDeque;
use std::ops::RangeInclusive;

use super::{sort_key, Order};
use crate::event::StoredEvent;

/// Events one shard reads for one page at most. A shard answers a page in one go on its executor, so
/// this bounds how long a query holds that shard's appends (a few hundred µs).
pub const QUERY_PAGE_EVENTS: usize = 4096;

/// Where a shard's next page starts: after the last key the previous page returned, and reading no
/// position past the visible one the first page saw, so every page reads one state of the shard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PageFrom {
    pub after: Option<(i64, u64)>,
    pub visible: Option<u64>,
}

impl PageFrom {
    /// The keys `(timestamp_us, position)` of `lo_us..=hi_us` this page may return, `None` when none.
    pub fn range(&self, lo_us: i64, hi_us: i64, order: Order) -> Option<RangeInclusive<(i64, u64)>> {
        let (mut start, mut end) = ((lo_us, 0), (hi_us, u64::MAX));
        match (self.after, order) {
            (None, _) => {}
            (Some((ts, position)), Order::Asc) => {
                let next = if position == u64::MAX { (ts.checked_add(1)?, 0) } else { (ts, position + 1) };
                start = start.max(next);
            }
            (Some((ts, position)), Order::Desc) => {
                let previous = if position == 0 { (ts.checked_sub(1)?, u64::MAX) } else { (ts, position - 1) };
                end = end.min(previous);
            }
        }
        (lo_us <= hi_us && start <= end).then_some(start..=end)
    }
}

/// One shard's page, as it answers: the events in the query's order and the visible position it read at.
pub struct Page {
    pub events: Vec<StoredEvent>,
    pub visible: u64,
}

/// What the merge holds of one shard: the rest of its last page, and where its next one starts.
#[derive(Default)]
struct Source {
    events: VecDeque<StoredEvent>,
    from: PageFrom,
    /// Its last page was short: it has nothing more.
    done: bool,
}

/// The merge of the shards' pages: skips `offset`, keeps `limit` and one more (to tell whether more remain).
pub struct PageMerge {
    sources: Vec<Source>,
    order: Order,
    to_skip: usize,
    limit: usize,
    kept: Vec<StoredEvent>,
}

impl PageMerge {
    pub fn new(shards: usize, order: Order, offset: usize, limit: usize) -> PageMerge {
        PageMerge {
            sources: (0..shards).map(|_| Source::default()).collect(),
            order,
            to_skip: offset,
            limit,
            kept: Vec::with_capacity(limit.min(QUERY_PAGE_EVENTS) + 1),
        }
    }

    /// Events every shard may still have to give, at most: the size of a first page.
    pub fn first_page_events(&self) -> usize {
        self.to_skip.saturating_add(self.limit).saturating_add(1).min(QUERY_PAGE_EVENTS)
    }

    /// Takes a shard's page, asked for with `asked` events.
    pub fn add(&mut self, shard: usize, page: Page, asked: usize) {
        let source = &mut self.sources[shard];
        debug_assert!(source.events.is_empty(), "a page is asked for only once the last one is used up");
        source.done = page.events.len() < asked;
        source.from.visible = Some(page.visible);
        if let Some(last) = page.events.last() {
            source.from.after = Some(sort_key(last));
        }
        source.events.extend(page.events);
    }

    /// Merges until the answer is complete or a shard's page is used up; then returns that shard and where
    /// its next page starts (the caller adds it and calls again), or `None` when the answer is complete.
    pub fn run(&mut self) -> Option<(usize, PageFrom)> {
        while self.kept.len() <= self.limit {
            if let Some(shard) = self.sources.iter().position(|s| s.events.is_empty() && !s.done) {
                return Some((shard, self.sources[shard].from));
            }
            let mut best: Option<(usize, (i64, u64))> = None;
            for (shard, source) in self.sources.iter().enumerate() {
                let Some(head) = source.events.front() else { continue };
                let key = sort_key(head);
                // Equal keys (one on each shard) come by shard in ascending order and reversed in descending
                // order, as in `merge_sorted`.
                let better = match (best, self.order) {
                    (None, _) => true,
                    (Some((_, b)), Order::Asc) => key < b,
                    (Some((_, b)), Order::Desc) => key >= b,
                };
                if better {
                    best = Some((shard, key));
                }
            }
            let (shard, _) = best?;
            let event = self.sources[shard].events.pop_front().expect("a head");
            if self.to_skip > 0 {
                self.to_skip -= 1;
            } else {
                self.kept.push(event);
            }
        }
        None
    }

    /// The answer: at most `limit` events, and whether more matched.
    pub fn finish(mut self) -> (Vec<StoredEvent>, bool) {
        let has_more = self.kept.len() > self.limit;
        self.kept.truncate(self.limit);
        (self.kept, has_more)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_resumes_after_its_last_key_within_the_time_range() {
        let first = PageFrom::default();
        assert_eq!(first.range(10, 20, Order::Asc), Some((10, 0)..=(20, u64::MAX)));
        assert_eq!(first.range(21, 20, Order::Asc), None);
        let after = PageFrom { after: Some((15, 7)), visible: Some(9) };
        assert_eq!(after.range(10, 20, Order::Asc), Some((15, 8)..=(20, u64::MAX)));
        assert_eq!(after.range(10, 20, Order::Desc), Some((10, 0)..=(15, 6)));
        assert_eq!(after.range(16, 20, Order::Desc), None, "already below the range");
        let edge = PageFrom { after: Some((15, u64::MAX)), visible: None };
        assert_eq!(edge.range(10, 20, Order::Asc), Some((16, 0)..=(20, u64::MAX)));
        let edge = PageFrom { after: Some((15, 0)), visible: None };
        assert_eq!(edge.range(10, 20, Order::Desc), Some((10, 0)..=(14, u64::MAX)));
        assert_eq!(PageFrom { after: Some((i64::MAX, u64::MAX)), visible: None }.range(0, i64::MAX, Order::Asc), None);
    }
}
