//! An append-only arena for archived events: large chunks, each allocated once and never moved, that
//! event archives are copied into back to back. A [`StoredEvent`] is a handle (chunk, offset, length)
//! that keeps its chunk alive, so an event costs its archive plus 16 bytes, not an allocation of its own.
//!
//! The writer is thread-local. Under thread-per-core each shard has its own executor thread, so this is
//! the shard's arena; and it reaches recovery's `StoredEvent::decode`, which is called without any
//! shard context. A thread-local writer also needs no lock: only its own thread touches it.

use std::alloc::Layout;
use std::cell::RefCell;
use std::ptr::NonNull;
use std::sync::Arc;

use rkyv::util::AlignedVec;

use super::model::{ArchivedEvent, Event, StoredEvent};

/// Chunk base alignment; more than any archived field needs (8), and what `AlignedVec<16>` gave before.
const CHUNK_ALIGN_BYTES: usize = 16;
/// Records start at multiples of this, so the archive's root (and every u64 in it) stays aligned.
const RECORD_ALIGN_BYTES: usize = 8;
/// The size chunks grow to. The first chunks of a thread are smaller, so a thread that encodes only a
/// few events (a test, a tool) does not pin a whole one.
pub(crate) const CHUNK_MAX_BYTES: usize = 1 << 20;
const CHUNK_FIRST_BYTES: usize = 16 << 10;
/// A record at least this large that does not fit in the current chunk's tail gets a chunk of its own
/// instead of a fresh shared one, so a big record wastes at most this much of a tail.
const OWN_CHUNK_MIN_BYTES: usize = CHUNK_MAX_BYTES / 8;

const _: () = assert!(std::mem::align_of::<ArchivedEvent>() <= RECORD_ALIGN_BYTES);
const _: () = assert!(std::mem::size_of::<ArchivedEvent>().is_multiple_of(RECORD_ALIGN_BYTES));

/// One fixed block of bytes.
///
/// Bytes `[0, handed_out)` of the writer's cursor are immutable: they belong to handles. Only the
/// thread-local [`ArenaWriter`] that owns the chunk writes, and only past the cursor, through the raw
/// pointer (never through a reference covering handed-out bytes).
pub(crate) struct Chunk {
    ptr: NonNull<u8>,
    capacity_bytes: usize,
}

// SAFETY: a Chunk is a plain heap block. Other threads only read ranges that a handle covers; those bytes
// were written before the handle was made and are never written again while any handle (any strong
// count) exists. Handles reach other threads only through synchronising transfers (a channel, or the
// shard's slot array: slot stored with Release after the bytes were written, loaded with Acquire), so the
// writes happen-before every read. The owner writes again only past its cursor, or from offset 0 after
// `Arc::get_mut` proved it holds the only reference (that check synchronises with every other drop).
unsafe impl Send for Chunk {}
unsafe impl Sync for Chunk {}

impl Chunk {
    fn new(capacity_bytes: usize) -> Arc<Chunk> {
        let layout = Layout::from_size_align(capacity_bytes, CHUNK_ALIGN_BYTES).expect("chunk layout");
        assert!(layout.size() > 0);
        // SAFETY: the layout has a non-zero size. Not zeroed: every byte is written before it is read.
        let ptr = unsafe { std::alloc::alloc(layout) };
        let Some(ptr) = NonNull::new(ptr) else { std::alloc::handle_alloc_error(layout) };
        Arc::new(Chunk { ptr, capacity_bytes })
    }

    /// The bytes of a record.
    ///
    /// # Safety
    /// `[offset, offset + len)` lies within the chunk and was handed out as a record (see the type docs).
    #[inline]
    pub(crate) unsafe fn bytes(&self, offset_bytes: u32, len_bytes: u32) -> &[u8] {
        debug_assert!(offset_bytes as usize + len_bytes as usize <= self.capacity_bytes);
        // SAFETY: the caller's guarantee; the range is initialised and immutable while `self` is borrowed.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(offset_bytes as usize), len_bytes as usize) }
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        let layout = Layout::from_size_align(self.capacity_bytes, CHUNK_ALIGN_BYTES).expect("chunk layout");
        // SAFETY: allocated in `Chunk::new` with this layout.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), layout) }
    }
}

