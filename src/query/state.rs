//! Folding an entity's events into its current state.

use serde_json::{Map, Value};

use crate::event::StoredEvent;

#[derive(Debug, Clone, PartialEq)]
pub struct EntityState {
    pub tenant_id: String,
    pub entity_id: String,
    /// Shallow merge of the payload objects in version order; a payload that is not an object replaces
    /// the state.
    pub state: Value,
    pub event_count: u64,
    pub version: u64,
    pub last_updated_us: i64,
}

/// Folds events given in version order; `None` when there are none.
pub fn fold_state<'a>(events: impl IntoIterator<Item = &'a StoredEvent>) -> Option<EntityState> {
    let mut folded: Option<EntityState> = None;
    for event in events {
        let state = folded.get_or_insert_with(|| EntityState {
            tenant_id: event.tenant_id().to_string(),
            entity_id: event.entity_id().to_string(),
            state: Value::Object(Map::new()),
            event_count: 0,
            version: 0,
            last_updated_us: i64::MIN,
        });
        match (serde_json::from_str::<Value>(event.payload_json()), &mut state.state) {
            (Ok(Value::Object(fields)), Value::Object(current)) => current.extend(fields),
            (Ok(value), current) => *current = value,
            (Err(_), _) => {} // payloads are validated on input; nothing else can be stored
        }
        state.event_count += 1;
        state.version = event.version();
        state.last_updated_us = state.last_updated_us.max(event.timestamp_us());
    }
    folded
}
