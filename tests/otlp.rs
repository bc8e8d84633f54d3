//! `POST /v1/logs` (OTLP/HTTP) against a real server: both encodings, gzip, partial success, errors,
//! tenants. The real OpenTelemetry SDK as a client is in `otlp_python.rs`.
#![cfg(feature = "otlp")]

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;

use common::http::get;
use opentelemetry_proto::tonic::collector::logs::v1::{ExportLogsServiceRequest, ExportLogsServiceResponse};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use serde_json::{json, Value};
use tidelog::server::{HttpOptions, Server, ServerConfig};
use tidelog::Store;

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }
}

fn post(addr: SocketAddr, headers: &[(&str, &str)], body: &[u8]) -> Answer {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let mut head = format!("POST /v1/logs HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a whole answer");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines.filter_map(|l| l.split_once(": ")).map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Answer { status, headers, body: raw[split + 4..].to_vec() }
}

const PROTOBUF: (&str, &str) = ("Content-Type", "application/x-protobuf");
const JSON: (&str, &str) = ("Content-Type", "application/json");

fn start(dir: &std::path::Path, options: HttpOptions) -> (Store, Server) {
    let store = common::open(dir, 2, 0);
    let server = Server::start(&store, ServerConfig { listen: "127.0.0.1:0".parse().unwrap(), limits: options }).unwrap();
    (store, server)
}

fn text(s: &str) -> Option<AnyValue> {
    Some(AnyValue { value: Some(any_value::Value::StringValue(s.into())) })
}

fn logs(service: &str, records: Vec<LogRecord>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![KeyValue { key: "service.name".into(), value: text(service), ..Default::default() }],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs { log_records: records, ..Default::default() }],
            ..Default::default()
        }],
    }
}

fn record(n: u64, severity_number: i32) -> LogRecord {
    LogRecord {
        time_unix_nano: 1_700_000_000_000_000_000 + n * 1_000,
        severity_number,
        body: text(&format!("line {n}")),
        attributes: vec![KeyValue {
            key: "n".into(),
            value: Some(AnyValue { value: Some(any_value::Value::IntValue(n as i64)) }),
            ..Default::default()
        }],
        trace_id: vec![0xab; 16],
        span_id: vec![0xcd; 8],
        ..Default::default()
    }
}

fn query(addr: SocketAddr, params: &str) -> Vec<Value> {
    let r = get(addr, &format!("/api/v1/events/query?{params}"));
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["events"].as_array().unwrap().clone()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

#[test]
fn protobuf_and_gzip_requests_become_events() {
    let dir = tempfile::tempdir().unwrap();
    let (store, server) = start(dir.path(), HttpOptions::default());
    let addr = server.local_addr();

    let body = logs("svc-a", (0..10).map(|n| record(n, 9)).collect()).encode_to_vec();
    let r = post(addr, &[PROTOBUF], &body);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/x-protobuf"));
    assert_eq!(ExportLogsServiceResponse::decode(&r.body[..]).unwrap().partial_success, None);

    let body = gzip(&logs("svc-b", (10..15).map(|n| record(n, 17)).collect()).encode_to_vec());
    let r = post(addr, &[PROTOBUF, ("Content-Encoding", "gzip")], &body);
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));

    let events = query(addr, "entity_id=svc-a");
    assert_eq!(events.len(), 10);
    let first = &events[0];
    assert_eq!(first["event_type"], "log.info");
    assert_eq!(first["timestamp"], "2023-11-14T22:13:20.000000Z");
    assert_eq!(first["payload"]["body"], "line 0");
    assert_eq!(first["payload"]["attributes"]["n"], 0);
    assert_eq!(first["payload"]["trace_id"], "ab".repeat(16));
    assert_eq!(first["payload"]["span_id"], "cd".repeat(8));
    assert_eq!(first["metadata"]["resource"]["attributes"]["service.name"], "svc-a");
    let errors = query(addr, "entity_id=svc-b&event_type=log.error");
    assert_eq!(errors.len(), 5);
    assert_eq!(errors[4]["payload"]["body"], "line 14");
    server.shutdown();
    store.close().unwrap();
}

