//! The official MCP Python SDK (`mcp` on PyPI) as the client of `tidelog mcp` (stdio) and of `/mcp` on
//! `tidelog serve` (Streamable HTTP): every tool is called, and the answers are checked against the
//! HTTP API on the same data.
#![cfg(feature = "mcp")]

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::Command;

use common::server::Server;
use serde_json::{json, Value};

const TOOLS: [&str; 7] = ["append_event", "append_events", "query_events", "get_event", "entity_state", "recent_events", "tenant_stats"];

fn run_client(args: &[&str]) -> Value {
    let output = Command::new(common::python::python())
        .arg(common::python::script("mcp_client.py"))
        .args(args)
        .output()
        .expect("running the MCP client");
    assert!(output.status.success(), "MCP client failed:\n{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("client output is not JSON ({e}): {}", String::from_utf8_lossy(&output.stdout)))
}

/// GET with an optional bearer token; the JSON answer.
fn api(addr: SocketAddr, path: &str, token: Option<&str>) -> Value {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "GET {path}: {head}\n{body}");
    serde_json::from_str(body).unwrap()
}

/// POST of a JSON body with an optional bearer token; the JSON answer.
#[cfg(feature = "sql")]
fn api_post(addr: SocketAddr, path: &str, body: &Value, token: Option<&str>) -> Value {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let body = body.to_string();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{auth}\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "POST {path}: {head}\n{body}");
    serde_json::from_str(body).unwrap()
}

/// What the client saw, against the HTTP API on the same store.
fn check(out: &Value, addr: SocketAddr, tenant: &str, token: Option<&str>) {
    let tools = out["tools"].as_object().unwrap();
    for name in TOOLS {
        assert_eq!(tools[name]["type"], "object", "{name} has an object schema");
        assert!(tools[name].get("properties").is_some(), "{name}: {}", tools[name]);
    }
    assert!(tools["query_events"]["properties"].get("event_type_prefix").is_some());
    assert!(out["instructions"].as_str().unwrap().contains("event store"));

    let t = format!("tenant_id={tenant}");
    assert_eq!(out["append_event"]["version"], 1);
    assert_eq!(out["append_events"]["ingested"], 2);
    assert_eq!(out["query_events"], api(addr, &format!("/api/v1/events/query?{t}&entity_id=agent-1&order=desc&limit=10"), token));
    assert_eq!(out["query_events"]["count"], 2);
    let prefix = api(addr, &format!("/api/v1/events/query?{t}&event_type_prefix=memory.&since=2024-01-01T12:00:00Z"), token);
    assert_eq!(out["query_prefix"], prefix);
    assert_eq!(prefix["count"], 1);
    let id = out["append_event"]["event_id"].as_str().unwrap();
    assert_eq!(out["get_event"], api(addr, &format!("/api/v1/events/{id}?{t}"), token));
    assert_eq!(out["get_event"]["event"]["tenant_id"], tenant);
    assert_eq!(out["entity_state"], api(addr, &format!("/api/v1/entities/agent-1/state?{t}"), token));
    assert_eq!(out["entity_state"]["current_state"], json!({"topic": "tidelog", "notes": ["a", "b"]}));
    let as_of = api(addr, &format!("/api/v1/entities/agent-1/state?{t}&as_of=2024-01-01T12:00:00Z"), token);
    assert_eq!(out["entity_state_as_of"], as_of);
    assert_eq!(as_of["version"], 1);
    let recent: Vec<&str> = out["recent_events"]["events"].as_array().unwrap().iter().map(|e| e["event_type"].as_str().unwrap()).collect();
    assert_eq!(recent, ["task.done", "memory.updated"], "newest first");
    assert_eq!(out["recent_memory"]["count"], 2);
    let stats = api(addr, &format!("/api/v1/stats?{t}"), token);
    assert_eq!(out["tenant_stats"], stats);
    assert_eq!(out["after_errors"], stats, "the refused calls wrote nothing");
    assert_eq!(stats["total_events"], 3);

    assert_eq!(out["resources"], json!(["tidelog://event-types", "tidelog://schema/event"]));
    assert_eq!(out["schema"]["title"], "tidelog event");
    assert_eq!(out["event_types"], json!({"tenant_id": tenant, "event_types": stats["event_types"]}));

    let errors = out["errors"].as_object().unwrap();
    let message = |case: &str| errors[case]["message"].as_str().unwrap_or_else(|| panic!("{case}: {}", errors[case])).to_string();
    assert!(message("missing_entity").contains("entity_id"), "{}", message("missing_entity"));
    assert!(message("unknown_field").contains("colour"));
    assert!(message("bad_tenant").contains("tenant"), "{}", message("bad_tenant"));
    assert!(message("version_conflict").contains("version conflict"));
    assert!(message("bad_since").contains("since"));
    assert!(message("both_types").contains("not both"));
    assert!(message("bad_uuid").contains("not a UUID"));
    assert!(message("unknown_event").contains("no event"));
    assert!(message("no_entity").contains("nobody"));
    assert!(message("zero_limit").contains("limit"));
    assert!(errors["unknown_tool"]["kind"] == "mcp_error", "{}", errors["unknown_tool"]);
    for (case, error) in errors {
        if !error.is_null() && case != "unknown_tool" {
            // Bad arguments come back as errors the agent can read, never as a crash or a hang: rmcp
            // answers a tool's invalid-params error as a tool result with isError (the MCP spec's
            // "tool execution error", so that the model can correct its call), other errors as JSON-RPC
            // errors (resource not found -32002).
            match error["kind"].as_str().unwrap() {
                "tool_error" => {}
                "mcp_error" => assert!([-32602, -32002].contains(&error["code"].as_i64().unwrap()), "{case}: {error}"),
                other => panic!("{case}: {other}"),
            }
        }
    }
    #[cfg(feature = "sql")]
    {
        assert_eq!(tools["sql"]["type"], "object");
        let query = "SELECT event_type, count(*) AS n, max(version) AS v FROM events GROUP BY event_type ORDER BY event_type";
        let answer = api_post(addr, &format!("/api/v1/sql?{t}"), &json!({ "query": query }), token);
        assert_eq!(out["sql"], answer, "the sql tool answers as POST /api/v1/sql");
        assert_eq!(answer["row_count"], 3);
        assert!(message("bad_sql").to_lowercase().contains("sql"), "{}", message("bad_sql"));
        assert!(message("write_sql").contains("read-only"), "{}", message("write_sql"));
    }
    eprintln!("MCP errors seen: {}", serde_json::to_string_pretty(errors).unwrap());
}

