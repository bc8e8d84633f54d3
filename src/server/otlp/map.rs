//! OTLP LogRecord -> tidelog event (the mapping the README documents). Records that do not make a valid
//! event are set aside with a reason: the request answers them as `partial_success`, the rest is appended.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use serde_json::{json, Map, Value};

use crate::event::{validate_event, Limits, NewEvent};

/// How log records become events.
#[derive(Debug, Clone)]
pub struct OtlpOptions {
    /// Attribute keys tried in order for the entity id: first among the record's attributes, then the
    /// resource's. Default: `service.name`, then `host.name`.
    pub entity_attributes: Vec<String>,
}

impl Default for OtlpOptions {
    fn default() -> OtlpOptions {
        OtlpOptions { entity_attributes: vec!["service.name".into(), "host.name".into()] }
    }
}

/// The entity of records that carry none of the entity attributes (OpenTelemetry's own name for a
/// service without `service.name`).
pub const UNKNOWN_ENTITY: &str = "unknown_service";

/// A request's records as events, and the records refused.
#[derive(Debug, Default)]
pub struct Mapped {
    pub events: Vec<NewEvent>,
    /// (record number in the request, counted across resources and scopes; why).
    pub rejected: Vec<(usize, String)>,
}

impl Mapped {
    pub fn total(&self) -> usize {
        self.events.len() + self.rejected.len()
    }
}

/// Maps every record of the request for `tenant_id`, checking each event as an append would.
pub fn map_request(request: &ExportLogsServiceRequest, tenant_id: &str, options: &OtlpOptions, limits: &Limits) -> Mapped {
    let mut mapped = Mapped::default();
    let mut number = 0;
    for resource_logs in &request.resource_logs {
        let resource_attributes = resource_logs.resource.as_ref().map(|r| r.attributes.as_slice()).unwrap_or(&[]);
        let mut resource = Map::new();
        resource.insert("attributes".into(), attributes_json(resource_attributes));
        if !resource_logs.schema_url.is_empty() {
            resource.insert("schema_url".into(), json!(resource_logs.schema_url));
        }
        for scope_logs in &resource_logs.scope_logs {
            let metadata = json!({
                "resource": resource,
                "scope": scope_json(scope_logs.scope.as_ref(), &scope_logs.schema_url),
            })
            .to_string();
            for record in &scope_logs.log_records {
                let event = map_record(record, resource_attributes, options, tenant_id, &metadata);
                match validate_event(&event, limits) {
                    Ok(()) => mapped.events.push(event),
                    Err(reason) => mapped.rejected.push((number, reason.to_string())),
                }
                number += 1;
            }
        }
    }
    mapped
}

fn map_record(
    record: &LogRecord,
    resource_attributes: &[KeyValue],
    options: &OtlpOptions,
    tenant_id: &str,
    metadata: &str,
) -> NewEvent {
    let entity_id = options
        .entity_attributes
        .iter()
        .flat_map(|key| [find(&record.attributes, key), find(resource_attributes, key)])
        .flatten()
        .map(scalar_text)
        // An empty value names nothing: the next attribute is tried.
        .find(|text| !text.is_empty())
        .unwrap_or_else(|| UNKNOWN_ENTITY.to_string());
    let event_type = if !record.event_name.is_empty() {
        record.event_name.clone()
    } else if let Some(name) = find(&record.attributes, "event.name") {
        scalar_text(name)
    } else {
        format!("log.{}", severity_name(record))
    };
    // OTLP's own rule for one-timestamp stores: time_unix_nano, else observed_time_unix_nano; 0 is unset.
    let nanos = if record.time_unix_nano != 0 { record.time_unix_nano } else { record.observed_time_unix_nano };
    // u64::MAX ns is year 2554 in µs, well within i64: the store's own range check applies.
    let timestamp_us = (nanos != 0).then_some((nanos / 1000) as i64);
    let mut payload = Map::new();
    payload.insert("body".into(), record.body.as_ref().map(any_json).unwrap_or(Value::Null));
    payload.insert("severity_text".into(), json!(record.severity_text));
    payload.insert("severity_number".into(), json!(record.severity_number));
    payload.insert("attributes".into(), attributes_json(&record.attributes));
    // Ids of the wrong length or all zeroes mean "no trace" in OTLP; they are left out rather than kept as noise.
    if let Some(id) = valid_id(&record.trace_id, 16) {
        payload.insert("trace_id".into(), json!(id));
    }
    if let Some(id) = valid_id(&record.span_id, 8) {
        payload.insert("span_id".into(), json!(id));
    }
    if record.flags != 0 {
        payload.insert("flags".into(), json!(record.flags));
    }
    if record.observed_time_unix_nano != 0 {
        payload.insert("observed_time_unix_nano".into(), json!(record.observed_time_unix_nano.to_string()));
    }
    if record.dropped_attributes_count != 0 {
        payload.insert("dropped_attributes_count".into(), json!(record.dropped_attributes_count));
    }
    let mut event = NewEvent::with_raw_payload(entity_id, event_type, Value::Object(payload).to_string()).with_tenant(tenant_id);
    event.timestamp_us = timestamp_us;
    event.metadata = Some(metadata.to_string());
    event
}

