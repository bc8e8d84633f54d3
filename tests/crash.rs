//! Durability with real processes: a child `tidelog load` appends with FSYNC_INTERVAL=0 from many
//! concurrent tasks and prints every acknowledged event; the parent SIGKILLs it mid-stream, reopens the
//! data directory and checks that every acknowledged event is there exactly once, intact.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::crash::{assert_no_corruption, load_and_kill, verify_acks, Ack, Load};
use tidelog::Store;

/// `tidelog load --entities 300 --print-acks` with `load_args`, SIGKILLed `kill_after` after its first
/// acknowledgement; returns the acks it printed.
fn run_and_kill(dir: &Path, fsync_interval_ms: u32, kill_after: Duration, load_args: &[&str]) -> Vec<Ack> {
    let load_args = [&["--entities", "300"][..], load_args].concat();
    let load = Load { store_args: &[], load_args: &load_args, fsync_interval_ms, kill_after, first_ack_within: Duration::from_secs(20) };
    load_and_kill(dir, &load)
}

fn verify(dir: &Path, acks: &[Ack]) {
    let store = Store::open(common::config(dir, 2, 0)).expect("reopen after SIGKILL");
    assert_no_corruption(&store);
    verify_acks(&store, acks);
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
        let acks = run_and_kill(dir.path(), 0, Duration::from_millis(300 + round * 150), &["--tasks", "128"]);
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
        all_acks.extend(run_and_kill(dir.path(), 100, Duration::from_millis(400 + round * 200), &["--tasks", "128"]));
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
        let acks = run_and_kill(dir.path(), fsync_interval_ms, Duration::from_millis(400 + round * 100), &["--pipeline", "2048"]);
        assert!(!acks.is_empty(), "round {round}: the child acknowledged nothing before the kill");
        all_acks.extend(acks);
        verify(dir.path(), &all_acks);
    }
    eprintln!("4 SIGKILL rounds of pipelined appends, {} acknowledged events verified", all_acks.len());
}
