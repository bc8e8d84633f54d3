//! An event id is stored at most once in the store, whichever shards its events go to: threads race
//! single appends and cross-shard batches that reuse the same ids for entities on different shards.

mod common;

use std::sync::Barrier;

use tidelog::Query;

#[test]
fn racing_appends_of_one_id_to_entities_on_different_shards_store_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path(), 2, 100);
    let on_shard = |shard: usize| (0..).map(|i| format!("e{i}")).filter(|e| store.shard_of("t", e) == shard).take(8).collect::<Vec<_>>();
    let (zero, one) = (on_shard(0), on_shard(1));
    for round in 0..200u128 {
        let id = uuid::Uuid::from_u128(round + 1);
        let barrier = Barrier::new(4);
        std::thread::scope(|scope| {
            for thread in 0..4usize {
                let (store, barrier, zero, one) = (&store, &barrier, &zero, &one);
                scope.spawn(move || {
                    let entity = if thread % 2 == 0 { &zero[thread] } else { &one[thread] };
                    let mut events = vec![common::event("t", entity, "x", round as u64).with_id(id)];
                    if thread >= 2 {
                        // A cross-shard batch: the id's event plus one on the other shard.
                        let other = if thread % 2 == 0 { &one[7] } else { &zero[7] };
                        events.push(common::event("t", other, "y", round as u64));
                    }
                    barrier.wait();
                    match common::block_on(store.append_batch(events)) {
                        Ok(_) | Err(tidelog::Error::IdConflict { .. } | tidelog::Error::Contended { .. }) => {}
                        Err(e) => panic!("unexpected error: {e}"),
                    }
                });
            }
        });
    }
    let stored = common::block_on(store.query(&Query::tenant("t").event_type("x").limit(10_000))).unwrap().events;
    let mut ids: Vec<uuid::Uuid> = stored.iter().map(|e| e.id()).collect();
    let total = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(total, ids.len(), "an id stored twice ({} events, {} distinct ids)", total, ids.len());
    assert!(ids.len() >= 190, "most rounds store their id once: {}", ids.len());
    store.close().unwrap();
}
