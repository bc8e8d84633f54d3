//! I/O failures through the fault-injection seam (`tidelog::wal::fault`): failed, torn and ENOSPC writes,
//! failed fdatasync, and simulated power cuts. The rules checked: an append is acknowledged only if its
//! bytes are (FSYNC_INTERVAL=0: durably) on disk; after an I/O error the shard acknowledges nothing more;
//! nothing unacknowledged is visible; and after a reopen every acknowledged event is there exactly once.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{block_on, config};
use serde_json::json;
use tidelog::wal::fault::{FaultPlan, WriteFault};
use tidelog::{AppendAck, Error, MidLogCorruption, NewEvent, Query, RecoveryReport, Store, StoredEvent};
use uuid::Uuid;

const TENANT: &str = "t";

fn ev(entity: &str, i: usize, pad: usize) -> NewEvent {
    NewEvent::new(entity, "thing.happened", &json!({ "entity": entity, "i": i, "pad": "p".repeat(pad) }))
        .with_tenant(TENANT)
        .with_id(Uuid::now_v7())
}

fn open_faulty(dir: &Path, fsync_interval_ms: u32, plan: &Arc<FaultPlan>) -> Store {
    Store::open(config(dir, 1, fsync_interval_ms).without_checkpoints().fault_plan(plan.clone())).expect("open with a fault plan")
}

fn open_plain(dir: &Path) -> Store {
    Store::open(config(dir, 1, 0).without_checkpoints()).expect("reopen")
}

fn report(store: &Store) -> RecoveryReport {
    store.recovery_reports()[0].clone()
}

/// An acknowledged append.
#[derive(Debug, Clone)]
struct Acked {
    entity: String,
    ack: AppendAck,
}

fn all_events(store: &Store) -> Vec<StoredEvent> {
    let result = block_on(store.query(&Query::tenant(TENANT).limit(10_000))).unwrap();
    assert!(!result.has_more);
    result.events
}

fn history(store: &Store, entity: &str) -> Vec<StoredEvent> {
    block_on(store.query(&Query::tenant(TENANT).entity(entity).limit(10_000))).unwrap().events
}

fn assert_shard_failed(err: &Error, context: &str) {
    assert!(matches!(err, Error::ShardFailed { shard: 0, .. }), "{context}: expected ShardFailed, got {err}");
}

/// Every acknowledged event is present exactly once, with its version, position and entity; every
/// entity's versions are 1..=n with no gap or duplicate; nothing is present that was never sent.
/// Returns the stored events by id.
fn check_acked_exactly_once(store: &Store, acked: &[Acked], sent: &HashSet<Uuid>) -> HashMap<Uuid, StoredEvent> {
    let events = all_events(store);
    let mut by_id = HashMap::new();
    for event in &events {
        assert!(sent.contains(&event.id()), "event {} was never sent", event.id());
        assert!(by_id.insert(event.id(), event.clone()).is_none(), "event {} stored twice", event.id());
    }
    for a in acked {
        let got = store.get(TENANT, &a.ack.id).unwrap_or_else(|| panic!("acknowledged event {} lost", a.ack.id));
        let want = (a.entity.as_str(), a.ack.version, a.ack.position);
        assert_eq!((got.entity_id(), got.version(), got.position()), want);
        assert!(by_id.contains_key(&a.ack.id));
    }
    let entities: HashSet<&str> =
        events.iter().map(|e| e.entity_id()).chain(acked.iter().map(|a| a.entity.as_str())).collect();
    let mut total = 0;
    for entity in entities {
        let versions: Vec<u64> = history(store, entity).iter().map(|e| e.version()).collect();
        assert_eq!(versions, (1..=versions.len() as u64).collect::<Vec<_>>(), "versions of entity {entity}");
        total += versions.len();
    }
    assert_eq!(total, events.len());
    assert_eq!(store.status()[0].events, events.len() as u64);
    by_id
}

// ---------------------------------------------------------------------------------------------------------