#[test]
fn otlp_json_with_camel_case_string_int64s_and_hex_ids() {
    let dir = tempfile::tempdir().unwrap();
    let (store, server) = start(dir.path(), HttpOptions::default());
    let addr = server.local_addr();
    // As the OTLP JSON mapping writes it (and the Collector's otlphttp exporter with encoding: json).
    let body = json!({"resourceLogs": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "json-svc"}}]},
        "scopeLogs": [{
            "scope": {"name": "my.scope", "version": "2.0"},
            "logRecords": [{
                "timeUnixNano": "1700000000000001000",
                "observedTimeUnixNano": "1700000000000002000",
                "severityNumber": 13,
                "severityText": "Warning",
                "eventName": "payment.retry",
                "body": {"kvlistValue": {"values": [{"key": "amount", "value": {"doubleValue": 9.5}}]}},
                "attributes": [
                    {"key": "attempt", "value": {"intValue": "3"}},
                    {"key": "tags", "value": {"arrayValue": {"values": [{"stringValue": "x"}, {"boolValue": true}]}}}
                ],
                "traceId": "5b8efff798038103d269b633813fc60c",
                "spanId": "eee19b7ec3c1b174",
                "flags": 1
            }, {
                "observedTimeUnixNano": "1700000000000003000",
                "severityNumber": 5,
                "body": {"stringValue": "no event time"}
            }]
        }]
    }]});
    let r = post(addr, &[JSON], body.to_string().as_bytes());
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json(), json!({}));
    let events = query(addr, "entity_id=json-svc");
    assert_eq!(events.len(), 2);
    let e = &events[0];
    assert_eq!(e["event_type"], "payment.retry");
    assert_eq!(e["timestamp"], "2023-11-14T22:13:20.000001Z");
    assert_eq!(e["payload"]["body"], json!({"amount": 9.5}));
    assert_eq!(e["payload"]["attributes"], json!({"attempt": 3, "tags": ["x", true]}));
    assert_eq!(e["payload"]["trace_id"], "5b8efff798038103d269b633813fc60c");
    assert_eq!(e["payload"]["span_id"], "eee19b7ec3c1b174");
    assert_eq!(e["payload"]["severity_text"], "Warning");
    assert_eq!(e["metadata"]["scope"], json!({"name": "my.scope", "version": "2.0", "attributes": {}}));
    assert_eq!(events[1]["event_type"], "log.debug");
    assert_eq!(events[1]["timestamp"], "2023-11-14T22:13:20.000003Z", "observed time stands in");
    server.shutdown();
    store.close().unwrap();
}

#[test]
fn partial_success_appends_the_valid_records_and_counts_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let (store, server) = start(dir.path(), HttpOptions::default());
    let addr = server.local_addr();
    let mut records: Vec<LogRecord> = (0..4).map(|n| record(n, 9)).collect();
    records[1].event_name = "bad\ttype".into();
    records[3].event_name = "x".repeat(300);
    let r = post(addr, &[PROTOBUF], &logs("partial", records.clone()).encode_to_vec());
    assert_eq!(r.status, 200);
    let partial = ExportLogsServiceResponse::decode(&r.body[..]).unwrap().partial_success.unwrap();
    assert_eq!(partial.rejected_log_records, 2);
    assert!(partial.error_message.contains("record 1: events") || partial.error_message.contains("record 1: event_type"), "{}", partial.error_message);
    assert_eq!(query(addr, "entity_id=partial").len(), 2);

    let json_body = serde_json::to_vec(&logs("partial-json", records)).unwrap();
    let r = post(addr, &[JSON], &json_body);
    assert_eq!(r.status, 200);
    let answer = r.json();
    assert_eq!(answer["partialSuccess"]["rejectedLogRecords"], "2", "int64 as a string: {answer}");
    assert!(answer["partialSuccess"]["errorMessage"].as_str().unwrap().starts_with("2 of 4 log records rejected"));
    assert_eq!(query(addr, "entity_id=partial-json").len(), 2);
    server.shutdown();
    store.close().unwrap();
}

