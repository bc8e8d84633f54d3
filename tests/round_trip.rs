//! Append, then read back through every filter, across shards and across a reopen.

mod common;

use common::{block_on, event, open};
use serde_json::json;
use tidelog::{NewEvent, Order, Query};

#[test]
fn append_query_every_filter_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 2, 0);
    // 3 tenants x 10 entities x 5 events, explicit timestamps 1000, 1001, ... in append order.
    let mut expected = Vec::new();
    let mut ts = 1_000i64;
    for round in 0..5u64 {
        let mut batch = Vec::new();
        for tenant in ["acme", "globex", "default"] {
            for e in 0..10 {
                let event_type = if e % 2 == 0 { "order.created" } else { "order.paid" };
                batch.push(event(tenant, &format!("e{e}"), event_type, round).with_timestamp_us(ts));
                ts += 1;
            }
        }
        let acks = block_on(store.append_batch(batch.clone())).unwrap();
        for (ev, ack) in batch.into_iter().zip(acks) {
            assert_eq!(ack.version, round + 1, "versions are per (tenant, entity)");
            expected.push((ev, ack));
        }
    }
    assert_eq!(store.status().iter().map(|s| s.events).sum::<u64>(), 150);
    let check = |store: &tidelog::Store| {
        // Tenant scan, merged across both shards in timestamp order.
        let all = block_on(store.query(&Query::tenant("acme").limit(1000))).unwrap();
        assert_eq!(all.events.len(), 50);
        let stamps: Vec<i64> = all.events.iter().map(|e| e.timestamp_us()).collect();
        assert!(stamps.windows(2).all(|w| w[0] < w[1]), "merged in timestamp order");
        assert!(all.events.iter().all(|e| e.tenant_id() == "acme"));
        let shards: std::collections::HashSet<usize> =
            all.events.iter().map(|e| store.shard_of("acme", e.entity_id())).collect();
        assert_eq!(shards.len(), 2, "the tenant's entities are spread over both shards");

        // Descending with offset and limit is the reverse of ascending.
        let page = block_on(store.query(&Query::tenant("acme").order(Order::Desc).offset(5).limit(10))).unwrap();
        let want: Vec<_> = all.events.iter().rev().skip(5).take(10).map(|e| e.id()).collect();
        assert_eq!(page.events.iter().map(|e| e.id()).collect::<Vec<_>>(), want);
        assert!(page.has_more);
        let last = block_on(store.query(&Query::tenant("acme").offset(45).limit(10))).unwrap();
        assert_eq!((last.events.len(), last.has_more), (5, false));

        // Entity history and latest.
        let hist = block_on(store.query(&Query::tenant("globex").entity("e3"))).unwrap();
        assert_eq!(hist.events.iter().map(|e| e.version()).collect::<Vec<_>>(), vec![1, 2, 3, 4, 5]);
        let latest = block_on(store.query(&Query::tenant("globex").entity("e3").order(Order::Desc).limit(1))).unwrap();
        assert_eq!(latest.events[0].version(), 5);
        assert!(latest.has_more);

        // Event type: exact and prefix.
        let paid = block_on(store.query(&Query::tenant("default").event_type("order.paid").limit(1000))).unwrap();
        assert_eq!(paid.events.len(), 25);
        let orders = block_on(store.query(&Query::tenant("default").event_type_prefix("order.").limit(1000))).unwrap();
        assert_eq!(orders.events.len(), 50);
        let none = block_on(store.query(&Query::tenant("default").event_type_prefix("user.").limit(1000))).unwrap();
        assert!(none.events.is_empty());

        // Time range [since, until) and as_of (<=).
        let range = block_on(store.query(&Query::tenant("acme").since_us(1000).until_us(1010).limit(100))).unwrap();
        assert_eq!(range.events.len(), 10);
        let as_of = block_on(store.query(&Query::tenant("acme").as_of_us(1040).limit(100))).unwrap();
        assert_eq!(as_of.events.len(), 20, "acme events at 1000..1010 and 1030..1040");

        // Get by id is tenant-scoped.
        let (ev, ack) = &expected[7];
        let got = store.get(&ev.tenant_id, &ack.id).expect("found by id");
        assert_eq!((got.entity_id(), got.version()), (ev.entity_id.as_str(), ack.version));
        assert!(store.get("globex", &ack.id).is_none(), "another tenant's event is invisible");

        // State fold, now and as of an instant.
        let state = store.entity_state("acme", "e1", None).unwrap();
        assert_eq!((state.version, state.event_count), (5, 5));
        assert_eq!(state.state, json!({"n": 4, "entity": "e1"}));
        let then = store.entity_state("acme", "e1", Some(1031)).unwrap();
        assert_eq!((then.version, then.state["n"].clone()), (2, json!(1)));
        assert!(store.entity_state("acme", "nobody", None).is_none());
    };
    check(&store);
    store.close().unwrap();
    store.close().unwrap();
    let reopened = open(dir.path(), 2, 0);
    for report in reopened.recovery_reports() {
        assert_eq!((report.records_skipped, report.bytes_truncated), (0, 0), "{report}");
    }
    // Close wrote a checkpoint: the events come back from Parquet, not from the WAL.
    assert_eq!(reopened.recovery_reports().iter().map(|r| r.checkpoints.events).sum::<u64>(), 150);
    assert_eq!(reopened.recovery_reports().iter().map(|r| r.records_recovered).sum::<u64>(), 0);
    check(&reopened);
    // Versions continue after a reopen.
    let ack = block_on(reopened.append(event("acme", "e1", "order.paid", 9))).unwrap();
    assert_eq!(ack.version, 6);
    reopened.close().unwrap();
}

