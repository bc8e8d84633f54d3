//! Request bodies: the wire format (protobuf or OTLP JSON), gzip, and decoding into the generated
//! `ExportLogsServiceRequest`.

use std::io::Read;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use prost::Message;

pub const PROTOBUF: &str = "application/x-protobuf";
pub const JSON: &str = "application/json";

/// The request's encoding; the answer is written in the same one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Protobuf,
    Json,
}

impl Format {
    /// From the Content-Type (lower case). Anything but protobuf is answered as JSON: the body check
    /// refuses other types with 415, and a JSON error is the readable one then.
    pub fn of(content_type: &str) -> Format {
        if content_type.starts_with(PROTOBUF) {
            Format::Protobuf
        } else {
            Format::Json
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Protobuf => PROTOBUF,
            Format::Json => JSON,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OtlpError {
    #[error("content encoding {0:?} is not supported (gzip or none)")]
    UnsupportedEncoding(String),
    #[error("the decompressed body is over the limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the gzip body does not decompress: {0}")]
    BadGzip(std::io::Error),
    #[error("not an OTLP ExportLogsServiceRequest in protobuf: {0}")]
    BadProtobuf(#[from] prost::DecodeError),
    #[error("not an OTLP ExportLogsServiceRequest in OTLP JSON: {0}")]
    BadJson(#[from] serde_json::Error),
}

/// Undoes `Content-Encoding`. The decompressed size is held to the body limit as well, so a small gzip
/// bomb cannot take more memory than a plain body could.
pub fn decompress(body: bytes::Bytes, encoding: Option<&str>, limit: usize) -> Result<bytes::Bytes, OtlpError> {
    match encoding.map(|e| e.trim().to_ascii_lowercase()).as_deref() {
        None | Some("") | Some("identity") => Ok(body),
        Some("gzip") => {
            let mut out = Vec::new();
            let read = flate2::read::MultiGzDecoder::new(&body[..])
                .take(limit as u64 + 1)
                .read_to_end(&mut out)
                .map_err(OtlpError::BadGzip)?;
            if read > limit {
                return Err(OtlpError::TooLarge { limit });
            }
            Ok(out.into())
        }
        Some(other) => Err(OtlpError::UnsupportedEncoding(other.to_string())),
    }
}

/// Decodes with the generated types: prost for protobuf, their serde derives for OTLP JSON (camelCase
/// names, hex trace and span ids, 64-bit integers as strings or numbers; unknown fields are ignored,
/// as the OTLP JSON mapping asks of receivers).
pub fn decode(body: &[u8], format: Format) -> Result<ExportLogsServiceRequest, OtlpError> {
    match format {
        Format::Protobuf => Ok(ExportLogsServiceRequest::decode(body)?),
        Format::Json => Ok(serde_json::from_slice(body)?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> bytes::Bytes {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap().into()
    }

    #[test]
    fn gzip_round_trips_and_is_held_to_the_limit() {
        let data = vec![b'a'; 10_000];
        assert_eq!(&decompress(gzip(&data), Some("gzip"), 10_000).unwrap()[..], &data[..]);
        assert!(matches!(decompress(gzip(&data), Some("GZIP"), 9_999), Err(OtlpError::TooLarge { limit: 9_999 })));
        assert!(matches!(decompress("plain".into(), Some("gzip"), 100), Err(OtlpError::BadGzip(_))));
        assert!(matches!(decompress("x".into(), Some("br"), 100), Err(OtlpError::UnsupportedEncoding(_))));
        assert_eq!(&decompress("x".into(), None, 100).unwrap()[..], b"x");
    }

    #[test]
    fn otlp_json_mapping_is_read() {
        // camelCase names, a string int64 timestamp, hex ids, intValue as a string, an enum as a number.
        let body = br#"{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"svc"}}]},
            "scopeLogs":[{"scope":{"name":"s"},"logRecords":[{"timeUnixNano":"1700000000000000001",
            "severityNumber":13,"severityText":"WARN","body":{"stringValue":"hi"},
            "attributes":[{"key":"n","value":{"intValue":"42"}}],
            "traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","someFutureField":1}]}]}]}"#;
        let request = decode(body, Format::Json).unwrap();
        let record = &request.resource_logs[0].scope_logs[0].log_records[0];
        assert_eq!(record.time_unix_nano, 1_700_000_000_000_000_001);
        assert_eq!(record.severity_number, 13);
        assert_eq!(record.trace_id.len(), 16);
        assert_eq!(record.span_id, [0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74]);
        assert!(matches!(decode(b"{\"resourceLogs\": 5}", Format::Json), Err(OtlpError::BadJson(_))));
        assert!(matches!(decode(&[0xff, 0xff, 0xff], Format::Protobuf), Err(OtlpError::BadProtobuf(_))));
    }
}