#[test]
fn bad_bodies_limits_and_encodings() {
    let dir = tempfile::tempdir().unwrap();
    let (store, server) = start(dir.path(), HttpOptions { max_body_bytes: 64 * 1024, ..HttpOptions::default() });
    let addr = server.local_addr();
    // Undecodable protobuf: 400 with a google.rpc.Status in protobuf (code INVALID_ARGUMENT).
    let r = post(addr, &[PROTOBUF], &[0xff, 0xff, 0xff, 0xff]);
    assert_eq!(r.status, 400);
    assert_eq!(r.header("content-type"), Some("application/x-protobuf"));
    // google.rpc.Status: field 1 (code) is a varint = 3.
    assert_eq!(&r.body[..2], &[0x08, 3]);
    let r = post(addr, &[JSON], b"{\"resourceLogs\": 7}");
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["code"], 3);
    assert!(r.json()["message"].as_str().unwrap().contains("OTLP JSON"));
    let r = post(addr, &[PROTOBUF, ("Content-Encoding", "gzip")], b"not gzip");
    assert_eq!(r.status, 400);
    let r = post(addr, &[PROTOBUF, ("Content-Encoding", "zstd")], b"x");
    assert_eq!(r.status, 415);
    let r = post(addr, &[("Content-Type", "text/plain")], b"x");
    assert_eq!(r.status, 415);
    // Over the limit, plain and once decompressed.
    let big = logs("big", (0..2000).map(|n| record(n, 9)).collect()).encode_to_vec();
    assert!(big.len() > 64 * 1024);
    assert_eq!(post(addr, &[PROTOBUF], &big).status, 413);
    let zipped = gzip(&big);
    assert!(zipped.len() < 64 * 1024);
    assert_eq!(post(addr, &[PROTOBUF, ("Content-Encoding", "gzip")], &zipped).status, 413);
    assert_eq!(common::http::get(addr, "/v1/logs").status, 405);
    assert!(query(addr, "entity_id=big").is_empty());
    server.shutdown();
    store.close().unwrap();
}

#[test]
fn tenants_from_header_or_api_key() {
    let dir = tempfile::tempdir().unwrap();
    let (store, server) = start(&dir.path().join("open"), HttpOptions::default());
    let body = logs("t-svc", vec![record(1, 9)]).encode_to_vec();
    let addr = server.local_addr();
    assert_eq!(post(addr, &[PROTOBUF, ("X-Tidelog-Tenant", "acme")], &body).status, 200);
    assert_eq!(query(addr, "tenant_id=acme&entity_id=t-svc").len(), 1);
    assert!(query(addr, "entity_id=t-svc").is_empty(), "not in the default tenant");
    assert_eq!(post(addr, &[PROTOBUF, ("X-Tidelog-Tenant", "no spaces")], &body).status, 400);
    server.shutdown();
    store.close().unwrap();

    let keys = dir.path().join("keys.json");
    std::fs::write(&keys, r#"{"acme-token-0123456789": "acme"}"#).unwrap();
    let api_keys = Some(std::sync::Arc::new(tidelog::server::ApiKeys::load(&keys).unwrap()));
    let (store, server) = start(&dir.path().join("keyed"), HttpOptions { api_keys, ..HttpOptions::default() });
    let addr = server.local_addr();
    let r = post(addr, &[PROTOBUF], &body);
    assert_eq!((r.status, r.header("www-authenticate")), (401, Some("Bearer")));
    let auth = ("Authorization", "Bearer acme-token-0123456789");
    assert_eq!(post(addr, &[PROTOBUF, auth], &body).status, 200);
    assert_eq!(post(addr, &[PROTOBUF, auth, ("X-Tidelog-Tenant", "acme")], &body).status, 200);
    assert_eq!(post(addr, &[PROTOBUF, auth, ("X-Tidelog-Tenant", "globex")], &body).status, 403);
    assert_eq!(common::block_on(store.tenant_stats("acme")).unwrap().events, 2);
    server.shutdown();
    store.close().unwrap();
}