#[test]
fn versions_conflicts_and_idempotent_ids() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 2, 100);
    let first = block_on(store.append(event("a", "x", "t", 1).with_expected_version(0))).unwrap();
    assert_eq!(first.version, 1);
    // Tenants have their own versions for the same entity id.
    let other = block_on(store.append(event("b", "x", "t", 1).with_expected_version(0))).unwrap();
    assert_eq!(other.version, 1);

    let err = block_on(store.append(event("a", "x", "t", 2).with_expected_version(0))).unwrap_err();
    assert!(matches!(err, tidelog::Error::VersionConflict { expected: 0, current: 1, .. }), "{err}");

    // A batch with a conflict writes nothing.
    let batch = vec![event("a", "x", "t", 2), event("a", "x", "t", 3).with_expected_version(1)];
    assert!(block_on(store.append_batch(batch)).is_err());
    let hist = block_on(store.query(&Query::tenant("a").entity("x"))).unwrap();
    assert_eq!(hist.events.len(), 1);
    // In-batch expected versions count the batch's own earlier events.
    let batch = vec![event("a", "x", "t", 2).with_expected_version(1), event("a", "x", "t", 3).with_expected_version(2)];
    let acks = block_on(store.append_batch(batch)).unwrap();
    assert_eq!(acks.iter().map(|a| a.version).collect::<Vec<_>>(), vec![2, 3]);

    // Retrying an id returns the original and writes nothing.
    let id = uuid::Uuid::now_v7();
    let ev = NewEvent::new("y", "t", &json!({"v": 1})).with_tenant("a").with_id(id);
    let ack1 = block_on(store.append(ev.clone())).unwrap();
    let ack2 = block_on(store.append(ev.clone())).unwrap();
    assert_eq!((ack2.position, ack2.version, ack2.duplicate), (ack1.position, ack1.version, true));
    let acks = block_on(store.append_batch(vec![ev.clone(), ev.clone()])).unwrap();
    assert!(acks.iter().all(|a| a.duplicate && a.position == ack1.position));
    let hist = block_on(store.query(&Query::tenant("a").entity("y"))).unwrap();
    assert_eq!(hist.events.len(), 1);
    // The same id on another entity is refused.
    let err = block_on(store.append(NewEvent::new("z", "t", &json!({})).with_tenant("a").with_id(id))).unwrap_err();
    assert!(matches!(err, tidelog::Error::IdConflict { .. }), "{err}");
    store.close().unwrap();
}

