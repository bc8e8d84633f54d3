//! Checkpoints under SIGKILL, with real processes: a child `tidelog load --print-acks` appends with a
//! small `--checkpoint-events` and 1 MiB segments, so Parquet checkpoints, manifest swaps, WAL deletion
//! and compaction are under way all the time; the parent SIGKILLs it at a random moment, reopens the
//! same directory and checks that every acknowledged event is there exactly once. Rounds alternate
//! FSYNC_INTERVAL=0 and 100 (a killed process loses no written data either way).
//!
//! The seed is printed; `TIDELOG_CRASH_SEED=<n>` replays a run's choices.
//!
//! A second test runs `tidelog load` to completion and checks that the WAL stays bounded.

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::crash::{close_within, drain, load_and_kill, seed, tidelog, verify_acks, Ack, Load};
use tidelog::Store;

const SHARDS: usize = 2;
const ENTITIES: u64 = 400;

struct Round {
    fsync_interval_ms: u32,
    checkpoint_events: u64,
    kill_after: Duration,
}

/// Runs `tidelog load --print-acks`, SIGKILLs it `kill_after` after its first acknowledgement (so the
/// delay is spent loading, not in the child's own recovery), and returns the acks it printed.
fn run_and_kill(dir: &Path, round: &Round) -> Vec<Ack> {
    let checkpoint_events = round.checkpoint_events.to_string();
    let entities = ENTITIES.to_string();
    let load = Load {
        store_args: &["--checkpoint-events", &checkpoint_events],
        load_args: &["--tasks", "64", "--entities", &entities],
        fsync_interval_ms: round.fsync_interval_ms,
        kill_after: round.kill_after,
        first_ack_within: Duration::from_secs(60),
    };
    load_and_kill(dir, &load)
}

/// What one shard's MANIFEST.json names: (file names, covered position).
fn manifest(dir: &Path, shard: usize) -> (HashSet<String>, u64) {
    let path = dir.join(format!("shard-{shard}/checkpoints/MANIFEST.json"));
    let Ok(bytes) = std::fs::read(&path) else { return (HashSet::new(), 0) };
    let m: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let files = m["checkpoints"].as_array().unwrap();
    let names = files.iter().map(|c| c["file"].as_str().unwrap().to_string()).collect();
    let covered = files.last().map_or(0, |c| c["last_position"].as_u64().unwrap());
    (names, covered)
}

fn files_in(dir: &Path) -> Vec<(String, u64)> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<(String, u64)> = entries
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.metadata().unwrap().len()))
        .collect();
    files.sort();
    files
}

#[derive(Default)]
struct Totals {
    events_from_checkpoints: u64,
    checkpoint_files_loaded: u64,
    set_aside: Vec<String>,
    /// Rounds in which the killed child itself had moved the manifest forward.
    child_checkpointed: usize,
    /// Rounds in which the killed child had deleted WAL segments.
    child_trimmed_wal: usize,
}

/// Reopens after a kill and checks every ack; closes (which writes a checkpoint) for the next round.
fn verify(dir: &Path, acks: &[Ack], covered_before: &[u64], segments_before: &[Vec<String>], totals: &mut Totals) -> Vec<u64> {
    // What the manifests name before recovery: a SIGKILL must never damage one of these files.
    let named: Vec<HashSet<String>> = (0..SHARDS).map(|k| manifest(dir, k).0).collect();
    let covered_at_kill: Vec<u64> = (0..SHARDS).map(|k| manifest(dir, k).1).collect();
    for k in 0..SHARDS {
        if covered_at_kill[k] > covered_before[k] {
            totals.child_checkpointed += 1;
        }
        let now: HashSet<String> = files_in(&dir.join(format!("shard-{k}/wal"))).into_iter().map(|f| f.0).collect();
        if segments_before[k].iter().any(|s| !now.contains(s)) {
            totals.child_trimmed_wal += 1;
        }
    }
    let mut config = common::config(dir, SHARDS, 0).checkpoint_events(1000);
    config.checkpoints.enabled = true;
    let store = Store::open(config).expect("reopen after SIGKILL");
    for report in store.recovery_reports() {
        let c = &report.checkpoints;
        assert_eq!((report.records_skipped, report.corrupt_bytes_skipped), (0, 0), "a crash is not corruption: {report}");
        assert_eq!(c.events_lost, 0, "no checkpoint events may be lost: {report}");
        // Positions are dense from 1 (single-event appends): anything else is a loss or a double count.
        assert_eq!(report.events(), report.last_position, "events in memory vs last position: {report}");
        assert!(c.covered_position <= report.last_position, "{report}");
        for file in &c.set_aside {
            let name = file.path.file_name().unwrap().to_string_lossy();
            assert!(
                !named[report.shard as usize].contains(name.as_ref()),
                "shard {}: {name}, named by the manifest, was set aside after a SIGKILL: {}",
                report.shard,
                file.reason
            );
            totals.set_aside.push(format!("shard-{}/{name} ({})", report.shard, file.reason));
        }
        totals.events_from_checkpoints += c.events;
        totals.checkpoint_files_loaded += c.files as u64;
    }
    // Exactly once: every ack found as acknowledged, every entity's history 1..=n, each once.
    verify_acks(&store, acks);
    close_within(store, Duration::from_secs(60));
    (0..SHARDS).map(|k| manifest(dir, k).1).collect()
}

