//! Parquet checkpoints: round trip through a checkpoint and a reopen, WAL trimming, compaction, files
//! any Parquet reader reads, and what recovery does with damaged, half-written and stray files.

mod common;

use std::path::{Path, PathBuf};

use common::{block_on, event};
use serde_json::json;
use tidelog::checkpoint::{CheckpointDamage, Manifest, MANIFEST_FILE, SET_ASIDE_DIR};
use tidelog::{Error, Order, Query, Store, StoreConfig};

fn config(dir: &Path, shards: usize) -> StoreConfig {
    // Automatic checkpoints off (by count and time): the tests say when.
    common::config(dir, shards, 0).checkpoint_events(0).checkpoint_interval_s(0)
}

fn checkpoint_dir(dir: &Path, shard: usize) -> PathBuf {
    dir.join(format!("shard-{shard}/checkpoints"))
}

fn wal_segments(dir: &Path, shard: usize) -> usize {
    std::fs::read_dir(dir.join(format!("shard-{shard}/wal"))).unwrap().count()
}

fn manifest(dir: &Path, shard: usize) -> Manifest {
    Manifest::load(&checkpoint_dir(dir, shard), shard as u32).unwrap()
}

/// Everything a reader can observe of a store, for before/after comparisons.
fn snapshot(store: &Store) -> Vec<String> {
    let mut seen = Vec::new();
    for tenant in ["acme", "globex"] {
        let all = block_on(store.query(&Query::tenant(tenant).limit(10_000))).unwrap();
        seen.extend(all.events.iter().map(|e| tidelog::api::event_json(e).to_string()));
        let desc = block_on(store.query(&Query::tenant(tenant).order(Order::Desc).event_type("order.paid").limit(7))).unwrap();
        seen.extend(desc.events.iter().map(|e| format!("desc {}", e.id())));
        for e in 0..20 {
            let entity = format!("e{e}");
            let state = store.entity_state(tenant, &entity, None).map(|s| (s.state, s.version, s.event_count));
            seen.push(format!("state {tenant} {entity} {state:?}"));
            let as_of = store.entity_state(tenant, &entity, Some(2_000)).map(|s| (s.state, s.version));
            seen.push(format!("as_of {tenant} {entity} {as_of:?}"));
        }
    }
    seen
}

/// `rounds` batches over 2 tenants x 20 entities, with metadata on some events.
fn append_rounds(store: &Store, rounds: std::ops::Range<u64>) {
    for round in rounds {
        let batch: Vec<_> = ["acme", "globex"]
            .iter()
            .flat_map(|tenant| {
                (0..20).map(move |e| {
                    let t = if e % 3 == 0 { "order.paid" } else { "order.created" };
                    let ev = event(tenant, &format!("e{e}"), t, round).with_timestamp_us(1_000 + round as i64 * 100 + e);
                    if e % 2 == 0 {
                        ev.with_metadata(&json!({"round": round, "note": "ünïcødé"}))
                    } else {
                        ev
                    }
                })
            })
            .collect();
        block_on(store.append_batch(batch)).unwrap();
    }
}

