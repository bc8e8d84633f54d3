//! Input validation: every rejected field is named, and nothing of a rejected batch is written.

use super::NewEvent;
use crate::time::MAX_TIMESTAMP_US;

pub const MAX_TENANT_BYTES: usize = 64;
pub const MAX_NAME_BYTES: usize = 256;

/// Limits applied to every appended event.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_payload_bytes: usize,
    pub max_batch_events: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { max_payload_bytes: 1 << 20, max_batch_events: 100_000 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Id,
    TenantId,
    EntityId,
    EventType,
    Timestamp,
    Payload,
    Metadata,
    ExpectedVersion,
    /// The event as a whole (not an object, unknown field).
    Event,
    Batch,
}

impl Field {
    pub fn name(self) -> &'static str {
        match self {
            Field::Id => "id",
            Field::TenantId => "tenant_id",
            Field::EntityId => "entity_id",
            Field::EventType => "event_type",
            Field::Timestamp => "timestamp",
            Field::Payload => "payload",
            Field::Metadata => "metadata",
            Field::ExpectedVersion => "expected_version",
            Field::Event => "event",
            Field::Batch => "events",
        }
    }
}

/// A rejected event: which one (its index in the batch), which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: {reason}", .index.map(|i| format!("events[{i}].")).unwrap_or_default(), .field.name())]
pub struct ValidationError {
    pub index: Option<usize>,
    pub field: Field,
    pub reason: String,
}

impl ValidationError {
    fn new(field: Field, reason: impl Into<String>) -> ValidationError {
        ValidationError { index: None, field, reason: reason.into() }
    }
    pub(crate) fn at(mut self, index: usize) -> ValidationError {
        self.index = Some(index);
        self
    }
}

pub fn validate_tenant(tenant_id: &str) -> Result<(), ValidationError> {
    let field = Field::TenantId;
    if tenant_id.is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    if tenant_id.len() > MAX_TENANT_BYTES {
        return Err(ValidationError::new(field, format!("longer than {MAX_TENANT_BYTES} bytes")));
    }
    if !tenant_id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) {
        return Err(ValidationError::new(field, "may contain only ASCII letters, digits, '-', '_' and '.'"));
    }
    Ok(())
}

fn validate_name(field: Field, value: &str) -> Result<(), ValidationError> {
    if value.is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    if value.len() > MAX_NAME_BYTES {
        return Err(ValidationError::new(field, format!("longer than {MAX_NAME_BYTES} bytes")));
    }
    if value.chars().any(char::is_control) {
        return Err(ValidationError::new(field, "must not contain control characters"));
    }
    Ok(())
}

fn validate_json(field: Field, text: &str, max_bytes: usize) -> Result<(), ValidationError> {
    if text.len() > max_bytes {
        return Err(ValidationError::new(field, format!("{} bytes is over the limit of {max_bytes}", text.len())));
    }
    serde_json::from_str::<JsonCheck>(text)
        .map(|_| ())
        .map_err(|e| ValidationError::new(field, format!("not valid JSON: {e}")))
}

/// Walks a JSON document the way reading it into a value would (numbers are parsed, so one that does not
/// fit, like `1e400`, is refused), without building it. What passes reads back exactly as written.
struct JsonCheck;

impl<'de> serde::Deserialize<'de> for JsonCheck {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<JsonCheck, D::Error> {
        deserializer.deserialize_any(JsonCheckVisitor)
    }
}

struct JsonCheckVisitor;

