//! The shard's events by position: an append-only, two-level slot array. One writer (the shard's
//! executor), readers on any thread without locks.
//!
//! A fixed top-level table points to blocks of slots, allocated when the first position in them is stored
//! and freed only when the array drops, so a reader's block pointer stays valid. A slot holds a
//! [`StoredEvent`]'s parts: the chunk pointer (one strong count, from `Arc::into_raw`; null: empty, or a
//! position lost to corruption), offset and length.

use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::event::{Chunk, StoredEvent};

/// Positions per block: 16 Ki slots of 16 bytes, 256 KiB.
const BLOCK_SLOTS_LOG2: u32 = 14;
const BLOCK_SLOTS: usize = 1 << BLOCK_SLOTS_LOG2;
/// Blocks in the top table (512 KiB of pointers, zeroed lazily by the OS): 2^30 positions per shard.
const TOP_BLOCKS: usize = 1 << 16;
pub const MAX_POSITIONS: u64 = (TOP_BLOCKS * BLOCK_SLOTS) as u64;

#[derive(Default)]
struct Slot {
    chunk: AtomicPtr<Chunk>,
    offset_bytes: AtomicU32,
    len_bytes: AtomicU32,
}

const _: () = assert!(std::mem::size_of::<Slot>() == 16);

type Block = [Slot; BLOCK_SLOTS];

pub struct PositionSlots {
    top: Box<[AtomicPtr<Block>]>,
    /// One past the highest block index allocated, so drop visits only those.
    blocks_end: AtomicUsize,
}

/// A zeroed allocation of `T`, for types whose all-zero bytes are a valid value (null pointers, zeros).
fn zeroed_box<T>(layout: std::alloc::Layout) -> *mut T {
    // SAFETY: both layouts here have a non-zero size.
    let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
    if ptr.is_null() {
        std::alloc::handle_alloc_error(layout);
    }
    ptr.cast()
}

impl PositionSlots {
    pub fn new() -> PositionSlots {
        let layout = std::alloc::Layout::array::<AtomicPtr<Block>>(TOP_BLOCKS).expect("top table layout");
        let ptr = zeroed_box::<AtomicPtr<Block>>(layout);
        // SAFETY: a zeroed allocation of TOP_BLOCKS AtomicPtrs (all null), with the layout Box uses.
        let top = unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(ptr, TOP_BLOCKS)) };
        PositionSlots { top, blocks_end: AtomicUsize::new(0) }
    }

    fn split(position: u64) -> (usize, usize) {
        ((position >> BLOCK_SLOTS_LOG2) as usize, position as usize & (BLOCK_SLOTS - 1))
    }

    fn block(&self, block_index: usize) -> Option<&Block> {
        let ptr = self.top.get(block_index)?.load(Ordering::Acquire);
        // SAFETY: non-null block pointers come from `Box::into_raw` in `insert`, published with Release,
        // and are freed only in `drop` (which has `&mut self`).
        unsafe { ptr.as_ref() }
    }

    /// Stores `event` at `position` (shard executor only; each position at most once).
    pub fn insert(&self, position: u64, event: StoredEvent) {
        assert!(
            position < MAX_POSITIONS,
            "position {position} is past the {MAX_POSITIONS} positions a shard's slot array holds"
        );
        let (block_index, slot_index) = PositionSlots::split(position);
        let block = match self.block(block_index) {
            Some(block) => block,
            None => {
                let fresh = zeroed_box::<Block>(std::alloc::Layout::new::<Block>());
                // With one writer the exchange always succeeds; it is one anyway so a misuse leaks nothing.
                match self.top[block_index].compare_exchange(std::ptr::null_mut(), fresh, Ordering::AcqRel, Ordering::Acquire) {
                    Ok(_) => {
                        self.blocks_end.fetch_max(block_index + 1, Ordering::Relaxed);
                        // SAFETY: just published; valid until drop.
                        unsafe { &*fresh }
                    }
                    Err(existing) => {
                        // SAFETY: `fresh` was never shared; `existing` is a published block.
                        unsafe {
                            drop(Box::from_raw(fresh));
                            &*existing
                        }
                    }
                }
            }
        };
        let slot = &block[slot_index];
        assert!(slot.chunk.load(Ordering::Relaxed).is_null(), "position {position} stored twice");
        let (chunk, offset_bytes, len_bytes) = event.into_raw_parts();
        slot.offset_bytes.store(offset_bytes, Ordering::Relaxed);
        slot.len_bytes.store(len_bytes, Ordering::Relaxed);
        // Release: a reader that sees the pointer also sees offset and length, and the chunk's bytes.
        slot.chunk.store(Arc::into_raw(chunk).cast_mut(), Ordering::Release);
    }

    /// The event at `position`, or None if nothing was stored there.
    #[inline]
    pub fn get(&self, position: u64) -> Option<StoredEvent> {
        let (block_index, slot_index) = PositionSlots::split(position);
        let slot = &self.block(block_index)?[slot_index];
        let chunk = slot.chunk.load(Ordering::Acquire);
        if chunk.is_null() {
            return None;
        }
        let (offset_bytes, len_bytes) = (slot.offset_bytes.load(Ordering::Relaxed), slot.len_bytes.load(Ordering::Relaxed));
        // SAFETY: the slot owns one strong count of `chunk` (from `Arc::into_raw`) until the array drops,
        // which cannot happen while `&self` is borrowed; so the count is > 0 and we may add one for the
        // handle. The slot's range is a record the arena handed out (the invariant of StoredEvent, which
        // `into_raw_parts` carried here).
        unsafe {
            Arc::increment_strong_count(chunk);
            Some(StoredEvent::from_raw_parts(Arc::from_raw(chunk), offset_bytes, len_bytes))
        }
    }
}

