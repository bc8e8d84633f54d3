//! The pipelined append API (`Producer`): many appends in flight from one caller, each acknowledged on
//! its own and in order, with the same guarantee as `Store::append`; and the direct path for callers
//! that run on a shard's own executor.

mod common;

use std::collections::{HashMap, VecDeque};

use common::{block_on, event, open};
use tidelog::{Error, NewEvent, Query};

#[test]
fn pipelined_appends_are_each_acknowledged_in_order_and_readable() {
    for fsync_interval_ms in [0, 100] {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), 2, fsync_interval_ms);
        let acks = block_on(async {
            let mut producer = store.producer().with_max_group_events(64);
            let mut in_flight = VecDeque::new();
            let mut acks = Vec::new();
            for n in 0..5_000u64 {
                let entity = format!("e{}", n % 37);
                in_flight.push_back((entity.clone(), producer.send(event("t", &entity, "x", n)).await.unwrap()));
                if in_flight.len() > 700 {
                    let (entity, ack) = in_flight.pop_front().unwrap();
                    acks.push((entity, ack.await.unwrap()));
                }
            }
            for (entity, ack) in in_flight {
                acks.push((entity, ack.await.unwrap()));
            }
            acks
        });
        // Every entity's versions follow the order the events were sent in.
        let mut last: HashMap<&str, u64> = HashMap::new();
        for (entity, ack) in &acks {
            let previous = last.insert(entity.as_str(), ack.version).unwrap_or(0);
            assert_eq!(ack.version, previous + 1, "{entity}");
            let stored = store.get("t", &ack.id).expect("acknowledged event is readable");
            assert_eq!(stored.entity_id(), entity);
        }
        assert_eq!(store.status().iter().map(|s| s.events).sum::<u64>(), 5_000);
        store.close().unwrap();
        // And durable: all there after reopening.
        let store = open(dir.path(), 2, fsync_interval_ms);
        for (_, ack) in &acks {
            assert!(store.get("t", &ack.id).is_some());
        }
        store.close().unwrap();
    }
}

#[test]
fn each_pipelined_event_is_its_own_append() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 2, 100);
    block_on(async {
        let mut producer = store.producer();
        let a = producer.send(event("t", "acct", "opened", 0)).await.unwrap();
        // Expects version 5 of an entity at 1: refused, and only this event.
        let conflict = producer.send(event("t", "acct", "bad", 1).with_expected_version(5)).await.unwrap();
        let b = producer.send(event("t", "acct", "deposit", 2).with_expected_version(1)).await.unwrap();
        let id = uuid::Uuid::now_v7();
        let first = producer.send(event("t", "other", "x", 3).with_id(id)).await.unwrap();
        let retry = producer.send(event("t", "other", "x", 3).with_id(id)).await.unwrap();
        assert_eq!(a.await.unwrap().version, 1);
        assert!(matches!(conflict.await, Err(Error::VersionConflict { expected: 5, current: 1, .. })));
        assert_eq!(b.await.unwrap().version, 2);
        let first = first.await.unwrap();
        let retry = retry.await.unwrap();
        assert!(!first.duplicate && retry.duplicate, "a retried id is answered with the original");
        assert_eq!((first.id, first.position), (retry.id, retry.position));
        // Invalid input is refused at send, before anything leaves.
        let bad = NewEvent::with_raw_payload("e", "x", "{not json");
        assert!(matches!(producer.send(bad).await, Err(Error::Invalid(_))));
    });
    let history = block_on(store.query(&Query::tenant("t").entity("acct"))).unwrap();
    let types: Vec<&str> = history.events.iter().map(|e| e.event_type()).collect();
    assert_eq!(types, ["opened", "deposit"]);
    store.close().unwrap();
}

#[test]
fn a_lone_event_is_not_held_back_and_flush_sends_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 1, 0);
    block_on(async {
        let mut producer = store.producer().with_max_group_events(1_000);
        // Nothing in flight: the first event leaves at once and is acknowledged without a flush.
        let ack = producer.send(event("t", "e", "x", 0)).await.unwrap();
        assert_eq!(ack.await.unwrap().version, 1);
        // Queued behind an in-flight group, the rest leave on flush.
        let mut acks = Vec::new();
        for n in 1..100 {
            acks.push(producer.send(event("t", "e", "x", n)).await.unwrap());
        }
        producer.flush().await;
        for (n, ack) in acks.into_iter().enumerate() {
            assert_eq!(ack.await.unwrap().version, n as u64 + 2);
        }
    });
    store.close().unwrap();
}

#[test]
fn a_closed_store_fails_pending_acks_instead_of_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 2, 100);
    let mut producer = store.producer();
    let acked = block_on(producer.send(event("t", "e", "x", 0))).unwrap();
    assert!(block_on(acked).is_ok());
    store.close().unwrap();
    let after = block_on(producer.send(event("t", "e", "x", 1))).unwrap();
    assert!(matches!(block_on(after), Err(Error::Closed)));
}

#[test]
fn appends_from_a_shard_executor_take_the_direct_path() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 2, 0);
    let local_entity = (0..).map(|i| format!("e{i}")).find(|e| store.shard_of("t", e) == 1).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let on_shard = store.clone();
    block_on(store.spawn_on(1, move |_| async move {
        let mut results = Vec::new();
        // Single appends and a producer's groups, both on the shard's own thread.
        for n in 0..50 {
            results.push(on_shard.append(event("t", &local_entity, "x", n)).await.map(|a| a.version));
        }
        let mut producer = on_shard.producer();
        let mut acks = Vec::new();
        for n in 50..300 {
            acks.push(producer.send(event("t", &local_entity, "x", n)).await.unwrap());
        }
        for ack in acks {
            results.push(ack.await.map(|a| a.version));
        }
        tx.send(results).unwrap();
    }))
    .unwrap();
    let results = rx.recv().unwrap();
    let versions: Vec<u64> = results.into_iter().map(Result::unwrap).collect();
    assert_eq!(versions, (1..=300).collect::<Vec<u64>>());
    let status = &store.status()[1];
    assert_eq!(status.events, 300);
    // 50 single appends and the producer's groups, none through the inbox.
    assert!(status.direct_appends >= 51, "direct appends: {}", status.direct_appends);
    store.close().unwrap();
}

#[test]
fn awaiting_an_unsent_group_keeps_the_send_order_even_with_a_full_inbox() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path(), 1, 100);
    // A tiny inbox, so groups often wait for room; small groups, so there are many of them.
    config.queue_capacity = 2;
    let store = tidelog::Store::open(config).unwrap();
    let versions = block_on(async {
        let mut producer = store.producer().with_max_group_events(3);
        let mut acks = VecDeque::new();
        let mut versions = Vec::new();
        for n in 0..3_000u64 {
            acks.push_back(producer.send(event("t", "one-entity", "x", n)).await.unwrap());
            // Now and then await the newest ack first: its group is usually still filling, so awaiting it
            // sends it, while older groups may still wait for room in the inbox; it must not overtake them.
            if n % 7 == 0 {
                let newest = acks.pop_back().unwrap().await.unwrap().version;
                let mut older = Vec::new();
                while let Some(ack) = acks.pop_front() {
                    older.push(ack.await.unwrap().version);
                }
                versions.extend(older);
                versions.push(newest);
            }
        }
        while let Some(ack) = acks.pop_front() {
            versions.push(ack.await.unwrap().version);
        }
        versions
    });
    // One entity: its versions are the send order.
    assert_eq!(versions, (1..=3_000).collect::<Vec<u64>>());
    store.close().unwrap();
}