/// 1. A failed write (EIO), ENOSPC, or a torn write: the append that needed it fails, the shard is
/// poisoned, nothing unacknowledged is visible, and a reopen has every acknowledged event exactly once.
#[test]
fn failed_write_poisons_the_shard_and_keeps_acknowledged_events() {
    let faults =
        [(WriteFault::Io, "os error 5"), (WriteFault::NoSpace, "os error 28"), (WriteFault::Torn, "os error 5")];
    for (fault, os_error) in faults {
        let what = format!("{fault:?}");
        let dir = tempfile::tempdir().unwrap();
        let plan = FaultPlan::new();
        let store = open_faulty(dir.path(), 0, &plan);
        // With one appender each append is one write: five succeed, the sixth fails.
        plan.fail_writes_after(5, fault);
        let mut sent = HashSet::new();
        let mut acked = Vec::new();
        for i in 0..5 {
            let entity = ["a", "b"][i % 2];
            // 6 KB events: every write spans two or more 4 KiB blocks, so a torn write keeps a part of one.
            let event = ev(entity, i, 6000);
            sent.insert(event.id.unwrap());
            let ack = block_on(store.append(event)).unwrap_or_else(|e| panic!("{what}: append {i}: {e}"));
            acked.push(Acked { entity: entity.into(), ack });
        }
        let failing = ev("a", 5, 6000);
        let failing_id = failing.id.unwrap();
        sent.insert(failing_id);
        let err = block_on(store.append(failing)).expect_err("the append whose write fails");
        assert_shard_failed(&err, &what);
        assert!(err.to_string().contains(os_error), "{what}: {err}");
        let failure = store.status()[0].failure.clone().unwrap_or_else(|| panic!("{what}: the shard is marked failed"));
        assert!(failure.contains(os_error), "{what}: {failure}");

        // Poisoned: every later append fails, whatever it is, and writes nothing.
        let (writes, _) = plan.counts();
        let later = [
            vec![ev("c", 6, 10)],
            vec![ev("a", 7, 10), ev("b", 8, 10)],
            vec![ev("b", 9, 10).with_expected_version(2)],
        ];
        for batch in later {
            sent.extend(batch.iter().map(|e| e.id.unwrap()));
            let err = block_on(store.append_batch(batch)).expect_err("a poisoned shard accepts nothing");
            assert_shard_failed(&err, &what);
        }
        assert_eq!(plan.counts().0, writes, "{what}: nothing written after the failure");

        // Only acknowledged events are visible.
        assert!(store.get(TENANT, &failing_id).is_none(), "{what}");
        let visible: HashSet<Uuid> = all_events(&store).iter().map(|e| e.id()).collect();
        assert_eq!(visible, acked.iter().map(|a| a.ack.id).collect::<HashSet<_>>(), "{what}");
        assert_eq!(history(&store, "a").len(), 3, "{what}");
        assert_eq!(store.entity_state(TENANT, "a", None).unwrap().version, 3, "{what}");
        assert!(store.entity_state(TENANT, "c", None).is_none(), "{what}");
        assert_eq!(store.status()[0].visible_position, 5, "{what}");
        let err = store.close().expect_err("closing a failed shard reports its failure");
        assert_shard_failed(&err, &what);

        // Reopen without faults: exactly the acknowledged events.
        let store = open_plain(dir.path());
        let r = report(&store);
        assert_eq!((r.records_recovered, r.records_skipped, r.last_position), (5, 0, 5), "{what}: {r}");
        if fault == WriteFault::Torn {
            assert!(r.bytes_truncated > 0, "{what}: half of the torn write reached the file: {r}");
        } else {
            assert_eq!(r.bytes_truncated, 0, "{what}: nothing of the failed write reached the file: {r}");
        }
        let stored = check_acked_exactly_once(&store, &acked, &sent);
        assert_eq!(stored.len(), 5, "{what}: nothing unacknowledged came back");
        // And the store works again: versions go on from the acknowledged ones.
        let event = ev("a", 10, 6000);
        sent.insert(event.id.unwrap());
        let ack = block_on(store.append(event)).unwrap();
        assert_eq!((ack.version, ack.position), (4, 6), "{what}");
        acked.push(Acked { entity: "a".into(), ack });
        store.close().unwrap();
        let store = open_plain(dir.path());
        let r = report(&store);
        assert_eq!((r.records_recovered, r.records_skipped, r.bytes_truncated), (6, 0, 0), "{what}: {r}");
        assert_eq!(check_acked_exactly_once(&store, &acked, &sent).len(), 6);
        store.close().unwrap();
    }
}

