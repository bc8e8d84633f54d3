//! What the HTTP layer answers with: response bodies, JSON responses, and error answers (the status and
//! code of each error of the store).

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use serde_json::{json, Value};

use crate::api::ParamError;
use crate::event::ValidationError;
use crate::Error;

/// Response bodies: whole (JSON) or streamed (SSE). Not Send: bodies live on the shard that serves them.
pub type Body = std::pin::Pin<Box<dyn hyper::body::Body<Data = Bytes, Error = std::convert::Infallible>>>;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Box::pin(Full::new(bytes.into()))
}

/// An error answer: `{"error": code, "message": ...}` plus extra fields.
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    extra: Value,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), extra: Value::Null }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn code(&self) -> &'static str {
        self.code
    }

    pub fn into_response(self) -> Response<Body> {
        let mut body = json!({ "error": self.code, "message": self.message });
        if let Value::Object(extra) = self.extra {
            body.as_object_mut().expect("object").extend(extra);
        }
        let mut response = json_response(self.status, &body);
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert("www-authenticate", HeaderValue::from_static("Bearer"));
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert("retry-after", HeaderValue::from_static("1"));
        }
        response
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_event", e.to_string())
    }
}

impl From<ParamError> for ApiError {
    fn from(e: ParamError) -> ApiError {
        let message = e.to_string();
        match e {
            ParamError::Forbidden { .. } => ApiError::new(StatusCode::FORBIDDEN, "forbidden", message),
            ParamError::Tenant(_)
            | ParamError::Unknown(_)
            | ParamError::Number { .. }
            | ParamError::Timestamp { .. }
            | ParamError::Order(_)
            | ParamError::BothTypes => ApiError::bad_request(message),
        }
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        let message = e.to_string();
        match e {
            Error::Invalid(v) => v.into(),
            Error::VersionConflict { expected, current, index, .. } => ApiError {
                status: StatusCode::CONFLICT,
                code: "version_conflict",
                message,
                extra: json!({ "expected_version": expected, "current_version": current, "index": index }),
            },
            Error::IdConflict { .. } => ApiError::new(StatusCode::CONFLICT, "id_conflict", message),
            Error::Contended { .. } => ApiError::new(StatusCode::CONFLICT, "contended", message),
            Error::ShardFailed { disk_full: true, .. } => {
                ApiError::new(StatusCode::INSUFFICIENT_STORAGE, "disk_full", message)
            }
            Error::ShardFailed { .. } | Error::Closed | Error::Overloaded { .. } => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
            }
            Error::Query(_) => ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", message),
            // The store's own faults, not the request's.
            Error::Wal(_) | Error::Checkpoint(_) | Error::DataDir { .. } | Error::Io { .. } | Error::ObjectStore(_) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
            }
        }
    }
}

pub fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    let mut response = Response::new(full(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
