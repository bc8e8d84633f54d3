//! The HTTP API (routes and shapes follow AllSource Core's, so its clients can switch). Requests are
//! handled on the shard executor that accepted the connection.

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};

use crate::api::{self, ParamError};
use crate::event::{parse_event_json, NewEvent};
use crate::query::Query;
use super::respond::{full, json_response, ApiError, Body};
use super::{stream, Stop};
use crate::{Store, DEFAULT_TENANT};
use std::rc::Rc;

/// Settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    pub max_body_bytes: usize,
    /// When set, `/api` requests need `Authorization: Bearer <token>` and act on the token's tenant.
    pub api_keys: Option<std::sync::Arc<ApiKeys>>,
    /// How `/v1/logs` maps log records to events.
    #[cfg(feature = "otlp")]
    pub otlp: super::otlp::OtlpOptions,
    /// `Host` names (or `host:port`) `/mcp` answers; rmcp refuses others (DNS-rebinding protection).
    #[cfg(feature = "mcp")]
    pub mcp_allowed_hosts: Vec<String>,
    /// Limits of one query of `POST /api/v1/sql`.
    pub sql: crate::config::SqlLimits,
}

impl Default for HttpOptions {
    fn default() -> HttpOptions {
        HttpOptions {
            max_body_bytes: 16 << 20,
            api_keys: None,
            #[cfg(feature = "otlp")]
            otlp: Default::default(),
            #[cfg(feature = "mcp")]
            mcp_allowed_hosts: super::mcp::LOOPBACK_HOSTS.iter().map(|h| h.to_string()).collect(),
            sql: Default::default(),
        }
    }
}

/// API keys: token -> tenant.
#[derive(Debug, Default)]
pub struct ApiKeys(std::collections::HashMap<String, String>);

impl ApiKeys {
    /// Reads a JSON object of `"token": "tenant"` pairs.
    pub fn load(path: &std::path::Path) -> Result<ApiKeys, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        let keys: std::collections::HashMap<String, String> = serde_json::from_str(&text)
            .map_err(|e| format!("{}: expected a JSON object of \"token\": \"tenant\" pairs: {e}", path.display()))?;
        for (token, tenant) in &keys {
            if token.len() < 16 {
                return Err(format!("{}: a token of {} characters is too short (16 at least)", path.display(), token.len()));
            }
            crate::event::validate_tenant(tenant).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        Ok(ApiKeys(keys))
    }

    fn tenant_of(&self, request: &Request<Incoming>) -> Result<String, ApiError> {
        let unauthorized = |message: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message);
        let header = request.headers().get(hyper::header::AUTHORIZATION).ok_or_else(|| unauthorized("missing bearer token"))?;
        let token = header.to_str().ok().and_then(|h| h.strip_prefix("Bearer ")).ok_or_else(|| unauthorized("expected Authorization: Bearer <token>"))?;
        self.0.get(token.trim()).cloned().ok_or_else(|| unauthorized("unknown token"))
    }
}

pub(super) fn forbidden(asked: &str, allowed: &str) -> ApiError {
    ParamError::Forbidden { asked: asked.to_string(), allowed: allowed.to_string() }.into()
}

/// With an API key, every event goes to the key's tenant; naming another one is refused.
pub(super) fn enforce_tenant(events: &mut [NewEvent], tenant: &Option<String>) -> Result<(), ApiError> {
    let Some(tenant) = tenant else { return Ok(()) };
    for event in events.iter_mut() {
        if event.tenant_id != *tenant && event.tenant_id != DEFAULT_TENANT {
            return Err(forbidden(&event.tenant_id, tenant));
        }
        event.tenant_id.clone_from(tenant);
    }
    Ok(())
}