/// 1, with concurrent appenders: group commit puts several appends in one write; when it fails, all of
/// them fail, and so does everything after.
#[test]
fn failed_write_under_concurrent_appenders() {
    for fault in [WriteFault::Io, WriteFault::Torn] {
        let dir = tempfile::tempdir().unwrap();
        let plan = FaultPlan::new();
        let store = open_faulty(dir.path(), 0, &plan);
        plan.fail_writes_after(20, fault);
        let run = hammer(&store, 8, 6000, Until::Failure);
        assert!(run.acked.len() >= 20, "{fault:?}: at least one event per successful write: {}", run.acked.len());
        assert_eq!(run.late_acks, 0, "{fault:?}: acknowledged after the failure was seen");
        for err in &run.errors {
            assert_shard_failed(err, &format!("{fault:?}"));
        }
        assert_eq!(run.errors.len(), 8, "{fault:?}: every appender stopped on the failure");
        let err = block_on(store.append(ev("late", 0, 10))).expect_err("poisoned");
        assert_shard_failed(&err, "after the run");
        let visible: HashSet<Uuid> = all_events(&store).iter().map(|e| e.id()).collect();
        let acked_ids: HashSet<Uuid> = run.acked.iter().map(|a| a.ack.id).collect();
        assert_eq!(visible, acked_ids, "{fault:?}: only acknowledged events are visible");
        let _ = store.close();

        let store = open_plain(dir.path());
        assert_eq!(report(&store).records_skipped, 0);
        let stored = check_acked_exactly_once(&store, &run.acked, &run.sent);
        if fault == WriteFault::Io {
            // Nothing of the failed write reached the file. The fdatasync runs beside the next write, so
            // a write that completed but was not yet synced when the failure came may be on disk, its
            // appends failed (outcome unknown to their callers, as with any failed commit): at most what
            // the writes before the failed one held beyond the acknowledged.
            assert!(stored.len() >= run.acked.len(), "{fault:?}: {}", report(&store));
            let (writes_ok, _) = plan.counts();
            assert!(writes_ok >= 20, "{fault:?}: the failure came after 20 writes");
        }
        // (A torn write may leave whole records of some of the failed appends: their outcome was unknown
        // to their callers, and they are there once, in version order, which the check above covers.)
        store.close().unwrap();
    }
}

/// 2. A failed fdatasync with FSYNC_INTERVAL=0: the append waiting on it fails and nothing is
/// acknowledged afterwards. Its bytes were written but never made durable, so after a power cut it is
/// gone, and every acknowledged event is there.
#[test]
fn failed_fdatasync_acknowledges_nothing_more() {
    for power_cut in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let plan = FaultPlan::new();
        let store = open_faulty(dir.path(), 0, &plan);
        plan.fail_fsyncs_after(3);
        let mut sent = HashSet::new();
        let mut acked = Vec::new();
        for i in 0..3 {
            let event = ev("a", i, 100);
            sent.insert(event.id.unwrap());
            acked.push(Acked { entity: "a".into(), ack: block_on(store.append(event)).unwrap() });
        }
        let failing = ev("a", 3, 100);
        let failing_id = failing.id.unwrap();
        sent.insert(failing_id);
        let (writes_before, _) = plan.counts();
        let err = block_on(store.append(failing)).expect_err("its fdatasync fails");
        assert_shard_failed(&err, "fdatasync");
        assert!(err.to_string().contains("fdatasync"), "{err}");
        assert_eq!(plan.counts().0, writes_before + 1, "the write itself went through");
        assert!(store.get(TENANT, &failing_id).is_none(), "written but not durable: not visible");
        for i in 4..7 {
            let event = ev("a", i, 100);
            sent.insert(event.id.unwrap());
            assert_shard_failed(&block_on(store.append(event)).unwrap_err(), "after the failed fdatasync");
        }
        assert_eq!(all_events(&store).len(), 3);
        assert_eq!(store.entity_state(TENANT, "a", None).unwrap().version, 3);

        if power_cut {
            store.halt();
            plan.power_cut().unwrap();
        } else {
            store.close().expect_err("close reports the failure");
        }
        let store = open_plain(dir.path());
        let stored = check_acked_exactly_once(&store, &acked, &sent);
        if power_cut {
            assert_eq!(stored.len(), 3, "the unsynced append does not survive a power cut: {}", report(&store));
            assert!(!stored.contains_key(&failing_id));
        } else {
            // Without a power cut the written bytes are still in the file: an append that failed may turn
            // out to be stored (its outcome is unknown to the client), but only once and in order.
            assert!(stored.len() == 3 || stored.len() == 4, "{}", report(&store));
        }
        store.close().unwrap();
    }
}

