//! A batch that spans shards is seen wholly or not at all, on every read route, while it is written:
//! writers append cross-shard batches (each with its own event type, and its own tenant for the counts),
//! and readers count each batch's members by type, by type prefix, in tenant stats, by id and in entity
//! state, and through SQL. Every count is 0 or the whole batch.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tidelog::{NewEvent, Query};

const MEMBERS: u64 = 40;

fn batch(writer: u64, n: u64) -> Vec<NewEvent> {
    (0..MEMBERS)
        .map(|e| {
            NewEvent::new(format!("w{writer}-b{n}-e{e}"), format!("t{writer}-{n}"), &serde_json::json!({"e": e}))
                .with_tenant(format!("w{writer}-b{n}"))
        })
        .collect()
}

/// The sum of the first column of `sql`'s rows (a count, or counts per group) over the tenant's events,
/// through the SQL engine (on its side runtime).
#[cfg(feature = "sql")]
fn sql_count(store: &tidelog::Store, tenant: &str, sql: &'static str) -> u64 {
    use arrow::array::AsArray;
    let limits = tidelog::sql::SqlLimits::default();
    let task = tidelog::sql::QueryTask::spawn({
        let (store, tenant) = (store.clone(), tenant.to_string());
        async move { tidelog::sql::collect(&store, &tenant, sql, &limits, 100).await }
    });
    let (_, batches) = common::block_on(task).unwrap().unwrap();
    batches.iter().flat_map(|b| b.column(0).as_primitive::<arrow::datatypes::Int64Type>().values().to_vec()).sum::<i64>() as u64
}

#[test]
fn readers_see_cross_shard_batches_wholly_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path(), 2, 0);
    assert!((0..MEMBERS).map(|e| store.shard_of("w0-b0", &format!("w0-b0-e{e}"))).collect::<std::collections::HashSet<_>>().len() == 2);
    let stop = Arc::new(AtomicBool::new(false));
    let written: Arc<Mutex<Vec<(u64, u64)>>> = Arc::default();
    let ids: Arc<Mutex<Vec<(String, Vec<uuid::Uuid>)>>> = Arc::default();
    let writers: Vec<_> = (0..4u64)
        .map(|w| {
            let (store, stop, written, ids) = (store.clone(), stop.clone(), written.clone(), ids.clone());
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    written.lock().unwrap().push((w, n));
                    let acks = common::block_on(store.append_batch(batch(w, n))).expect("append");
                    ids.lock().unwrap().push((format!("w{w}-b{n}"), acks.iter().map(|a| a.id).collect()));
                    n += 1;
                }
            })
        })
        .collect();
    let torn = Arc::new(AtomicU64::new(0));
    let reads = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..3u64)
        .map(|r| {
            let (store, stop, written, ids, torn, reads) =
                (store.clone(), stop.clone(), written.clone(), ids.clone(), torn.clone(), reads.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let recent: Vec<(u64, u64)> = written.lock().unwrap().iter().rev().take(8).copied().collect();
                    for &(w, n) in &recent {
                        let tenant = format!("w{w}-b{n}");
                        let by_type = common::block_on(store.query(&Query::tenant(&tenant).event_type(format!("t{w}-{n}")).limit(1000)))
                            .unwrap()
                            .events
                            .len() as u64;
                        let by_prefix = common::block_on(store.query(&Query::tenant(&tenant).event_type_prefix("t").limit(1000)))
                            .unwrap()
                            .events
                            .len() as u64;
                        let stats = common::block_on(store.tenant_stats(&tenant)).unwrap();
                        for (what, count) in [("type", by_type), ("prefix", by_prefix), ("stats", stats.events), ("entities", stats.entities)] {
                            if count != 0 && count != MEMBERS {
                                torn.fetch_add(1, Ordering::Relaxed);
                                eprintln!("reader {r}: {what} saw {count} of batch {tenant}");
                            }
                        }
                        reads.fetch_add(1, Ordering::Relaxed);
                    }
                    // SQL reads every shard at one snapshot of the commit order (one query per round: it
                    // scans the shard, not an index).
                    // A count per type and per entity is answered from the indexes (`IndexCountExec`).
                    #[cfg(feature = "sql")]
                    if let Some(&(w, n)) = recent.first() {
                        let sql = [
                            "SELECT count(*) AS n FROM events",
                            "SELECT count(*) AS n, event_type FROM events GROUP BY event_type",
                            "SELECT count(*) AS n, entity_id FROM events GROUP BY entity_id",
                        ][reads.load(Ordering::Relaxed) as usize % 3];
                        let count = sql_count(&store, &format!("w{w}-b{n}"), sql);
                        if count != 0 && count != MEMBERS {
                            torn.fetch_add(1, Ordering::Relaxed);
                            eprintln!("reader {r}: {sql} saw {count} of batch w{w}-b{n}");
                        }
                    }
                    // By id and entity state: a batch whose ack came back is whole.
                    let last = ids.lock().unwrap().last().cloned();
                    if let Some((tenant, ids)) = last {
                        let found = ids.iter().filter(|id| store.get(&tenant, id).is_some()).count();
                        assert_eq!(found as u64, MEMBERS, "an acknowledged batch is wholly visible by id");
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    writers.into_iter().chain(readers).for_each(|t| t.join().unwrap());
    let batches = written.lock().unwrap().len();
    eprintln!("{batches} batches written, {} batch reads, {} torn", reads.load(Ordering::Relaxed), torn.load(Ordering::Relaxed));
    assert!(batches > 20 && reads.load(Ordering::Relaxed) > 100, "too little happened to show anything");
    assert_eq!(torn.load(Ordering::Relaxed), 0, "some read saw part of a batch");
    store.close().unwrap();
}