#[test]
fn events_round_trip_through_checkpoints_and_the_wal_tail() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path(), 2)).unwrap();
    append_rounds(&store, 0..30); // 1,200 events: many 64 KiB segments per shard
    let segments_before: usize = (0..2).map(|k| wal_segments(dir.path(), k)).sum();
    let covered = block_on(store.checkpoint()).unwrap();
    let status = store.status();
    for (k, s) in status.iter().enumerate() {
        assert_eq!(covered[k], s.visible_position, "FSYNC 0: everything acknowledged is synced and checkpointed");
        assert_eq!((s.checkpoints_written, s.checkpoint_failures), (1, 0));
        assert!(s.wal_segments_deleted > 0, "covered segments are deleted");
    }
    let segments_after: usize = (0..2).map(|k| wal_segments(dir.path(), k)).sum();
    assert!(segments_after < segments_before && segments_after <= 2 * 2, "{segments_before} -> {segments_after} segments");
    append_rounds(&store, 30..40); // a WAL tail after the checkpoint
    let before = snapshot(&store);
    store.halt(); // a crash: no checkpoint on close, the tail comes from the WAL

    let store = Store::open(config(dir.path(), 2)).unwrap();
    let reports = store.recovery_reports();
    assert_eq!(reports.iter().map(|r| r.checkpoints.events).sum::<u64>(), 1200, "{reports:?}");
    assert_eq!(reports.iter().map(|r| r.records_recovered).sum::<u64>(), 400, "only the tail is replayed");
    assert!(reports.iter().all(|r| r.records_skipped == 0 && r.checkpoints.set_aside.is_empty()));
    assert_eq!(snapshot(&store), before, "queries, versions and state folds are identical");
    // Versions continue from the recovered ones.
    let ack = block_on(store.append(event("acme", "e1", "order.paid", 99))).unwrap();
    assert_eq!(ack.version, 41);
    let before = snapshot(&store);
    store.close().unwrap(); // writes a checkpoint of the tail

    let store = Store::open(config(dir.path(), 2)).unwrap();
    let reports = store.recovery_reports().to_vec();
    assert_eq!(reports.iter().map(|r| r.checkpoints.events).sum::<u64>(), 1601);
    assert_eq!(reports.iter().map(|r| r.records_recovered).sum::<u64>(), 0);
    assert_eq!(snapshot(&store), before);
    store.close().unwrap();
}

#[test]
fn checkpoint_files_are_plain_parquet() {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path(), 1)).unwrap();
    append_rounds(&store, 0..5);
    let first = block_on(store.query(&Query::tenant("acme").limit(1))).unwrap().events.remove(0);
    store.close().unwrap();
    let m = manifest(dir.path(), 0);
    assert_eq!(m.checkpoints.len(), 1);
    let entry = &m.checkpoints[0];
    assert_eq!((entry.first_position, entry.last_position, entry.events), (1, 200, 200));
    // The parquet crate's generic reader, no tidelog code: schema, row count, values.
    let file = std::fs::File::open(checkpoint_dir(dir.path(), 0).join(&entry.file)).unwrap();
    let reader = SerializedFileReader::new(file).unwrap();
    let meta = reader.metadata();
    assert_eq!(meta.file_metadata().num_rows(), 200);
    let names: Vec<&str> = meta.file_metadata().schema_descr().columns().iter().map(|c| c.name()).collect();
    assert_eq!(names, ["position", "id", "tenant_id", "entity_id", "event_type", "timestamp", "version", "payload", "metadata"]);
    assert_eq!(meta.row_group(0).column(0).compression(), parquet::basic::Compression::SNAPPY);
    assert!(meta.row_group(0).column(0).statistics().is_some(), "column statistics are written");
    let row = reader.get_row_iter(None).unwrap().next().unwrap().unwrap();
    let text = row.to_string();
    assert!(text.contains("position: 1"), "{text}");
    assert!(text.contains(&format!("entity_id: \"{}\"", first.entity_id())), "{text}");
    assert!(text.contains("tenant_id: \"acme\""), "{text}");
}

#[test]
fn many_checkpoints_are_compacted_and_still_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), 1);
    cfg.checkpoints.compact_target_events = 500;
    cfg.checkpoints.compact_min_files = 3;
    let store = Store::open(cfg.clone()).unwrap();
    for round in 0..12 {
        append_rounds(&store, round..round + 1); // 40 events per checkpoint
        block_on(store.checkpoint()).unwrap();
    }
    let s = &store.status()[0];
    assert_eq!((s.checkpoints_written, s.checkpoint_failures), (12, 0));
    assert!(s.compactions >= 2, "{s:?}");
    let m = manifest(dir.path(), 0);
    assert!(m.checkpoints.len() <= 4, "{} files after compaction: {m:?}", m.checkpoints.len());
    assert_eq!(m.events(), 480);
    let on_disk = std::fs::read_dir(checkpoint_dir(dir.path(), 0)).unwrap().count();
    assert_eq!(on_disk, m.checkpoints.len() + 1, "replaced files are deleted (the +1 is the manifest)");
    let before = snapshot(&store);
    store.halt();
    let store = Store::open(cfg).unwrap();
    assert_eq!(store.recovery_reports()[0].checkpoints.events, 480);
    assert_eq!(snapshot(&store), before);
    store.close().unwrap();
}

