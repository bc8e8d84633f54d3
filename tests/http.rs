//! The HTTP API, against a real server on an ephemeral loopback port.

mod common;

use common::http::{get, post_json, request};
use serde_json::json;
use tidelog::server::{HttpOptions, Server, ServerConfig};
use tidelog::Store;

fn start(dir: &std::path::Path, max_body_bytes: usize) -> (Store, Server) {
    let store = common::open(dir, 2, 0);
    let config = ServerConfig { listen: "127.0.0.1:0".parse().unwrap(), limits: HttpOptions { max_body_bytes, api_keys: None, sql: Default::default() } };
    let server = Server::start(&store, config).expect("server starts");
    (store, server)
}

#[test]
fn routes_and_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let (store, server) = start(dir.path(), 1 << 20);
    let addr = server.local_addr();

    let r = post_json(addr, "/api/v1/events", &json!({"event_type":"user.created","entity_id":"u1","payload":{"name":"Ada"}}));
    assert_eq!(r.status, 200, "{}", r.body);
    let created = r.json();
    assert_eq!(created["version"], 1);
    let id = created["event_id"].as_str().unwrap().to_string();
    assert!(created["timestamp"].as_str().unwrap().ends_with('Z'));

    let r = post_json(addr, "/api/v1/events/batch", &json!({"events": [
        {"event_type":"user.renamed","entity_id":"u1","payload":{"name":"Ada L."},"expected_version":1},
        {"event_type":"user.created","entity_id":"u2","payload":{"name":"Bob"},"tenant_id":"acme"},
    ]}));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!((r.json()["total"].clone(), r.json()["ingested"].clone()), (json!(2), json!(2)));

    let ndjson = "{\"event_type\":\"m\",\"entity_id\":\"s1\",\"payload\":1}\n{\"event_type\":\"m\",\"entity_id\":\"s2\",\"payload\":2}\n";
    let r = request(addr, "POST", "/api/v1/events/batch", Some("application/x-ndjson"), ndjson.as_bytes());
    assert_eq!((r.status, r.json()["ingested"].clone()), (200, json!(2)), "{}", r.body);

    let r = get(addr, "/api/v1/events/query?entity_id=u1&order=desc&limit=1");
    let page = r.json();
    assert_eq!((page["count"].clone(), page["has_more"].clone()), (json!(1), json!(true)));
    let latest = &page["events"][0];
    assert_eq!((latest["version"].clone(), latest["payload"]["name"].clone()), (json!(2), json!("Ada L.")));
    for key in ["id", "tenant_id", "entity_id", "event_type", "payload", "metadata", "timestamp", "version"] {
        assert!(latest.get(key).is_some(), "event has {key}");
    }
    let r = get(addr, "/api/v1/events/query?event_type_prefix=user.&limit=10");
    assert_eq!(r.json()["count"], 2, "the default tenant only");

    let r = get(addr, &format!("/api/v1/events/{id}"));
    assert_eq!((r.status, r.json()["found"].clone()), (200, json!(true)));
    assert_eq!(get(addr, &format!("/api/v1/events/{id}?tenant_id=acme")).status, 404, "tenant-scoped");

    let r = get(addr, "/api/v1/entities/u1/state");
    let state = r.json();
    assert_eq!((state["version"].clone(), state["current_state"].clone()), (json!(2), json!({"name":"Ada L."})));
    assert_eq!(get(addr, "/api/v1/entities/nobody/state").status, 404);

    let r = get(addr, "/health");
    assert_eq!((r.status, r.json()["status"].clone()), (200, json!("healthy")));

    // Stats are per tenant.
    let stats = get(addr, "/api/v1/stats").json();
    assert_eq!((stats["total_events"].clone(), stats["total_entities"].clone()), (json!(4), json!(3)), "{stats}");
    assert_eq!(stats["event_types"], json!({"m": 2, "user.created": 1, "user.renamed": 1}));
    let acme = get(addr, "/api/v1/stats?tenant_id=acme").json();
    assert_eq!((acme["total_events"].clone(), acme["event_types"].clone()), (json!(1), json!({"user.created": 1})));

    // Prometheus metrics: counters per shard and latency quantiles from the shards' histograms.
    let r = get(addr, "/metrics");
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    let appended: f64 = r
        .body
        .lines()
        .filter(|l| l.starts_with("tidelog_events_appended_total{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(appended, 5.0, "{}", r.body);
    for family in ["tidelog_fsyncs_total", "tidelog_queue_depth", "tidelog_shard_healthy"] {
        assert!(r.body.contains(&format!("# TYPE {family} ")), "{family} missing");
    }
    assert!(r.body.contains("tidelog_append_latency_seconds{shard=\"0\",quantile=\"0.99\"}"));
    assert!(r.body.contains("tidelog_fsync_latency_seconds_count{shard=\"1\"}"));
    assert!(r.body.contains("# TYPE tidelog_events_per_fsync summary"));

    server.shutdown();
    store.close().unwrap();
    // A restart shows every acknowledged event.
    let (store, server) = start(dir.path(), 1 << 20);
    let r = get(server.local_addr(), &format!("/api/v1/events/{id}"));
    assert_eq!(r.status, 200);
    assert_eq!(get(server.local_addr(), "/api/v1/events/query?limit=100").json()["count"], 4, "default tenant");
    assert_eq!(get(server.local_addr(), "/api/v1/events/query?tenant_id=acme").json()["count"], 1);
    server.shutdown();
    store.close().unwrap();
}

#[test]
fn errors_have_codes_and_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let (store, server) = start(dir.path(), 4096);
    let addr = server.local_addr();
    let error = |r: &common::http::Reply| r.json()["error"].as_str().unwrap().to_string();

    let r = request(addr, "POST", "/api/v1/events", Some("application/json"), b"{not json");
    assert_eq!((r.status, error(&r)), (400, "invalid_event".into()));
    let r = post_json(addr, "/api/v1/events", &json!({"event_type":"t","entity_id":"","payload":1}));
    assert_eq!(r.status, 400);
    assert!(r.json()["message"].as_str().unwrap().contains("entity_id"), "{}", r.body);

    // One bad event rejects the batch, naming its index and field; nothing is written.
    let r = post_json(addr, "/api/v1/events/batch", &json!({"events": [
        {"event_type":"t","entity_id":"a","payload":1},
        {"event_type":"t","entity_id":"b","payload":1,"timestamp":"not a time"},
    ]}));
    assert_eq!(r.status, 400);
    assert!(r.json()["message"].as_str().unwrap().contains("events[1].timestamp"), "{}", r.body);
    assert_eq!(get(addr, "/api/v1/events/query").json()["count"], 0);

    let r = post_json(addr, "/api/v1/events", &json!({"event_type":"t","entity_id":"a","payload":1,"expected_version":3}));
    assert_eq!((r.status, error(&r)), (409, "version_conflict".into()));
    assert_eq!((r.json()["expected_version"].clone(), r.json()["current_version"].clone()), (json!(3), json!(0)));

    let r = request(addr, "POST", "/api/v1/events", Some("application/json"), &vec![b' '; 5000]);
    assert_eq!((r.status, error(&r)), (413, "payload_too_large".into()));
    let r = request(addr, "POST", "/api/v1/events", Some("text/plain"), b"{}");
    assert_eq!(r.status, 415);
    assert_eq!(request(addr, "DELETE", "/api/v1/events", None, b"").status, 405);
    assert_eq!(get(addr, "/api/v1/nothing").status, 404);
    assert_eq!(get(addr, "/api/v1/events/not-a-uuid").status, 400);
    assert_eq!(get(addr, &format!("/api/v1/events/{}", uuid::Uuid::now_v7())).status, 404);
    for bad in ["limit=abc", "order=sideways", "since=yesterday", "bogus=1", "limit=999999", "tenant_id=a%20b"] {
        let r = get(addr, &format!("/api/v1/events/query?{bad}"));
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
    }
    // A path segment is percent-decoded only: '+' stays '+' (unlike a query string).
    let r = post_json(addr, "/api/v1/events", &json!({"event_type":"t","entity_id":"a+b c","payload":{"k":1}}));
    assert_eq!(r.status, 200);
    assert_eq!(get(addr, "/api/v1/entities/a+b%20c/state").json()["current_state"], json!({"k":1}));
    server.shutdown();
    store.close().unwrap();
}

