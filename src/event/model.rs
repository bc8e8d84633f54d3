//! The stored event: archived once with rkyv, kept and read as archived bytes.

use std::sync::Arc;

use uuid::Uuid;

use super::arena::{self, Chunk};

/// One event as it is stored. The archived form of this struct is the WAL record body and the in-memory
/// representation; see `docs/FORMAT.md`. Field order is part of the on-disk format.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub position: u64,
    pub timestamp_us: i64,
    pub version: u64,
    pub id: [u8; 16],
    pub tenant_id: String,
    pub entity_id: String,
    pub event_type: String,
    /// JSON text, validated on input.
    pub payload: String,
    /// JSON text, validated on input.
    pub metadata: Option<String>,
}

/// Archived event bytes, shared cheaply between the shard's maps and readers on any thread: a handle to a
/// record in an arena chunk (see `arena.rs`), 16 bytes, that keeps the chunk alive.
///
/// Invariant: the bytes are a valid archive of [`Event`], 8-byte aligned, and never written while a handle
/// exists. They are either produced by our own serializer or checked with bytecheck once (recovery), so
/// later reads skip validation.
#[derive(Clone)]
pub struct StoredEvent {
    chunk: Arc<Chunk>,
    offset_bytes: u32,
    len_bytes: u32,
}

const _: () = assert!(std::mem::size_of::<StoredEvent>() == 16);

impl StoredEvent {
    /// Serialises `event` (the one encoding it gets) into the current thread's arena: on a shard's
    /// executor, the shard's arena.
    pub(crate) fn encode(event: &Event) -> StoredEvent {
        arena::encode(event)
    }

    /// Validates untrusted bytes (read back from disk) and copies them into the current thread's arena.
    pub(crate) fn decode(body: &[u8]) -> Result<StoredEvent, rkyv::rancor::Error> {
        arena::decode(body)
    }

    /// # Safety
    /// `[offset, offset + len)` of `chunk` holds a valid archive of [`Event`] at an 8-byte aligned address
    /// and is never written again while any handle to `chunk` exists.
    pub(crate) unsafe fn from_raw_parts(chunk: Arc<Chunk>, offset_bytes: u32, len_bytes: u32) -> StoredEvent {
        StoredEvent { chunk, offset_bytes, len_bytes }
    }

    /// The parts of the handle; the chunk's strong count goes with them (see [`StoredEvent::from_raw_parts`]).
    pub(crate) fn into_raw_parts(self) -> (Arc<Chunk>, u32, u32) {
        (self.chunk, self.offset_bytes, self.len_bytes)
    }

    #[cfg(test)]
    pub(crate) fn chunk_addr(&self) -> usize {
        Arc::as_ptr(&self.chunk) as usize
    }

    /// The archived event, read in place.
    #[inline]
    pub fn archived(&self) -> &ArchivedEvent {
        // SAFETY: the type invariant above: the bytes were produced by our serializer or validated by
        // `decode`, are aligned, and are not mutated while this handle exists.
        unsafe { rkyv::access_unchecked::<ArchivedEvent>(self.bytes()) }
    }

    /// The archived bytes (the WAL record body).
    #[inline]
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: the type invariant: the handle's range was handed out by the arena for this record.
        unsafe { self.chunk.bytes(self.offset_bytes, self.len_bytes) }
    }

    pub fn position(&self) -> u64 {
        self.archived().position.to_native()
    }
    pub fn timestamp_us(&self) -> i64 {
        self.archived().timestamp_us.to_native()
    }
    pub fn version(&self) -> u64 {
        self.archived().version.to_native()
    }
    pub fn id(&self) -> Uuid {
        Uuid::from_bytes(self.archived().id)
    }
    pub fn tenant_id(&self) -> &str {
        self.archived().tenant_id.as_str()
    }
    pub fn entity_id(&self) -> &str {
        self.archived().entity_id.as_str()
    }
    pub fn event_type(&self) -> &str {
        self.archived().event_type.as_str()
    }
    /// The payload's JSON text.
    pub fn payload_json(&self) -> &str {
        self.archived().payload.as_str()
    }
    /// The metadata's JSON text, if any.
    pub fn metadata_json(&self) -> Option<&str> {
        self.archived().metadata.as_ref().map(|m| m.as_str())
    }

    /// Deserialises into an owned [`Event`] (for callers that want one; queries do not need it).
    pub fn to_event(&self) -> Event {
        rkyv::deserialize::<Event, rkyv::rancor::Error>(self.archived()).expect("archive is valid")
    }
}

impl std::fmt::Debug for StoredEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredEvent")
            .field("position", &self.position())
            .field("id", &self.id())
            .field("tenant_id", &self.tenant_id())
            .field("entity_id", &self.entity_id())
            .field("event_type", &self.event_type())
            .field("version", &self.version())
            .field("timestamp_us", &self.timestamp_us())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Event {
        Event {
            position: 7,
            timestamp_us: 1_700_000_000_123_456,
            version: 3,
            id: *Uuid::now_v7().as_bytes(),
            tenant_id: "acme".into(),
            entity_id: "user-1".into(),
            event_type: "user.created".into(),
            payload: r#"{"name":"Ada"}"#.into(),
            metadata: Some(r#"{"ip":"127.0.0.1"}"#.into()),
        }
    }

    #[test]
    fn encode_decode_round_trip_reads_archived_fields() {
        let event = sample();
        let stored = StoredEvent::encode(&event);
        assert_eq!(stored.bytes().len() % 8, 0, "record bodies must stay 8-byte multiples");
        let decoded = StoredEvent::decode(stored.bytes()).unwrap();
        assert_eq!(decoded.to_event(), event);
        assert_eq!(decoded.entity_id(), "user-1");
        assert_eq!(decoded.metadata_json(), Some(r#"{"ip":"127.0.0.1"}"#));
    }

    #[test]
    fn decode_rejects_garbage() {
        let stored = StoredEvent::encode(&sample());
        let mut bytes = stored.bytes().to_vec();
        let n = bytes.len();
        bytes[n - 8..].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(StoredEvent::decode(&bytes).is_err());
    }
}
