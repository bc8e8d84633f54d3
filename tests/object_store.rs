//! Shipping to an object store and restoring from it (`--object-store`, `tidelog restore`): a killed
//! store is rebuilt with every event acknowledged before the last complete shipping round, and while the
//! object store refuses writes, appends go on and no WAL segment is deleted until the shipped
//! checkpoints cover it. Against a local directory (`file://`); `tests/object_store_s3.rs` runs against
//! a real S3 server.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::crash::{assert_no_corruption, load_and_kill, verify_acks, Load};
use common::{block_on, event, wait_until};
use tidelog::ship::ObjectStoreConfig;
use tidelog::{NewEvent, Store};

fn file_url(dir: &Path) -> String {
    format!("file://{}", dir.display())
}

/// `tidelog --data-dir DIR restore --from URL`; returns its output.
fn restore(dir: &Path, url: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_tidelog")).arg("--data-dir").arg(dir).args(["restore", "--from", url]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "restore failed: {text}");
    text
}

fn shipped_through_us(remote: &Path) -> i64 {
    let text = std::fs::read(remote.join("SHIPPED.json")).expect("a round completed");
    serde_json::from_slice::<serde_json::Value>(&text).unwrap()["shipped_through_us"].as_i64().unwrap()
}

fn segments(dir: &Path, shard: usize) -> Vec<u64> {
    tidelog::wal::segment::list_segments(&tidelog::layout::wal_dir(dir, shard)).unwrap().into_iter().map(|s| s.0).collect()
}

#[test]
fn a_killed_store_is_restored_with_every_event_acknowledged_before_the_last_round() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, remote, restored) = (tmp.path().join("data"), tmp.path().join("remote"), tmp.path().join("restored"));
    let url = file_url(&remote);
    let seed = common::crash::seed("object_store");
    let kill_after = Duration::from_millis(1200 + seed % 800);
    let load = Load {
        store_args: &["--object-store", &url, "--ship-interval-ms", "100", "--checkpoint-events", "20000"],
        load_args: &["--tasks", "16", "--entities", "400"],
        fsync_interval_ms: 100,
        kill_after,
        first_ack_within: Duration::from_secs(30),
    };
    let acks = load_and_kill(&dir, &load);
    let through_us = shipped_through_us(&remote);
    let shipped: Vec<_> = acks.iter().filter(|a| a.seen_us < through_us).cloned().collect();
    assert!(shipped.len() * 2 > acks.len(), "{} of {} acknowledged events shipped by the last round", shipped.len(), acks.len());
    assert!(remote.join("shard-0/checkpoints/MANIFEST.json").exists(), "checkpoints are shipped too");
    let text = restore(&restored, &url);
    assert!(text.contains("restored") && text.contains("shipped through"), "{text}");
    let store = common::open(&restored, 2, 100);
    assert_no_corruption(&store);
    verify_acks(&store, &shipped);
    store.close().unwrap();
}

fn config(dir: &Path, remote: &Path) -> tidelog::StoreConfig {
    let mut config = common::config(dir, 2, 100).segment_size_bytes(1 << 18).checkpoint_events(4000).checkpoint_interval_s(0);
    config.object_store = Some(ObjectStoreConfig { ship_interval_ms: 50, ..ObjectStoreConfig::new(file_url(remote)) });
    config
}

fn append_batches(store: &Store, batches: u64, tag: &str) {
    for b in 0..batches {
        let events: Vec<NewEvent> = (0..100).map(|i| event("default", &format!("{tag}-{}", (b * 100 + i) % 97), "t", b * 100 + i)).collect();
        block_on(store.append_batch(events)).unwrap();
    }
}

#[test]
fn while_the_object_store_refuses_writes_appends_go_on_and_the_wal_stays() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, remote, restored) = (tmp.path().join("data"), tmp.path().join("remote"), tmp.path().join("restored"));
    std::fs::create_dir_all(&remote).unwrap();
    // A file where shard 0's directory would be: every upload of shard 0 fails (ENOTDIR).
    std::fs::write(remote.join("shard-0"), b"in the way").unwrap();
    let store = Store::open(config(&dir, &remote)).unwrap();
    append_batches(&store, 200, "a");
    let checkpoint = tidelog::layout::manifest_file(&tidelog::layout::checkpoint_dir(&dir, 0));
    wait_until("a local checkpoint of shard 0", || checkpoint.exists());
    wait_until("the failure reported", || store.ship_status().unwrap().last_error.is_some());
    let status = store.ship_status().unwrap();
    assert!(status.last_error.as_deref().unwrap().contains("shard-0"), "{status:?}");
    // Checkpointed locally, not shipped: the WAL keeps every segment.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(segments(&dir, 0)[0], 1, "the first segment is kept until the object store has a checkpoint covering it");
    append_batches(&store, 50, "b"); // appends are acknowledged all along

    std::fs::remove_file(remote.join("shard-0")).unwrap();
    wait_until("shipping recovered", || {
        let s = store.ship_status().unwrap();
        s.last_error.is_none() && s.shipped_through_us.is_some() && s.lag_ms < 5_000
    });
    wait_until("covered segments deleted once shipped", || segments(&dir, 0)[0] > 1);
    let through_us = store.ship_status().unwrap().shipped_through_us.unwrap();
    let after_last_append_us = tidelog::time::now_us();
    wait_until("a round after the last append", || store.ship_status().unwrap().shipped_through_us.unwrap() > after_last_append_us);
    assert!(through_us > 0);
    store.halt(); // a crash: no last round

    restore(&restored, &file_url(&remote));
    let store = common::open(&restored, 2, 100);
    let events: u64 = store.recovery_reports().iter().map(|r| r.events()).sum();
    assert_eq!(events, 25_000, "every event appended before the last round is restored");
    store.close().unwrap();
}

