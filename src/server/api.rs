//! What the HTTP routes and the MCP tools share: the tenant rule, the query filters and the JSON shapes
//! of answers, so that both speak the same API.

use serde_json::{json, Value};

use super::respond::ApiError;
use crate::query::{Order, Query, QueryResult};
use crate::time::{format_rfc3339_us, parse_timestamp_us};
use crate::{AppendAck, EntityState, TenantStats, DEFAULT_TENANT};

/// The tenant a request acts on: the API key's when keys are required (asking for another is refused),
/// else the one asked for, else the default.
pub fn resolve_tenant(asked: Option<&str>, token_tenant: &Option<String>) -> Result<String, ApiError> {
    if let Some(tenant) = token_tenant {
        return match asked {
            Some(asked) if asked != tenant => Err(super::routes::forbidden(asked, tenant)),
            _ => Ok(tenant.clone()),
        };
    }
    let tenant = asked.unwrap_or(DEFAULT_TENANT);
    crate::event::validate_tenant(tenant).map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(tenant.to_string())
}

/// The filters of `GET /api/v1/events/query` (and the MCP tool `query_events`), as given.
#[derive(Debug, Default, Clone, serde::Deserialize)]
#[cfg_attr(feature = "mcp", derive(rmcp::schemars::JsonSchema))]
#[cfg_attr(feature = "mcp", schemars(crate = "rmcp::schemars"))]
#[serde(deny_unknown_fields)]
pub struct QueryArgs {
    /// Tenant (default: "default"; under API keys, the key's tenant).
    pub tenant_id: Option<String>,
    /// Only this entity's events.
    pub entity_id: Option<String>,
    /// Only this event type (exact).
    pub event_type: Option<String>,
    /// Only event types starting with this prefix (not with event_type).
    pub event_type_prefix: Option<String>,
    /// Inclusive lower bound: RFC 3339 (2024-01-01T00:00:00Z) or integer microseconds.
    pub since: Option<String>,
    /// Exclusive upper bound: RFC 3339 or integer microseconds.
    pub until: Option<String>,
    /// The store as of this instant: only events at or before it. RFC 3339 or integer microseconds.
    pub as_of: Option<String>,
    /// At most this many events (default and maximum: the server's query limits).
    pub limit: Option<usize>,
    /// Skip this many matching events first.
    pub offset: Option<usize>,
    /// "asc" (oldest first, the default) or "desc".
    pub order: Option<String>,
}

impl QueryArgs {
    pub fn to_query(&self, token_tenant: &Option<String>) -> Result<Query, ApiError> {
        let mut query = Query::tenant(resolve_tenant(self.tenant_id.as_deref(), token_tenant)?);
        query.entity_id = self.entity_id.clone();
        match (&self.event_type, &self.event_type_prefix) {
            (Some(_), Some(_)) => return Err(ApiError::bad_request("give event_type or event_type_prefix, not both")),
            (Some(t), None) => query = query.event_type(t),
            (None, Some(p)) => query = query.event_type_prefix(p),
            (None, None) => {}
        }
        query.since_us = timestamp("since", &self.since)?;
        query.until_us = timestamp("until", &self.until)?;
        query.as_of_us = timestamp("as_of", &self.as_of)?;
        query.limit = self.limit;
        query.offset = self.offset.unwrap_or(0);
        query.order = match self.order.as_deref() {
            None | Some("asc") => Order::Asc,
            Some("desc") => Order::Desc,
            Some(other) => return Err(ApiError::bad_request(format!("order: {other:?} is not asc or desc"))),
        };
        Ok(query)
    }
}

/// An optional instant given as RFC 3339 text or integer microseconds.
pub fn timestamp(name: &str, value: &Option<String>) -> Result<Option<i64>, ApiError> {
    match value {
        None => Ok(None),
        Some(v) => parse_timestamp_us(v)
            .map(Some)
            .ok_or_else(|| ApiError::bad_request(format!("{name}: {v:?} is not RFC 3339 or microseconds"))),
    }
}

pub fn ack_json(ack: &AppendAck) -> Value {
    json!({
        "event_id": ack.id.to_string(),
        "timestamp": format_rfc3339_us(ack.timestamp_us),
        "version": ack.version,
    })
}

pub fn batch_json(total: usize, acks: &[AppendAck]) -> Value {
    json!({"total": total, "ingested": acks.len(), "events": acks.iter().map(ack_json).collect::<Vec<_>>()})
}

pub fn query_json(result: &QueryResult) -> Value {
    let events: Vec<Value> = result.events.iter().map(|e| e.to_json()).collect();
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