#[test]
fn stray_and_half_written_files_are_set_aside_not_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path(), 1)).unwrap();
    append_rounds(&store, 0..3);
    store.close().unwrap();
    let cdir = checkpoint_dir(dir.path(), 0);
    let real = manifest(dir.path(), 0).checkpoints[0].file.clone();
    // What a crash can leave: an empty temporary file, a half-written one, a finished file the manifest
    // never named, and a half-written manifest.
    std::fs::write(cdir.join("00000000000000000121-00000000000000000200.parquet.tmp"), b"").unwrap();
    let bytes = std::fs::read(cdir.join(&real)).unwrap();
    std::fs::write(cdir.join("00000000000000000121-00000000000000000300.parquet.tmp"), &bytes[..bytes.len() / 2]).unwrap();
    std::fs::write(cdir.join("00000000000000000121-00000000000000000400.parquet"), &bytes).unwrap();
    std::fs::write(cdir.join(format!("{MANIFEST_FILE}.tmp")), b"{\"format_vers").unwrap();

    let store = Store::open(config(dir.path(), 1)).unwrap();
    let r = store.recovery_reports()[0].clone();
    assert_eq!((r.checkpoints.events, r.checkpoints.files, r.checkpoints.events_lost), (120, 1, 0), "{r}");
    assert_eq!(r.checkpoints.set_aside.len(), 4, "{r:?}");
    assert!(r.checkpoints.set_aside.iter().any(|f| f.reason.contains("unfinished write")));
    assert!(r.checkpoints.set_aside.iter().any(|f| f.reason.contains("not named by the manifest")));
    assert!(r.to_string().contains("4 files set aside"), "{r}");
    assert_eq!(std::fs::read_dir(cdir.join(SET_ASIDE_DIR)).unwrap().count(), 4);
    assert_eq!(store.status()[0].events, 120, "nothing doubled, nothing lost");
    store.close().unwrap();
}

