//! Cross-shard batches across power cuts and lost parts, through the fault-injection seam: a power cut
//! that leaves one participant's part on disk and not another's (the disk writing sectors back in any
//! order, `FaultPlan::power_cut_reordered`), a participant that lost its WAL, and a participant whose
//! part went into a checkpoint. After reopening, every batch is wholly present or wholly absent, every
//! batch acknowledged at `FSYNC_INTERVAL=0` is present, and recovery reports what it decided.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{block_on, config};
use serde_json::json;
use tidelog::wal::fault::FaultPlan;
use tidelog::{BatchOutcome, NewEvent, Query, Store};

const TENANT: &str = "t";
/// Events per batch, over as many entities: both shards of two.
const MEMBERS: usize = 8;

fn batch(event_type: &str, pad: usize) -> Vec<NewEvent> {
    (0..MEMBERS)
        .map(|e| {
            NewEvent::new(format!("{event_type}-e{e}"), event_type, &json!({ "e": e, "pad": "p".repeat(pad) })).with_tenant(TENANT)
        })
        .collect()
}

fn count(store: &Store, event_type: &str) -> usize {
    block_on(store.query(&Query::tenant(TENANT).event_type(event_type).limit(1_000))).unwrap().events.len()
}

/// Batches sent and acknowledged by some writer threads until `acked` are acknowledged; then the store
/// is halted (a crash: nothing flushed or synced).
fn write_until_halt(store: &Store, prefix: &str, acked: usize, pad: usize) -> (Vec<String>, Vec<String>) {
    let sent: Arc<Mutex<Vec<String>>> = Arc::default();
    let done: Arc<Mutex<Vec<String>>> = Arc::default();
    let acked_count = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (store, sent, done, acked_count) = (store.clone(), sent.clone(), done.clone(), acked_count.clone());
            let prefix = prefix.to_string();
            std::thread::spawn(move || {
                for n in 0.. {
                    let event_type = format!("{prefix}-w{w}-b{n}");
                    sent.lock().unwrap().push(event_type.clone());
                    match block_on(store.append_batch(batch(&event_type, pad))) {
                        Ok(_) => {
                            done.lock().unwrap().push(event_type);
                            acked_count.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(_) => return,
                    }
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked_count.load(Ordering::SeqCst) < acked {
        assert!(Instant::now() < deadline, "only {} batches acknowledged", acked_count.load(Ordering::SeqCst));
        std::thread::sleep(Duration::from_millis(1));
    }
    store.halt();
    writers.into_iter().for_each(|w| w.join().unwrap());
    let sent = std::mem::take(&mut *sent.lock().unwrap());
    let done = std::mem::take(&mut *done.lock().unwrap());
    (sent, done)
}

/// Every batch sent is whole or absent; returns how many are whole.
fn check_whole_or_absent(store: &Store, sent: &[String], context: &str) -> usize {
    let mut whole = 0;
    for event_type in sent {
        match count(store, event_type) {
            0 => {}
            MEMBERS => whole += 1,
            n => panic!("{context}: batch {event_type} has {n} of its {MEMBERS} events after reopening"),
        }
    }
    whole
}

fn reopen(dir: &Path) -> Store {
    Store::open(config(dir, 2, 0).without_checkpoints()).expect("reopen")
}

/// A power cut while both shards write parts: each shard keeps whatever prefix of its unsynced writes the
/// disk happened to write back, so one shard may keep a part whose sibling is gone. Recovery drops such
/// parts; at `FSYNC_INTERVAL=0` no acknowledged batch is among them.
#[test]
fn power_cut_between_the_participants_writes_leaves_every_batch_whole_or_absent() {
    let mut dropped = 0;
    // At N ms a power cut keeps, on each shard, a prefix of a few sectors of the unsynced tail; parts of
    // about two sectors make it likely that one shard keeps a part its sibling lost, and many short rounds
    // make it all but certain that some round shows it.
    for (interval, rounds, acked_per_round) in [(0u32, 3u64, 60usize), (50, 24, 30)] {
        let dir = tempfile::tempdir().unwrap();
        let mut all_sent = Vec::new();
        let mut all_acked: Vec<String> = Vec::new();
        for round in 0..rounds {
            let plan = FaultPlan::new();
            // Segments big enough that no roll (which syncs) happens during a round.
            let faulty = config(dir.path(), 2, interval).segment_size_bytes(8 << 20).without_checkpoints();
            let store = Store::open(faulty.fault_plan(plan.clone())).unwrap();
            let (sent, acked) = write_until_halt(&store, &format!("i{interval}-r{round}"), acked_per_round, 40);
            plan.power_cut_reordered(round * 7 + u64::from(interval)).unwrap();
            all_sent.extend(sent);
            all_acked.extend(acked);

            let store = reopen(dir.path());
            let context = format!("FSYNC_INTERVAL={interval}, round {round}");
            check_whole_or_absent(&store, &all_sent, &context);
            if interval == 0 {
                for event_type in &all_acked {
                    assert_eq!(count(&store, event_type), MEMBERS, "{context}: acknowledged batch {event_type} lost");
                }
            }
            for r in store.recovery_reports() {
                eprintln!("{context}: {r}");
                dropped += r.batch_parts_dropped;
                assert_eq!(r.batch_parts_kept + r.batch_parts_dropped, r.batches.len() as u64);
            }
            for d in store.batch_decisions().iter().filter(|d| !d.kept()) {
                assert!(matches!(&d.outcome, BatchOutcome::DroppedMissingParts { missing } if !missing.is_empty()), "{d}");
            }
            store.close().unwrap();
        }
    }
    // Otherwise no power cut ever separated a batch's parts, and this test showed nothing.
    assert!(dropped > 0, "no part was ever dropped");
}

/// A participant whose WAL is gone: the other participants' parts are dropped, the report says which
/// batches and why, their ids are free again, and the positions they took are not reused.
#[test]
fn parts_whose_sibling_is_missing_are_dropped_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path(), 2, 0).without_checkpoints()).unwrap();
    let ids: Vec<uuid::Uuid> = (0..MEMBERS).map(|_| uuid::Uuid::now_v7()).collect();
    let with_ids: Vec<NewEvent> = batch("with-ids", 0).into_iter().zip(&ids).map(|(e, id)| e.with_id(*id)).collect();
    block_on(store.append_batch(with_ids)).unwrap();
    block_on(store.append_batch(batch("plain", 0))).unwrap();
    let last_positions: Vec<u64> = store.status().iter().map(|s| s.visible_position).collect();
    store.close().unwrap();
    std::fs::remove_dir_all(dir.path().join("shard-1").join("wal")).unwrap();

    let store = reopen(dir.path());
    assert_eq!((count(&store, "with-ids"), count(&store, "plain")), (0, 0));
    let decisions = store.batch_decisions();
    assert_eq!(decisions.len(), 2, "{decisions:?}");
    for d in decisions {
        assert_eq!(d.participants, vec![0, 1]);
        assert_eq!(d.outcome, BatchOutcome::DroppedMissingParts { missing: vec![1] });
    }
    let r = &store.recovery_reports()[0];
    assert_eq!((r.batch_parts_kept, r.batch_parts_dropped), (0, 2), "{r}");
    assert_eq!(r.records_recovered, 0, "{r}");
    assert!(r.records_dropped_with_batches > 0 && r.to_string().contains("2 dropped"), "{r}");
    // Shard 0 goes on after the dropped positions: a cursor that saw them never sees a position reused.
    assert_eq!(store.status()[0].visible_position, last_positions[0]);
    // The dropped events' ids may be used again.
    let again: Vec<NewEvent> = batch("again", 0).into_iter().zip(&ids).map(|(e, id)| e.with_id(*id)).collect();
    let acks = block_on(store.append_batch(again)).unwrap();
    assert!(acks.iter().all(|a| !a.duplicate));
    assert!(acks.iter().filter(|a| a.shard == 0).all(|a| a.position > last_positions[0]));
    assert_eq!(count(&store, "again"), MEMBERS);
    store.close().unwrap();
}

/// One shard checkpoints (and deletes the WAL segments holding its parts) long before the other, which
/// still holds its parts in its WAL; a crash then. The checkpoint's record of the batches it holds lets
/// the first shard vouch for its parts: every acknowledged batch is kept.
#[test]
fn a_participant_whose_part_is_in_a_checkpoint_still_vouches_for_it() {
    let dir = tempfile::tempdir().unwrap();
    // Small segments and checkpoints every 200 events: the shard with most of each batch checkpoints and
    // trims its WAL many times while the other (one event per batch) does not reach 200.
    let cfg = config(dir.path(), 2, 0).segment_size_bytes(16 * 1024).checkpoint_events(200);
    let store = Store::open(cfg.clone()).unwrap();
    let (mut big, mut small) = (Vec::new(), Vec::new());
    for entity in (0..).map(|e| format!("e{e}")) {
        match store.shard_of(TENANT, &entity) {
            0 if big.len() < 20 => big.push(entity),
            1 if small.is_empty() => small.push(entity),
            _ if big.len() == 20 && !small.is_empty() => break,
            _ => {}
        }
    }
    let mut acked = Vec::new();
    for b in 0..40 {
        let event_type = format!("ck-b{b}");
        let events: Vec<NewEvent> = big
            .iter()
            .chain(&small)
            .map(|entity| NewEvent::new(entity.clone(), &event_type, &json!({ "pad": "p".repeat(200) })).with_tenant(TENANT))
            .collect();
        block_on(store.append_batch(events)).unwrap();
        acked.push(event_type);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while store.status()[0].wal_segments_deleted == 0 {
        assert!(Instant::now() < deadline, "shard 0 never deleted a WAL segment: {:?}", store.status()[0]);
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(store.status()[1].checkpoints_written, 0);
    store.halt();

    let store = Store::open(cfg).unwrap();
    let members = big.len() + small.len();
    for event_type in &acked {
        let n = block_on(store.query(&Query::tenant(TENANT).event_type(event_type).limit(1_000))).unwrap().events.len();
        assert_eq!(n, members, "acknowledged batch {event_type} not whole after the crash");
    }
    let (r0, r1) = (&store.recovery_reports()[0], &store.recovery_reports()[1]);
    assert!(r1.batch_parts_kept > r0.batch_parts_kept, "shard 0's parts should be in checkpoints: {r0} / {r1}");
    assert!(store.batch_decisions().iter().all(|d| d.kept()));
    store.close().unwrap();
}