/// 2, with concurrent appenders: once one append has failed on fdatasync, no append started after that
/// is acknowledged.
#[test]
fn failed_fdatasync_under_concurrent_appenders() {
    let dir = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let store = open_faulty(dir.path(), 0, &plan);
    plan.fail_fsyncs_after(15);
    let run = hammer(&store, 8, 200, Until::Failure);
    assert_eq!(run.late_acks, 0, "acknowledged after the failure was seen");
    assert_eq!(run.errors.len(), 8);
    for err in &run.errors {
        assert_shard_failed(err, "fdatasync");
    }
    assert!(run.acked.len() >= 15, "{}", run.acked.len());
    let visible: HashSet<Uuid> = all_events(&store).iter().map(|e| e.id()).collect();
    assert_eq!(visible, run.acked.iter().map(|a| a.ack.id).collect::<HashSet<_>>());
    store.halt();
    plan.power_cut().unwrap();
    let store = open_plain(dir.path());
    let stored = check_acked_exactly_once(&store, &run.acked, &run.sent);
    assert_eq!(stored.len(), run.acked.len(), "only what a successful fdatasync covered survives");
    store.close().unwrap();
}

/// 3. Power cuts under concurrent appenders with FSYNC_INTERVAL=0: every acknowledged event survives,
/// exactly once, in every round (each round reopens the previous round's directory with a new plan).
#[test]
fn power_cut_keeps_every_acknowledged_event_with_fsync_always() {
    let dir = tempfile::tempdir().unwrap();
    let mut acked: Vec<Acked> = Vec::new();
    let mut sent = HashSet::new();
    for round in 0..4 {
        let plan = FaultPlan::new();
        let store = open_faulty(dir.path(), 0, &plan);
        assert_eq!(report(&store).records_skipped, 0, "round {round}");
        let run = hammer(&store, 8, 300, Until::Acked(300));
        plan.power_cut().unwrap();
        assert!(plan.counts().1 > 0, "round {round}: fdatasyncs happened");
        acked.extend(run.acked);
        sent.extend(run.sent);

        let store = open_plain(dir.path());
        let r = report(&store);
        assert_eq!(r.records_skipped, 0, "round {round}: a power cut is not corruption: {r}");
        let stored = check_acked_exactly_once(&store, &acked, &sent);
        assert!(stored.len() >= acked.len());
        eprintln!("round {round}: {} acknowledged so far, {} stored; {r}", acked.len(), stored.len());
        store.close().unwrap();
    }
}

