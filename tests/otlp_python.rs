//! The OpenTelemetry Python SDK and its OTLP/HTTP exporter (from PyPI, nobody here wrote them) export
//! logs to `tidelog serve`; every record is then found through the query API with the mapped fields.
#![cfg(feature = "otlp")]

mod common;

use std::collections::HashMap;
use std::process::Command;

use common::server::Server;
use serde_json::Value;

const RECORDS_PER_EXPORTER: usize = 40;

#[test]
fn python_sdk_exports_land_as_events() {
    let python = common::python::python();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), 0, &[]);
    let output = Command::new(&python)
        .arg(common::python::script("otlp_export.py"))
        .arg(server.url())
        .arg(RECORDS_PER_EXPORTER.to_string())
        .output()
        .expect("running the exporter");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "exporter failed:\n{stderr}");
    eprintln!("{stderr}");
    let expected: Vec<Value> =
        String::from_utf8(output.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(expected.len(), 2 * RECORDS_PER_EXPORTER);

    for service in ["py-plain", "py-gzip"] {
        let r = common::http::get(server.addr, &format!("/api/v1/events/query?entity_id={service}&limit=1000"));
        assert_eq!(r.status, 200, "{}", r.body);
        let events = r.json()["events"].as_array().unwrap().clone();
        assert_eq!(events.len(), RECORDS_PER_EXPORTER, "{service}: every record is an event");
        let by_seq: HashMap<i64, &Value> =
            events.iter().map(|e| (e["payload"]["attributes"]["seq"].as_i64().expect("seq attribute"), e)).collect();
        for want in expected.iter().filter(|e| e["service"] == service) {
            let seq = want["seq"].as_i64().unwrap();
            let got = by_seq.get(&seq).unwrap_or_else(|| panic!("{service}: record {seq} missing"));
            let payload = &got["payload"];
            assert_eq!(got["tenant_id"], "default");
            assert_eq!(got["event_type"], want["event_type"], "{service} {seq}");
            assert_eq!(payload["severity_text"], want["severity_text"]);
            assert_eq!(payload["severity_number"], want["severity_number"]);
            assert_eq!(payload["attributes"]["user"], format!("u-{}", seq % 3));
            assert_eq!(payload["attributes"]["ok"], seq % 2 == 0);
            assert_eq!(payload["attributes"]["ratio"].as_f64(), Some(seq as f64 / 4.0));
            if seq % 2 == 0 {
                assert_eq!(payload["body"], format!("message {seq}"));
                assert_eq!(payload["trace_id"], want["trace_id"], "{service} {seq}: trace context");
                assert_eq!(payload["span_id"], want["span_id"]);
            } else {
                assert_eq!(payload["body"]["message"], seq);
                assert_eq!(payload["body"]["tags"], serde_json::json!(["a", "b"]));
                assert!(payload.get("trace_id").is_none(), "no span, no trace id");
            }
            assert_eq!(got["metadata"]["resource"]["attributes"]["service.name"], service);
            assert_eq!(got["metadata"]["resource"]["attributes"]["host.name"], "test-host");
            assert_eq!(got["metadata"]["scope"]["name"], "tidelog.test");
            assert!(got["timestamp"].as_str().unwrap().ends_with('Z'));
        }
    }
}
