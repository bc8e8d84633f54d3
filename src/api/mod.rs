//! What every client-facing surface shares (the HTTP routes, the MCP tools, the SSE stream and the command
//! line): how query parameters become a [`Query`](crate::Query), the tenant rule, and the JSON shapes of
//! events, acknowledgements, entity states and answers. Plain data in and out, no HTTP: it sits on the
//! store and under the server and the CLI.

pub mod json;
pub mod params;

pub use json::{ack_detail_json, ack_json, batch_json, entity_state_json, event_json, found_event_json, query_json, stats_json};
pub use params::{resolve_tenant, timestamp, ParamError, QueryArgs};