#[test]
fn sigkill_during_checkpoints_loses_nothing_acknowledged() {
    let started = Instant::now();
    let seed = seed("checkpoint_crash");
    let mut rng = fastrand::Rng::with_seed(seed);
    let dir = tempfile::tempdir().unwrap();
    let mut all_acks = Vec::new();
    let mut totals = Totals::default();
    let mut covered = vec![0u64; SHARDS];
    const ROUNDS: usize = 10;
    for n in 0..ROUNDS {
        let round = Round {
            fsync_interval_ms: if n % 2 == 0 { 0 } else { 100 },
            checkpoint_events: rng.u64(500..=3000),
            kill_after: Duration::from_millis(rng.u64(150..=900)),
        };
        let segments_before: Vec<Vec<String>> =
            (0..SHARDS).map(|k| files_in(&dir.path().join(format!("shard-{k}/wal"))).into_iter().map(|f| f.0).collect()).collect();
        let acks = run_and_kill(dir.path(), &round);
        let set_aside_before = totals.set_aside.len();
        all_acks.extend(acks);
        covered = verify(dir.path(), &all_acks, &covered, &segments_before, &mut totals);
        eprintln!(
            "round {n}: FSYNC_INTERVAL={} --checkpoint-events {} killed {:?} after the first ack; {} acks so far, {} files set aside",
            round.fsync_interval_ms,
            round.checkpoint_events,
            round.kill_after,
            all_acks.len(),
            totals.set_aside.len() - set_aside_before
        );
    }
    for line in &totals.set_aside {
        eprintln!("  set aside: {line}");
    }
    eprintln!(
        "{ROUNDS} SIGKILL rounds (seed {seed}): {} acks checked, {} events loaded from {} checkpoint files, \
         child moved a manifest forward in {}/{} shard-rounds and deleted WAL segments in {}, {} files set aside, {:.1} s",
        all_acks.len(),
        totals.events_from_checkpoints,
        totals.checkpoint_files_loaded,
        totals.child_checkpointed,
        ROUNDS * SHARDS,
        totals.child_trimmed_wal,
        totals.set_aside.len(),
        started.elapsed().as_secs_f64()
    );
    // Not vacuous: recovery loaded checkpoints, and the killed children wrote them and trimmed the WAL.
    assert!(totals.checkpoint_files_loaded > 0 && totals.events_from_checkpoints > 0, "no checkpoint was ever loaded");
    assert!(totals.child_checkpointed > 0, "no killed child ever installed a checkpoint: the kills did not test checkpointing");
    assert!(totals.child_trimmed_wal > 0, "no killed child ever deleted a WAL segment");
}

fn dir_bytes(dir: &Path) -> u64 {
    files_in(dir).iter().map(|f| f.1).sum()
}

/// Peak and end state of one shard's WAL while a child runs.
#[derive(Default, Debug)]
struct WalWatch {
    max_segments: usize,
    max_bytes: u64,
    names_seen: HashSet<String>,
}