impl<'de> serde::de::Visitor<'de> for JsonCheckVisitor {
    type Value = JsonCheck;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<JsonCheck, E> {
        Ok(JsonCheck)
    }
    fn visit_i64<E>(self, _: i64) -> Result<JsonCheck, E> {
        Ok(JsonCheck)
    }
    fn visit_u64<E>(self, _: u64) -> Result<JsonCheck, E> {
        Ok(JsonCheck)
    }
    fn visit_f64<E>(self, _: f64) -> Result<JsonCheck, E> {
        Ok(JsonCheck)
    }
    fn visit_str<E>(self, _: &str) -> Result<JsonCheck, E> {
        Ok(JsonCheck)
    }
    fn visit_unit<E>(self) -> Result<JsonCheck, E> {
        Ok(JsonCheck)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<JsonCheck, A::Error> {
        while seq.next_element::<JsonCheck>()?.is_some() {}
        Ok(JsonCheck)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<JsonCheck, A::Error> {
        while map.next_entry::<JsonCheck, JsonCheck>()?.is_some() {}
        Ok(JsonCheck)
    }
}

/// Checks one event against the limits. `index` is its place in the batch, for the error.
pub fn validate_event(event: &NewEvent, limits: &Limits) -> Result<(), ValidationError> {
    if event.id.is_some_and(|id| id.is_nil()) {
        return Err(ValidationError::new(Field::Id, "must not be the nil UUID"));
    }
    validate_tenant(&event.tenant_id)?;
    validate_name(Field::EntityId, &event.entity_id)?;
    validate_name(Field::EventType, &event.event_type)?;
    if let Some(ts) = event.timestamp_us {
        if !(0..=MAX_TIMESTAMP_US).contains(&ts) {
            return Err(ValidationError::new(Field::Timestamp, "must be between 1970 and 9999"));
        }
    }
    validate_json(Field::Payload, &event.payload, limits.max_payload_bytes)?;
    if let Some(metadata) = &event.metadata {
        validate_json(Field::Metadata, metadata, limits.max_payload_bytes)?;
    }
    Ok(())
}

/// Checks a whole batch; the first bad event fails it, with its index.
pub fn validate_batch(events: &[NewEvent], limits: &Limits) -> Result<(), ValidationError> {
    if events.is_empty() {
        return Err(ValidationError::new(Field::Batch, "a batch needs at least one event"));
    }
    if events.len() > limits.max_batch_events {
        return Err(ValidationError::new(
            Field::Batch,
            format!("{} events is over the limit of {}", events.len(), limits.max_batch_events),
        ));
    }
    for (index, event) in events.iter().enumerate() {
        validate_event(event, limits).map_err(|e| e.at(index))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok_event() -> NewEvent {
        NewEvent::with_raw_payload("e1", "t", "{}")
    }

    #[test]
    fn each_bad_field_is_named() {
        let limits = Limits { max_payload_bytes: 16, max_batch_events: 10 };
        let cases: Vec<(NewEvent, Field)> = vec![
            (NewEvent { entity_id: String::new(), ..ok_event() }, Field::EntityId),
            (NewEvent { event_type: String::new(), ..ok_event() }, Field::EventType),
            (NewEvent { event_type: "x".repeat(257), ..ok_event() }, Field::EventType),
            (NewEvent { entity_id: "a\nb".into(), ..ok_event() }, Field::EntityId),
            (ok_event().with_tenant("bad tenant"), Field::TenantId),
            (ok_event().with_tenant(""), Field::TenantId),
            (NewEvent { payload: "{not json".into(), ..ok_event() }, Field::Payload),
            (NewEvent { payload: format!("\"{}\"", "x".repeat(20)), ..ok_event() }, Field::Payload),
            (NewEvent { metadata: Some("[".into()), ..ok_event() }, Field::Metadata),
            // Valid JSON syntax, but no JSON reader can hold the number (found by fuzzing).
            (NewEvent { payload: "[1,53e02222222222222222202]".into(), ..ok_event() }, Field::Payload),
            (NewEvent { metadata: Some(r#"{"x":-1e400}"#.into()), ..ok_event() }, Field::Metadata),
            (ok_event().with_timestamp_us(-1), Field::Timestamp),
            (ok_event().with_id(uuid::Uuid::nil()), Field::Id),
        ];
        for (event, field) in cases {
            let err = validate_batch(&[ok_event(), event.clone()], &limits).unwrap_err();
            assert_eq!((err.index, err.field), (Some(1), field), "{event:?}");
        }
        assert!(validate_batch(&[ok_event()], &limits).is_ok());
        let nested = NewEvent { payload: r#"{"a":[1,-2,3.5e10,"s\u00e9",null,true,{"b":{}}]}"#.into(), ..ok_event() };
        assert!(validate_batch(&[nested], &Limits::default()).is_ok());
        assert_eq!(validate_batch(&[], &limits).unwrap_err().field, Field::Batch);
        let err = validate_batch(&vec![ok_event(); 11], &limits).unwrap_err();
        assert_eq!(err.to_string(), "events: 11 events is over the limit of 10");
    }
}