#[test]
fn stdio_server_answers_like_the_http_api() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = run_client(&["stdio", env!("CARGO_BIN_EXE_tidelog"), data.to_str().unwrap(), "agents"]);
    // `tidelog mcp` has exited (the client closed its stdin); the server opens the same directory.
    let server = Server::start(&data, 0, &[]);
    check(&out, server.addr, "agents", None);
}

#[test]
fn streamable_http_at_mcp_answers_like_the_http_api() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), 0, &[]);
    let out = run_client(&["http", &format!("{}/mcp", server.url()), "agents"]);
    check(&out, server.addr, "agents", None);
}

#[test]
fn streamable_http_under_api_keys_acts_on_the_token_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.json");
    let token = "acme-token-0123456789";
    std::fs::write(&keys, format!(r#"{{"{token}": "acme"}}"#)).unwrap();
    let server = Server::start(&dir.path().join("data"), 0, &["--auth-file", keys.to_str().unwrap()]);
    let out = run_client(&["http", &format!("{}/mcp", server.url()), "acme", token, "--keyed"]);
    check(&out, server.addr, "acme", Some(token));
    assert!(out["errors"]["other_tenant"]["message"].as_str().unwrap().contains("not the token's tenant"));
    #[cfg(feature = "sql")]
    assert!(out["errors"]["sql_other_tenant"]["message"].as_str().unwrap().contains("not the token's tenant"));
    // No token: refused before MCP sees the request.
    let r = common::http::request(server.addr, "POST", "/mcp", Some("application/json"), br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#);
    assert_eq!(r.status, 401);
}
