//! `/mcp`: rmcp's Streamable HTTP service behind the shards' hyper connections.
//!
//! The service is a tower service that needs tokio, and the connections live on glommio executors. So
//! the route reads the request body on the shard (with the server's body limit), hands the whole
//! request to the side runtime, and streams the answer back: the head through a oneshot, the body's
//! frames through a bounded channel. The shard only awaits channels; it never blocks or enters tokio.
//! See docs/RUNTIMES.md.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tower_service::Service;

use super::tools::{TidelogMcp, TokenTenant};
use crate::server::respond::{ApiError, Body};
use crate::server::routes::{read_body, HttpOptions};
use crate::side_runtime::side_runtime;
use crate::Store;

/// Frames of an answer in flight between the side runtime and the shard.
const FRAMES_IN_FLIGHT: usize = 16;

/// The `/mcp` endpoint of one server.
pub struct McpHttp {
    service: StreamableHttpService<TidelogMcp, NeverSessionManager>,
}

impl McpHttp {
    /// Stateless (no sessions) and JSON answers: every POST is answered on its own, so no stream stays
    /// open on a shard's connection (which would hold up a graceful shutdown), and any shard can take
    /// any request.
    pub fn new(store: Store, options: &HttpOptions) -> McpHttp {
        let config = StreamableHttpServerConfig::default()
            .with_allowed_hosts(options.mcp_allowed_hosts.iter().cloned())
            .with_legacy_session_mode(false)
            .with_json_response(true)
            .with_sse_keep_alive(None)
            .with_max_request_body_bytes(options.max_body_bytes);
        let sql_limits = options.sql;
        let service =
            StreamableHttpService::new(move || Ok(TidelogMcp::new(store.clone()).with_sql_limits(sql_limits)), Default::default(), config);
        McpHttp { service }
    }

    /// Serves one request. `token_tenant` is the API key's tenant when keys are required.
    pub async fn handle(
        &self,
        request: Request<Incoming>,
        options: &HttpOptions,
        token_tenant: &Option<String>,
    ) -> Result<Response<Body>, ApiError> {
        let (parts, body) = request.into_parts();
        let bytes = read_body(Request::from_parts(parts.clone(), body), options, &["application/json"]).await?;
        let mut request = Request::from_parts(parts, Full::new(bytes));
        request.extensions_mut().insert(TokenTenant(token_tenant.clone()));

        let (head_tx, head_rx) = futures_channel::oneshot::channel();
        let (frames_tx, frames_rx) = flume::bounded::<Frame<Bytes>>(FRAMES_IN_FLIGHT);
        let mut service = self.service.clone();
        side_runtime().spawn(async move {
            let response = match service.call(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            let (head, mut body) = response.into_parts();
            if head_tx.send(head).is_err() {
                return; // the client went away
            }
            while let Some(frame) = body.frame().await {
                let Ok(frame) = frame;
                if frames_tx.send_async(frame).await.is_err() {
                    break; // the client went away: dropping the body tells rmcp
                }
            }
        });
        let head = head_rx.await.map_err(|_| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "the MCP service ended without an answer")
        })?;
        let frames = futures_lite::StreamExt::map(frames_rx.into_stream(), Ok::<_, std::convert::Infallible>);
        Ok(Response::from_parts(head, Box::pin(StreamBody::new(frames)) as Body))
    }
}
