//! Answers in the request's encoding, as OTLP/HTTP asks: `ExportLogsServiceResponse` (with
//! `partial_success` when records were refused) on success, a `google.rpc.Status` on failure.

use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use opentelemetry_proto::tonic::collector::logs::v1::{ExportLogsPartialSuccess, ExportLogsServiceResponse};
use prost::Message;
use serde_json::json;

use super::decode::Format;
use crate::server::respond::{full, Body};

/// Reasons quoted in `error_message`, at most; the count covers all of them.
const QUOTED_REASONS: usize = 5;

/// `google.rpc.Status`, the error body OTLP/HTTP names. It is not among the OTLP messages the crate
/// generates, so its two fields we send are declared here (the `details` field is left out).
#[derive(Clone, PartialEq, prost::Message)]
struct Status {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// 200: everything appended, or the valid records appended and the rest counted in `partial_success`.
pub fn success(format: Format, rejected: &[(usize, String)], total: usize) -> Response<Body> {
    let partial = (!rejected.is_empty()).then(|| {
        let quoted: Vec<String> = rejected.iter().take(QUOTED_REASONS).map(|(n, why)| format!("record {n}: {why}")).collect();
        let more = rejected.len().saturating_sub(QUOTED_REASONS);
        let tail = if more > 0 { format!("; and {more} more") } else { String::new() };
        ExportLogsPartialSuccess {
            rejected_log_records: rejected.len() as i64,
            error_message: format!("{} of {total} log records rejected: {}{tail}", rejected.len(), quoted.join("; ")),
        }
    });
    let body = match format {
        Format::Protobuf => ExportLogsServiceResponse { partial_success: partial }.encode_to_vec(),
        // Written by hand rather than with the crate's serde: its derive writes this int64 as a JSON number
        // and an absent partial_success as null, where the OTLP JSON mapping wants a string and no field.
        Format::Json => match partial {
            None => json!({}),
            Some(p) => json!({"partialSuccess": {
                "rejectedLogRecords": p.rejected_log_records.to_string(),
                "errorMessage": p.error_message,
            }}),
        }
        .to_string()
        .into_bytes(),
    };
    response(StatusCode::OK, format, body)
}

/// A failure: the HTTP status, and a Status body with the matching gRPC code. 429 and 503 carry
/// Retry-After, so exporters back off instead of dropping the batch.
pub fn error(format: Format, status: StatusCode, message: &str) -> Response<Body> {
    let code = grpc_code(status);
    let body = match format {
        Format::Protobuf => Status { code, message: message.to_string() }.encode_to_vec(),
        Format::Json => json!({"code": code, "message": message}).to_string().into_bytes(),
    };
    let mut response = response(status, format, body);
    if matches!(status, StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE) {
        response.headers_mut().insert("retry-after", HeaderValue::from_static("1"));
    }
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert("www-authenticate", HeaderValue::from_static("Bearer"));
    }
    response
}

fn response(status: StatusCode, format: Format, body: Vec<u8>) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
    response
}

/// google.rpc.Code for an HTTP status (the mapping gRPC gateways use).
fn grpc_code(status: StatusCode) -> i32 {
    match status.as_u16() {
        400 | 413 | 415 => 3,  // INVALID_ARGUMENT
        401 => 16,             // UNAUTHENTICATED
        403 => 7,              // PERMISSION_DENIED
        404 => 5,              // NOT_FOUND
        409 => 10,             // ABORTED
        429 | 507 => 8,        // RESOURCE_EXHAUSTED
        503 => 14,             // UNAVAILABLE
        _ => 13,               // INTERNAL
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn bytes(response: Response<Body>) -> Vec<u8> {
        futures_lite::future::block_on(response.into_body().collect()).unwrap().to_bytes().to_vec()
    }

    #[test]
    fn partial_success_in_both_encodings() {
        let rejected: Vec<(usize, String)> = (0..7).map(|n| (n, "bad".to_string())).collect();
        let json: serde_json::Value = serde_json::from_slice(&bytes(success(Format::Json, &rejected, 10))).unwrap();
        assert_eq!(json["partialSuccess"]["rejectedLogRecords"], "7");
        let message = json["partialSuccess"]["errorMessage"].as_str().unwrap();
        assert!(message.starts_with("7 of 10 log records rejected: record 0: bad") && message.ends_with("and 2 more"), "{message}");
        let proto = ExportLogsServiceResponse::decode(&bytes(success(Format::Protobuf, &rejected, 10))[..]).unwrap();
        assert_eq!(proto.partial_success.unwrap().rejected_log_records, 7);
        assert_eq!(bytes(success(Format::Json, &[], 3)), b"{}");
        assert!(bytes(success(Format::Protobuf, &[], 3)).is_empty());
    }

    #[test]
    fn errors_carry_status_and_retry_after() {
        let r = error(Format::Protobuf, StatusCode::SERVICE_UNAVAILABLE, "full");
        assert_eq!(r.headers()["retry-after"], "1");
        let status = Status::decode(&bytes(r)[..]).unwrap();
        assert_eq!((status.code, status.message.as_str()), (14, "full"));
        let r = error(Format::Json, StatusCode::BAD_REQUEST, "no");
        assert!(r.headers().get("retry-after").is_none());
        assert_eq!(bytes(r), br#"{"code":3,"message":"no"}"#);
    }
}
