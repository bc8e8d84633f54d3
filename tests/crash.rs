//! Durability with real processes: a child `tidelog load` appends with FSYNC_INTERVAL=0 from many
//! concurrent tasks and prints every acknowledged event; the parent SIGKILLs it mid-stream, reopens the
//! data directory and checks that every acknowledged event is there exactly once, intact.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{block_on, parse_ack, Ack};
use tidelog::{Query, Store};

/// Runs `tidelog load --print-acks` and kills it with SIGKILL after `kill_after`; returns the acks it printed.
fn run_and_kill(dir: &std::path::Path, fsync_interval_ms: u32, kill_after: Duration) -> Vec<Ack> {
    run_and_kill_with(dir, fsync_interval_ms, kill_after, &["--tasks", "128"])
}

fn run_and_kill_with(dir: &std::path::Path, fsync_interval_ms: u32, kill_after: Duration, load_args: &[&str]) -> Vec<Ack> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tidelog"))
        .args(["--data-dir", dir.to_str().unwrap(), "--shards", "2", "--segment-size-mib", "1"])
        .args(["load", "--events", "100000000", "--entities", "300", "--print-acks"])
        .args(load_args)
        .env("FSYNC_INTERVAL", fsync_interval_ms.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start tidelog");
    let stdout = child.stdout.take().unwrap();
    let (first_ack, got_first) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut acks = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            acks.extend(parse_ack(&line));
            if acks.len() == 1 {
                let _ = first_ack.send(());
            }
        }
        acks
    });
    // Kill mid-stream: `kill_after` from the first acknowledgement, however long the open took (recovery
    // of the earlier rounds, a busy machine). No acknowledgement within 20 s fails the test below.
    let _ = got_first.recv_timeout(Duration::from_secs(20));
    std::thread::sleep(kill_after);
    child.kill().expect("SIGKILL"); // std's kill() sends SIGKILL on Unix
    let status = child.wait().unwrap();
    assert!(!status.success(), "the child was killed, not finished");
    reader.join().unwrap()
}

fn verify(dir: &std::path::Path, acks: &[Ack]) {
    let store = Store::open(common::config(dir, 2, 0)).expect("reopen after SIGKILL");
    for report in store.recovery_reports() {
        assert_eq!(report.records_skipped, 0, "a crash is not corruption: {report}");
    }
    for ack in acks {
        let event = store.get(&ack.tenant, &ack.id).unwrap_or_else(|| panic!("acknowledged event {} lost", ack.id));
        assert_eq!((event.entity_id(), event.version()), (ack.entity.as_str(), ack.version));
        serde_json::from_str::<serde_json::Value>(event.payload_json()).expect("payload intact");
    }
    // Exactly once: every entity's history has versions 1..=n, each once.
    let entities: HashSet<(&str, &str)> = acks.iter().map(|a| (a.tenant.as_str(), a.entity.as_str())).collect();
    let mut acked_per_entity: HashMap<(&str, &str), u64> = HashMap::new();
    for a in acks {
        let v = acked_per_entity.entry((&a.tenant, &a.entity)).or_default();
        *v = (*v).max(a.version);
    }
    for (tenant, entity) in entities {
        let history = block_on(store.query(&Query::tenant(tenant).entity(entity).limit(10_000))).unwrap();
        let versions: Vec<u64> = history.events.iter().map(|e| e.version()).collect();
        assert_eq!(versions, (1..=versions.len() as u64).collect::<Vec<_>>(), "{tenant}/{entity}");
        let ids: HashSet<uuid::Uuid> = history.events.iter().map(|e| e.id()).collect();
        assert_eq!(ids.len(), versions.len(), "no event stored twice");
        assert!(versions.len() as u64 >= acked_per_entity[&(tenant, entity)]);
    }
    store.close().unwrap();
}

#[test]
fn sigkill_under_concurrent_durable_appends_loses_nothing_acknowledged() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let mut all_acks = Vec::new();
    // The same directory across rounds: every round recovers what the earlier kills left, and all acks
    // so far are checked again.
    for round in 0..5u64 {
        let acks = run_and_kill(dir.path(), 0, Duration::from_millis(300 + round * 150));
        assert!(!acks.is_empty(), "round {round}: the child acknowledged nothing before the kill");
        all_acks.extend(acks);
        verify(dir.path(), &all_acks);
    }
    eprintln!("5 SIGKILL rounds, {} acknowledged events verified in {:?}", all_acks.len(), started.elapsed());
}

#[test]
fn sigkill_with_interval_fsync_loses_nothing_acknowledged() {
    // FSYNC_INTERVAL=100 acknowledges once the write is in the page cache, which outlives the process: a
    // killed process loses nothing either; only a power cut may lose the last interval.
    let dir = tempfile::tempdir().unwrap();
    let mut all_acks = Vec::new();
    for round in 0..2u64 {
        all_acks.extend(run_and_kill(dir.path(), 100, Duration::from_millis(400 + round * 200)));
        assert!(!all_acks.is_empty());
        verify(dir.path(), &all_acks);
    }
}

#[test]
fn sigkill_under_pipelined_appends_loses_nothing_acknowledged() {
    // One caller with thousands of single-event appends in flight through a Producer, in both modes.
    let dir = tempfile::tempdir().unwrap();
    let mut all_acks = Vec::new();
    for (round, fsync_interval_ms) in [(0u64, 0u32), (1, 100), (2, 0), (3, 100)] {
        let acks = run_and_kill_with(dir.path(), fsync_interval_ms, Duration::from_millis(400 + round * 100), &["--pipeline", "2048"]);
        assert!(!acks.is_empty(), "round {round}: the child acknowledged nothing before the kill");
        all_acks.extend(acks);
        verify(dir.path(), &all_acks);
    }
    eprintln!("4 SIGKILL rounds of pipelined appends, {} acknowledged events verified", all_acks.len());
}
