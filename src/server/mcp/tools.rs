//! The MCP tools and resources over a [`Store`]: the same operations, tenant rule and JSON shapes as the
//! HTTP API (`crate::api`), with JSON schemas from schemars.

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolResult, Implementation, ListResourceTemplatesResult, ListResourcesResult, PaginatedRequestParams,
    ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, Resource, ResourceContents, ResourceTemplate,
    ServerCapabilities, ServerConfig,
};
use rmcp::schemars::{self, JsonSchema};
use rmcp::service::RequestContext;
use rmcp::{tool, tool_handler, tool_router, ErrorData, RoleServer, ServerHandler};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::api::{self, QueryArgs};
use crate::server::respond::ApiError;
use crate::server::routes::enforce_tenant;
use crate::{NewEvent, Order, Query, Store};

/// The tenant of the HTTP request's API key, set by the `/mcp` route; absent on stdio (a local process
/// that opened the data directory may act on any tenant, like the other CLI commands).
#[derive(Debug, Clone)]
pub struct TokenTenant(pub Option<String>);

/// The event schema resource.
const SCHEMA_URI: &str = "tidelog://schema/event";
/// The caller's tenant's event types (the key's tenant, else the default one).
const TYPES_URI: &str = "tidelog://event-types";
const TENANT_TYPES_PREFIX: &str = "tidelog://tenants/";
const TENANT_TYPES_SUFFIX: &str = "/event-types";
/// `recent_events` without a limit.
const DEFAULT_RECENT: usize = 20;

