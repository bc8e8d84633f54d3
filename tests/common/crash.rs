//! The crash tests' harness: a real `tidelog` process is put under load, SIGKILLed mid-stream, and every
//! event it acknowledged is checked after a restart.
//!
//! - [`load_and_kill`] runs `tidelog load --print-acks` and kills it a given time after its first
//!   acknowledgement; the acks are the lines it printed.
//! - [`Clients`] drives a [`Server`] (`tidelog serve`) from client threads and kills it; what counts as
//!   acknowledged (a 200) is up to the clients.
//! - [`verify_acks`] checks acks against the events found after the restart, through [`Events`]: the store
//!   reopened in-process, or a restarted server over HTTP.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use tidelog::{Query, Store};

use super::http::get;
use super::server::Server;

/// An acknowledgement: printed by `tidelog load --print-acks`, or a 200 from the server.
#[derive(Debug, Clone)]
pub struct Ack {
    pub id: uuid::Uuid,
    pub tenant: String,
    pub entity: String,
    pub version: u64,
    /// The payload sent, when the acknowledging side knows it (`load` does not print it).
    pub payload: Option<serde_json::Value>,
    /// When the test saw the acknowledgement (µs since the Unix epoch): it was acknowledged before.
    pub seen_us: i64,
}

impl Ack {
    /// The server's answer (`{"event_id", "version", ...}`) to a single-event POST of `payload` for
    /// `entity` in the default tenant, seen now.
    pub fn of_reply(reply: &serde_json::Value, entity: String, payload: serde_json::Value) -> Ack {
        Ack {
            id: reply["event_id"].as_str().unwrap().parse().unwrap(),
            tenant: tidelog::DEFAULT_TENANT.into(),
            entity,
            version: reply["version"].as_u64().unwrap(),
            payload: Some(payload),
            seen_us: tidelog::time::now_us(),
        }
    }
}

/// Parses `ack <id> <tenant> <entity> <version>`. A line cut short by a kill has no trailing fields and
/// is not an acknowledgement.
pub fn parse_ack(line: &str) -> Option<Ack> {
    let parts: Vec<&str> = line.split(' ').collect();
    let ["ack", id, tenant, entity, version] = parts[..] else { return None };
    Some(Ack { id: id.parse().ok()?, tenant: tenant.into(), entity: entity.into(), version: version.parse().ok()?, payload: None, seen_us: tidelog::time::now_us() })
}

/// `tidelog --data-dir DIR --shards 2 --segment-size-mib 1`: small segments, so runs cross segment
/// boundaries (and checkpoints can delete them).
pub fn tidelog(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tidelog"));
    command.arg("--data-dir").arg(dir).args(["--shards", "2", "--segment-size-mib", "1"]);
    command
}

/// Reads a child's output to the end on a thread, so a chatty child never blocks on a full pipe.
pub fn drain(mut pipe: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        text
    })
}

/// One run of `tidelog [store_args] load --events 100000000 --print-acks [load_args]` (it never finishes
/// on its own) on [`tidelog`]'s directory and shards.
pub struct Load<'a> {
    /// Store options, such as `--checkpoint-events N`.
    pub store_args: &'a [&'a str],
    /// `load` options: `--tasks`, `--entities`, `--pipeline`, ...
    pub load_args: &'a [&'a str],
    pub fsync_interval_ms: u32,
    /// The kill comes this long after the first acknowledgement, so the delay is spent loading, however
    /// long the child's own open (recovery of the earlier rounds, a busy machine) took.
    pub kill_after: Duration,
    /// No acknowledgement within this fails the test.
    pub first_ack_within: Duration,
}