#[test]
fn sse_stream_catches_up_goes_live_and_resumes_without_gaps() {
    use common::http::Sse;
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let (store, server) = start(dir.path(), 1 << 20);
    let addr = server.local_addr();
    let append = |tenant: &str, entity: &str, event_type: &str, n: u64| {
        let r = post_json(addr, "/api/v1/events", &json!({"tenant_id":tenant,"entity_id":entity,"event_type":event_type,"payload":{"n":n}}));
        assert_eq!(r.status, 200, "{}", r.body);
    };
    for n in 0..3 {
        append("t", &format!("e{n}"), "order.created", n);
    }
    append("other", "e0", "order.created", 99);

    let mut sse = Sse::open(addr, "/api/v1/events/stream?tenant_id=t", None);
    assert_eq!(sse.status, 200);
    let caught_up = sse.take(3, Duration::from_secs(5));
    let ns: Vec<u64> = caught_up.iter().map(|(_, e)| e["payload"]["n"].as_u64().unwrap()).collect();
    assert_eq!({ let mut s = ns.clone(); s.sort(); s }, vec![0, 1, 2], "catch-up: the tenant's stored events");
    assert!(caught_up.iter().all(|(_, e)| e["tenant_id"] == "t"));

    append("t", "e0", "order.paid", 3);
    append("other", "e9", "order.paid", 98);
    let live = sse.take(1, Duration::from_secs(5));
    assert_eq!(live[0].1["payload"]["n"], 3, "live event");
    assert!(sse.take(1, Duration::from_millis(300)).is_empty(), "another tenant's events never show");
    let resume_from = live[0].0.clone();
    drop(sse);

    for n in 4..7 {
        append("t", &format!("e{}", n % 3), "order.paid", n);
    }
    let mut resumed = Sse::open(addr, "/api/v1/events/stream?tenant_id=t", Some(&resume_from));
    let after: Vec<u64> = resumed.take(10, Duration::from_millis(1500)).iter().map(|(_, e)| e["payload"]["n"].as_u64().unwrap()).collect();
    assert_eq!({ let mut s = after.clone(); s.sort(); s }, vec![4, 5, 6], "resume: no gap, no duplicate");

    // Filters: entity and type prefix.
    let mut filtered = Sse::open(addr, "/api/v1/events/stream?tenant_id=t&entity_id=e0&event_type_prefix=order.paid", None);
    let got: Vec<u64> = filtered.take(10, Duration::from_millis(1500)).iter().map(|(_, e)| e["payload"]["n"].as_u64().unwrap()).collect();
    assert_eq!(got, vec![3, 6]);
    let bad = Sse::open(addr, "/api/v1/events/stream?tenant_id=t", Some("c-1"));
    assert_eq!(bad.status, 400, "a cursor of another shard count is refused");

    // Shutdown ends open streams instead of waiting for them forever.
    let started = std::time::Instant::now();
    server.shutdown();
    assert!(started.elapsed() < Duration::from_secs(5), "shutdown took {:?}", started.elapsed());
    drop(resumed);
    drop(filtered);
    store.close().unwrap();
}