#[test]
fn bad_input_is_rejected_with_the_field_named_and_nothing_written() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 1, 100);
    let batch = vec![event("a", "x", "t", 1), NewEvent::with_raw_payload("x", "t", "{oops")];
    let err = block_on(store.append_batch(batch)).unwrap_err();
    assert_eq!(err.to_string(), "invalid event: events[1].payload: not valid JSON: key must be a string at line 1 column 2");
    let err = block_on(store.append(NewEvent::new("", "t", &json!(1)))).unwrap_err();
    assert!(err.to_string().contains("entity_id: must not be empty"), "{err}");
    let err = block_on(store.query(&Query::tenant("a").limit(1_000_000))).unwrap_err();
    assert!(err.to_string().contains("over the maximum"), "{err}");
    assert_eq!(store.status()[0].events, 0);
    store.close().unwrap();
}

#[test]
fn reopening_with_another_shard_count_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    open(dir.path(), 2, 100).close().unwrap();
    let err = tidelog::Store::open(common::config(dir.path(), 1, 100)).err().expect("refused");
    assert!(err.to_string().contains("created with 2 shards"), "{err}");
    // Zero means "whatever the directory says".
    let store = tidelog::Store::open(common::config(dir.path(), 0, 100)).unwrap();
    assert_eq!(store.shard_count(), 2);
    let err = tidelog::Store::open(common::config(dir.path(), 0, 100)).err().expect("locked");
    assert!(err.to_string().contains("in use"), "{err}");
    store.close().unwrap();
}

/// Two entities of one tenant that live on different shards.
fn entities_on_two_shards(store: &tidelog::Store, tenant: &str) -> (String, String) {
    let first = "a0".to_string();
    let other = (1..).map(|i| format!("a{i}")).find(|e| store.shard_of(tenant, e) != store.shard_of(tenant, &first)).unwrap();
    (first, other)
}

#[test]
fn a_conflict_on_one_shard_writes_nothing_on_any_shard() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 2, 0);
    let (a, b) = entities_on_two_shards(&store, "t");
    block_on(store.append(event("t", &b, "x", 0))).unwrap();
    // a's part is fine, b's part conflicts (b is at version 1).
    let batch = vec![event("t", &a, "x", 1).with_expected_version(0), event("t", &b, "x", 2).with_expected_version(0)];
    let err = block_on(store.append_batch(batch)).unwrap_err();
    assert!(matches!(err, tidelog::Error::VersionConflict { index: 1, current: 1, .. }), "{err}");
    assert!(block_on(store.query(&Query::tenant("t").entity(a.clone()))).unwrap().events.is_empty(), "nothing on a's shard");
    // An id conflict on one shard also rejects the other shard's part.
    let taken = block_on(store.append(event("t", &b, "x", 3))).unwrap().id;
    let other_entity_same_shard = (0..).map(|i| format!("b{i}")).find(|e| store.shard_of("t", e) == store.shard_of("t", &b)).unwrap();
    let batch = vec![event("t", &a, "x", 4), event("t", &other_entity_same_shard, "x", 5).with_id(taken)];
    assert!(matches!(block_on(store.append_batch(batch)).unwrap_err(), tidelog::Error::IdConflict { .. }));
    assert!(block_on(store.query(&Query::tenant("t").entity(a.clone()))).unwrap().events.is_empty());
    // When every shard agrees, both parts are written, and the held entities are released afterwards.
    let batch = vec![event("t", &a, "x", 6).with_expected_version(0), event("t", &b, "x", 7).with_expected_version(2)];
    let acks = block_on(store.append_batch(batch)).unwrap();
    assert_eq!(acks.iter().map(|a| a.version).collect::<Vec<_>>(), vec![1, 3]);
    assert_eq!(block_on(store.append(event("t", &a, "x", 8))).unwrap().version, 2);
    store.close().unwrap();
}