/// Routes one request.
pub async fn handle(
    store: &Store,
    limits: &HttpOptions,
    mcp: &super::McpEndpoint,
    stop: &Rc<Stop>,
    request: Request<Incoming>,
) -> Response<Body> {
    match route(store, limits, mcp, stop, request).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn route(
    store: &Store,
    limits: &HttpOptions,
    #[cfg_attr(not(feature = "mcp"), allow(unused_variables))] mcp: &super::McpEndpoint,
    stop: &Rc<Stop>,
    request: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let path = request.uri().path().trim_end_matches('/').to_string();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let method = request.method().clone();
    let mut params = Params::parse(request.uri().query());
    if let Some(keys) = &limits.api_keys {
        if !matches!(segments.as_slice(), ["health"] | ["metrics"]) {
            params.token_tenant = Some(keys.tenant_of(&request)?);
        }
    }
    let allow = |allowed: &Method| {
        if method == *allowed {
            Ok(())
        } else {
            Err(ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", format!("{path} takes {allowed}")))
        }
    };
    match segments.as_slice() {
        ["health"] => {
            allow(&Method::GET)?;
            Ok(health(store))
        }
        ["metrics"] => {
            allow(&Method::GET)?;
            let mut response = Response::new(full(super::metrics::render(store)));
            response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
            Ok(response)
        }
        ["api", "v1", "stats"] => {
            allow(&Method::GET)?;
            let tenant = params.tenant()?;
            let stats = store.tenant_stats(&tenant).await?;
            Ok(json_response(StatusCode::OK, &api::stats_json(&tenant, &stats)))
        }
        ["api", "v1", "events"] => {
            allow(&Method::POST)?;
            let body = read_body(request, limits, &["application/json"]).await?;
            let text = std::str::from_utf8(&body).map_err(|_| ApiError::bad_request("body is not UTF-8"))?;
            let mut event = [parse_event_json(text)?];
            enforce_tenant(&mut event, &params.token_tenant)?;
            let [event] = event;
            let ack = store.try_append(event).await?;
            Ok(json_response(StatusCode::OK, &api::ack_json(&ack)))
        }
        ["api", "v1", "events", "batch"] => {
            allow(&Method::POST)?;
            let ndjson = content_type(&request).starts_with("application/x-ndjson");
            let body = read_body(request, limits, &["application/json", "application/x-ndjson"]).await?;
            let text = std::str::from_utf8(&body).map_err(|_| ApiError::bad_request("body is not UTF-8"))?;
            let mut events = if ndjson { parse_ndjson(text)? } else { parse_batch_json(text)? };
            enforce_tenant(&mut events, &params.token_tenant)?;
            let total = events.len();
            let acks = store.try_append_batch(events).await?;
            Ok(json_response(StatusCode::OK, &api::batch_json(total, &acks)))
        }
        ["api", "v1", "events", "stream"] => {
            allow(&Method::GET)?;
            let filter = stream::Filter {
                tenant_id: params.tenant()?,
                entity_id: params.get("entity_id").map(str::to_string),
                event_type_prefix: params.get("event_type_prefix").map(str::to_string),
            };
            let resume = match request.headers().get("last-event-id") {
                Some(value) => Some(value.to_str().map_err(|_| ApiError::bad_request("Last-Event-ID is not visible ASCII"))?),
                None => None,
            };
            let cursor = match resume {
                Some(text) => stream::Cursor::parse(text, store.epochs(), store.shard_count())?,
                None => stream::Cursor::start(store.shard_count(), store.epochs().current()),
            };
            Ok(stream::response(store.clone(), filter, cursor, stop.clone()))
        }
        ["api", "v1", "sql"] => {
            allow(&Method::POST)?;
            let tenant = params.tenant()?;
            #[cfg(feature = "sql")]
            return super::sql::answer(store, limits, request, tenant).await;
            #[cfg(not(feature = "sql"))]
            return Err(ApiError::new(StatusCode::NOT_IMPLEMENTED, "not_implemented", format!("this build has no SQL (feature `sql`); tenant {tenant:?}")));
        }
        ["api", "v1", "events", "query"] => {
            allow(&Method::GET)?;
            let query = params.query()?;
            let result = store.query(&query).await?;
            Ok(json_response(StatusCode::OK, &api::query_json(&result)))
        }
        ["api", "v1", "events", id] => {
            allow(&Method::GET)?;
            let id: uuid::Uuid = id.parse().map_err(|_| ApiError::bad_request(format!("{id:?} is not a UUID")))?;
            let tenant = params.tenant()?;
            match store.get(&tenant, &id) {
                Some(event) => Ok(json_response(StatusCode::OK, &api::found_event_json(&event))),
                None => Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no event {id}"))),
            }
        }
        ["api", "v1", "entities", entity_id, "state"] => {
            allow(&Method::GET)?;
            let tenant = params.tenant()?;
            let entity_id = percent_encoding::percent_decode_str(entity_id)
                .decode_utf8()
                .map_err(|_| ApiError::bad_request("entity_id in the path is not UTF-8"))?;
            let as_of = api::timestamp("as_of", &params.get("as_of").map(str::to_string))?;
            match store.entity_state(&tenant, &entity_id, as_of) {
                Some(s) => Ok(json_response(StatusCode::OK, &api::entity_state_json(&s))),
                None => Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("entity {entity_id:?} has no events"))),
            }
        }
        #[cfg(feature = "otlp")]
        ["v1", "logs"] => {
            allow(&Method::POST)?;
            Ok(super::otlp::export_logs(store, limits, &params.token_tenant, request).await)
        }
        #[cfg(feature = "mcp")]
        ["mcp"] => match mcp {
            Some(mcp) => mcp.handle(request, limits, &params.token_tenant).await,
            None => Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", "MCP is not served here")),
        },
        _ => Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no route {path}"))),
    }
}

