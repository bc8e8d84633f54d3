//! Cross-shard batches aborted while the store runs: the caller gives up after one part was handed to its
//! shard (an HTTP client that disconnects while another shard's inbox is full). That part is written but
//! stays hidden; checkpoints go past it (leaving it out), the WAL it sits in is trimmed, and after a
//! reopen it is gone while everything acknowledged is there. A batch a shard refuses leaves nothing
//! claimed behind on the others once the caller hears the refusal.

mod common;

use std::sync::atomic::Ordering;

use common::{block_on, event, wait_until};
use tidelog::Query;

#[test]
fn a_part_aborted_after_it_was_written_stays_hidden_and_does_not_hold_back_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let config = || {
        let mut config = common::config(dir.path(), 2, 0);
        config.queue_capacity = 1;
        config
    };
    let store = tidelog::Store::open(config()).unwrap();
    let on_shard = |shard: usize, prefix: &str| {
        (0..).map(|i| format!("{prefix}{i}")).find(|e| store.shard_of("t", e) == shard).unwrap()
    };
    let (a, b) = (on_shard(0, "a"), on_shard(1, "b"));
    let mut acked = Vec::new();
    for n in 0..300u64 {
        let entity = if n % 2 == 0 { &a } else { &b };
        acked.push(block_on(store.append(event("t", entity, "before", n))).unwrap().id);
    }

    // Shard 1's executor is busy and its inbox full, so a batch's second part waits for room...
    let release = common::occupy_shard(&store, 1);
    let waiting = {
        let (store, b) = (store.clone(), b.clone());
        std::thread::spawn(move || block_on(store.append(event("t", &b, "queued", 0))).unwrap().id)
    };
    wait_until("shard 1's inbox is full", || store.status()[1].queue_depth >= 1);
    let appended_before = store.status()[0].events_appended;
    let batch: Vec<_> = (0..50u64).map(|n| event("t", if n % 2 == 0 { &a } else { &b }, "aborted", n)).collect();
    let mut append = Box::pin(store.append_batch(batch));
    assert!(block_on(futures_lite::future::poll_once(&mut append)).is_none(), "the second part waits for room");
    // ...while shard 0 takes its part; then the caller gives up.
    wait_until("shard 0 took its part", || store.status()[0].events_appended == appended_before + 25);
    drop(append);
    release.store(true, Ordering::Relaxed);
    acked.push(waiting.join().unwrap());

    let aborted = |store: &tidelog::Store| block_on(store.query(&Query::tenant("t").event_type("aborted"))).unwrap().events.len();
    assert_eq!(aborted(&store), 0, "no part of an aborted batch is visible");
    for n in 0..2_000u64 {
        let entity = if n % 2 == 0 { &a } else { &b };
        acked.push(block_on(store.append(event("t", entity, "after", n))).unwrap().id);
    }
    let covered = block_on(store.checkpoint()).unwrap();
    let status = store.status();
    for shard in 0..2 {
        assert_eq!(covered[shard], status[shard].visible_position, "shard {shard}: the checkpoint covers everything written");
    }
    assert!(status[0].wal_segments_deleted > 0, "shard 0 trimmed the WAL holding the aborted part");
    let stats = block_on(store.tenant_stats("t")).unwrap();
    assert_eq!((stats.events, stats.entities), (acked.len() as u64, 2));
    store.close().unwrap();

    let store = tidelog::Store::open(config()).unwrap();
    assert_eq!(aborted(&store), 0, "the aborted part is not in the checkpoint");
    let reports = store.recovery_reports();
    assert_eq!(reports.iter().map(|r| r.events()).sum::<u64>(), acked.len() as u64);
    let mut stored: Vec<uuid::Uuid> =
        block_on(store.query(&Query::tenant("t").limit(10_000))).unwrap().events.iter().map(|e| e.id()).collect();
    stored.sort();
    acked.sort();
    assert_eq!(stored, acked, "exactly the acknowledged events");
    // The store goes on: the entities' versions continue from what is stored.
    let next = block_on(store.append(event("t", &a, "later", 0))).unwrap();
    assert_eq!(next.version, 1 + 150 + 1_000);
    store.close().unwrap();
}

#[test]
fn a_refused_batch_has_released_its_ids_when_the_caller_hears_the_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let store = tidelog::Store::open(common::config(dir.path(), 2, 0)).unwrap();
    let on_shard = |shard: usize, prefix: &str| {
        (0..).map(|i| format!("{prefix}{i}")).find(|e| store.shard_of("t", e) == shard).unwrap()
    };
    let (a, b) = (on_shard(0, "a"), on_shard(1, "b"));
    for n in 0..200u128 {
        let id = uuid::Uuid::from_u128(0xb47c_0000_0000_0000_0000_0000_0000_0000 + n);
        // Shard 0 claims the id for `a`; shard 1 refuses its part (a stale expected version), so the
        // batch is refused as a whole...
        let batch = vec![
            event("t", &a, "refused", 0).with_id(id),
            event("t", &b, "refused", 0).with_expected_version(n as u64 + 7),
        ];
        let refused = block_on(store.append_batch(batch)).unwrap_err();
        assert!(matches!(refused, tidelog::Error::VersionConflict { .. }), "{refused}");
        // ...and the id is free at once, also for an entity of the other shard.
        let ack = block_on(store.append(event("t", &b, "reused", 0).with_id(id))).unwrap_or_else(|e| panic!("round {n}: {e}"));
        assert_eq!((ack.id, ack.shard), (id, 1));
    }
    let refused = block_on(store.query(&Query::tenant("t").event_type("refused"))).unwrap().events.len();
    assert_eq!(refused, 0, "nothing of a refused batch is stored");
    store.close().unwrap();
}