#[test]
fn api_keys_scope_every_request_to_the_token_tenant() {
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let keys_file = dir.path().join("keys.json");
    std::fs::write(&keys_file, r#"{"acme-token-0123456789": "acme", "globex-token-0123456789": "globex"}"#).unwrap();
    let api_keys = Some(Arc::new(tidelog::server::ApiKeys::load(&keys_file).unwrap()));
    let store = common::open(&dir.path().join("data"), 2, 0);
    let options = HttpOptions { max_body_bytes: 1 << 20, api_keys, sql: Default::default() };
    let server = Server::start(&store, ServerConfig { listen: "127.0.0.1:0".parse().unwrap(), limits: options }).unwrap();
    let addr = server.local_addr();
    let with = |token: &str, method: &str, path: &str, body: &str| {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        use std::io::{Read, Write};
        write!(stream, "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()).unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        let status: u16 = text.split(' ').nth(1).unwrap().parse().unwrap();
        (status, text.split_once("\r\n\r\n").unwrap().1.to_string())
    };
    let event = r#"{"event_type":"t","entity_id":"e1","payload":{}}"#;
    let r = post_json(addr, "/api/v1/events", &serde_json::from_str(event).unwrap());
    assert_eq!(r.status, 401, "no token");
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    assert_eq!(with("wrong-token-0123456789", "POST", "/api/v1/events", event).0, 401);
    let (status, body) = with("acme-token-0123456789", "POST", "/api/v1/events", event);
    assert_eq!(status, 200, "{body}");
    let id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["event_id"].as_str().unwrap().to_string();
    // The event went to the token's tenant; the other tenant's token cannot see it, even by id.
    assert_eq!(with("acme-token-0123456789", "GET", &format!("/api/v1/events/{id}"), "").0, 200);
    assert_eq!(with("globex-token-0123456789", "GET", &format!("/api/v1/events/{id}"), "").0, 404);
    assert_eq!(with("globex-token-0123456789", "GET", &format!("/api/v1/events/{id}?tenant_id=acme"), "").0, 403);
    let (_, page) = with("globex-token-0123456789", "GET", "/api/v1/events/query", "");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&page).unwrap()["count"], 0);
    let (_, stats) = with("acme-token-0123456789", "GET", "/api/v1/stats", "");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&stats).unwrap()["total_events"], 1);
    // Naming another tenant in the body is refused, not silently redirected.
    let foreign = r#"{"event_type":"t","entity_id":"e1","payload":{},"tenant_id":"globex"}"#;
    assert_eq!(with("acme-token-0123456789", "POST", "/api/v1/events", foreign).0, 403);
    // Health and metrics stay open for operators.
    assert_eq!(get(addr, "/health").status, 200);
    assert_eq!(get(addr, "/metrics").status, 200);
    server.shutdown();
    store.close().unwrap();
    std::fs::write(&keys_file, r#"{"short": "acme"}"#).unwrap();
    assert!(tidelog::server::ApiKeys::load(&keys_file).unwrap_err().contains("too short"));
}

