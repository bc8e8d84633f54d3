//! K-way merge of sorted lists: used for the shards' answers and for several index ranges in a shard.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::Order;

struct Head<K, T> {
    key: K,
    source: usize,
    item: T,
    order: Order,
}

impl<K: Ord, T> Ord for Head<K, T> {
    fn cmp(&self, other: &Self) -> Ordering {
        // BinaryHeap pops the greatest: for ascending order the smallest key must be "greatest".
        let by_key = self.key.cmp(&other.key).then(self.source.cmp(&other.source));
        match self.order {
            Order::Asc => by_key.reverse(),
            Order::Desc => by_key,
        }
    }
}
impl<K: Ord, T> PartialOrd for Head<K, T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<K: Ord, T> PartialEq for Head<K, T> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl<K: Ord, T> Eq for Head<K, T> {}

/// Iterator over the merge of several iterators, each already sorted by `key` in `order`. Ties are
/// broken by source index, so the result is deterministic.
pub struct Merged<I: Iterator, K, F> {
    sources: Vec<I>,
    heap: BinaryHeap<Head<K, I::Item>>,
    key: F,
    order: Order,
}

impl<I: Iterator, K: Ord, F: Fn(&I::Item) -> K> Merged<I, K, F> {
    pub fn new(mut sources: Vec<I>, order: Order, key: F) -> Self {
        let mut heap = BinaryHeap::with_capacity(sources.len());
        for (source, iter) in sources.iter_mut().enumerate() {
            if let Some(item) = iter.next() {
                heap.push(Head { key: key(&item), source, item, order });
            }
        }
        Merged { sources, heap, key, order }
    }
}

impl<I: Iterator, K: Ord, F: Fn(&I::Item) -> K> Iterator for Merged<I, K, F> {
    type Item = I::Item;
    fn next(&mut self) -> Option<I::Item> {
        let head = self.heap.pop()?;
        if let Some(item) = self.sources[head.source].next() {
            self.heap.push(Head { key: (self.key)(&item), source: head.source, item, order: self.order });
        }
        Some(head.item)
    }
}

/// Merges sorted lists, skips `offset`, takes `limit`, and says whether more remained.
pub fn merge_sorted<T, K: Ord>(
    lists: Vec<Vec<T>>,
    order: Order,
    offset: usize,
    limit: usize,
    key: impl Fn(&T) -> K,
) -> (Vec<T>, bool) {
    if lists.len() == 1 {
        // One list (one entity's events) is already in order.
        let mut list = lists.into_iter().next().expect("one list").into_iter().skip(offset);
        let page: Vec<T> = list.by_ref().take(limit).collect();
        let has_more = list.next().is_some();
        return (page, has_more);
    }
    let mut merged = Merged::new(lists.into_iter().map(Vec::into_iter).collect(), order, key).skip(offset);
    let page: Vec<T> = merged.by_ref().take(limit).collect();
    let has_more = merged.next().is_some();
    (page, has_more)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_both_orders_with_offset_and_limit() {
        let lists = vec![vec![1, 4, 9], vec![2, 3, 10], vec![], vec![5]];
        let (page, more) = merge_sorted(lists.clone(), Order::Asc, 1, 4, |x| *x);
        assert_eq!((page, more), (vec![2, 3, 4, 5], true));
        let desc: Vec<Vec<i32>> = lists.into_iter().map(|l| l.into_iter().rev().collect()).collect();
        let (page, more) = merge_sorted(desc, Order::Desc, 0, 10, |x| *x);
        assert_eq!((page, more), (vec![10, 9, 5, 4, 3, 2, 1], false));
        assert_eq!(merge_sorted(vec![vec![1, 2, 3]], Order::Asc, 1, 1, |x| *x), (vec![2], true));
        assert_eq!(merge_sorted(vec![vec![3, 2, 1]], Order::Desc, 0, 3, |x| *x), (vec![3, 2, 1], false));
    }
}
