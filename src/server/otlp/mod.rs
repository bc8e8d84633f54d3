//! `POST /v1/logs`: OpenTelemetry logs over OTLP/HTTP (protobuf or JSON, optionally gzip). One request is
//! one batch through the same append path as `/api/v1/events/batch`; see the README for the mapping.

mod decode;
mod map;
mod respond;

pub use decode::OtlpError;
pub use map::{map_request, Mapped, OtlpOptions, UNKNOWN_ENTITY};

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

use super::respond::{ApiError, Body};
use super::routes::{content_type, enforce_tenant, read_body, HttpOptions};
use crate::{Store, DEFAULT_TENANT};
use decode::Format;

/// The header naming the tenant when the server runs without API keys.
pub const TENANT_HEADER: &str = "x-tidelog-tenant";

impl From<OtlpError> for ApiError {
    fn from(e: OtlpError) -> ApiError {
        let status = match e {
            OtlpError::UnsupportedEncoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            OtlpError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            OtlpError::BadGzip(_) | OtlpError::BadProtobuf(_) | OtlpError::BadJson(_) => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, "otlp", e.to_string())
    }
}

/// Handles one export. `token_tenant` is the tenant of the request's API key, when keys are required.
pub async fn export_logs(
    store: &Store,
    options: &HttpOptions,
    token_tenant: &Option<String>,
    request: Request<Incoming>,
) -> Response<Body> {
    let format = Format::of(&content_type(&request));
    match export(store, options, token_tenant, request, format).await {
        Ok(exported) => respond::success(format, &exported.rejected, exported.total),
        Err(e) => respond::error(format, e.status(), e.message()),
    }
}

async fn export(
    store: &Store,
    options: &HttpOptions,
    token_tenant: &Option<String>,
    request: Request<Incoming>,
    format: Format,
) -> Result<Exported, ApiError> {
    let header = |name| request.headers().get(name).map(|v| v.to_str().map(str::to_string));
    let tenant = match header(TENANT_HEADER) {
        None => DEFAULT_TENANT.to_string(),
        Some(Ok(tenant)) => {
            crate::event::validate_tenant(&tenant).map_err(|e| ApiError::bad_request(format!("{TENANT_HEADER}: {e}")))?;
            tenant
        }
        Some(Err(_)) => return Err(ApiError::bad_request(format!("{TENANT_HEADER} is not text"))),
    };
    let encoding = header(hyper::header::CONTENT_ENCODING.as_str())
        .transpose()
        .map_err(|_| ApiError::bad_request("content-encoding is not text"))?;
    let body = read_body(request, options, &[decode::PROTOBUF, decode::JSON]).await?;
    let body = decode::decompress(body, encoding.as_deref(), options.max_body_bytes)?;
    let logs = decode::decode(&body, format)?;
    let mut mapped = map_request(&logs, &tenant, &options.otlp, &store.config().limits);
    // Under API keys the records go to the key's tenant; a header naming another one is refused.
    enforce_tenant(&mut mapped.events, token_tenant)?;
    let total = mapped.total();
    if !mapped.events.is_empty() {
        // All or nothing, like /api/v1/events/batch: a full shard queue refuses the whole batch with 503.
        store.try_append_batch(std::mem::take(&mut mapped.events)).await?;
    }
    Ok(Exported { rejected: mapped.rejected, total })
}

/// What the answer reports: the records refused, out of how many.
struct Exported {
    rejected: Vec<(usize, String)>,
    total: usize,
}