#[test]
fn restore_refuses_a_non_empty_directory_and_an_empty_prefix() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, remote) = (tmp.path().join("data"), tmp.path().join("remote"));
    std::fs::create_dir_all(&remote).unwrap();
    let run = |dir: &Path| Command::new(env!("CARGO_BIN_EXE_tidelog")).arg("--data-dir").arg(dir).args(["restore", "--from", &file_url(&remote)]).output().unwrap();
    let out = run(&dir);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("holds no tidelog store"), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("something"), b"x").unwrap();
    let out = run(&dir);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_prefix_holding_another_store_is_not_shipped_to() {
    let tmp = tempfile::tempdir().unwrap();
    let remote = tmp.path().join("remote");
    let first = Store::open(config(&tmp.path().join("one"), &remote)).unwrap();
    append_batches(&first, 1, "a");
    first.close().unwrap();
    let second = Store::open(config(&tmp.path().join("two"), &remote)).unwrap();
    append_batches(&second, 1, "b");
    wait_until("the refusal reported", || second.ship_status().unwrap().last_error.is_some_and(|e| e.contains("another store")));
    second.close().unwrap();
    // The first store's history is untouched.
    let text = restore(&tmp.path().join("restored"), &file_url(&remote));
    assert!(text.contains("restored 100 events"), "{text}");
}


#[test]
fn a_reopened_store_ships_on_from_where_it_stopped() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, remote) = (tmp.path().join("data"), tmp.path().join("remote"));
    let store = Store::open(config(&dir, &remote)).unwrap();
    append_batches(&store, 30, "a");
    store.close().unwrap();
    // The open segment is shipped again from its start (recovery may cut a tail); the rest goes on.
    let store = Store::open(config(&dir, &remote)).unwrap();
    append_batches(&store, 30, "b");
    let after_last_append_us = tidelog::time::now_us();
    wait_until("a round after the last append", || store.ship_status().unwrap().shipped_through_us.is_some_and(|t| t > after_last_append_us));
    store.halt();
    let text = restore(&tmp.path().join("restored"), &file_url(&remote));
    assert!(text.contains("restored 6000 events"), "{text}");
    assert!(!text.contains("after a gap"), "{text}");
}

#[test]
fn shipped_checkpoints_leave_the_local_disk_beyond_the_budget_and_come_back_at_open() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, remote) = (tmp.path().join("data"), tmp.path().join("remote"));
    let tiered = |dir: &Path| {
        let mut config = config(dir, &remote);
        config.object_store.as_mut().unwrap().local_checkpoint_budget_bytes = Some(0);
        config
    };
    let parquet_files = |dir: &Path| -> usize {
        (0..2)
            .map(|k| std::fs::read_dir(tidelog::layout::checkpoint_dir(dir, k)).unwrap().filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "parquet")).count())
            .sum()
    };
    let store = Store::open(tiered(&dir)).unwrap();
    append_batches(&store, 200, "a");
    wait_until("shipped checkpoints dropped locally", || {
        parquet_files(&dir) == 0 && std::fs::read_dir(remote.join("shard-0/checkpoints")).is_ok_and(|d| d.count() > 1)
    });
    store.close().unwrap();
    assert_eq!(parquet_files(&dir), 0, "a budget of 0 keeps no shipped checkpoint locally");
    // Reopened, the store fetches what its manifests name before recovery loads it.
    let store = Store::open(tiered(&dir)).unwrap();
    let events: u64 = store.recovery_reports().iter().map(|r| r.events()).sum();
    assert_eq!(events, 20_000);
    assert!(store.recovery_reports().iter().all(|r| r.checkpoints.files > 0), "loaded from the fetched checkpoints");
    store.close().unwrap();
}

