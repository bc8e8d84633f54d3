//! While a cross-shard batch is undecided (one shard wrote its part, another has not yet), a single
//! append to an entity whose latest event is in the written part waits for the decision, so the entity's
//! versions become visible in order; appends to other entities of that shard go on.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{block_on, event, wait_until};
use tidelog::Query;

#[test]
fn single_appends_to_an_undecided_parts_entities_wait_for_the_decision() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path(), 2, 0);
    let on_shard = |shard: usize, prefix: &str| {
        (0..).map(|i| format!("{prefix}{i}")).find(|e| store.shard_of("t", e) == shard).unwrap()
    };
    let (a, b, c) = (on_shard(0, "a"), on_shard(1, "b"), on_shard(0, "c"));
    block_on(store.append(event("t", &a, "before", 0))).unwrap();
    block_on(store.append(event("t", &c, "before", 0))).unwrap();

    // Shard 1 is busy, so the batch's part there waits in its inbox while shard 0 writes its own.
    let release = common::occupy_shard(&store, 1);
    let appended_before = store.status()[0].events_appended;
    let batch = {
        let (store, a, b) = (store.clone(), a.clone(), b.clone());
        std::thread::spawn(move || {
            block_on(store.append_batch(vec![event("t", &a, "batch", 0), event("t", &b, "batch", 1), event("t", &a, "batch", 2)]))
                .unwrap()
        })
    };
    wait_until("shard 0 wrote its part", || store.status()[0].events_appended == appended_before + 2);

    let mut held = Box::pin(store.append(event("t", &a, "single", 0)));
    // Another entity of the same shard is not held.
    let free = block_on(store.append(event("t", &c, "single", 0))).unwrap();
    assert_eq!(free.version, 2);
    std::thread::sleep(Duration::from_millis(50));
    assert!(block_on(futures_lite::future::poll_once(&mut held)).is_none(), "an append to a held entity waits");
    assert_eq!(block_on(store.query(&Query::tenant("t").entity(&a))).unwrap().events.len(), 1, "nothing new of a is visible");

    release.store(true, Ordering::Relaxed);
    let acks = batch.join().unwrap();
    let single = block_on(held).unwrap();
    assert_eq!((acks[0].version, acks[2].version), (2, 3));
    assert_eq!(single.version, 4, "the waiting append follows the batch");
    let versions: Vec<u64> =
        block_on(store.query(&Query::tenant("t").entity(&a))).unwrap().events.iter().map(|e| e.version()).collect();
    assert_eq!(versions, vec![1, 2, 3, 4]);
    store.close().unwrap();
}

/// The same when the batch is aborted after its part here was written (its caller gave up while the other
/// shard's inbox was full): the waiting append goes on from the entity's version before the part, so the
/// entity's versions have no gap. Without the hold it would have taken a version after the dropped part.
#[test]
fn an_append_held_by_an_aborted_part_continues_from_the_version_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path(), 2, 0);
    config.queue_capacity = 1;
    let store = tidelog::Store::open(config).unwrap();
    let on_shard = |shard: usize, prefix: &str| {
        (0..).map(|i| format!("{prefix}{i}")).find(|e| store.shard_of("t", e) == shard).unwrap()
    };
    let (a, b) = (on_shard(0, "a"), on_shard(1, "b"));
    block_on(store.append(event("t", &a, "before", 0))).unwrap();

    // Shard 1 is busy and its inbox full, so the batch's part there cannot even be handed over.
    let release = common::occupy_shard(&store, 1);
    let queued = {
        let (store, b) = (store.clone(), b.clone());
        std::thread::spawn(move || block_on(store.append(event("t", &b, "queued", 0))).unwrap())
    };
    wait_until("shard 1's inbox is full", || store.status()[1].queue_depth >= 1);
    let appended_before = store.status()[0].events_appended;
    let mut batch = Box::pin(store.append_batch(vec![event("t", &a, "batch", 0), event("t", &b, "batch", 1)]));
    assert!(block_on(futures_lite::future::poll_once(&mut batch)).is_none(), "the second part waits for room");
    wait_until("shard 0 wrote its part", || store.status()[0].events_appended == appended_before + 1);

    let held = {
        let (store, a) = (store.clone(), a.clone());
        std::thread::spawn(move || block_on(store.append(event("t", &a, "single", 0))).unwrap())
    };
    std::thread::sleep(Duration::from_millis(50));
    drop(batch);
    release.store(true, Ordering::Relaxed);
    queued.join().unwrap();
    let single = held.join().unwrap();
    assert_eq!(single.version, 2, "the held append follows the version before the aborted part");
    let versions: Vec<u64> =
        block_on(store.query(&Query::tenant("t").entity(&a))).unwrap().events.iter().map(|e| e.version()).collect();
    assert_eq!(versions, vec![1, 2]);
    store.close().unwrap();
}