/// 3, contrast: with FSYNC_INTERVAL=100 appends are acknowledged after the write, so a power cut may lose
/// the latest acknowledged events; recovery still succeeds and each entity keeps a prefix of its history.
#[test]
fn power_cut_with_fsync_interval_keeps_a_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let mut acked: Vec<Acked> = Vec::new();
    let mut sent = HashSet::new();
    for round in 0..2 {
        let plan = FaultPlan::new();
        let store = open_faulty(dir.path(), 100, &plan);
        let run = hammer(&store, 8, 300, Until::Acked(300));
        plan.power_cut().unwrap();
        acked.extend(run.acked);
        sent.extend(run.sent);
        let store = open_plain(dir.path());
        let r = report(&store);
        assert_eq!(r.records_skipped, 0, "round {round}: {r}");
        let lost = check_prefix(&store, &acked, &sent);
        eprintln!("interval 100, round {round}: {lost} of {} acknowledged events lost; {r}", acked.len());
        // What was lost is gone for good: drop it from what later rounds expect.
        acked.retain(|a| store.get(TENANT, &a.ack.id).is_some());
        store.close().unwrap();
    }

    // With an interval far longer than the test nothing is ever synced, so the power cut must lose every
    // acknowledged event: the simulation is not a no-op (which the test above relies on).
    let dir = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let store = open_faulty(dir.path(), 3_600_000, &plan);
    let mut acked = Vec::new();
    let mut sent = HashSet::new();
    for i in 0..40 {
        // Small events: they all fit in the first segment, so no roll syncs any of them.
        let event = ev(["a", "b"][i % 2], i, 100);
        sent.insert(event.id.unwrap());
        acked.push(Acked { entity: ["a", "b"][i % 2].into(), ack: block_on(store.append(event)).unwrap() });
    }
    assert_eq!(all_events(&store).len(), 40, "acknowledged after the write");
    store.halt();
    plan.power_cut().unwrap();

    // Reopen through a fresh plan (recovery removes the segment whose contents were all lost) and cut the
    // power again right after recovery, before anything is appended.
    let plan = FaultPlan::new();
    let store = open_faulty(dir.path(), 0, &plan);
    assert_eq!(report(&store).records_skipped, 0);
    assert_eq!(check_prefix(&store, &acked, &sent), 40, "nothing was synced: {}", report(&store));
    store.halt();
    plan.power_cut().expect("power cut right after recovery");
    let store = open_plain(dir.path());
    let r = report(&store);
    assert_eq!((r.records_recovered, r.records_skipped), (0, 0), "{r}");
    assert_eq!(check_prefix(&store, &acked, &sent), 40);
    let ack = block_on(store.append(ev("a", 0, 10))).unwrap();
    assert_eq!((ack.position, ack.version), (1, 1));
    store.close().unwrap();
}

/// Power cuts in which the disk wrote sectors back in any order: a later write's sectors on disk while an
/// earlier write's are not, records cut in the middle (`FaultPlan::power_cut_reordered`). Recovery must
/// read that as the end of the log, not as corruption: even strict recovery opens, nothing is skipped,
/// every shard keeps a prefix of its positions, and at `FSYNC_INTERVAL=0` every acknowledged event is
/// there exactly once.
#[test]
fn power_cut_with_sectors_written_out_of_order() {
    let mut cut_off = 0;
    for interval in [0u32, 100] {
        let dir = tempfile::tempdir().unwrap();
        let mut acked: Vec<Acked> = Vec::new();
        let mut sent = HashSet::new();
        for round in 0..6u64 {
            let plan = FaultPlan::new();
            // Segments big enough that no roll (which syncs) happens during a round.
            let faulty = config(dir.path(), 1, interval).segment_size_bytes(8 << 20).without_checkpoints();
            let store = Store::open(faulty.fault_plan(plan.clone())).unwrap();
            // Events of ~1 KiB: most records span sectors, so a lost sector cuts one in the middle.
            // At N, enough that an interval's fdatasync lands in the middle of the round.
            let run = hammer(&store, 8, 900, Until::Acked(if interval == 0 { 150 } else { 2_000 }));
            plan.power_cut_reordered(round * 1_000 + u64::from(interval)).unwrap();
            acked.extend(run.acked);
            sent.extend(run.sent);

            let strict = config(dir.path(), 1, 0).without_checkpoints().mid_log_corruption(MidLogCorruption::Fail);
            let store = Store::open(strict).unwrap_or_else(|e| panic!("interval {interval}, round {round}: {e}"));
            let r = report(&store);
            assert_eq!((r.records_skipped, r.corrupt_bytes_skipped), (0, 0), "interval {interval}, round {round}: {r}");
            assert_eq!(store.status()[0].visible_position, r.last_position, "positions 1..=last, no gap: {r}");
            cut_off += r.records_after_lost_write;
            if interval == 0 {
                check_acked_exactly_once(&store, &acked, &sent);
            } else {
                check_prefix(&store, &acked, &sent);
                acked.retain(|a| store.get(TENANT, &a.ack.id).is_some());
            }
            eprintln!("interval {interval}, round {round}: {r}");
            store.close().unwrap();
        }
    }
    // Otherwise the reordering never left a whole record behind a lost write, and this test showed nothing.
    assert!(cut_off > 0, "no record was ever cut off behind a lost write");
}