/// Appends records to chunks. Not `Send`/`Sync` in use: it lives in a thread-local.
pub(crate) struct ArenaWriter {
    current: Option<Arc<Chunk>>,
    /// Bytes of `current` handed out (or skipped); always a multiple of RECORD_ALIGN_BYTES.
    cursor_bytes: usize,
    next_chunk_bytes: usize,
    /// Reused serialisation buffer: once warm, encoding allocates nothing per event.
    scratch: AlignedVec<CHUNK_ALIGN_BYTES>,
}

thread_local! {
    static WRITER: RefCell<ArenaWriter> = RefCell::new(ArenaWriter::new());
}

/// Encodes `event` into the current thread's arena.
pub(crate) fn encode(event: &Event) -> StoredEvent {
    WRITER.with(|writer| writer.borrow_mut().encode(event))
}

/// Validates untrusted bytes into the current thread's arena.
pub(crate) fn decode(body: &[u8]) -> Result<StoredEvent, rkyv::rancor::Error> {
    WRITER.with(|writer| writer.borrow_mut().decode(body))
}

impl ArenaWriter {
    pub(crate) fn new() -> ArenaWriter {
        ArenaWriter { current: None, cursor_bytes: 0, next_chunk_bytes: CHUNK_FIRST_BYTES, scratch: AlignedVec::new() }
    }

    /// Serialises `event` with rkyv into the scratch buffer and copies it into a chunk.
    pub(crate) fn encode(&mut self, event: &Event) -> StoredEvent {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        let scratch = rkyv::api::high::to_bytes_in::<_, rkyv::rancor::Error>(event, scratch)
            .expect("serialising an Event into memory cannot fail");
        let place = self.reserve(scratch.len());
        // SAFETY: `reserve` returned a range past everything handed out, within the chunk, that no handle
        // covers; it does not overlap `scratch`.
        unsafe { std::ptr::copy_nonoverlapping(scratch.as_ptr(), place.start(), scratch.len()) };
        let len_bytes = scratch.len();
        self.scratch = scratch;
        self.commit(place, len_bytes)
    }

    /// Copies untrusted bytes into the chunk's free tail, validates them there with bytecheck (they need
    /// aligned storage to be checked), and hands them out only if they are a valid archive.
    pub(crate) fn decode(&mut self, body: &[u8]) -> Result<StoredEvent, rkyv::rancor::Error> {
        let place = self.reserve(body.len());
        // SAFETY: as in `encode`; `body` is not chunk memory past the cursor (nothing outside this writer
        // can reference that).
        let bytes = unsafe {
            std::ptr::copy_nonoverlapping(body.as_ptr(), place.start(), body.len());
            std::slice::from_raw_parts(place.start(), body.len())
        };
        rkyv::access::<ArchivedEvent, rkyv::rancor::Error>(bytes)?;
        // On failure nothing was handed out: the bytes stay past the cursor and are overwritten later.
        Ok(self.commit(place, body.len()))
    }