#[test]
fn concurrent_cross_shard_batches_and_plain_appends_keep_versions_exact() {
    // Many threads race checked cross-shard batches against plain appends on the same entities. Batches
    // may lose (conflict or contention), but whatever is acknowledged must be exactly what is stored.
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 2, 100);
    let (a, b) = entities_on_two_shards(&store, "t");
    let acked = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for thread in 0..6u64 {
            let (store, a, b, acked) = (&store, &a, &b, &acked);
            scope.spawn(move || {
                for i in 0..200u64 {
                    let result = if thread % 2 == 0 {
                        let va = store.entity_state("t", a, None).map_or(0, |s| s.version);
                        let vb = store.entity_state("t", b, None).map_or(0, |s| s.version);
                        let batch = vec![
                            event("t", a, "x", i).with_expected_version(va),
                            event("t", b, "x", i).with_expected_version(vb),
                        ];
                        block_on(store.append_batch(batch))
                    } else {
                        block_on(store.append_batch(vec![event("t", if i % 2 == 0 { a } else { b }, "x", i)]))
                    };
                    match result {
                        Ok(acks) => acked.lock().unwrap().extend(acks.into_iter().map(|k| k.id)),
                        Err(tidelog::Error::VersionConflict { .. } | tidelog::Error::Contended { .. }) => {}
                        Err(e) => panic!("unexpected error: {e}"),
                    }
                }
            });
        }
    });
    let acked = acked.into_inner().unwrap();
    let mut stored = Vec::new();
    for entity in [&a, &b] {
        let history = block_on(store.query(&Query::tenant("t").entity(entity.clone()).limit(10_000))).unwrap();
        let versions: Vec<u64> = history.events.iter().map(|e| e.version()).collect();
        assert_eq!(versions, (1..=versions.len() as u64).collect::<Vec<_>>());
        stored.extend(history.events.iter().map(|e| e.id()));
    }
    stored.sort();
    let mut acked_sorted = acked.clone();
    acked_sorted.sort();
    assert_eq!(stored, acked_sorted, "stored events are exactly the acknowledged ones");
    store.close().unwrap();
}

#[test]
fn a_full_shard_queue_refuses_try_append_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path(), 1, 100);
    config.queue_capacity = 2;
    let store = tidelog::Store::open(config).unwrap();
    // Block the shard's executor so its inbox cannot drain.
    block_on(store.spawn_on(0, |_| async { std::thread::sleep(std::time::Duration::from_millis(700)) })).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(50));
    let waiting: Vec<_> = (0..2)
        .map(|i| {
            let store = store.clone();
            std::thread::spawn(move || block_on(store.append(event("t", &format!("w{i}"), "x", i))).unwrap())
        })
        .collect();
    while store.status()[0].queue_depth < 2 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let err = block_on(store.try_append_batch(vec![event("t", "refused", "x", 0)])).unwrap_err();
    assert!(matches!(err, tidelog::Error::Overloaded { shard: 0 }), "{err}");
    for w in waiting {
        w.join().unwrap();
    }
    // Once the shard drains, the queued appends are done and the refused one was never written.
    assert!(block_on(store.query(&Query::tenant("t").entity("refused"))).unwrap().events.is_empty());
    assert_eq!(store.status()[0].events, 2);
    assert_eq!(block_on(store.try_append(event("t", "later", "x", 0))).unwrap().version, 1);
    store.close().unwrap();
}