/// Damages the only checkpoint of a 1-shard store whose WAL no longer holds its events.
fn damaged_store(dir: &Path, damage: impl Fn(&mut Vec<u8>)) -> (PathBuf, Vec<String>) {
    let store = Store::open(config(dir, 1)).unwrap();
    append_rounds(&store, 0..20); // 800 events over several segments
    block_on(store.checkpoint()).unwrap();
    append_rounds(&store, 20..25); // 200 more in the WAL only
    let tail: Vec<String> = block_on(store.query(&Query::tenant("acme").limit(10_000)))
        .unwrap()
        .events
        .iter()
        .filter(|e| e.position() > 800)
        .map(|e| e.id().to_string())
        .collect();
    store.halt();
    let m = manifest(dir, 0);
    let wal_first: u64 = std::fs::read_dir(dir.join("shard-0/wal"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy()[..20].parse().unwrap())
        .min()
        .unwrap();
    assert!(wal_first > 1, "the first segments are gone, so only the checkpoint holds their events");
    let path = checkpoint_dir(dir, 0).join(&m.checkpoints[0].file);
    let mut bytes = std::fs::read(&path).unwrap();
    damage(&mut bytes);
    std::fs::write(&path, &bytes).unwrap();
    (path, tail)
}

#[test]
fn a_damaged_checkpoint_refuses_to_open_and_says_what_to_do() {
    for (what, damage) in [
        ("bit flip", Box::new(|b: &mut Vec<u8>| {
            let middle = b.len() / 2;
            b[middle] ^= 0x10
        }) as Box<dyn Fn(&mut Vec<u8>)>),
        ("truncated", Box::new(|b: &mut Vec<u8>| b.truncate(b.len() / 3))),
        ("zero length", Box::new(|b: &mut Vec<u8>| b.clear())),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (path, tail) = damaged_store(dir.path(), damage);
        let err = Store::open(config(dir.path(), 1)).err().unwrap_or_else(|| panic!("{what}: opened"));
        let text = err.to_string();
        assert!(matches!(err, Error::Checkpoint(_)), "{what}: {text}");
        for needle in [path.to_str().unwrap(), "800 events", "positions 1..=800", "Restore the file", "--checkpoint-damage set-aside"] {
            assert!(text.contains(needle), "{what}: {needle:?} missing from: {text}");
        }
        assert!(path.exists(), "{what}: refusing moves nothing");

        // The operator chooses to go on: the file is set aside, the rest of the data is all there.
        let store = Store::open(config(dir.path(), 1).checkpoint_damage(CheckpointDamage::SetAside)).unwrap();
        let r = store.recovery_reports()[0].clone();
        assert_eq!((r.checkpoints.events_lost, r.checkpoints.files), (800, 0), "{what}: {r}");
        assert_eq!(r.records_recovered, 200, "{what}: the WAL tail still loads: {r}");
        assert!(r.to_string().contains("800 events LOST"), "{r}");
        assert!(!path.exists() && checkpoint_dir(dir.path(), 0).join(SET_ASIDE_DIR).read_dir().unwrap().count() == 1);
        for id in &tail {
            assert!(store.get("acme", &id.parse().unwrap()).is_some(), "{what}: WAL event {id} kept");
        }
        // New appends go on after the lost positions, and the next open is clean.
        let ack = block_on(store.append(event("acme", "new", "x", 1))).unwrap();
        assert_eq!(ack.position, 1001);
        store.close().unwrap();
        let store = Store::open(config(dir.path(), 1)).unwrap();
        assert_eq!(store.status()[0].events, 201, "{what}");
        store.close().unwrap();
    }
}

#[test]
fn a_damaged_checkpoint_the_wal_still_holds_is_replaced_by_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    // One big segment: nothing is ever trimmed, so the WAL holds every event the checkpoint does.
    let cfg = config(dir.path(), 1).segment_size_bytes(64 << 20);
    let store = Store::open(cfg.clone()).unwrap();
    append_rounds(&store, 0..10);
    block_on(store.checkpoint()).unwrap();
    append_rounds(&store, 10..12);
    let before = snapshot(&store);
    store.halt();
    let m = manifest(dir.path(), 0);
    let path = checkpoint_dir(dir.path(), 0).join(&m.checkpoints[0].file);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&path, &bytes).unwrap();

    let store = Store::open(cfg).unwrap(); // default policy (Refuse): nothing is lost, so it opens
    let r = store.recovery_reports()[0].clone();
    assert_eq!((r.checkpoints.events, r.checkpoints.events_lost, r.records_recovered), (0, 0, 480), "{r}");
    assert_eq!(r.checkpoints.set_aside.len(), 1);
    assert!(r.checkpoints.set_aside[0].reason.contains("replayed from the WAL"), "{:?}", r.checkpoints.set_aside);
    assert_eq!(snapshot(&store), before);
    assert!(manifest(dir.path(), 0).checkpoints.is_empty(), "the manifest no longer names it");
    store.close().unwrap();
}

#[test]
fn a_lost_manifest_is_refused_not_taken_for_a_new_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path(), 1)).unwrap();
    append_rounds(&store, 0..20);
    block_on(store.checkpoint()).unwrap(); // trims the WAL: the first positions are only in Parquet
    append_rounds(&store, 20..22);
    store.halt();
    std::fs::remove_file(checkpoint_dir(dir.path(), 0).join(MANIFEST_FILE)).unwrap();
    let err = Store::open(config(dir.path(), 1)).err().expect("refused");
    let text = err.to_string();
    assert!(text.contains("has no MANIFEST.json") && text.contains("--checkpoint-damage set-aside"), "{text}");
    // The operator's choice: open with what the WAL holds, the orphaned checkpoint set aside.
    let store = Store::open(config(dir.path(), 1).checkpoint_damage(CheckpointDamage::SetAside)).unwrap();
    let r = store.recovery_reports()[0].clone();
    assert_eq!(r.checkpoints.set_aside.len(), 1, "{r}");
    assert!(r.records_skipped > 0, "the lost positions are reported: {r}");
    store.close().unwrap();
}
