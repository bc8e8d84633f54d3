//! `/mcp` at the HTTP level: the Host check and the limits, with raw requests (the protocol itself is
//! exercised by the MCP Python SDK in `mcp_python.rs`).
#![cfg(feature = "mcp")]

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;

use tidelog::server::{HttpOptions, Server, ServerConfig};

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"0"}}}"#;

/// (status, body) of a POST /mcp with the given Host header.
fn post(addr: SocketAddr, host: &str, body: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "POST /mcp HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (head.split(' ').nth(1).unwrap().parse().unwrap(), body.to_string())
}

#[test]
fn host_check_and_body_limit() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path(), 2, 0);
    let options = HttpOptions {
        max_body_bytes: 4096,
        mcp_allowed_hosts: vec!["127.0.0.1".into(), "events.example".into()],
        ..HttpOptions::default()
    };
    let server = Server::start(&store, ServerConfig { listen: "127.0.0.1:0".parse().unwrap(), limits: options }).unwrap();
    let addr = server.local_addr();

    let (status, body) = post(addr, &addr.to_string(), INITIALIZE);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"tidelog\""), "server info names tidelog: {body}");
    let (status, body) = post(addr, "events.example:3900", INITIALIZE);
    assert_eq!(status, 200, "an allowed name: {body}");
    let (status, _) = post(addr, "attacker.example", INITIALIZE);
    assert_eq!(status, 403, "a Host not allowed is refused");
    let big = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"pad":"{}"}}}}"#, "x".repeat(5000));
    assert_eq!(post(addr, &addr.to_string(), &big).0, 413);
    server.shutdown();
    store.close().unwrap();
}
