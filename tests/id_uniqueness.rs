//! An event id is stored at most once in the store, whichever shards its events go to: threads race
//! single appends and cross-shard batches that reuse the same ids for entities on different shards.

mod common;

use std::sync::Barrier;

use tidelog::Query;

/// `n` entities of tenant `t` that live on `shard`.
fn entities_on(store: &tidelog::Store, shard: usize, n: usize) -> Vec<String> {
    (0..).map(|i| format!("e{i}")).filter(|e| store.shard_of("t", e) == shard).take(n).collect()
}

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

/// Ids stored before the store opened are not claims of this run: they still belong to their event,
/// whichever shard a later append sends them to, in a lone append, a batch or a race.
#[test]
fn ids_stored_before_a_reopen_stay_unique() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path(), 2, 0);
    let (zero, one) = (entities_on(&store, 0, 4), entities_on(&store, 1, 4));
    let ids: Vec<uuid::Uuid> = (1..=20u128).map(uuid::Uuid::from_u128).collect();
    let mut originals = Vec::new();
    for (k, id) in ids.iter().enumerate() {
        // Half the ids on each shard.
        let entity = if k % 2 == 0 { &zero[0] } else { &one[0] };
        originals.push(common::block_on(store.append(common::event("t", entity, "x", k as u64).with_id(*id))).unwrap());
    }
    store.close().unwrap();

    let store = common::open(dir.path(), 2, 0);
    for (k, id) in ids.iter().enumerate() {
        let (home, away) = if k % 2 == 0 { (&zero, &one) } else { (&one, &zero) };
        // To an entity on the other shard, alone: refused.
        match common::block_on(store.append(common::event("t", &away[1], "x", 0).with_id(*id))) {
            Err(tidelog::Error::IdConflict { .. }) => {}
            other => panic!("id {id} stored on another shard before the reopen: {other:?}"),
        }
        // In a cross-shard batch that puts it on the other shard: refused, nothing of the batch stored.
        let batch = vec![common::event("t", &home[2], "y", 0), common::event("t", &away[2], "x", 0).with_id(*id)];
        match common::block_on(store.append_batch(batch)) {
            Err(tidelog::Error::IdConflict { .. }) => {}
            other => panic!("batch reusing id {id} on another shard: {other:?}"),
        }
        // To its own entity again: the original, nothing written.
        let again = common::block_on(store.append(common::event("t", &home[0], "x", k as u64).with_id(*id))).unwrap();
        assert!(again.duplicate, "a repeat of a stored id is acknowledged as the original");
        assert_eq!((again.shard, again.position), (originals[k].shard, originals[k].position));
        assert_eq!(store.get("t", id).map(|e| e.position()), Some(originals[k].position));
    }
    // Racing threads sending the stored ids to both shards: still one event per id.
    let barrier = Barrier::new(2);
    std::thread::scope(|scope| {
        for thread in 0..2usize {
            let (store, barrier, ids, zero, one) = (&store, &barrier, &ids, &zero, &one);
            scope.spawn(move || {
                barrier.wait();
                for id in ids {
                    let entity = if thread == 0 { &zero[3] } else { &one[3] };
                    match common::block_on(store.append(common::event("t", entity, "x", 0).with_id(*id))) {
                        Ok(ack) => assert!(ack.duplicate, "id {id} stored again on {entity}"),
                        Err(tidelog::Error::IdConflict { .. }) => {}
                        Err(e) => panic!("unexpected error: {e}"),
                    }
                }
            });
        }
    });
    let stored = common::block_on(store.query(&Query::tenant("t").limit(10_000))).unwrap().events;
    assert_eq!(stored.len(), ids.len(), "only the original events are stored");
    store.close().unwrap();
}

/// Ids the store generates name their shard and position (docs/FORMAT.md, Event ids). They stay findable
/// and unique across a reopen, a client may repeat one for its own entity (an idempotent retry), and an
/// id of the same form that names a place holding another event is an ordinary client id.
#[test]
fn generated_ids_name_their_place_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path(), 2, 0);
    let (zero, one) = (entities_on(&store, 0, 3), entities_on(&store, 1, 3));
    let mut acks = Vec::new();
    for k in 0..40u64 {
        let entity = if k % 2 == 0 { &zero[0] } else { &one[0] };
        acks.push((entity.clone(), common::block_on(store.append(common::event("t", entity, "x", k))).unwrap()));
    }
    let batch: Vec<_> = (0..10u64).map(|k| common::event("t", if k % 2 == 0 { &zero[1] } else { &one[1] }, "y", k)).collect();
    let batch_acks = common::block_on(store.append_batch(batch.clone())).unwrap();
    acks.extend(batch.iter().map(|e| e.entity_id.clone()).zip(batch_acks));
    // Same bits but the low random ones: it names the first event's place, which holds another id.
    let first = acks[0].1.clone();
    let lookalike = uuid::Uuid::from_u128(first.id.as_u128() ^ (1 << 60));
    let lookalike_ack = common::block_on(store.append(common::event("t", &one[2], "z", 0).with_id(lookalike))).unwrap();
    assert!(!lookalike_ack.duplicate);
    store.close().unwrap();

    for reopen in 0..2 {
        let store = common::open(dir.path(), 2, 0);
        for (entity, ack) in &acks {
            let found = store.get("t", &ack.id).unwrap_or_else(|| panic!("id {} not found after reopen {reopen}", ack.id));
            assert_eq!((found.position(), found.entity_id()), (ack.position, entity.as_str()));
            assert!(store.get("other-tenant", &ack.id).is_none(), "another tenant read an event by id");
            // Repeated for its own entity: the original. For an entity of the other shard: refused.
            let again = common::block_on(store.append(common::event("t", entity, "x", 0).with_id(ack.id))).unwrap();
            assert!(again.duplicate && again.position == ack.position && again.shard == ack.shard);
            let away = if ack.shard == 0 { &one[2] } else { &zero[2] };
            match common::block_on(store.append(common::event("t", away, "x", 0).with_id(ack.id))) {
                Err(tidelog::Error::IdConflict { .. }) => {}
                other => panic!("generated id {} reused on another shard: {other:?}", ack.id),
            }
        }
        assert_eq!(store.get("t", &lookalike).map(|e| e.position()), Some(lookalike_ack.position));
        assert_eq!(store.get("t", &first.id).map(|e| e.position()), Some(first.position));
        let stored = common::block_on(store.query(&Query::tenant("t").limit(10_000))).unwrap().events;
        assert_eq!(stored.len(), acks.len() + 1, "repeats wrote nothing");
        store.close().unwrap();
    }
}