fn run_load_watching_wal(dir: &Path, extra: &[&str]) -> Vec<WalWatch> {
    let mut child = tidelog(dir)
        .args(extra)
        .args(["load", "--tasks", "64", "--events", "60000", "--entities", "1000"])
        .env("FSYNC_INTERVAL", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tidelog");
    let stderr = drain(child.stderr.take().unwrap());
    let wal_dirs: Vec<PathBuf> = (0..SHARDS).map(|k| dir.join(format!("shard-{k}/wal"))).collect();
    let mut watch: Vec<WalWatch> = (0..SHARDS).map(|_| WalWatch::default()).collect();
    // Sampling (not synchronisation): records how large the WAL got while the load ran.
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        for (w, wal) in watch.iter_mut().zip(&wal_dirs) {
            let files = files_in(wal);
            w.max_segments = w.max_segments.max(files.len());
            w.max_bytes = w.max_bytes.max(files.iter().map(|f| f.1).sum());
            w.names_seen.extend(files.into_iter().map(|f| f.0));
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().ok();
            child.wait().unwrap();
            let wal: Vec<Vec<(String, u64)>> = wal_dirs.iter().map(|d| files_in(d)).collect();
            panic!(
                "tidelog load {extra:?} of 60,000 events did not finish within 120 s (a stuck checkpoint or close?); \
                 WAL {wal:?}; stderr:\n{}",
                stderr.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let stderr = stderr.join().unwrap();
    assert!(status.success(), "tidelog load failed: {stderr}");
    watch
}

#[test]
fn checkpoints_keep_the_wal_bounded() {
    const SEGMENT: u64 = 1 << 20;
    // Reference: the same load without checkpoints keeps every segment.
    let full = tempfile::tempdir().unwrap();
    run_load_watching_wal(full.path(), &["--no-checkpoints"]);
    let full_segments: Vec<usize> = (0..SHARDS).map(|k| files_in(&full.path().join(format!("shard-{k}/wal"))).len()).collect();
    let full_bytes: u64 = (0..SHARDS).map(|k| dir_bytes(&full.path().join(format!("shard-{k}/wal")))).sum();

    let dir = tempfile::tempdir().unwrap();
    let watch = run_load_watching_wal(dir.path(), &["--checkpoint-events", "2000"]);
    let mut wal_bytes = 0;
    for k in 0..SHARDS {
        let wal = files_in(&dir.path().join(format!("shard-{k}/wal")));
        let checkpoints: Vec<String> = files_in(&dir.path().join(format!("shard-{k}/checkpoints")))
            .into_iter()
            .map(|f| f.0)
            .filter(|n| n.ends_with(".parquet"))
            .collect();
        let (named, covered) = manifest(dir.path(), k);
        let bytes: u64 = wal.iter().map(|f| f.1).sum();
        wal_bytes += bytes;
        eprintln!(
            "shard {k}: WAL {} segments, {bytes} bytes at the end (peak while loading {} segments, {} bytes; {} segments \
             created in all; without checkpoints {} segments); {} checkpoint files, covering positions up to {covered}",
            wal.len(),
            watch[k].max_segments,
            watch[k].max_bytes,
            watch[k].names_seen.len(),
            full_segments[k],
            checkpoints.len()
        );
        assert!(full_segments[k] >= 4, "the reference load should fill several 1 MiB segments per shard: {full_segments:?}");
        assert!(!checkpoints.is_empty() && covered > 0, "shard {k}: no checkpoint");
        assert_eq!(checkpoints.iter().cloned().collect::<HashSet<_>>(), named, "shard {k}: stray checkpoint files after a clean close");
        // After the close (a final checkpoint and trim) only the newest segment or two may remain.
        assert!(wal.len() <= 2 && bytes <= 2 * SEGMENT, "shard {k}: WAL holds {} segments, {bytes} bytes", wal.len());
        // And segments were deleted while the load ran, not only at the close: the WAL never held them
        // all at once.
        assert!(
            watch[k].max_segments < watch[k].names_seen.len(),
            "shard {k}: all {} segments existed at once; nothing was trimmed before the close",
            watch[k].names_seen.len()
        );
    }
    eprintln!("WAL after 60,000 events with --checkpoint-events 2000: {wal_bytes} bytes (without checkpoints: {full_bytes} bytes)");
    assert!(wal_bytes * 2 < full_bytes, "the WAL is not bounded: {wal_bytes} bytes vs {full_bytes} without checkpoints");

    // The data is all there after reopening from checkpoints plus what is left of the WAL.
    let store = common::open(dir.path(), SHARDS, 0);
    let events: u64 = store.recovery_reports().iter().map(|r| r.events()).sum();
    let from_checkpoints: u64 = store.recovery_reports().iter().map(|r| r.checkpoints.events).sum();
    close_within(store, Duration::from_secs(60));
    assert_eq!(events, 60_000);
    assert!(from_checkpoints > 0);
}

