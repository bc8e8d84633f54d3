//! Query parameters: the filters of `GET /api/v1/events/query`, of the MCP tool `query_events` and of
//! `tidelog query`, and the tenant a request acts on.

use crate::event::ValidationError;
use crate::query::{Order, Query};
use crate::time::parse_timestamp_us;
use crate::DEFAULT_TENANT;

/// A parameter that cannot be taken. The HTTP layer answers 403 for `Forbidden` and 400 for the rest; the
/// command line names the parameter as its flag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    /// Under an API key, another tenant than the key's was named.
    #[error("tenant {asked:?} is not the token's tenant {allowed:?}")]
    Forbidden { asked: String, allowed: String },
    #[error(transparent)]
    Tenant(ValidationError),
    #[error("unknown query parameter {0:?}")]
    Unknown(String),
    #[error("{param}: {value:?} is not a number")]
    Number { param: String, value: String },
    #[error("{param}: {value:?} is not RFC 3339 or microseconds")]
    Timestamp { param: String, value: String },
    #[error("order: {0:?} is not asc or desc")]
    Order(String),
    #[error("give event_type or event_type_prefix, not both")]
    BothTypes,
}

/// The tenant a request acts on: the API key's when keys are required (asking for another is refused),
/// else the one asked for, else the default.
pub fn resolve_tenant(asked: Option<&str>, token_tenant: &Option<String>) -> Result<String, ParamError> {
    if let Some(tenant) = token_tenant {
        return match asked {
            Some(asked) if asked != tenant => Err(ParamError::Forbidden { asked: asked.to_string(), allowed: tenant.clone() }),
            _ => Ok(tenant.clone()),
        };
    }
    let tenant = asked.unwrap_or(DEFAULT_TENANT);
    crate::event::validate_tenant(tenant).map_err(ParamError::Tenant)?;
    Ok(tenant.to_string())
}

/// An optional instant given as RFC 3339 text or integer microseconds; `name` is the parameter's.
pub fn timestamp(name: &str, value: &Option<String>) -> Result<Option<i64>, ParamError> {
    match value {
        None => Ok(None),
        Some(v) => parse_timestamp_us(v)
            .map(Some)
            .ok_or_else(|| ParamError::Timestamp { param: name.to_string(), value: v.clone() }),
    }
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
    /// The filters of a query string's `(name, value)` pairs. Unknown names are refused; `type` is the
    /// short name of `event_type` that AllSource clients use.
    pub fn from_pairs(pairs: &[(String, String)]) -> Result<QueryArgs, ParamError> {
        const KNOWN: [&str; 11] = [
            "tenant_id", "entity_id", "event_type", "event_type_prefix", "since", "until", "as_of", "limit", "offset",
            "order", "type",
        ];
        if let Some((unknown, _)) = pairs.iter().find(|(k, _)| !KNOWN.contains(&k.as_str())) {
            return Err(ParamError::Unknown(unknown.clone()));
        }
        let text = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let number = |name: &str| -> Result<Option<usize>, ParamError> {
            match text(name) {
                None => Ok(None),
                Some(v) => v.parse().map(Some).map_err(|_| ParamError::Number { param: name.to_string(), value: v }),
            }
        };
        Ok(QueryArgs {
            tenant_id: text("tenant_id"),
            entity_id: text("entity_id"),
            event_type: text("event_type").or(text("type")),
            event_type_prefix: text("event_type_prefix"),
            since: text("since"),
            until: text("until"),
            as_of: text("as_of"),
            limit: number("limit")?,
            offset: number("offset")?,
            order: text("order"),
        })
    }

    /// The query, in the tenant [`resolve_tenant`] picks.
    pub fn to_query(&self, token_tenant: &Option<String>) -> Result<Query, ParamError> {
        self.to_query_in(resolve_tenant(self.tenant_id.as_deref(), token_tenant)?)
    }

    /// The query in `tenant`, chosen by the caller (`tenant_id` is not read): the command line, which acts
    /// on any tenant and leaves checking it to the store.
    pub fn to_query_in(&self, tenant: String) -> Result<Query, ParamError> {
        let mut query = Query::tenant(tenant);
        query.entity_id = self.entity_id.clone();
        match (&self.event_type, &self.event_type_prefix) {
            (Some(_), Some(_)) => return Err(ParamError::BothTypes),
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
            Some(other) => return Err(ParamError::Order(other.to_string())),
        };
        Ok(query)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn query_string_to_query() {
        let args = QueryArgs::from_pairs(&pairs(&[("type", "a.b"), ("since", "5"), ("limit", "3"), ("order", "desc")])).unwrap();
        let query = args.to_query(&None).unwrap();
        assert_eq!(query.tenant_id, DEFAULT_TENANT);
        assert_eq!((query.since_us, query.limit, query.order), (Some(5), Some(3), Order::Desc));
        assert_eq!(QueryArgs::from_pairs(&pairs(&[("nope", "1")])).unwrap_err().to_string(), "unknown query parameter \"nope\"");
        assert_eq!(QueryArgs::from_pairs(&pairs(&[("limit", "x")])).unwrap_err().to_string(), "limit: \"x\" is not a number");
        let both = QueryArgs { event_type: Some("a".into()), event_type_prefix: Some("b".into()), ..Default::default() };
        assert_eq!(both.to_query(&None).unwrap_err(), ParamError::BothTypes);
        let bad_time = QueryArgs { as_of: Some("yesterday".into()), ..Default::default() };
        assert_eq!(bad_time.to_query(&None).unwrap_err().to_string(), "as_of: \"yesterday\" is not RFC 3339 or microseconds");
    }

    #[test]
    fn tenant_rule() {
        let key = Some("acme".to_string());
        assert_eq!(resolve_tenant(None, &key).unwrap(), "acme");
        assert_eq!(resolve_tenant(Some("acme"), &key).unwrap(), "acme");
        assert!(matches!(resolve_tenant(Some("other"), &key), Err(ParamError::Forbidden { .. })));
        assert_eq!(resolve_tenant(None, &None).unwrap(), DEFAULT_TENANT);
        assert!(matches!(resolve_tenant(Some("no spaces"), &None), Err(ParamError::Tenant(_))));
        // The command line's tenant is the caller's: not resolved, not checked here.
        let query = QueryArgs { tenant_id: Some("ignored".into()), ..Default::default() }.to_query_in("t".into()).unwrap();
        assert_eq!(query.tenant_id, "t");
    }
}
