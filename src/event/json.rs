//! Parsing client JSON (`{event_type, entity_id, tenant_id?, payload, metadata?, expected_version?, id?,
//! timestamp?}`) into [`NewEvent`]s. Payload and metadata are kept as the client's JSON text.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::validate::{Field, ValidationError};
use super::{NewEvent, DEFAULT_TENANT};

fn bad(field: Field, reason: impl Into<String>) -> ValidationError {
    ValidationError { index: None, field, reason: reason.into() }
}

const FIELDS: [(&str, Field); 8] = [
    ("event_type", Field::EventType),
    ("entity_id", Field::EntityId),
    ("tenant_id", Field::TenantId),
    ("payload", Field::Payload),
    ("metadata", Field::Metadata),
    ("expected_version", Field::ExpectedVersion),
    ("id", Field::Id),
    ("timestamp", Field::Timestamp),
];

/// Parses one event object. The result still goes through `validate_event` when appended.
pub fn parse_event_json(text: &str) -> Result<NewEvent, ValidationError> {
    let mut object: HashMap<&str, &RawValue> =
        serde_json::from_str(text).map_err(|e| bad(Field::Event, format!("not a JSON object: {e}")))?;
    if let Some(unknown) = object.keys().find(|k| !FIELDS.iter().any(|(name, _)| name == *k)) {
        return Err(bad(Field::Event, format!("unknown field {unknown:?}")));
    }
    let mut take = |field: Field| {
        let name = FIELDS.iter().find(|(_, f)| *f == field).expect("listed").0;
        object.remove(name).filter(|v| v.get() != "null")
    };
    fn typed<'a, T: Deserialize<'a>>(field: Field, raw: &'a RawValue, what: &str) -> Result<T, ValidationError> {
        serde_json::from_str(raw.get()).map_err(|_| bad(field, format!("expected {what}")))
    }
    let required_string = |field: Field, raw: Option<&RawValue>| match raw {
        Some(raw) => typed::<String>(field, raw, "a string"),
        None => Err(bad(field, "is required")),
    };
    let event_type = required_string(Field::EventType, take(Field::EventType))?;
    let entity_id = required_string(Field::EntityId, take(Field::EntityId))?;
    let tenant_id = match take(Field::TenantId) {
        Some(raw) => typed::<String>(Field::TenantId, raw, "a string")?,
        None => DEFAULT_TENANT.to_string(),
    };
    let payload = take(Field::Payload).ok_or_else(|| bad(Field::Payload, "is required"))?.get().to_string();
    let metadata = take(Field::Metadata).map(|m| m.get().to_string());
    let expected_version = match take(Field::ExpectedVersion) {
        Some(raw) => Some(typed::<u64>(Field::ExpectedVersion, raw, "a non-negative integer")?),
        None => None,
    };
    let id = match take(Field::Id) {
        Some(raw) => Some(typed::<uuid::Uuid>(Field::Id, raw, "a UUID string")?),
        None => None,
    };
    let timestamp_us = match take(Field::Timestamp) {
        Some(raw) => Some(parse_timestamp(raw.get())?),
        None => None,
    };
    Ok(NewEvent { id, tenant_id, entity_id, event_type, timestamp_us, payload, metadata, expected_version })
}

fn parse_timestamp(json: &str) -> Result<i64, ValidationError> {
    let parsed = match serde_json::from_str::<serde_json::Value>(json) {
        Ok(serde_json::Value::String(s)) => crate::time::parse_timestamp_us(&s),
        Ok(serde_json::Value::Number(n)) => n.as_i64(),
        _ => None,
    };
    parsed.ok_or_else(|| bad(Field::Timestamp, "expected RFC 3339 text or integer microseconds"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_full_and_minimal_events() {
        let e = parse_event_json(r#"{"event_type":"t","entity_id":"e","payload":{"a":[1, 2]}}"#).unwrap();
        assert_eq!((e.tenant_id.as_str(), e.payload.as_str(), e.metadata), ("default", r#"{"a":[1, 2]}"#, None));
        let e = parse_event_json(
            r#"{"event_type":"t","entity_id":"e","tenant_id":"x","payload":1,"metadata":{"m":1},
                "expected_version":3,"id":"0190f0f0-0000-7000-8000-000000000001","timestamp":"2024-01-01T00:00:00.5Z"}"#,
        )
        .unwrap();
        assert_eq!(e.expected_version, Some(3));
        assert_eq!(e.timestamp_us, Some(1_704_067_200_500_000));
        assert_eq!(e.metadata.as_deref(), Some(r#"{"m":1}"#));
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (r#"{"entity_id":"e","payload":1}"#, Field::EventType),
            (r#"{"event_type":"t","payload":1}"#, Field::EntityId),
            (r#"{"event_type":"t","entity_id":"e"}"#, Field::Payload),
            (r#"{"event_type":"t","entity_id":"e","payload":1,"timestamp":"soon"}"#, Field::Timestamp),
            (r#"{"event_type":"t","entity_id":"e","payload":1,"id":"nope"}"#, Field::Id),
            (r#"{"event_type":5,"entity_id":"e","payload":1}"#, Field::EventType),
            (r#"{"event_type":"t","entity_id":"e","payload":1,"expected_version":-1}"#, Field::ExpectedVersion),
            (r#"{"event_type":"t","entity_id":"e","payload":1,"colour":"red"}"#, Field::Event),
            ("not json", Field::Event),
            ("[1]", Field::Event),
        ];
        for (text, field) in cases {
            assert_eq!(parse_event_json(text).unwrap_err().field, field, "{text}");
        }
    }
}