/// One event to append (as `POST /api/v1/events` takes it).
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventArgs {
    /// Tenant (default: "default"; under API keys, the key's tenant).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// The entity the event belongs to, e.g. "user-42".
    pub entity_id: String,
    /// Dotted name, e.g. "user.created".
    pub event_type: String,
    /// Any JSON value; objects are merged into the entity's state.
    pub payload: Value,
    /// Optional JSON metadata.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// Optimistic concurrency: the entity's version this event expects (0: the entity has no events yet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<u64>,
    /// A UUID for an idempotent retry (default: a new UUID v7).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// RFC 3339 or integer microseconds (default: now).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchArgs {
    /// The events, appended all or nothing.
    pub events: Vec<EventArgs>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetEventArgs {
    pub tenant_id: Option<String>,
    /// The event's UUID.
    pub event_id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EntityStateArgs {
    pub tenant_id: Option<String>,
    pub entity_id: String,
    /// The state as of this instant (RFC 3339 or integer microseconds); default: now.
    pub as_of: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecentArgs {
    pub tenant_id: Option<String>,
    /// How many events, newest first (default 20).
    pub limit: Option<usize>,
    /// Only event types starting with this prefix, e.g. "order.".
    pub event_type_prefix: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantArgs {
    pub tenant_id: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SqlArgs {
    pub tenant_id: Option<String>,
    /// One read-only statement over the table `events` (position, id, tenant_id, entity_id, event_type,
    /// timestamp, version, payload, metadata), e.g. "SELECT event_type, count(*) FROM events GROUP BY 1".
    /// JSON functions: json_get_str(payload, 'key'), json_get_float(...), payload->>'key'.
    pub query: String,
}

/// The MCP server: one per session (HTTP) or process (stdio), all over the same store.
#[derive(Clone)]
pub struct TidelogMcp {
    store: Store,
    /// Limits of the `sql` tool's queries (those of `POST /api/v1/sql` on a server).
    #[cfg_attr(not(feature = "sql"), allow(dead_code))]
    sql_limits: crate::config::SqlLimits,
    tool_router: ToolRouter<TidelogMcp>,
}

impl TidelogMcp {
    pub fn new(store: Store) -> TidelogMcp {
        #[cfg(feature = "sql")]
        let tool_router = Self::tool_router() + Self::sql_router();
        #[cfg(not(feature = "sql"))]
        let tool_router = Self::tool_router();
        TidelogMcp { store, sql_limits: Default::default(), tool_router }
    }

    pub fn with_sql_limits(mut self, limits: crate::config::SqlLimits) -> TidelogMcp {
        self.sql_limits = limits;
        self
    }
}

fn token_tenant(ctx: &RequestContext<RoleServer>) -> Option<String> {
    ctx.extensions
        .get::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<TokenTenant>())
        .and_then(|t| t.0.clone())
}

/// An HTTP API error as an MCP error, keeping its code and status as data.
fn mcp_error(e: impl Into<ApiError>) -> ErrorData {
    let e: ApiError = e.into();
    let data = Some(json!({"error": e.code(), "status": e.status().as_u16()}));
    let message = e.message().to_string();
    match e.status().as_u16() {
        404 => ErrorData::resource_not_found(message, data),
        400..=499 => ErrorData::invalid_params(message, data),
        _ => ErrorData::internal_error(message, data),
    }
}

fn store_error(e: crate::Error) -> ErrorData {
    mcp_error(e)
}

fn ok(value: Value) -> Result<CallToolResult, ErrorData> {
    Ok(CallToolResult::structured(value))
}

/// An event argument as a [`NewEvent`], through the HTTP API's own parser (same fields, same checks).
fn new_event(args: &EventArgs) -> Result<NewEvent, ErrorData> {
    let text = serde_json::to_string(args).map_err(|e| ErrorData::invalid_params(e.to_string(), None))?;
    crate::event::parse_event_json(&text).map_err(mcp_error)
}

#[tool_router]
impl TidelogMcp {
    #[tool(description = "Append one event to an entity's history. Returns its id, timestamp and the entity's new version.")]
    async fn append_event(&self, Parameters(args): Parameters<EventArgs>, ctx: RequestContext<RoleServer>) -> Result<CallToolResult, ErrorData> {
        let mut events = [new_event(&args)?];
        enforce_tenant(&mut events, &token_tenant(&ctx)).map_err(mcp_error)?;
        let [event] = events;
        let ack = self.store.try_append(event).await.map_err(store_error)?;
        ok(api::ack_json(&ack))
    }

    #[tool(description = "Append a batch of events atomically: all are written or none (a conflict or invalid event rejects the batch).")]
    async fn append_events(&self, Parameters(args): Parameters<BatchArgs>, ctx: RequestContext<RoleServer>) -> Result<CallToolResult, ErrorData> {
        let mut events = args
            .events
            .iter()
            .enumerate()
            .map(|(i, e)| new_event(e).map_err(|err| ErrorData::invalid_params(format!("events[{i}]: {}", err.message), err.data)))
            .collect::<Result<Vec<_>, _>>()?;
        enforce_tenant(&mut events, &token_tenant(&ctx)).map_err(mcp_error)?;
        let total = events.len();
        let acks = self.store.try_append_batch(events).await.map_err(store_error)?;
        ok(api::batch_json(total, &acks))
    }

    #[tool(description = "Query a tenant's events by entity, event type or type prefix, time range (since/until), as_of, with limit/offset and order. Same filters as GET /api/v1/events/query.")]
    async fn query_events(&self, Parameters(args): Parameters<QueryArgs>, ctx: RequestContext<RoleServer>) -> Result<CallToolResult, ErrorData> {
        let query = args.to_query(&token_tenant(&ctx)).map_err(mcp_error)?;
        let result = self.store.query(&query).await.map_err(store_error)?;
        ok(api::query_json(&result))
    }

    #[tool(description = "Get one event by its id.")]
    async fn get_event(&self, Parameters(args): Parameters<GetEventArgs>, ctx: RequestContext<RoleServer>) -> Result<CallToolResult, ErrorData> {
        let tenant = api::resolve_tenant(args.tenant_id.as_deref(), &token_tenant(&ctx)).map_err(mcp_error)?;
        let id: uuid::Uuid = args
            .event_id
            .parse()
            .map_err(|_| ErrorData::invalid_params(format!("event_id: {:?} is not a UUID", args.event_id), None))?;
        match self.store.get(&tenant, &id) {
            Some(event) => ok(api::found_event_json(&event)),
            None => Err(ErrorData::resource_not_found(format!("no event {id} in tenant {tenant:?}"), None)),
        }
    }

    #[tool(description = "An entity's current state (its payloads merged in version order), or its state as of an instant.")]
    async fn entity_state(&self, Parameters(args): Parameters<EntityStateArgs>, ctx: RequestContext<RoleServer>) -> Result<CallToolResult, ErrorData> {
        let tenant = api::resolve_tenant(args.tenant_id.as_deref(), &token_tenant(&ctx)).map_err(mcp_error)?;
        let as_of = api::timestamp("as_of", &args.as_of).map_err(mcp_error)?;
        match self.store.entity_state(&tenant, &args.entity_id, as_of) {
            Some(state) => ok(api::entity_state_json(&state)),
            None => Err(ErrorData::resource_not_found(format!("entity {:?} has no events", args.entity_id), None)),
        }
    }

    #[tool(description = "The last N events of a tenant, newest first, optionally only types with a prefix.")]
    async fn recent_events(&self, Parameters(args): Parameters<RecentArgs>, ctx: RequestContext<RoleServer>) -> Result<CallToolResult, ErrorData> {
        let tenant = api::resolve_tenant(args.tenant_id.as_deref(), &token_tenant(&ctx)).map_err(mcp_error)?;
        let mut query = Query::tenant(tenant);
        if let Some(prefix) = args.event_type_prefix {
            query = query.event_type_prefix(prefix);
        }
        query.limit = Some(args.limit.unwrap_or(DEFAULT_RECENT));
        query.order = Order::Desc;
        let result = self.store.query(&query).await.map_err(store_error)?;
        ok(api::query_json(&result))
    }

    #[tool(description = "Counts of a tenant's events and entities, and its event types with their counts.")]
    async fn tenant_stats(&self, Parameters(args): Parameters<TenantArgs>, ctx: RequestContext<RoleServer>) -> Result<CallToolResult, ErrorData> {
        let tenant = api::resolve_tenant(args.tenant_id.as_deref(), &token_tenant(&ctx)).map_err(mcp_error)?;
        let stats = self.store.tenant_stats(&tenant).await.map_err(store_error)?;
        ok(api::stats_json(&tenant, &stats))
    }
}

#[cfg(feature = "sql")]
#[tool_router(router = sql_router)]
impl TidelogMcp {
    #[tool(description = "Run one read-only SQL query over the tenant's events (table `events`) and return {columns, rows, row_count}, as POST /api/v1/sql does. Same limits (memory, timeout, rows).")]
    async fn sql(&self, Parameters(args): Parameters<SqlArgs>, ctx: RequestContext<RoleServer>) -> Result<CallToolResult, ErrorData> {
        let tenant = api::resolve_tenant(args.tenant_id.as_deref(), &token_tenant(&ctx)).map_err(mcp_error)?;
        let limits = self.sql_limits;
        // rmcp runs the tools on the side runtime, where the query's operators run too.
        let (schema, batches) = crate::sql::collect(&self.store, &tenant, &args.query, &limits, limits.max_json_rows)
            .await
            .map_err(mcp_error)?;
        let answer = crate::sql::output::answer_json(&schema, &batches).map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        ok(answer)
    }
}

/// The stored event's shape, as every tool and route returns it.
fn event_schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "tidelog event",
        "type": "object",
        "properties": {
            "id": {"type": "string", "format": "uuid", "description": "UUID v7 unless the client chose one"},
            "tenant_id": {"type": "string", "description": "ASCII letters, digits, '-', '_', '.'; at most 64 bytes"},
            "entity_id": {"type": "string", "description": "at most 256 bytes, no control characters"},
            "event_type": {"type": "string", "description": "at most 256 bytes, no control characters"},
            "payload": {"description": "any JSON; objects are merged into the entity's state"},
            "metadata": {"description": "any JSON, or null"},
            "timestamp": {"type": "string", "format": "date-time", "description": "RFC 3339, microseconds, UTC"},
            "version": {"type": "integer", "description": "the entity's version after this event (1 for its first)"},
            "position": {"type": "integer", "description": "the event's position in its shard's log"}
        },
        "required": ["id", "tenant_id", "entity_id", "event_type", "payload", "timestamp", "version", "position"]
    })
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for TidelogMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().enable_resources().build())
            .with_server_info(Implementation::new("tidelog", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "tidelog is an event store: append events to entities (append_event, append_events), read them back \
                 (query_events, get_event, recent_events), fold an entity's state (entity_state, with as_of for the past) \
                 and count a tenant's data (tenant_stats). Timestamps are RFC 3339 or integer microseconds.",
            )
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(ListResourcesResult::with_all_items(vec![
            Resource::new(SCHEMA_URI, "event-schema")
                .with_description("JSON Schema of a stored event, as the tools return it")
                .with_mime_type("application/schema+json"),
            Resource::new(TYPES_URI, "event-types")
                .with_description("The event types of your tenant (the API key's, else the default tenant) with counts")
                .with_mime_type("application/json"),
        ]))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(ListResourceTemplatesResult::with_all_items(vec![ResourceTemplate::new(
            format!("{TENANT_TYPES_PREFIX}{{tenant_id}}{TENANT_TYPES_SUFFIX}"),
            "tenant-event-types",
        )
        .with_description("The event types of a tenant with counts")
        .with_mime_type("application/json")]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let uri = request.uri.as_str();
        let text = if uri == SCHEMA_URI {
            event_schema().to_string()
        } else {
            let asked = if uri == TYPES_URI {
                None
            } else if let Some(tenant) = uri.strip_prefix(TENANT_TYPES_PREFIX).and_then(|t| t.strip_suffix(TENANT_TYPES_SUFFIX)) {
                Some(tenant)
            } else {
                return Err(ErrorData::resource_not_found(format!("no resource {uri}"), None));
            };
            let tenant = api::resolve_tenant(asked, &token_tenant(&ctx)).map_err(mcp_error)?;
            let stats = self.store.tenant_stats(&tenant).await.map_err(store_error)?;
            json!({"tenant_id": tenant, "event_types": stats.event_types}).to_string()
        };
        let contents = ResourceContents::text(text, uri).with_mime_type("application/json");
        Ok(ReadResourceResult::new(vec![contents]).into())
    }
}
