//! A time index's keys in arrival order, when arrival order is time order: an append-only vector of
//! `(timestamp_us, position)` that the shard's executor appends to and any thread reads without a lock, so
//! a query by event type can run on the calling thread instead of a round trip to every shard.
//!
//! Blocks double in size (64, 128, 256, ... keys) and are never moved or freed before the vector drops, so
//! a reader's block pointer stays valid; a small index costs one small block. The writer stores a key,
//! then publishes the new length with Release; a reader loads the length with Acquire and reads only below
//! it.

use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};

pub type Key = (i64, u64);

const FIRST_BLOCK_KEYS: usize = 64;
/// Enough doubling blocks for more keys than a shard holds positions.
const BLOCKS: usize = 40;

pub struct OrderedKeys {
    blocks: [AtomicPtr<Key>; BLOCKS],
    len: AtomicUsize,
    /// Set once a key arrived out of order (kept elsewhere, by the shard alone): readers on other threads
    /// then cannot answer from these keys alone.
    has_late: AtomicBool,
}

/// The block holding index `i`, the offset in it, and the block's size.
fn locate(i: usize) -> (usize, usize, usize) {
    let j = i / FIRST_BLOCK_KEYS + 1;
    let block = (usize::BITS - 1 - j.leading_zeros()) as usize;
    let first_in_block = FIRST_BLOCK_KEYS * ((1 << block) - 1);
    (block, i - first_in_block, FIRST_BLOCK_KEYS << block)
}

impl Default for OrderedKeys {
    fn default() -> OrderedKeys {
        OrderedKeys { blocks: std::array::from_fn(|_| AtomicPtr::new(std::ptr::null_mut())), len: AtomicUsize::new(0), has_late: AtomicBool::new(false) }
    }
}

impl OrderedKeys {
    /// Appends a key (shard executor only: one writer).
    pub fn push(&self, key: Key) {
        let i = self.len.load(Ordering::Relaxed);
        let (block, offset, size) = locate(i);
        assert!(block < BLOCKS, "time index full at {i} keys");
        let mut ptr = self.blocks[block].load(Ordering::Relaxed);
        if ptr.is_null() {
            ptr = Box::into_raw(vec![(0i64, 0u64); size].into_boxed_slice()).cast::<Key>();
            self.blocks[block].store(ptr, Ordering::Release);
        }
        // SAFETY: `offset < size`, the block was allocated with `size` keys, and no reader reads index `i`
        // before the length below publishes it.
        unsafe { ptr.add(offset).write(key) };
        self.len.store(i + 1, Ordering::Release);
    }

    /// Keys published so far.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// The key at `i`, which must be below a length this thread has read.
    pub fn get(&self, i: usize) -> Key {
        let (block, offset, _) = locate(i);
        let ptr = self.blocks[block].load(Ordering::Acquire);
        assert!(!ptr.is_null(), "key {i} read before it was published");
        // SAFETY: index `i` is below a published length, so its block exists and the key was written
        // before that length was stored (Release/Acquire).
        unsafe { ptr.add(offset).read() }
    }

    pub fn last(&self) -> Option<Key> {
        self.len().checked_sub(1).map(|i| self.get(i))
    }

    /// The first index in `0..n` whose key fails `pred` (keys are sorted and `pred` holds for a prefix).
    pub fn partition_point(&self, n: usize, pred: impl Fn(&Key) -> bool) -> usize {
        let (mut lo, mut hi) = (0, n);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if pred(&self.get(mid)) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    pub fn mark_late(&self) {
        self.has_late.store(true, Ordering::Release);
    }

    pub fn has_late(&self) -> bool {
        self.has_late.load(Ordering::Acquire)
    }
}

impl Drop for OrderedKeys {
    fn drop(&mut self) {
        for (block, ptr) in self.blocks.iter().enumerate() {
            let ptr = ptr.load(Ordering::Relaxed);
            if !ptr.is_null() {
                let size = FIRST_BLOCK_KEYS << block;
                // SAFETY: allocated in `push` as a boxed slice of exactly `size` keys.
                drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(ptr, size)) });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_double_and_keys_read_back() {
        assert_eq!(locate(0), (0, 0, 64));
        assert_eq!(locate(63), (0, 63, 64));
        assert_eq!(locate(64), (1, 0, 128));
        assert_eq!(locate(191), (1, 127, 128));
        assert_eq!(locate(192), (2, 0, 256));
        let keys = OrderedKeys::default();
        for i in 0..10_000u64 {
            keys.push((i as i64 * 3, i));
        }
        assert_eq!(keys.len(), 10_000);
        assert!((0..10_000).all(|i| keys.get(i) == (i as i64 * 3, i as u64)));
        assert_eq!(keys.partition_point(keys.len(), |k| k.0 < 300), 100);
        assert_eq!(keys.last(), Some((29_997, 9_999)));
    }

    #[test]
    fn a_reader_on_another_thread_sees_only_whole_published_keys() {
        let keys = std::sync::Arc::new(OrderedKeys::default());
        let reader = {
            let keys = keys.clone();
            std::thread::spawn(move || {
                let mut seen = 0;
                while seen < 200_000 {
                    let n = keys.len();
                    for i in seen..n {
                        assert_eq!(keys.get(i), (i as i64, i as u64 * 7));
                    }
                    seen = n;
                }
            })
        };
        for i in 0..200_000u64 {
            keys.push((i as i64, i * 7));
        }
        reader.join().unwrap();
    }
}