/// The Delta table of the history (`PREFIX/tables/events`) gets each checkpointed event once, however the
/// shipper's commits and the kills interleave: two loads SIGKILLed mid-stream (checkpoints every 3,000
/// events, so commits are under way when the kill comes), then a clean open and close, which checkpoints
/// and ships the rest. Python deltalake and DuckDB (`scripts/delta-readers.sh`) then count exactly the
/// events the checkpoints hold, none twice.
#[test]
fn killed_loads_append_every_checkpointed_event_to_the_delta_table_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, remote) = (tmp.path().join("data"), tmp.path().join("remote"));
    let url = file_url(&remote);
    let seed = common::crash::seed("object_store_delta");
    for round in 0..2u64 {
        let load = Load {
            store_args: &["--object-store", &url, "--ship-interval-ms", "50", "--checkpoint-events", "3000"],
            load_args: &["--tasks", "8", "--entities", "200"],
            fsync_interval_ms: 100,
            kill_after: Duration::from_millis(900 + (seed + round * 337) % 700),
            first_ack_within: Duration::from_secs(30),
        };
        load_and_kill(&dir, &load);
    }
    let out = Command::new(env!("CARGO_BIN_EXE_tidelog")).arg("--data-dir").arg(&dir).args(["--object-store", &url, "recover"]).output().unwrap();
    assert!(out.status.success(), "recover: {}", String::from_utf8_lossy(&out.stderr));
    let mut checkpointed = 0u64;
    for shard in 0..2 {
        let manifest = tidelog::layout::manifest_file(&tidelog::layout::checkpoint_dir(&dir, shard));
        let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(manifest).unwrap()).unwrap();
        checkpointed += manifest["checkpoints"].as_array().unwrap().iter().map(|c| c["events"].as_u64().unwrap()).sum::<u64>();
    }
    assert!(checkpointed > 6_000, "{checkpointed} events checkpointed");
    let table = format!("{url}/tables/events");
    let out = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/delta-readers.sh"))
        .args([table.as_str(), "--expect-rows", &checkpointed.to_string()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the Delta table: {text}");
    eprintln!("{checkpointed} events checkpointed; readers: {text}");

    // A node rebuilt from the object store (same store id) continues its shards' transactions: shipping
    // to a new prefix, into the same table, it appends only its new events.
    let restored = tmp.path().join("restored");
    restore(&restored, &url);
    let out = Command::new(env!("CARGO_BIN_EXE_tidelog"))
        .arg("--data-dir")
        .arg(&restored)
        .args(["--object-store", &file_url(&tmp.path().join("remote-2")), "--delta-table", &table, "load", "--events", "5000", "--tasks", "2"])
        .output()
        .unwrap();
    assert!(out.status.success(), "load on the restored node: {}", String::from_utf8_lossy(&out.stderr));
    let out = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/delta-readers.sh"))
        .args([table.as_str(), "--expect-rows", &(checkpointed + 5000).to_string()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the Delta table after the restored node's load: {text}");
}

/// A Delta table that cannot be written (a file where its directory would be) never holds back the WAL's
/// shipping: rounds complete, the table's error shows on its own, and once the way is clear the table
/// gets every checkpointed event.
#[test]
fn a_delta_table_that_cannot_be_written_does_not_hold_back_shipping() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, remote, blocked) = (tmp.path().join("data"), tmp.path().join("remote"), tmp.path().join("tables"));
    std::fs::write(&blocked, b"in the way").unwrap();
    let mut config = config(&dir, &remote);
    let table = format!("{}/events", file_url(&blocked));
    config.object_store.as_mut().unwrap().delta_table = Some(table.clone());
    let store = Store::open(config).unwrap();
    append_batches(&store, 100, "a");
    wait_until("the table's failure reported", || store.ship_status().unwrap().delta_last_error.is_some());
    let after_appends_us = tidelog::time::now_us();
    wait_until("a complete round after the appends", || {
        let s = store.ship_status().unwrap();
        s.last_error.is_none() && s.shipped_through_us.is_some_and(|t| t > after_appends_us)
    });
    let shipped = |k: usize| remote.join(format!("shard-{k}/checkpoints/MANIFEST.json")).exists();
    wait_until("a checkpoint shipped", || shipped(0) || shipped(1));
    assert!(store.ship_status().unwrap().delta_last_error.is_some());
    assert_eq!(store.ship_status().unwrap().delta_commits, 0);

    std::fs::remove_file(&blocked).unwrap();
    wait_until("the table caught up", || {
        let s = store.ship_status().unwrap();
        s.delta_last_error.is_none() && s.delta_commits > 0
    });
    store.close().unwrap();
    let mut checkpointed = 0u64;
    for shard in 0..2 {
        let manifest = tidelog::layout::manifest_file(&tidelog::layout::checkpoint_dir(&dir, shard));
        let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(manifest).unwrap()).unwrap();
        checkpointed += manifest["checkpoints"].as_array().unwrap().iter().map(|c| c["events"].as_u64().unwrap()).sum::<u64>();
    }
    assert_eq!(checkpointed, 10_000, "close checkpointed every event");
    let out = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/delta-readers.sh"))
        .args([table.as_str(), "--expect-rows", "10000"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the Delta table: {text}");
}