/// Runs `load`, SIGKILLs it mid-stream and returns the acks it printed. Fails the test when the child
/// acknowledged nothing in time or stopped on its own before the kill.
pub fn load_and_kill(dir: &Path, load: &Load) -> Vec<Ack> {
    let mut child = tidelog(dir)
        .args(["--fsync-interval-ms", &load.fsync_interval_ms.to_string()])
        .args(load.store_args)
        .args(["load", "--events", "100000000", "--print-acks"])
        .args(load.load_args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tidelog load");
    let stdout = child.stdout.take().unwrap();
    let stderr = drain(child.stderr.take().unwrap());
    let (first_ack_tx, first_ack) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut acks = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(ack) = parse_ack(&line) {
                if acks.is_empty() {
                    let _ = first_ack_tx.send(());
                }
                acks.push(ack);
            }
        }
        acks
    });
    let started = first_ack.recv_timeout(load.first_ack_within);
    if started.is_ok() {
        std::thread::sleep(load.kill_after);
    }
    let exited_early = child.try_wait().unwrap();
    child.kill().ok(); // std's kill() sends SIGKILL on Unix
    let status = child.wait().unwrap();
    let stderr = stderr.join().unwrap();
    assert!(started.is_ok(), "the child acknowledged nothing within {:?}; stderr:\n{stderr}", load.first_ack_within);
    assert!(exited_early.is_none(), "the child stopped on its own ({status}) before the kill; stderr:\n{stderr}");
    assert!(!status.success(), "the child was killed, not finished");
    reader.join().unwrap()
}

/// Recovery after a kill found no damage: a crash is not corruption.
pub fn assert_no_corruption(store: &Store) {
    for report in store.recovery_reports() {
        assert_eq!((report.records_skipped, report.corrupt_bytes_skipped), (0, 0), "a crash is not corruption: {report}");
    }
}

/// Client threads driving a server until it is killed.
pub struct Clients {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Clients {
    pub fn new(server: &Server) -> Clients {
        Clients { addr: server.addr, stop: Arc::default(), threads: Vec::new() }
    }

    /// Starts `n` threads, each running `client(i, addr, stop)` (i in 0..n); `stop` is set once the server
    /// is dead, and each should return soon after. A request cut off by the kill has no answer: it was not
    /// acknowledged.
    pub fn spawn<F>(&mut self, n: usize, client: F) -> &mut Clients
    where
        F: Fn(usize, SocketAddr, &AtomicBool) + Send + Sync + 'static,
    {
        let client = Arc::new(client);
        for i in 0..n {
            let (client, addr, stop) = (client.clone(), self.addr, self.stop.clone());
            self.threads.push(std::thread::spawn(move || client(i, addr, &stop)));
        }
        self
    }

    /// Lets the clients run for `after`, SIGKILLs the server, then stops and joins them.
    pub fn kill_after(self, server: &mut Server, after: Duration) {
        std::thread::sleep(after);
        server.kill();
        self.stop.store(true, Ordering::Relaxed);
        self.threads.into_iter().for_each(|t| t.join().unwrap());
    }

    /// Runs `stop_server` (a graceful stop, say) while the clients run, then stops and joins them.
    pub fn stop_with<T>(self, stop_server: impl FnOnce() -> T) -> T {
        let result = stop_server();
        self.stop.store(true, Ordering::Relaxed);
        self.threads.into_iter().for_each(|t| t.join().unwrap());
        result
    }
}

/// A stored event as [`verify_acks`] sees it.
pub struct Found {
    pub entity: String,
    pub version: u64,
    pub payload: serde_json::Value,
}

/// Where acknowledged events are looked for after a restart.
pub trait Events {
    fn get(&self, tenant: &str, id: uuid::Uuid) -> Option<Found>;
    /// An entity's events in order, as (id, version); fails the test beyond 10,000 events.
    fn history(&self, tenant: &str, entity: &str) -> Vec<(uuid::Uuid, u64)>;
}

impl Events for Store {
    fn get(&self, tenant: &str, id: uuid::Uuid) -> Option<Found> {
        let event = Store::get(self, tenant, &id)?;
        let payload = serde_json::from_str(event.payload_json()).expect("payload intact");
        Some(Found { entity: event.entity_id().to_string(), version: event.version(), payload })
    }