impl Default for PositionSlots {
    fn default() -> PositionSlots {
        PositionSlots::new()
    }
}

impl Drop for PositionSlots {
    fn drop(&mut self) {
        for entry in &self.top[..*self.blocks_end.get_mut()] {
            let block = entry.load(Ordering::Acquire);
            if block.is_null() {
                continue;
            }
            // SAFETY: from `Box::into_raw` in `insert`; no reader is left (`&mut self`).
            let block = unsafe { Box::from_raw(block) };
            for slot in block.iter() {
                let chunk = slot.chunk.load(Ordering::Acquire);
                if !chunk.is_null() {
                    // SAFETY: the strong count the slot owned.
                    drop(unsafe { Arc::from_raw(chunk) });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;
    use std::sync::atomic::AtomicU64;

    fn event(position: u64) -> StoredEvent {
        StoredEvent::encode(&Event {
            position,
            timestamp_us: position as i64,
            version: 1,
            id: (position as u128).to_le_bytes(),
            tenant_id: "t".into(),
            entity_id: "e".into(),
            event_type: "x".into(),
            payload: format!("{position}"),
            metadata: None,
        })
    }

    #[test]
    fn gaps_read_as_none() {
        let slots = PositionSlots::new();
        for p in [1, 2, 4, 7, BLOCK_SLOTS as u64 * 3 + 5] {
            slots.insert(p, event(p));
        }
        for p in 0..BLOCK_SLOTS as u64 * 4 {
            let expected = [1, 2, 4, 7, BLOCK_SLOTS as u64 * 3 + 5].contains(&p);
            assert_eq!(slots.get(p).map(|e| e.position()), expected.then_some(p), "position {p}");
        }
        assert!(slots.get(MAX_POSITIONS + 10).is_none());
    }

    #[test]
    fn many_blocks_and_drop_releases_every_count() {
        let slots = PositionSlots::new();
        let n = BLOCK_SLOTS as u64 * 5 + 17;
        let kept = event(0);
        for p in 1..=n {
            slots.insert(p, event(p));
        }
        for p in (1..=n).step_by(997) {
            assert_eq!(slots.get(p).unwrap().position(), p);
        }
        let handle = slots.get(3).unwrap();
        drop(slots);
        assert_eq!(handle.position(), 3, "a handle outlives the array");
        drop(handle);
        // The writer moved on to later chunks long ago, so `kept` is all that is left of its chunk.
        let (chunk, _, _) = kept.into_raw_parts();
        assert_eq!(Arc::strong_count(&chunk), 1);
    }

    #[test]
    #[should_panic(expected = "slot array holds")]
    fn overflow_is_a_clear_panic() {
        PositionSlots::new().insert(MAX_POSITIONS, event(1));
    }

    #[test]
    #[should_panic(expected = "stored twice")]
    fn a_position_is_stored_once() {
        let slots = PositionSlots::new();
        slots.insert(5, event(5));
        slots.insert(5, event(5));
    }

    #[test]
    fn readers_on_another_thread_see_published_positions_while_the_writer_appends() {
        const EVENTS: u64 = 60_000;
        let slots = Arc::new(PositionSlots::new());
        let visible = Arc::new(AtomicU64::new(0));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (slots, visible) = (slots.clone(), visible.clone());
                std::thread::spawn(move || {
                    let mut reads = 0u64;
                    loop {
                        let upto = visible.load(Ordering::Acquire);
                        for p in upto.saturating_sub(64).max(1)..=upto {
                            if p % 1000 == 999 {
                                assert!(slots.get(p).is_none(), "a gap at {p}");
                                continue;
                            }
                            let e = slots.get(p).unwrap_or_else(|| panic!("published position {p} missing"));
                            assert_eq!(e.position(), p);
                            assert_eq!(e.payload_json(), p.to_string());
                            reads += 1;
                        }
                        if upto == EVENTS {
                            return reads;
                        }
                    }
                })
            })
            .collect();
        for p in 1..=EVENTS {
            if p % 1000 != 999 {
                slots.insert(p, event(p));
            }
            visible.store(p, Ordering::Release);
        }
        for reader in readers {
            assert!(reader.join().unwrap() > 0);
        }
    }
}
