//! MCP for agents, on the official Rust SDK (rmcp): the tools and resources (`tools`), served on stdio
//! by `tidelog mcp` and over Streamable HTTP at `/mcp` by `tidelog serve` (`http`). Both run on the side
//! tokio runtime (`crate::side_runtime`), never on a shard.

mod http;
mod tools;

pub use http::McpHttp;
pub use tools::{TidelogMcp, TokenTenant};

use crate::Store;

/// The `Host` names `/mcp` answers by default: loopback only.
pub const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

#[derive(Debug, thiserror::Error)]
pub enum McpError {
    #[error("starting the MCP server on stdio: {0}")]
    Start(String),
    #[error("the MCP server on stdio stopped: {0}")]
    Stopped(String),
}

/// Serves MCP on standard input and output until the client closes them. Runs on the side runtime and
/// blocks the calling thread (a plain thread of the CLI, not a shard).
pub fn serve_stdio(store: Store) -> Result<(), McpError> {
    use rmcp::ServiceExt;
    crate::side_runtime::side_runtime().block_on(async move {
        let running = TidelogMcp::new(store)
            .serve(rmcp::transport::stdio())
            .await
            .map_err(|e| McpError::Start(e.to_string()))?;
        running.waiting().await.map_err(|e| McpError::Stopped(e.to_string()))?;
        Ok(())
    })
}