#[test]
fn a_failed_shard_answers_503_or_507_and_health_says_why() {
    use tidelog::wal::fault::{FaultPlan, WriteFault};
    for (fault, status, code) in [(WriteFault::NoSpace, 507, "disk_full"), (WriteFault::Io, 503, "unavailable")] {
        let dir = tempfile::tempdir().unwrap();
        let plan = FaultPlan::new();
        let store = tidelog::Store::open(common::config(dir.path(), 1, 0).fault_plan(plan.clone())).unwrap();
        let options = HttpOptions { max_body_bytes: 1 << 20, api_keys: None, sql: Default::default() };
        let server = Server::start(&store, ServerConfig { listen: "127.0.0.1:0".parse().unwrap(), limits: options }).unwrap();
        let addr = server.local_addr();
        let event = json!({"event_type":"t","entity_id":"e","payload":1});
        assert_eq!(post_json(addr, "/api/v1/events", &event).status, 200);
        plan.fail_writes_after(0, fault);
        let r = post_json(addr, "/api/v1/events", &event);
        assert_eq!((r.status, r.json()["error"].clone()), (status, json!(code)), "{}", r.body);
        let r = post_json(addr, "/api/v1/events", &event);
        assert_eq!(r.status, status, "the shard stays stopped");
        let health = get(addr, "/health");
        assert_eq!(health.status, 503);
        assert!(health.json()["shards"][0]["failure"].as_str().unwrap().contains("write"), "{}", health.body);
        // Reads of what was acknowledged still work.
        assert_eq!(get(addr, "/api/v1/events/query?entity_id=e").json()["count"], 1);
        server.shutdown();
        let _ = store.close();
    }
}

#[test]
fn garbage_requests_never_take_the_server_down() {
    let dir = tempfile::tempdir().unwrap();
    let (store, server) = start(dir.path(), 64 * 1024);
    let addr = server.local_addr();
    let mut rng = fastrand::Rng::with_seed(7);
    let paths = ["/api/v1/events", "/api/v1/events/batch", "/api/v1/events/query?limit=%ff", "/api/v1/entities/%00/state", "/%", "/api/v1/events/stream?tenant_id=%"];
    for i in 0..300 {
        let len = rng.usize(0..4096);
        let body: Vec<u8> = match i % 3 {
            0 => (0..len).map(|_| rng.u8(..)).collect(),
            1 => format!("{{\"events\":[{}]}}", "{\"event_type\":1},".repeat(len / 20)).into_bytes(),
            _ => "{\"event_type\":\"t\",\"entity_id\":\"e\",\"payload\":".repeat(len / 40 + 1).into_bytes(),
        };
        let path = paths[i % paths.len()];
        if path.contains("stream") {
            continue; // a valid stream never ends; its bad cursor case is tested elsewhere
        }
        let kind = ["application/json", "application/x-ndjson", "text/plain"][i % 3];
        if let Some(r) = common::http::try_request(addr, "POST", path, Some(kind), &body) {
            assert!(r.status < 500, "{path}: {} {}", r.status, r.body);
        }
    }
    // Raw protocol garbage on the socket.
    for _ in 0..20 {
        use std::io::Write;
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        let junk: Vec<u8> = (0..rng.usize(1..2000)).map(|_| rng.u8(..)).collect();
        let _ = s.write_all(&junk);
    }
    assert_eq!(get(addr, "/health").status, 200);
    assert_eq!(get(addr, "/api/v1/events/query").json()["count"], 0, "nothing of it was written");
    server.shutdown();
    store.close().unwrap();
}
