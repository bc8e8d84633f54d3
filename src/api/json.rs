//! The JSON shapes clients see: of an event, an acknowledgement, an entity's state and the answers built of
//! them. Timestamps are RFC 3339 with microseconds, UTC.

use serde_json::{json, Value};

use crate::event::StoredEvent;
use crate::query::QueryResult;
use crate::time::format_rfc3339_us;
use crate::{AppendAck, EntityState, TenantStats};

/// An event: `{id, tenant_id, entity_id, event_type, payload, metadata, timestamp, version, position}`.
pub fn event_json(event: &StoredEvent) -> Value {
    let parse = |text: &str| serde_json::from_str(text).unwrap_or(Value::Null);
    json!({
        "id": event.id().to_string(),
        "tenant_id": event.tenant_id(),
        "entity_id": event.entity_id(),
        "event_type": event.event_type(),
        "payload": parse(event.payload_json()),
        "metadata": event.metadata_json().map(parse),
        "timestamp": format_rfc3339_us(event.timestamp_us()),
        "version": event.version(),
        "position": event.position(),
    })
}

/// The answer to a lookup by id that found its event.
pub fn found_event_json(event: &StoredEvent) -> Value {
    json!({"event": event_json(event), "found": true})
}

/// An acknowledgement as the API gives it: `{event_id, timestamp, version}`.
pub fn ack_json(ack: &AppendAck) -> Value {
    json!({
        "event_id": ack.id.to_string(),
        "timestamp": format_rfc3339_us(ack.timestamp_us),
        "version": ack.version,
    })
}

/// [`ack_json`] and where the event went (`position`, `shard`) and whether it was stored before
/// (`duplicate`): what `tidelog append` prints.
pub fn ack_detail_json(ack: &AppendAck) -> Value {
    let mut value = ack_json(ack);
    let fields = value.as_object_mut().expect("an object");
    fields.insert("position".into(), ack.position.into());
    fields.insert("shard".into(), ack.shard.into());
    fields.insert("duplicate".into(), ack.duplicate.into());
    value
}

pub fn batch_json(total: usize, acks: &[AppendAck]) -> Value {
    json!({"total": total, "ingested": acks.len(), "events": acks.iter().map(ack_json).collect::<Vec<_>>()})
}

pub fn query_json(result: &QueryResult) -> Value {
    let events: Vec<Value> = result.events.iter().map(event_json).collect();
    json!({"count": events.len(), "has_more": result.has_more, "events": events})
}

pub fn entity_state_json(state: &EntityState) -> Value {
    json!({
        "entity_id": state.entity_id,
        "current_state": state.state,
        "event_count": state.event_count,
        "version": state.version,
        "last_updated": format_rfc3339_us(state.last_updated_us),
    })
}

pub fn stats_json(tenant: &str, stats: &TenantStats) -> Value {
    json!({
        "tenant_id": tenant,
        "total_events": stats.events,
        "total_entities": stats.entities,
        "event_types": stats.event_types,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_shapes() {
        let ack = AppendAck { id: uuid::Uuid::nil(), shard: 1, position: 7, version: 3, timestamp_us: 0, duplicate: false };
        assert_eq!(
            ack_json(&ack),
            json!({"event_id": "00000000-0000-0000-0000-000000000000", "timestamp": "1970-01-01T00:00:00.000000Z", "version": 3})
        );
        let detail = ack_detail_json(&ack);
        assert_eq!((&detail["position"], &detail["shard"], &detail["duplicate"]), (&json!(7), &json!(1), &json!(false)));
        assert_eq!(detail["event_id"], ack_json(&ack)["event_id"]);
    }
}