    /// A place with `len_bytes` free (RECORD_ALIGN_BYTES-aligned). Does not move the cursor; `commit`
    /// does.
    fn reserve(&mut self, len_bytes: usize) -> Place {
        assert!(len_bytes <= u32::MAX as usize - RECORD_ALIGN_BYTES, "record of {len_bytes} bytes is too large");
        if let Some(chunk) = &self.current {
            if chunk.capacity_bytes - self.cursor_bytes >= len_bytes {
                return Place { chunk: chunk.clone(), offset_bytes: self.cursor_bytes, own_chunk: false };
            }
        }
        if len_bytes >= OWN_CHUNK_MIN_BYTES {
            // A chunk of its own, exactly sized; the current chunk's tail stays in use.
            let chunk = Chunk::new(len_bytes.next_multiple_of(CHUNK_ALIGN_BYTES).max(CHUNK_ALIGN_BYTES));
            return Place { chunk, offset_bytes: 0, own_chunk: true };
        }
        // Start over in the current chunk if no handle refers to it any more (records decoded then thrown
        // away, e.g. WAL records a checkpoint already covers); `get_mut` also orders every other thread's
        // reads of it before our writes.
        match self.current.as_mut().and_then(Arc::get_mut) {
            Some(chunk) if chunk.capacity_bytes >= len_bytes => self.cursor_bytes = 0,
            _ => {
                let capacity_bytes = self.next_chunk_bytes.max(len_bytes.next_multiple_of(CHUNK_ALIGN_BYTES));
                self.next_chunk_bytes = (self.next_chunk_bytes * 2).min(CHUNK_MAX_BYTES);
                self.current = Some(Chunk::new(capacity_bytes));
                self.cursor_bytes = 0;
            }
        }
        let chunk = self.current.as_ref().expect("just set");
        debug_assert!(chunk.capacity_bytes >= len_bytes);
        Place { chunk: chunk.clone(), offset_bytes: 0, own_chunk: false }
    }

    /// Hands out the record written at `place`.
    fn commit(&mut self, place: Place, len_bytes: usize) -> StoredEvent {
        if !place.own_chunk {
            self.cursor_bytes = (place.offset_bytes + len_bytes).next_multiple_of(RECORD_ALIGN_BYTES);
            debug_assert!(self.cursor_bytes <= place.chunk.capacity_bytes);
        }
        // SAFETY: the range was written above with a valid archive (our serialiser's, or checked), and the
        // cursor now lies past it (or the chunk is the record's own), so the writer never touches it again
        // while a handle exists.
        unsafe { StoredEvent::from_raw_parts(place.chunk, place.offset_bytes as u32, len_bytes as u32) }
    }
}

/// Where the next record goes.
struct Place {
    chunk: Arc<Chunk>,
    offset_bytes: usize,
    /// A chunk made for this record alone: the current chunk's cursor does not move.
    own_chunk: bool,
}