    fn history(&self, tenant: &str, entity: &str) -> Vec<(uuid::Uuid, u64)> {
        let page = super::block_on(self.query(&Query::tenant(tenant).entity(entity).limit(10_000))).unwrap();
        assert!(!page.has_more, "{tenant}/{entity}: more than 10,000 events, raise the limit");
        page.events.iter().map(|e| (e.id(), e.version())).collect()
    }
}

/// Over HTTP: GET /api/v1/events/{id} and /api/v1/events/query.
impl Events for Server {
    fn get(&self, tenant: &str, id: uuid::Uuid) -> Option<Found> {
        let r = get(self.addr, &format!("/api/v1/events/{id}?tenant_id={tenant}"));
        if r.status == 404 {
            return None;
        }
        assert_eq!(r.status, 200, "GET event {id}: {}", r.body);
        let event = &r.json()["event"];
        let (entity, version) = (event["entity_id"].as_str().unwrap().to_string(), event["version"].as_u64().unwrap());
        Some(Found { entity, version, payload: event["payload"].clone() })
    }

    fn history(&self, tenant: &str, entity: &str) -> Vec<(uuid::Uuid, u64)> {
        let r = get(self.addr, &format!("/api/v1/events/query?tenant_id={tenant}&entity_id={entity}&limit=10000"));
        assert_eq!(r.status, 200, "query of {tenant}/{entity}: {}", r.body);
        let page = r.json();
        assert_eq!(page["has_more"], false, "{tenant}/{entity}: more than 10,000 events, raise the limit");
        let events = page["events"].as_array().unwrap();
        events.iter().map(|e| (e["id"].as_str().unwrap().parse().unwrap(), e["version"].as_u64().unwrap())).collect()
    }
}

/// Every acknowledged event is there, once, as acknowledged: found by id with its entity, version and
/// (if known) payload; and each acknowledged entity's history has versions 1..=n, each once, n at least
/// the highest version acknowledged.
pub fn verify_acks(events: &impl Events, acks: &[Ack]) {
    for ack in acks {
        let found = events.get(&ack.tenant, ack.id).unwrap_or_else(|| panic!("acknowledged event {} lost", ack.id));
        assert_eq!((found.entity.as_str(), found.version), (ack.entity.as_str(), ack.version), "event {}", ack.id);
        if let Some(payload) = &ack.payload {
            assert_eq!(&found.payload, payload, "payload of event {}", ack.id);
        }
    }
    let mut acked_per_entity: HashMap<(&str, &str), u64> = HashMap::new();
    for a in acks {
        let v = acked_per_entity.entry((&a.tenant, &a.entity)).or_default();
        *v = (*v).max(a.version);
    }
    for (&(tenant, entity), &acked) in &acked_per_entity {
        let history = events.history(tenant, entity);
        let versions: Vec<u64> = history.iter().map(|e| e.1).collect();
        assert_eq!(versions, (1..=versions.len() as u64).collect::<Vec<_>>(), "{tenant}/{entity}: each event once, no gaps");
        let ids: HashSet<uuid::Uuid> = history.iter().map(|e| e.0).collect();
        assert_eq!(ids.len(), versions.len(), "{tenant}/{entity}: no event stored twice");
        assert!(versions.len() as u64 >= acked, "{tenant}/{entity}: {} events, version {acked} acknowledged", versions.len());
    }
}

/// Closes on another thread so a close that never returns (a stuck checkpoint) fails the test instead
/// of hanging it.
pub fn close_within(store: Store, limit: Duration) {
    let (done_tx, done) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done_tx.send(store.close());
    });
    match done.recv_timeout(limit) {
        Ok(result) => result.expect("close"),
        Err(_) => panic!("Store::close did not return within {limit:?}"),
    }
}

/// The seed of a test's random choices (kill moments, options): `TIDELOG_CRASH_SEED` replays one; printed.
pub fn seed(test: &str) -> u64 {
    let seed = match std::env::var("TIDELOG_CRASH_SEED") {
        Ok(s) => s.parse().expect("TIDELOG_CRASH_SEED is a u64"),
        Err(_) => std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64,
    };
    eprintln!("{test} seed {seed} (TIDELOG_CRASH_SEED={seed} replays it)");
    seed
}