#[test]
fn a_relative_data_directory_works_across_segment_rolls() {
    // The default data directory is relative (./tidelog-data); segment rolls fsync its WAL directory.
    let relative = std::path::PathBuf::from(format!("target/test-relative-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&relative);
    let store = tidelog::Store::open(common::config(&relative, 1, 0)).unwrap();
    let batch: Vec<_> = (0..1500).map(|i| event("t", "e", "x", i)).collect();
    for chunk in batch.chunks(100) {
        block_on(store.append_batch(chunk.to_vec())).unwrap(); // 64 KiB segments: several rolls
    }
    assert!(std::fs::read_dir(relative.join("shard-0/wal")).unwrap().count() > 1, "the segments rolled");
    store.close().unwrap();
    let store = tidelog::Store::open(common::config(&relative, 1, 0)).unwrap();
    assert_eq!(store.recovery_reports()[0].events(), 1500);
    store.close().unwrap();
    std::fs::remove_dir_all(&relative).unwrap();
}

#[test]
fn type_queries_read_on_the_calling_thread_and_stay_exact_with_late_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path(), 2, 100);
    let mut acked = Vec::new();
    for n in 0..600u64 {
        let event_type = if n % 3 == 0 { "x.rare" } else { "x.common" };
        acked.push((event_type, block_on(store.append(event("t", &format!("e{}", n % 50), event_type, n))).unwrap()));
    }
    // The expected order of a type: by (timestamp, shard position), as the store sorts.
    let expect = |acked: &[(&str, tidelog::AppendAck)], t: &str, lo: i64, hi: i64| -> Vec<uuid::Uuid> {
        let mut m: Vec<_> = acked.iter().filter(|(et, a)| *et == t && a.timestamp_us >= lo && a.timestamp_us < hi).map(|(_, a)| a).collect();
        m.sort_by_key(|a| (a.timestamp_us, a.position, a.shard));
        m.into_iter().map(|a| a.id).collect()
    };
    let check = |acked: &[(&str, tidelog::AppendAck)]| {
        for t in ["x.rare", "x.common"] {
            let all = expect(acked, t, i64::MIN, i64::MAX);
            let asc = block_on(store.query(&Query::tenant("t").event_type(t).limit(10_000))).unwrap();
            assert_eq!(asc.events.iter().map(|e| e.id()).collect::<Vec<_>>(), all, "{t} asc");
            let desc = block_on(store.query(&Query::tenant("t").event_type(t).order(Order::Desc).limit(100))).unwrap();
            let last: Vec<_> = all.iter().rev().take(100).copied().collect();
            assert_eq!(desc.events.iter().map(|e| e.id()).collect::<Vec<_>>(), last, "{t} desc limit 100");
            let (lo, hi) = (acked[100].1.timestamp_us, acked[400].1.timestamp_us);
            let ranged = block_on(store.query(&Query::tenant("t").event_type(t).since_us(lo).until_us(hi).limit(10_000))).unwrap();
            assert_eq!(ranged.events.iter().map(|e| e.id()).collect::<Vec<_>>(), expect(acked, t, lo, hi), "{t} range");
        }
    };
    check(&acked);
    // An event with an earlier timestamp than those before it: that type is then answered by the shards.
    let early = acked[10].1.timestamp_us - 1;
    acked.push(("x.rare", block_on(store.append(event("t", "e1", "x.rare", 999).with_timestamp_us(early))).unwrap()));
    check(&acked);
    store.close().unwrap();
}