impl Place {
    fn start(&self) -> *mut u8 {
        // SAFETY: `reserve` keeps the offset within the chunk.
        unsafe { self.chunk.ptr.as_ptr().add(self.offset_bytes) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(position: u64, payload_bytes: usize) -> Event {
        Event {
            position,
            timestamp_us: 1_700_000_000_000_000 + position as i64,
            version: position,
            id: (position as u128).to_le_bytes(),
            tenant_id: "t".into(),
            entity_id: format!("e{}", position % 7),
            event_type: "x.y".into(),
            payload: format!("\"{}\"", "p".repeat(payload_bytes)),
            metadata: position.is_multiple_of(2).then(|| r#"{"source":"out of line, longer than 8"}"#.into()),
        }
    }

    fn check(stored: &StoredEvent, expected: &Event) {
        assert_eq!(stored.bytes().as_ptr() as usize % RECORD_ALIGN_BYTES, 0);
        assert_eq!(stored.bytes().len() % RECORD_ALIGN_BYTES, 0);
        assert_eq!(&stored.to_event(), expected);
        assert!(rkyv::access::<ArchivedEvent, rkyv::rancor::Error>(stored.bytes()).is_ok());
    }

    #[test]
    fn records_cross_chunk_boundaries_intact() {
        let mut writer = ArenaWriter::new();
        let events: Vec<Event> = (1..=20_000).map(|p| event(p, (p as usize * 37) % 900)).collect();
        let stored: Vec<StoredEvent> = events.iter().map(|e| writer.encode(e)).collect();
        let chunks: std::collections::HashSet<usize> = stored.iter().map(|s| s.chunk_addr()).collect();
        assert!(chunks.len() > 5, "expected several chunks, got {}", chunks.len());
        for (s, e) in stored.iter().zip(&events) {
            check(s, e);
        }
        // Records are packed: within a chunk they follow each other.
        let (a, b) = (&stored[100], &stored[101]);
        if a.chunk_addr() == b.chunk_addr() {
            assert_eq!(b.bytes().as_ptr() as usize, (a.bytes().as_ptr() as usize + a.bytes().len()).next_multiple_of(8));
        }
    }

    #[test]
    fn a_large_record_gets_its_own_chunk_and_the_tail_stays_in_use() {
        let mut writer = ArenaWriter::new();
        let small = writer.encode(&event(1, 10));
        let big_event = event(2, CHUNK_MAX_BYTES + 1000);
        let big = writer.encode(&big_event);
        let after = writer.encode(&event(3, 10));
        check(&big, &big_event);
        assert_ne!(big.chunk_addr(), small.chunk_addr());
        assert_eq!(after.chunk_addr(), small.chunk_addr(), "the small records share the chunk");
        let medium_event = event(4, OWN_CHUNK_MIN_BYTES);
        let medium = writer.encode(&medium_event);
        check(&medium, &medium_event);
        check(&after, &event(3, 10));
    }

    #[test]
    fn handles_outlive_the_writer() {
        let mut writer = ArenaWriter::new();
        let events: Vec<Event> = (1..=3000).map(|p| event(p, 200)).collect();
        let stored: Vec<StoredEvent> = events.iter().map(|e| writer.encode(e)).collect();
        drop(writer);
        for (s, e) in stored.iter().zip(&events) {
            check(s, e);
        }
    }

    #[test]
    fn an_unreferenced_chunk_is_reused_and_a_referenced_one_is_not() {
        let mut writer = ArenaWriter::new();
        let first = writer.encode(&event(1, 100));
        let chunk = first.chunk_addr();
        drop(first);
        // Fill well past the first chunk while dropping every handle: the chunk is reused.
        for p in 2..2000 {
            assert_eq!(writer.encode(&event(p, 100)).chunk_addr(), chunk);
        }
        let kept = writer.encode(&event(5000, 100));
        let kept_bytes = kept.bytes().to_vec();
        for p in 5001..7000 {
            writer.encode(&event(p, 100));
        }
        assert_eq!(kept.bytes(), &kept_bytes[..], "a referenced chunk is never overwritten");
    }

    #[test]
    fn decode_rejects_garbage_without_handing_out_space() {
        let mut writer = ArenaWriter::new();
        // Even positions have metadata, which the overwritten last bytes belong to.
        let good = writer.encode(&event(2, 50));
        let mut bad = good.bytes().to_vec();
        let n = bad.len();
        bad[n - 8..].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(writer.decode(&bad).is_err());
        assert!(writer.decode(&bad[..n - 3]).is_err(), "a length that is not a multiple of 8");
        let again = writer.decode(good.bytes()).unwrap();
        check(&again, &event(2, 50));
        assert_eq!(again.bytes().as_ptr() as usize, (good.bytes().as_ptr() as usize + n).next_multiple_of(8));
    }

    #[test]
    fn readers_on_another_thread_see_whole_records_while_the_writer_appends() {
        use std::sync::atomic::{AtomicU64, Ordering};
        const EVENTS: u64 = 30_000;
        let published = Arc::new(std::sync::Mutex::new(Vec::<StoredEvent>::new()));
        let visible = Arc::new(AtomicU64::new(0));
        let reader = {
            let (published, visible) = (published.clone(), visible.clone());
            std::thread::spawn(move || {
                let mut checked = 0u64;
                loop {
                    let upto = visible.load(Ordering::Acquire);
                    let handles: Vec<StoredEvent> = published.lock().unwrap()[..upto as usize].to_vec();
                    for (i, h) in handles.iter().enumerate().skip(checked as usize / 2) {
                        assert_eq!(h.position(), i as u64 + 1);
                        assert_eq!(h.payload_json().len(), 2 + (i + 1) % 300);
                    }
                    checked = upto;
                    if upto == EVENTS {
                        return;
                    }
                }
            })
        };
        let mut writer = ArenaWriter::new();
        for p in 1..=EVENTS {
            let stored = writer.encode(&event(p, p as usize % 300));
            published.lock().unwrap().push(stored);
            visible.store(p, Ordering::Release);
        }
        reader.join().unwrap();
    }
}
