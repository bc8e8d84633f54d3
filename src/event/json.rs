//! Parsing client JSON (`{event_type, entity_id, tenant_id?, payload, metadata?, expected_version?, id?,
//! timestamp?}`) into [`NewEvent`]s. Payload and metadata are kept as the client's JSON text.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::validate::{Field, ValidationError};
use super::{NewEvent, DEFAULT_TENANT};

fn bad(field: Field, reason: impl Into<String>) -> ValidationError {
    ValidationError { index: None, field, reason: reason.into() }
}

/// The fields as the client sent them. Reading the object is the one pass over its bytes (syntax included;
/// `null` reads as absent); each field is then typed from its own short text, so an error names the field.
/// Payload and metadata stay text, borrowed from the body until they are copied into the event.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvent<'a> {
    #[serde(borrow, default)]
    event_type: Option<&'a RawValue>,
    #[serde(borrow, default)]
    entity_id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    tenant_id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    payload: Option<&'a RawValue>,
    #[serde(borrow, default)]
    metadata: Option<&'a RawValue>,
    #[serde(borrow, default)]
    expected_version: Option<&'a RawValue>,
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    timestamp: Option<&'a RawValue>,
}

/// Parses one event object. The result still goes through `validate_event` when appended.
pub fn parse_event_json(text: &str) -> Result<NewEvent, ValidationError> {
    // A struct would also read from an array (`["t", "e"]`); an event is an object only.
    if !text.trim_start().starts_with('{') {
        let reason = match serde_json::from_str::<serde::de::IgnoredAny>(text) {
            Err(e) => format!("not a JSON object: {e}"),
            Ok(_) => "not a JSON object".to_string(),
        };
        return Err(bad(Field::Event, reason));
    }
    let raw: RawEvent = serde_json::from_str(text).map_err(|e| match e.classify() {
        // Unknown or repeated field: serde's message names it.
        serde_json::error::Category::Data => bad(Field::Event, e.to_string()),
        _ => bad(Field::Event, format!("not a JSON object: {e}")),
    })?;
    typed_event(raw)
}

fn typed_event(raw: RawEvent) -> Result<NewEvent, ValidationError> {
    fn typed<'a, T: Deserialize<'a>>(field: Field, raw: &'a RawValue, what: &str) -> Result<T, ValidationError> {
        serde_json::from_str(raw.get()).map_err(|_| bad(field, format!("expected {what}")))
    }
    let required_string = |field: Field, raw: Option<&RawValue>| match raw {
        Some(raw) => typed::<String>(field, raw, "a string"),
        None => Err(bad(field, "is required")),
    };
    let event_type = required_string(Field::EventType, raw.event_type)?;
    let entity_id = required_string(Field::EntityId, raw.entity_id)?;
    let tenant_id = match raw.tenant_id {
        Some(raw) => typed::<String>(Field::TenantId, raw, "a string")?,
        None => DEFAULT_TENANT.to_string(),
    };
    let payload = raw.payload.ok_or_else(|| bad(Field::Payload, "is required"))?.get().to_string();
    let metadata = raw.metadata.map(|m| m.get().to_string());
    let expected_version = match raw.expected_version {
        Some(raw) => Some(typed::<u64>(Field::ExpectedVersion, raw, "a non-negative integer")?),
        None => None,
    };
    let id = match raw.id {
        Some(raw) => Some(typed::<uuid::Uuid>(Field::Id, raw, "a UUID string")?),
        None => None,
    };
    let timestamp_us = match raw.timestamp {
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
        let e = parse_event_json(r#" {"event_type":"t","entity_id":"e","payload":[],"tenant_id":null,"metadata":null}"#).unwrap();
        assert_eq!((e.tenant_id.as_str(), e.payload.as_str(), e.metadata), ("default", "[]", None), "null reads as absent");
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
            (r#"["t","e",null,{}]"#, Field::Event),
            (r#"{"event_type":"t","entity_id":"e","payload":1,"payload":2}"#, Field::Event),
            (r#"{"event_type":"t","entity_id":"e","payload":null}"#, Field::Payload),
            (r#"{"event_type":"t","entity_id":"e","payload":{"a":1}"#, Field::Event),
        ];
        for (text, field) in cases {
            assert_eq!(parse_event_json(text).unwrap_err().field, field, "{text}");
        }
    }
}