#[test]
fn deep_offsets_read_in_pages_give_exactly_the_merged_order() {
    // More events per shard than a page (`QUERY_PAGE_EVENTS`), with equal timestamps on both shards and
    // across page edges, and one type that also gets late timestamps (so its shards answer themselves).
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path(), 2, 100);
    let base_us = 1_700_000_000_000_000i64;
    let mut acked: Vec<(String, tidelog::AppendAck)> = Vec::new();
    for b in 0..100u64 {
        let batch: Vec<(String, tidelog::NewEvent)> = (0..250u64)
            .map(|k| {
                let n = b * 250 + k;
                let t = ["p.a", "p.b", "q.c"][(n % 3) as usize].to_string();
                // Runs of 40 events share one timestamp; "q.c" goes back in time now and then.
                let mut ts = base_us + (n / 40) as i64;
                if t == "q.c" && n % 7 == 0 {
                    ts -= 5_000;
                }
                (t.clone(), event("t", &format!("e{}", n % 300), &t, n).with_timestamp_us(ts))
            })
            .collect();
        let types: Vec<String> = batch.iter().map(|(t, _)| t.clone()).collect();
        let acks = block_on(store.append_batch(batch.into_iter().map(|(_, e)| e).collect())).unwrap();
        acked.extend(types.into_iter().zip(acks));
    }
    assert!(store.status().iter().all(|s| s.events as usize > 3 * tidelog::query::QUERY_PAGE_EVENTS));
    let expect = |keep: &dyn Fn(&str, i64) -> bool, order: Order| -> Vec<uuid::Uuid> {
        let mut m: Vec<&tidelog::AppendAck> = acked.iter().filter(|(t, a)| keep(t, a.timestamp_us)).map(|(_, a)| a).collect();
        m.sort_by_key(|a| (a.timestamp_us, a.position, a.shard));
        if order == Order::Desc {
            m.reverse();
        }
        m.into_iter().map(|a| a.id).collect()
    };
    let (lo, hi) = (base_us + 50, base_us + 300);
    let cases: Vec<(&str, Query, Box<dyn Fn(&str, i64) -> bool>)> = vec![
        ("tenant", Query::tenant("t"), Box::new(|_, _| true)),
        ("type from the shared keys", Query::tenant("t").event_type("p.a"), Box::new(|t, _| t == "p.a")),
        ("type with late keys", Query::tenant("t").event_type("q.c"), Box::new(|t, _| t == "q.c")),
        ("prefix", Query::tenant("t").event_type_prefix("p."), Box::new(|t, _| t.starts_with("p."))),
        ("range", Query::tenant("t").since_us(lo).until_us(hi), Box::new(move |_, ts| ts >= lo && ts < hi)),
    ];
    for (name, query, keep) in &cases {
        for order in [Order::Asc, Order::Desc] {
            let all = expect(keep.as_ref(), order);
            for offset in [0, 1, 4095, 4096, 8191, 9000, all.len() - 3, all.len(), all.len() + 10] {
                for limit in [1, 100, 5000, 10_000] {
                    let q = query.clone().order(order).offset(offset).limit(limit);
                    let page = block_on(store.query(&q)).unwrap();
                    let want: Vec<uuid::Uuid> = all.iter().skip(offset).take(limit).copied().collect();
                    let got: Vec<uuid::Uuid> = page.events.iter().map(|e| e.id()).collect();
                    assert_eq!(got, want, "{name} {order:?} offset {offset} limit {limit}");
                    assert_eq!(page.has_more, offset + limit < all.len(), "{name} {order:?} offset {offset} limit {limit}: has_more");
                }
            }
        }
    }
    let stats = block_on(store.tenant_stats("t")).unwrap();
    assert_eq!((stats.events, stats.entities), (25_000, 300));
    store.close().unwrap();
}

/// The files of `dir` this process has open (through `/proc/self/fd`).
fn files_open_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let dir = dir.canonicalize().unwrap();
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter(|target| target.starts_with(&dir))
        .collect()
}

#[test]
fn a_closed_or_halted_store_holds_no_file_of_its_directory_open() {
    // A process that opens and closes stores (an embedding application, a test suite) must not leak a
    // descriptor per open: the WAL segments being written are closed before the shards stop.
    let dir = tempfile::tempdir().unwrap();
    for round in 0..4u64 {
        let store = open(dir.path(), 2, if round % 2 == 0 { 0 } else { 100 });
        // Enough to roll the 64 KiB segments of the test configuration on both shards.
        for chunk in 0..4u64 {
            let batch: Vec<NewEvent> = (0..100u64)
                .map(|i| NewEvent::new(format!("e{}", (chunk * 100 + i) % 17), "x.y", &json!({ "pad": "p".repeat(200) })).with_tenant("acme"))
                .collect();
            block_on(store.append_batch(batch)).unwrap();
        }
        assert!(!files_open_under(dir.path()).is_empty(), "an open store has its WAL open");
        if round < 2 {
            store.close().unwrap();
        } else {
            store.halt();
        }
        drop(store);
        let open = files_open_under(dir.path());
        assert!(open.is_empty(), "round {round}: still open after {}: {open:?}", if round < 2 { "close" } else { "halt" });
    }
}