/// The severity as a word: from the number's range (the data model's six levels), else the record's
/// own text in lower case, else `unspecified`.
fn severity_name(record: &LogRecord) -> String {
    let level = match record.severity_number {
        1..=4 => "trace",
        5..=8 => "debug",
        9..=12 => "info",
        13..=16 => "warn",
        17..=20 => "error",
        21..=24 => "fatal",
        _ => "",
    };
    match (level, record.severity_text.trim()) {
        ("", "") => "unspecified".to_string(),
        ("", text) => text.to_ascii_lowercase(),
        (level, _) => level.to_string(),
    }
}

fn find<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a AnyValue> {
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| kv.value.as_ref())
}

/// An attribute as text for a name: strings as they are, other values as their JSON.
fn scalar_text(value: &AnyValue) -> String {
    match &value.value {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        _ => any_json(value).to_string(),
    }
}

fn valid_id(bytes: &[u8], len: usize) -> Option<String> {
    (bytes.len() == len && bytes.iter().any(|b| *b != 0)).then(|| bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn scope_json(scope: Option<&InstrumentationScope>, schema_url: &str) -> Value {
    let mut object = Map::new();
    if let Some(scope) = scope {
        object.insert("name".into(), json!(scope.name));
        object.insert("version".into(), json!(scope.version));
        object.insert("attributes".into(), attributes_json(&scope.attributes));
    }
    if !schema_url.is_empty() {
        object.insert("schema_url".into(), json!(schema_url));
    }
    Value::Object(object)
}

/// Attributes as a JSON object (keys are unique in OTLP; a repeated key keeps its last value).
pub fn attributes_json(attributes: &[KeyValue]) -> Value {
    Value::Object(
        attributes.iter().map(|kv| (kv.key.clone(), kv.value.as_ref().map(any_json).unwrap_or(Value::Null))).collect(),
    )
}

/// An AnyValue as plain JSON: maps become objects, bytes base64 text, non-finite doubles their name.
pub fn any_json(value: &AnyValue) -> Value {
    use any_value::Value as V;
    match &value.value {
        None => Value::Null,
        Some(V::StringValue(s)) => json!(s),
        Some(V::BoolValue(b)) => json!(b),
        Some(V::IntValue(i)) => json!(i),
        Some(V::DoubleValue(d)) => serde_json::Number::from_f64(*d).map(Value::Number).unwrap_or_else(|| json!(d.to_string())),
        Some(V::ArrayValue(a)) => Value::Array(a.values.iter().map(any_json).collect()),
        Some(V::KvlistValue(kv)) => attributes_json(&kv.values),
        Some(V::BytesValue(b)) => json!(base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b)),
        // An index into a profiles dictionary; logs carry no dictionary, so only the number can be kept.
        Some(V::StringValueStrindex(i)) => json!({ "string_value_strindex": i }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::resource::v1::Resource;

    fn kv(key: &str, value: any_value::Value) -> KeyValue {
        KeyValue { key: key.into(), value: Some(AnyValue { value: Some(value) }), ..Default::default() }
    }
    fn text(s: &str) -> any_value::Value {
        any_value::Value::StringValue(s.into())
    }

    fn request(resource: Vec<KeyValue>, records: Vec<LogRecord>) -> ExportLogsServiceRequest {
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(Resource { attributes: resource, ..Default::default() }),
                scope_logs: vec![ScopeLogs {
                    scope: Some(InstrumentationScope { name: "app.module".into(), version: "1.2".into(), ..Default::default() }),
                    log_records: records,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn maps_every_field() {
        let record = LogRecord {
            time_unix_nano: 1_700_000_000_123_456_789,
            observed_time_unix_nano: 1_700_000_001_000_000_000,
            severity_number: 17,
            severity_text: "ERROR".into(),
            body: Some(AnyValue { value: Some(text("disk full")) }),
            attributes: vec![kv("http.status", any_value::Value::IntValue(507)), kv("retry", any_value::Value::BoolValue(false))],
            trace_id: (1..=16).collect(),
            span_id: (1..=8).collect(),
            flags: 1,
            ..Default::default()
        };
        let req = request(vec![kv("service.name", text("checkout")), kv("host.name", text("h1"))], vec![record]);
        let mapped = map_request(&req, "acme", &OtlpOptions::default(), &Limits::default());
        assert!(mapped.rejected.is_empty());
        let e = &mapped.events[0];
        assert_eq!((e.tenant_id.as_str(), e.entity_id.as_str(), e.event_type.as_str()), ("acme", "checkout", "log.error"));
        assert_eq!(e.timestamp_us, Some(1_700_000_000_123_456));
        let payload: Value = serde_json::from_str(&e.payload).unwrap();
        assert_eq!(payload["body"], "disk full");
        assert_eq!(payload["severity_text"], "ERROR");
        assert_eq!(payload["severity_number"], 17);
        assert_eq!(payload["attributes"], json!({"http.status": 507, "retry": false}));
        assert_eq!(payload["trace_id"], "0102030405060708090a0b0c0d0e0f10");
        assert_eq!(payload["span_id"], "0102030405060708");
        let metadata: Value = serde_json::from_str(e.metadata.as_deref().unwrap()).unwrap();
        assert_eq!(metadata["resource"]["attributes"]["host.name"], "h1");
        assert_eq!(metadata["scope"]["name"], "app.module");
        assert_eq!(metadata["scope"]["version"], "1.2");
    }

    #[test]
    fn names_and_times_fall_back_in_order() {
        let records = vec![
            LogRecord { event_name: "order.placed".into(), severity_number: 9, observed_time_unix_nano: 5_000, ..Default::default() },
            LogRecord { attributes: vec![kv("event.name", text("legacy.name"))], ..Default::default() },
            LogRecord { severity_text: "Notice".into(), ..Default::default() },
            LogRecord::default(),
        ];
        let mapped = map_request(&request(vec![kv("host.name", text("h2"))], records), "default", &OtlpOptions::default(), &Limits::default());
        let types: Vec<&str> = mapped.events.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(types, ["order.placed", "legacy.name", "log.notice", "log.unspecified"]);
        assert_eq!(mapped.events[0].timestamp_us, Some(5), "observed time when the event time is unset");
        assert_eq!(mapped.events[3].timestamp_us, None, "no time at all: the store's clock");
        assert!(mapped.events.iter().all(|e| e.entity_id == "h2"), "host.name when there is no service.name");
        let payload: Value = serde_json::from_str(&mapped.events[3].payload).unwrap();
        assert!(payload.get("trace_id").is_none() && payload["body"].is_null());
    }

    #[test]
    fn entity_attribute_is_configurable_and_record_attributes_come_first() {
        let records = vec![
            LogRecord { attributes: vec![kv("user.id", text("u-7"))], ..Default::default() },
            LogRecord::default(),
        ];
        let options = OtlpOptions { entity_attributes: vec!["user.id".into(), "service.name".into()] };
        let mapped = map_request(&request(vec![kv("service.name", text("api"))], records), "t", &options, &Limits::default());
        assert_eq!(mapped.events[0].entity_id, "u-7");
        assert_eq!(mapped.events[1].entity_id, "api");
        let none = map_request(&request(vec![], vec![LogRecord::default()]), "t", &OtlpOptions::default(), &Limits::default());
        assert_eq!(none.events[0].entity_id, UNKNOWN_ENTITY);
        let empty = vec![kv("service.name", text("")), kv("host.name", text("h3"))];
        let mapped = map_request(&request(empty, vec![LogRecord::default()]), "t", &OtlpOptions::default(), &Limits::default());
        assert_eq!(mapped.events[0].entity_id, "h3", "an empty service.name is skipped");
    }

    #[test]
    fn invalid_records_are_rejected_with_their_number_and_reason() {
        let records = vec![
            LogRecord::default(),
            LogRecord { event_name: "bad\nname".into(), ..Default::default() },
            LogRecord { event_name: "n".repeat(300), ..Default::default() },
            LogRecord { body: Some(AnyValue { value: Some(text(&"x".repeat(300))) }), ..Default::default() },
        ];
        let limits = Limits { max_payload_bytes: 256, ..Limits::default() };
        let mapped = map_request(&request(vec![kv("service.name", text("s"))], records), "t", &OtlpOptions::default(), &limits);
        assert_eq!(mapped.events.len(), 1);
        let numbers: Vec<usize> = mapped.rejected.iter().map(|(n, _)| *n).collect();
        assert_eq!(numbers, [1, 2, 3]);
        assert!(mapped.rejected[0].1.contains("event_type"), "{:?}", mapped.rejected);
        assert!(mapped.rejected[1].1.contains("event_type"), "{:?}", mapped.rejected);
        assert!(mapped.rejected[2].1.contains("payload"), "{:?}", mapped.rejected);
    }

    #[test]
    fn any_values_become_plain_json() {
        let nested = AnyValue {
            value: Some(any_value::Value::KvlistValue(opentelemetry_proto::tonic::common::v1::KeyValueList {
                values: vec![
                    kv("list", any_value::Value::ArrayValue(opentelemetry_proto::tonic::common::v1::ArrayValue {
                        values: vec![AnyValue { value: Some(any_value::Value::DoubleValue(1.5)) }, AnyValue { value: None }],
                    })),
                    kv("bytes", any_value::Value::BytesValue(vec![0, 255])),
                    kv("nan", any_value::Value::DoubleValue(f64::NAN)),
                ],
            })),
        };
        assert_eq!(any_json(&nested), json!({"list": [1.5, null], "bytes": "AP8=", "nan": "NaN"}));
    }
}