/// After a power cut with interval fsync: recovery kept, per entity, a prefix of the acknowledged
/// history (versions 1..=k, each the acknowledged event of that version), nothing twice, nothing unsent.
/// Returns how many acknowledged events were lost.
fn check_prefix(store: &Store, acked: &[Acked], sent: &HashSet<Uuid>) -> usize {
    let events = all_events(store);
    let mut seen = HashSet::new();
    for event in &events {
        assert!(sent.contains(&event.id()), "event {} was never sent", event.id());
        assert!(seen.insert(event.id()), "event {} stored twice", event.id());
    }
    let mut by_entity: HashMap<&str, HashMap<u64, Uuid>> = HashMap::new();
    for a in acked {
        let versions = by_entity.entry(&a.entity).or_default();
        assert!(versions.insert(a.ack.version, a.ack.id).is_none(), "version acked twice");
    }
    let mut lost = 0;
    for (entity, acked_versions) in &by_entity {
        let hist = history(store, entity);
        let versions: Vec<u64> = hist.iter().map(|e| e.version()).collect();
        assert_eq!(versions, (1..=versions.len() as u64).collect::<Vec<_>>(), "versions of entity {entity}");
        for event in &hist {
            if let Some(id) = acked_versions.get(&event.version()) {
                assert_eq!(event.id(), *id, "entity {entity} version {}", event.version());
            }
        }
        let kept = versions.len() as u64;
        lost += acked_versions.keys().filter(|&&v| v > kept).count();
    }
    lost
}

// ---------------------------------------------------------------------------------------------------------
// Concurrent appenders.

enum Until {
    /// Halt the store once this many appends are acknowledged (the appenders are still running).
    Acked(usize),
    /// Run until every appender has seen an error.
    Failure,
}

struct Run {
    acked: Vec<Acked>,
    sent: HashSet<Uuid>,
    /// The error each appender stopped on.
    errors: Vec<Error>,
    /// Appends acknowledged although they started after some append had already failed.
    late_acks: usize,
}

/// `threads` std threads, each appending one event at a time (`block_on(store.append(..))`) to 12 shared
/// entities until an append fails. With `Until::Acked(n)` the store is halted (a crash) once `n` appends
/// are acknowledged.
fn hammer(store: &Store, threads: usize, pad: usize, until: Until) -> Run {
    let acked_count = Arc::new(AtomicUsize::new(0));
    let failed_seen = Arc::new(AtomicBool::new(false));
    let late_acks = Arc::new(AtomicUsize::new(0));
    let sent = Arc::new(Mutex::new(HashSet::new()));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (store, acked_count, failed_seen, late_acks, sent) =
                (store.clone(), acked_count.clone(), failed_seen.clone(), late_acks.clone(), sent.clone());
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                for j in 0..1_000_000usize {
                    let entity = format!("e{}", (t * 5 + j) % 12);
                    let event = ev(&entity, j, pad);
                    sent.lock().unwrap().insert(event.id.unwrap());
                    let after_failure = failed_seen.load(Ordering::SeqCst);
                    match block_on(store.append(event)) {
                        Ok(ack) => {
                            if after_failure {
                                late_acks.fetch_add(1, Ordering::SeqCst);
                            }
                            acked.push(Acked { entity, ack });
                            acked_count.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(err) => {
                            failed_seen.store(true, Ordering::SeqCst);
                            return (acked, err);
                        }
                    }
                }
                panic!("appender {t} never stopped");
            })
        })
        .collect();
    if let Until::Acked(n) = until {
        let deadline = Instant::now() + Duration::from_secs(20);
        while acked_count.load(Ordering::SeqCst) < n {
            assert!(Instant::now() < deadline, "only {} appends acknowledged", acked_count.load(Ordering::SeqCst));
            std::thread::sleep(Duration::from_millis(1));
        }
        store.halt();
    }
    // Every appender must get an answer: after a failure (or the halt) no append may wait forever.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !handles.iter().all(|h| h.is_finished()) {
        let stuck = handles.iter().filter(|h| !h.is_finished()).count();
        assert!(Instant::now() < deadline, "{stuck} appenders still without an answer 30 s after the failure or halt");
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut run = Run { acked: Vec::new(), sent: HashSet::new(), errors: Vec::new(), late_acks: 0 };
    for handle in handles {
        let (acked, err) = handle.join().unwrap();
        run.acked.extend(acked);
        run.errors.push(err);
    }
    run.sent = std::mem::take(&mut *sent.lock().unwrap());
    run.late_acks = late_acks.load(Ordering::SeqCst);
    run
}