fn health(store: &Store) -> Response<Body> {
    let shards: Vec<Value> = store
        .status()
        .into_iter()
        .map(|s| json!({"shard": s.shard, "events": s.events, "healthy": s.failure.is_none(), "failure": s.failure}))
        .collect();
    let healthy = shards.iter().all(|s| s["healthy"] == json!(true));
    let status = if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let mut body = json!({"status": if healthy { "healthy" } else { "degraded" }, "shards": shards});
    // Shipping behind or failing does not stop appends (they stay on the local disk): reported, not
    // counted against health.
    #[cfg(feature = "object-store")]
    if let Some(ship) = store.ship_status() {
        body["object_store"] = json!(ship);
    }
    json_response(status, &body)
}

pub(super) fn content_type(request: &Request<Incoming>) -> String {
    request.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase()
}

pub(super) async fn read_body(request: Request<Incoming>, limits: &HttpOptions, accepted: &[&str]) -> Result<Bytes, ApiError> {
    let kind = content_type(&request);
    // A missing content type is taken as JSON (curl -d sends form encoding, which we reject by name).
    if !kind.is_empty() && !accepted.iter().any(|a| kind.starts_with(a)) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("content type {kind:?}; expected one of {accepted:?}"),
        ));
    }
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is over the limit of {} bytes", limits.max_body_bytes),
        )
    };
    let declared = request.headers().get(hyper::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limits.max_body_bytes) {
        return Err(too_large());
    }
    match Limited::new(request.into_body(), limits.max_body_bytes).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => Err(too_large()),
        Err(e) => Err(ApiError::bad_request(format!("reading the body: {e}"))),
    }
}

fn parse_batch_json(text: &str) -> Result<Vec<NewEvent>, ApiError> {
    #[derive(serde::Deserialize)]
    struct Batch<'a> {
        #[serde(borrow)]
        events: Vec<&'a serde_json::value::RawValue>,
    }
    let batch: Batch =
        serde_json::from_str(text).map_err(|e| ApiError::bad_request(format!("expected {{\"events\": [...]}}: {e}")))?;
    batch.events.iter().enumerate().map(|(i, raw)| parse_event_json(raw.get()).map_err(|e| e.at(i).into())).collect()
}

fn parse_ndjson(text: &str) -> Result<Vec<NewEvent>, ApiError> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, line)| parse_event_json(line).map_err(|e| e.at(i).into()))
        .collect()
}

/// Query-string parameters, and the tenant of the request's API key if there is one.
struct Params {
    pairs: Vec<(String, String)>,
    token_tenant: Option<String>,
}

impl Params {
    fn parse(query: Option<&str>) -> Params {
        Params { pairs: form_urlencoded::parse(query.unwrap_or("").as_bytes()).into_owned().collect(), token_tenant: None }
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn tenant(&self) -> Result<String, ApiError> {
        Ok(api::resolve_tenant(self.get("tenant_id"), &self.token_tenant)?)
    }

    fn query(&self) -> Result<Query, ApiError> {
        Ok(api::QueryArgs::from_pairs(&self.pairs)?.to_query(&self.token_tenant)?)
    }
}
