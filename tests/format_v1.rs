//! The on-disk format across versions (docs/FORMAT.md): a directory written in version 1 opens, keeps its
//! events and is marked version 2; single appends and single-shard batches are framed exactly as in
//! version 1 (no part header), and only a part of a cross-shard batch starts with one.

mod common;

use std::path::Path;

use common::{block_on, config};
use serde_json::json;
use tidelog::{NewEvent, Query, Store};

const TENANT: &str = "t";

fn ev(entity: &str, event_type: &str) -> NewEvent {
    NewEvent::new(entity, event_type, &json!({ "x": 1 })).with_tenant(TENANT)
}

fn count(store: &Store, event_type: &str) -> usize {
    block_on(store.query(&Query::tenant(TENANT).event_type(event_type).limit(1_000))).unwrap().events.len()
}

fn segments(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut all = Vec::new();
    for shard in 0..2 {
        for entry in std::fs::read_dir(dir.join(format!("shard-{shard}")).join("wal")).unwrap() {
            all.push(entry.unwrap().path());
        }
    }
    all
}

/// The `len_word` of every record of a segment, up to the end of the log.
fn len_words(segment: &Path) -> Vec<u32> {
    let data = std::fs::read(segment).unwrap();
    let mut offset = 32;
    let mut words = Vec::new();
    while offset + 8 <= data.len() {
        let word = u32::from_le_bytes(data[offset..offset + 4].try_into().unwrap());
        if word == 0 {
            break;
        }
        words.push(word);
        offset += 8 + (word & ((1 << 28) - 1)) as usize;
    }
    words
}

const PART_HEADER: u32 = 1 << 30;

fn entities_on_both_shards(store: &Store) -> (String, String) {
    let on = |shard| (0..).map(|i| format!("e{i}")).find(|e| store.shard_of(TENANT, e) == shard).unwrap();
    (on(0), on(1))
}

#[test]
fn only_cross_shard_parts_carry_a_part_header() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path(), 2, 0).without_checkpoints()).unwrap();
    let (a, b) = entities_on_both_shards(&store);
    block_on(store.append(ev(&a, "single"))).unwrap();
    block_on(store.append_batch(vec![ev(&a, "one-shard"), ev(&a, "one-shard")])).unwrap();
    store.close().unwrap();
    for segment in segments(dir.path()) {
        assert!(len_words(&segment).iter().all(|w| w & PART_HEADER == 0), "{}", segment.display());
    }
    let store = Store::open(config(dir.path(), 2, 0).without_checkpoints()).unwrap();
    block_on(store.append_batch(vec![ev(&a, "both"), ev(&b, "both"), ev(&b, "both")])).unwrap();
    store.close().unwrap();
    for segment in segments(dir.path()) {
        let words = len_words(&segment);
        let headers: Vec<usize> = (0..words.len()).filter(|&i| words[i] & PART_HEADER != 0).collect();
        assert_eq!(headers.len(), 1, "one part header per shard: {}", segment.display());
        // The header continues into its part's events, and is followed by them.
        assert!(words[headers[0]] & (1 << 31) != 0);
        assert!(headers[0] + 1 < words.len());
    }
    let store = Store::open(config(dir.path(), 2, 0).without_checkpoints()).unwrap();
    assert_eq!((count(&store, "single"), count(&store, "one-shard"), count(&store, "both")), (1, 2, 3));
    assert!(store.batch_decisions().iter().all(|d| d.kept()) && store.batch_decisions().len() == 1);
    store.close().unwrap();
}

/// Rewrites a directory as version 1 wrote it: `tidelog.json`, segment headers and manifests say 1.
fn mark_version_1(dir: &Path) {
    let meta = dir.join("tidelog.json");
    let text = std::fs::read_to_string(&meta).unwrap().replace("\"format_version\": 2", "\"format_version\": 1");
    std::fs::write(&meta, text).unwrap();
    for segment in segments(dir) {
        let mut data = std::fs::read(&segment).unwrap();
        data[8..12].copy_from_slice(&1u32.to_le_bytes());
        let crc = crc32fast::hash(&data[0..28]);
        data[28..32].copy_from_slice(&crc.to_le_bytes());
        std::fs::write(&segment, data).unwrap();
    }
    for shard in 0..2 {
        let manifest = dir.join(format!("shard-{shard}")).join("checkpoints").join("MANIFEST.json");
        if let Ok(text) = std::fs::read_to_string(&manifest) {
            assert!(!text.contains("batches"), "version 1 had no part records");
            std::fs::write(&manifest, text.replace("\"format_version\": 2", "\"format_version\": 1")).unwrap();
        }
    }
}

#[test]
fn a_version_1_directory_opens_keeps_its_events_and_is_marked_version_2() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path(), 2, 0)).unwrap();
    let (a, b) = entities_on_both_shards(&store);
    for _ in 0..5 {
        block_on(store.append(ev(&a, "old"))).unwrap();
        block_on(store.append(ev(&b, "old"))).unwrap();
    }
    block_on(store.checkpoint()).unwrap();
    block_on(store.append(ev(&b, "old-tail"))).unwrap();
    store.halt();
    mark_version_1(dir.path());

    let store = Store::open(config(dir.path(), 2, 0)).unwrap();
    assert_eq!((count(&store, "old"), count(&store, "old-tail")), (10, 1));
    let meta = std::fs::read_to_string(dir.path().join("tidelog.json")).unwrap();
    assert!(meta.contains("\"format_version\": 2"), "{meta}");
    block_on(store.append_batch(vec![ev(&a, "new"), ev(&b, "new")])).unwrap();
    store.close().unwrap();

    let store = Store::open(config(dir.path(), 2, 0)).unwrap();
    assert_eq!((count(&store, "old"), count(&store, "old-tail"), count(&store, "new")), (10, 1, 2));
    store.close().unwrap();
}
