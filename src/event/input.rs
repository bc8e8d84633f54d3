//! What a client submits: an event before the shard has given it a position, version and timestamp.

use uuid::Uuid;

/// An event to append. Build with [`NewEvent::new`] and the `with_*` methods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// Client-chosen id for idempotent retries; a UUID v7 is generated when absent.
    pub id: Option<Uuid>,
    pub tenant_id: String,
    pub entity_id: String,
    pub event_type: String,
    /// UTC microseconds; the shard assigns the current time when absent.
    pub timestamp_us: Option<i64>,
    /// JSON text.
    pub payload: String,
    /// JSON text.
    pub metadata: Option<String>,
    /// The entity's version the client expects before this event (0: the entity has no events yet).
    pub expected_version: Option<u64>,
}

pub const DEFAULT_TENANT: &str = "default";

impl NewEvent {
    /// An event of the default tenant with a JSON payload.
    pub fn new(entity_id: impl Into<String>, event_type: impl Into<String>, payload: &serde_json::Value) -> NewEvent {
        NewEvent::with_raw_payload(entity_id, event_type, payload.to_string())
    }

    /// An event whose payload is JSON text (validated when appended).
    pub fn with_raw_payload(
        entity_id: impl Into<String>,
        event_type: impl Into<String>,
        payload_json: impl Into<String>,
    ) -> NewEvent {
        NewEvent {
            id: None,
            tenant_id: DEFAULT_TENANT.to_string(),
            entity_id: entity_id.into(),
            event_type: event_type.into(),
            timestamp_us: None,
            payload: payload_json.into(),
            metadata: None,
            expected_version: None,
        }
    }

    pub fn with_tenant(mut self, tenant_id: impl Into<String>) -> NewEvent {
        self.tenant_id = tenant_id.into();
        self
    }
    pub fn with_id(mut self, id: Uuid) -> NewEvent {
        self.id = Some(id);
        self
    }
    pub fn with_timestamp_us(mut self, timestamp_us: i64) -> NewEvent {
        self.timestamp_us = Some(timestamp_us);
        self
    }
    pub fn with_metadata(mut self, metadata: &serde_json::Value) -> NewEvent {
        self.metadata = Some(metadata.to_string());
        self
    }
    pub fn with_expected_version(mut self, version: u64) -> NewEvent {
        self.expected_version = Some(version);
        self
    }
}
