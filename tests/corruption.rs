//! Recovery from damaged WAL files: torn tails, bit flips, torn batches, lost segments. Every test writes a
//! real 1-shard store, damages its segment files on disk at offsets found by parsing the frames (see
//! `docs/FORMAT.md`), reopens it and checks the recovery report and what queries return.

mod common;

use std::collections::HashMap;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use common::{block_on, config};
use serde_json::{json, Value};
use tidelog::event::ArchivedEvent;
use tidelog::{AppendAck, Error, MidLogCorruption, NewEvent, Query, RecoveryReport, Store, StoredEvent};
use uuid::Uuid;

const TENANT: &str = "t";
const SEGMENT_HEADER_BYTES: usize = 32;
const LEN_MASK: u32 = (1 << 28) - 1;
const FLAG_BATCH_CONTINUES: u32 = 1 << 31;

// ---------------------------------------------------------------------------------------------------------
// Reading the WAL by hand.

/// One record of a segment, as found by our own parser.
#[derive(Debug, Clone)]
struct Rec {
    /// Offset of the record's `len_word`.
    offset: usize,
    /// Offset just past the record's body.
    end: usize,
    continues: bool,
    position: u64,
    id: Uuid,
}

impl Rec {
    fn len(&self) -> usize {
        self.end - self.offset
    }
}

fn wal_dir(dir: &Path) -> PathBuf {
    dir.join("shard-0").join("wal")
}

/// The segment files, in position order.
fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(wal_dir(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    paths.sort();
    paths
}

fn first_position(segment: &Path) -> u64 {
    segment.file_stem().unwrap().to_str().unwrap().parse().unwrap()
}

/// Parses an undamaged segment: every frame must check out. Returns the records; the log ends at the
/// first all-zero record header.
fn parse(bytes: &[u8]) -> Vec<Rec> {
    assert_eq!(&bytes[0..8], b"TIDELOG\0", "segment magic");
    let mut recs = Vec::new();
    let mut offset = SEGMENT_HEADER_BYTES;
    while offset + 8 <= bytes.len() {
        let len_word = u32::from_le_bytes(bytes[offset..offset + 4].try_into().unwrap());
        let crc = u32::from_le_bytes(bytes[offset + 4..offset + 8].try_into().unwrap());
        if len_word == 0 && crc == 0 {
            break;
        }
        let body_len = (len_word & LEN_MASK) as usize;
        assert!(body_len > 0 && body_len % 8 == 0, "bad length {body_len} at {offset}");
        assert_eq!(len_word & (0b111 << 28), 0, "reserved bits at {offset}");
        let body = &bytes[offset + 8..offset + 8 + body_len];
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&len_word.to_le_bytes());
        hasher.update(body);
        assert_eq!(hasher.finalize(), crc, "checksum of the record at {offset}");
        let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(body_len);
        aligned.extend_from_slice(body);
        let event = rkyv::access::<ArchivedEvent, rkyv::rancor::Error>(&aligned).expect("valid archive");
        recs.push(Rec {
            offset,
            end: offset + 8 + body_len,
            continues: len_word & FLAG_BATCH_CONTINUES != 0,
            position: event.position.to_native(),
            id: Uuid::from_bytes(event.id),
        });
        offset += 8 + body_len;
    }
    recs
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

/// Overwrites bytes in place (the file keeps its pre-allocated size).
fn overwrite(path: &Path, offset: usize, data: &[u8]) {
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.write_all_at(data, offset as u64).unwrap();
    file.sync_all().unwrap();
}

fn zero(path: &Path, start: usize, end: usize) {
    overwrite(path, start, &vec![0u8; end - start]);
}

fn flip_bit(path: &Path, offset: usize, bit: u8) {
    let bytes = read(path);
    overwrite(path, offset, &[bytes[offset] ^ (1 << bit)]);
}

/// Bytes from `from` up to and including the last non-zero byte of the file: what recovery has to cut off
/// when the log ends at `from` (zeros after that are just the pre-allocated end of the file).
fn nonzero_extent(bytes: &[u8], from: usize) -> u64 {
    bytes[from..].iter().rposition(|&b| b != 0).map_or(0, |i| i as u64 + 1)
}

fn assert_zeros_from(path: &Path, from: usize) {
    let bytes = read(path);
    if let Some(i) = bytes[from..].iter().position(|&b| b != 0) {
        panic!("{}: non-zero byte at offset {} after the end of the log at {from}", path.display(), from + i);
    }
}

// ---------------------------------------------------------------------------------------------------------
// Building and checking events.

/// An event whose payload carries a unique marker (so its bytes can be found in the file) and `pad`
/// bytes of filler.
fn ev(entity: &str, i: usize, pad: usize) -> NewEvent {
    NewEvent::new(entity, "thing.happened", &payload(entity, i, pad)).with_tenant(TENANT).with_id(Uuid::now_v7())
}

fn payload(entity: &str, i: usize, pad: usize) -> Value {
    json!({ "marker": marker(i), "entity": entity, "i": i, "pad": "p".repeat(pad) })
}

fn marker(i: usize) -> String {
    format!("marker-{i:06}")
}

/// What was appended and acknowledged.
#[derive(Debug, Clone)]
struct Sent {
    entity: String,
    i: usize,
    pad: usize,
    ack: AppendAck,
}

fn append_one(store: &Store, entity: &str, i: usize, pad: usize) -> Sent {
    let ack = block_on(store.append(ev(entity, i, pad))).expect("append");
    Sent { entity: entity.to_string(), i, pad, ack }
}

fn open(dir: &Path) -> Store {
    Store::open(config(dir, 1, 0).without_checkpoints()).expect("open store")
}

fn open_with(dir: &Path, policy: MidLogCorruption) -> Result<Store, Error> {
    Store::open(config(dir, 1, 0).without_checkpoints().mid_log_corruption(policy))
}

fn report(store: &Store) -> RecoveryReport {
    assert_eq!(store.recovery_reports().len(), 1);
    store.recovery_reports()[0].clone()
}

fn history(store: &Store, entity: &str) -> Vec<StoredEvent> {
    block_on(store.query(&Query::tenant(TENANT).entity(entity).limit(10_000))).unwrap().events
}

fn all_events(store: &Store) -> Vec<StoredEvent> {
    let result = block_on(store.query(&Query::tenant(TENANT).limit(10_000))).unwrap();
    assert!(!result.has_more);
    result.events
}

/// The store holds exactly `present` (each intact, once, by id, in its entity's history and in the tenant
/// scan) and none of `absent`.
fn check_contents(store: &Store, present: &[&Sent], absent: &[&Sent]) {
    for sent in present {
        let got = store.get(TENANT, &sent.ack.id).unwrap_or_else(|| panic!("event {} ({}) lost", sent.i, sent.ack.id));
        assert_eq!(got.entity_id(), sent.entity);
        assert_eq!(got.version(), sent.ack.version, "version of event {}", sent.i);
        assert_eq!(got.position(), sent.ack.position, "position of event {}", sent.i);
        assert_eq!(got.timestamp_us(), sent.ack.timestamp_us);
        let body: Value = serde_json::from_str(got.payload_json()).unwrap();
        assert_eq!(body, payload(&sent.entity, sent.i, sent.pad), "payload of event {}", sent.i);
    }
    for sent in absent {
        assert!(store.get(TENANT, &sent.ack.id).is_none(), "event {} ({}) should be gone", sent.i, sent.ack.id);
    }
    // Entity histories: exactly the present events of each entity, in version order.
    let mut by_entity: HashMap<&str, Vec<&Sent>> = HashMap::new();
    for sent in present.iter().chain(absent) {
        by_entity.entry(&sent.entity).or_default();
    }
    for sent in present {
        by_entity.get_mut(sent.entity.as_str()).unwrap().push(sent);
    }
    for (entity, mut want) in by_entity {
        want.sort_by_key(|s| s.ack.version);
        let got = history(store, entity);
        let got: Vec<(Uuid, u64)> = got.iter().map(|e| (e.id(), e.version())).collect();
        let want: Vec<(Uuid, u64)> = want.iter().map(|s| (s.ack.id, s.ack.version)).collect();
        assert_eq!(got, want, "history of entity {entity}");
        let state = store.entity_state(TENANT, entity, None);
        assert_eq!(state.map(|s| s.event_count), (!want.is_empty()).then_some(want.len() as u64));
    }
    // The tenant scan: every present event exactly once, nothing else.
    let mut scanned: Vec<Uuid> = all_events(store).iter().map(|e| e.id()).collect();
    scanned.sort();
    let mut want: Vec<Uuid> = present.iter().map(|s| s.ack.id).collect();
    want.sort();
    assert_eq!(scanned, want, "tenant scan");
    assert_eq!(store.status()[0].events, present.len() as u64);
}

fn assert_clean(report: &RecoveryReport, recovered: u64) {
    assert_eq!(report.records_recovered, recovered, "{report}");
    assert_eq!(report.records_skipped, 0, "{report}");
    assert_eq!(report.corrupt_bytes_skipped, 0, "{report}");
    assert_eq!(report.bytes_truncated, 0, "{report}");
}

fn refs(sent: &[Sent]) -> Vec<&Sent> {
    sent.iter().collect()
}

// ---------------------------------------------------------------------------------------------------------

/// 1 (and 7). The last record is cut in half: recovery drops it, keeps the rest, and after a new append
/// and another reopen the log is clean and the torn event never comes back.
#[test]
fn torn_last_record_is_truncated_and_never_reappears() {
    let dir = tempfile::tempdir().unwrap();
    const N: usize = 12;
    let store = open(dir.path());
    let mut sent = Vec::new();
    for i in 0..N {
        let entity = ["a", "b", "c"][i % 3];
        // The last record spans several 4 KiB blocks, so what survives of it is longer than the record
        // appended after recovery: stale bytes would follow that one if truncation left them there.
        let pad = if i == N - 1 { 9000 } else { 40 };
        sent.push(append_one(&store, entity, i, pad));
    }
    store.close().unwrap();

    let segs = segments(dir.path());
    assert_eq!(segs.len(), 1);
    let seg = &segs[0];
    let recs = parse(&read(seg));
    assert_eq!(recs.len(), N);
    assert!(recs.iter().zip(&sent).all(|(r, s)| r.id == s.ack.id && r.position == s.ack.position && !r.continues));
    let last = recs[N - 1].clone();
    // Cut the last record in half: its second half becomes zeros, as after a torn write.
    zero(seg, last.offset + last.len() / 2, last.end);
    let cut = nonzero_extent(&read(seg), last.offset);
    assert!(cut > 0);

    let store = open(dir.path());
    let r = report(&store);
    assert_eq!(r.records_recovered, N as u64 - 1, "{r}");
    assert_eq!((r.records_skipped, r.corrupt_bytes_skipped), (0, 0), "a torn tail is not mid-log corruption: {r}");
    assert!(r.bytes_truncated > 0, "{r}");
    // What survived of the record (its first half) is exactly what was cut off.
    assert_eq!(r.bytes_truncated, cut, "{r}");
    assert_eq!(r.last_position, N as u64 - 1, "{r}");
    let (kept, torn) = sent.split_at(N - 1);
    check_contents(&store, &refs(kept), &refs(torn));
    // Recovery zeroed everything after the last complete record, on disk.
    assert_zeros_from(seg, recs[N - 2].end);

    // Appending continues at the torn record's position and version.
    let torn = &torn[0];
    let new = append_one(&store, &torn.entity, 100, 8);
    assert_eq!(new.ack.position, torn.ack.position);
    assert_eq!(new.ack.version, torn.ack.version);
    store.close().unwrap();

    // 7. Stale bytes after the truncation point never come back: the log is clean, with exactly the
    // records we expect, and nothing but zeros after them.
    let store = open_with(dir.path(), MidLogCorruption::Fail).expect("a clean log opens even with Fail");
    assert_clean(&report(&store), N as u64);
    let mut present = refs(kept);
    present.push(&new);
    check_contents(&store, &present, &[torn]);
    store.close().unwrap();
    let recs = parse(&read(seg));
    assert_eq!(recs.iter().map(|r| r.id).collect::<Vec<_>>(), present.iter().map(|s| s.ack.id).collect::<Vec<_>>());
    assert_zeros_from(seg, recs.last().unwrap().end);
}

/// 2. Zeros after the last record are the normal end of the log, in the last segment and in full ones:
/// a clean reopen skips and truncates nothing, and writes nothing.
#[test]
fn zero_padded_tail_is_a_clean_end_of_log() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut sent = Vec::new();
    // ~2 KiB records: about 30 per 64 KiB segment, so this makes 3 segments.
    for i in 0..75 {
        sent.push(append_one(&store, ["a", "b"][i % 2], i, 2000));
    }
    let batch: Vec<NewEvent> = (75..80).map(|i| ev("c", i, 10)).collect();
    let acks = block_on(store.append_batch(batch)).unwrap();
    for (k, ack) in acks.into_iter().enumerate() {
        sent.push(Sent { entity: "c".into(), i: 75 + k, pad: 10, ack });
    }
    store.close().unwrap();

    let segs = segments(dir.path());
    assert!(segs.len() >= 3, "{} segments", segs.len());
    let mut before = Vec::new();
    let mut total = 0;
    for seg in &segs {
        let bytes = read(seg);
        let recs = parse(&bytes);
        assert!(!recs.is_empty());
        assert_eq!(recs[0].position, first_position(seg));
        let end = recs.last().unwrap().end;
        assert!(end < bytes.len(), "pre-allocated: zeros follow the last record");
        assert_zeros_from(seg, end);
        total += recs.len();
        before.push(bytes);
    }
    assert_eq!(total, 80);

    for round in 0..2 {
        let store = open_with(dir.path(), MidLogCorruption::Fail).unwrap();
        let r = report(&store);
        assert_clean(&r, 80);
        assert_eq!((r.segments as usize, r.last_position), (segs.len(), 80), "round {round}: {r}");
        check_contents(&store, &refs(&sent), &[]);
        store.close().unwrap();
        let after: Vec<Vec<u8>> = segs.iter().map(|s| read(s)).collect();
        assert!(after == before, "round {round}: a clean recovery must not change the segment files");
    }
}

/// 3. A flipped bit in the payload of a record that has records after it: with Skip that one event is
/// gone and reported, everything else is intact; with Fail the store refuses to open.
#[test]
fn flipped_payload_bit_mid_segment_is_skipped_or_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let sent: Vec<Sent> = (0..10).map(|i| append_one(&store, ["a", "b"][i % 2], i, 30)).collect();
    store.close().unwrap();
    let seg = &segments(dir.path())[0];
    let bytes = read(seg);
    let recs = parse(&bytes);
    assert_eq!(recs.len(), 10);

    // Damage event 4 (records follow it): flip the low bit of a digit of its marker in the payload, which
    // turns "marker-000004" into "marker-000005", still well-formed JSON and a well-formed archive.
    const K: usize = 4;
    let needle = marker(K);
    let at = bytes.windows(needle.len()).position(|w| w == needle.as_bytes()).expect("marker in the file");
    assert!(at > recs[K].offset + 8 && at + needle.len() <= recs[K].end, "the marker is in record {K}'s body");
    flip_bit(seg, at + needle.len() - 1, 0);
    let damaged = read(seg);
    assert_eq!(&damaged[at..at + needle.len()], marker(K + 1).as_bytes());

    // Fail: refuses, names the problem, and leaves the file as it was.
    let err = open_with(dir.path(), MidLogCorruption::Fail).err().expect("Fail refuses mid-log corruption");
    assert!(err.to_string().contains("mid-log corruption"), "{err}");
    assert!(read(seg) == damaged, "a refused open must not touch the file");

    // Skip (the default).
    let store = open(dir.path());
    let r = report(&store);
    assert_eq!(r.records_skipped, 1, "{r}");
    assert_eq!(r.corrupt_bytes_skipped, recs[K].len() as u64, "exactly the damaged record: {r}");
    assert_eq!((r.records_recovered, r.bytes_truncated, r.last_position), (9, 0, 10), "{r}");
    let present: Vec<&Sent> = sent.iter().filter(|s| s.i != K).collect();
    check_contents(&store, &present, &[&sent[K]]);
    // The damaged event's payload did not turn into another one.
    let fives: Vec<StoredEvent> =
        all_events(&store).into_iter().filter(|e| e.payload_json().contains(&marker(K + 1))).collect();
    assert_eq!(fives.len(), 1);

    // The store keeps working: append, reopen, same damage reported, the new event is there.
    let new = append_one(&store, "b", 50, 30);
    assert_eq!(new.ack.position, 11);
    store.close().unwrap();
    let store = open(dir.path());
    let r = report(&store);
    assert_eq!((r.records_recovered, r.records_skipped, r.bytes_truncated), (10, 1, 0), "{r}");
    let mut present = present;
    present.push(&new);
    check_contents(&store, &present, &[&sent[K]]);
    store.close().unwrap();
}

/// 4. A flipped bit in a record's length word (or checksum) is detected: the record is skipped and
/// reported, never read with a wrong length or a wrong batch flag.
#[test]
fn flipped_length_word_bits_are_detected() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let sent: Vec<Sent> = (0..10).map(|i| append_one(&store, ["a", "b", "c"][i % 3], i, 30)).collect();
    store.close().unwrap();
    let seg = segments(dir.path())[0].clone();
    let pristine = read(&seg);
    let recs = parse(&pristine);
    const K: usize = 3;

    // Bits of the 8-byte record header: 0..28 length (0: not a multiple of 8, 3/4/9: a plausible other
    // length, 20/27: longer than the file), 28..31 reserved, 31 "batch continues"; 32.. the checksum.
    for bit in [0u32, 3, 4, 9, 20, 27, 28, 30, 31, 32, 45, 63] {
        std::fs::write(&seg, &pristine).unwrap();
        flip_bit(&seg, recs[K].offset + (bit / 8) as usize, (bit % 8) as u8);

        let err =
            open_with(dir.path(), MidLogCorruption::Fail).err().unwrap_or_else(|| panic!("bit {bit}: Fail opened"));
        assert!(err.to_string().contains("mid-log corruption"), "bit {bit}: {err}");

        let store = open(dir.path());
        let r = report(&store);
        assert_eq!(r.records_skipped, 1, "bit {bit}: {r}");
        assert_eq!(r.corrupt_bytes_skipped, recs[K].len() as u64, "bit {bit}: {r}");
        assert_eq!((r.records_recovered, r.bytes_truncated), (9, 0), "bit {bit}: {r}");
        let present: Vec<&Sent> = sent.iter().filter(|s| s.i != K).collect();
        check_contents(&store, &present, &[&sent[K]]);
        store.close().unwrap();
    }
}

/// 5. A multi-event batch whose final record is missing or torn is dropped whole: its first records are
/// intact on disk, but the batch was never complete.
#[test]
fn torn_batch_is_dropped_whole() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let singles: Vec<Sent> = (0..3).map(|i| append_one(&store, "a", i, 30)).collect();
    let entities = ["a", "b", "b", "c", "a"];
    let batch: Vec<NewEvent> = entities.iter().enumerate().map(|(k, e)| ev(e, 10 + k, 1500)).collect();
    let acks = block_on(store.append_batch(batch)).unwrap();
    let batch: Vec<Sent> = acks
        .into_iter()
        .enumerate()
        .map(|(k, ack)| Sent { entity: entities[k].into(), i: 10 + k, pad: 1500, ack })
        .collect();
    assert_eq!(batch.iter().map(|s| s.ack.position).collect::<Vec<_>>(), vec![4, 5, 6, 7, 8]);
    store.close().unwrap();

    let seg = segments(dir.path())[0].clone();
    let pristine = read(&seg);
    let recs = parse(&pristine);
    assert_eq!(recs.len(), 8);
    // The batch is framed as one: all but its last record carry "batch continues".
    let continues: Vec<bool> = recs.iter().map(|r| r.continues).collect();
    assert_eq!(continues, [false, false, false, true, true, true, true, false]);
    let last = &recs[7];

    let damages: [(&str, usize, usize); 3] = [
        ("last record zeroed", last.offset, last.end),
        ("last record torn in half", last.offset + last.len() / 2, last.end),
        ("torn inside the fourth record", recs[6].offset + recs[6].len() / 2, last.end),
    ];
    for (what, start, end) in damages {
        std::fs::write(&seg, &pristine).unwrap();
        zero(&seg, start, end);
        let left = nonzero_extent(&read(&seg), recs[3].offset);
        assert!(left > 0, "{what}: the batch's first records are still on disk");
        let store = open(dir.path());
        let r = report(&store);
        assert_eq!(r.records_recovered, 3, "{what}: the whole batch is dropped: {r}");
        assert_eq!((r.records_skipped, r.corrupt_bytes_skipped), (0, 0), "{what}: {r}");
        assert!(r.bytes_truncated > 0, "{what}: {r}");
        assert_eq!(r.bytes_truncated, left, "{what}: everything the batch left is cut off: {r}");
        assert_eq!(r.last_position, 3, "{what}: {r}");
        check_contents(&store, &refs(&singles), &refs(&batch));
        assert_eq!(history(&store, "a").iter().map(|e| e.version()).collect::<Vec<_>>(), vec![1, 2, 3], "{what}");
        store.close().unwrap();
        assert_zeros_from(&seg, recs[2].end);
    }

    // The store goes on from the batch's first position, and reopens clean.
    let store = open(dir.path());
    let new = append_one(&store, "b", 20, 8);
    assert_eq!((new.ack.position, new.ack.version), (4, 1));
    store.close().unwrap();
    let store = open_with(dir.path(), MidLogCorruption::Fail).unwrap();
    assert_clean(&report(&store), 4);
    let mut present = refs(&singles);
    present.push(&new);
    check_contents(&store, &present, &refs(&batch));
    store.close().unwrap();
}

/// 6. A deleted middle segment: Skip reports every position it held as skipped and keeps the rest; Fail
/// refuses to open.
#[test]
fn deleted_middle_segment_is_reported_or_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let entities = ["a", "b", "c", "d"];
    let mut sent = Vec::new();
    for i in 0..100 {
        sent.push(append_one(&store, entities[i % 4], i, 2000));
    }
    store.close().unwrap();

    let segs = segments(dir.path());
    assert!(segs.len() >= 3, "{} segments", segs.len());
    let middle = &segs[1];
    let lost = parse(&read(middle));
    assert!(!lost.is_empty());
    assert_eq!(lost.len() as u64, first_position(&segs[2]) - first_position(middle));
    std::fs::remove_file(middle).unwrap();

    let err = open_with(dir.path(), MidLogCorruption::Fail).err().expect("Fail refuses a missing segment");
    assert!(err.to_string().contains("mid-log corruption") && err.to_string().contains("missing"), "{err}");

    let (absent, present): (Vec<&Sent>, Vec<&Sent>) = sent.iter().partition(|s| lost.iter().any(|r| r.id == s.ack.id));
    assert_eq!(absent.len(), lost.len());
    for round in 0..2 {
        let store = open(dir.path());
        let r = report(&store);
        assert_eq!(r.records_skipped, lost.len() as u64, "round {round}: {r}");
        assert_eq!(r.records_recovered, (100 - lost.len()) as u64, "round {round}: {r}");
        assert_eq!((r.bytes_truncated, r.last_position), (0, 100), "round {round}: {r}");
        assert_eq!(r.segments as usize, segs.len() - 1, "round {round}: {r}");
        check_contents(&store, &present, &absent);
        store.close().unwrap();
    }

    // New events continue each entity's versions after its last surviving one.
    let store = open(dir.path());
    let new = append_one(&store, "a", 500, 8);
    assert_eq!(new.ack.position, 101);
    assert_eq!(new.ack.version, 26, "entity a had versions 1..=25");
    store.close().unwrap();
}

/// 7. Stale bytes after the truncation point never come back. Here they are whole, valid records (the
/// first four of a batch whose last record is lost), which would decode if recovery left them on disk.
#[test]
fn stale_records_after_truncation_never_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let singles: Vec<Sent> = (0..3).map(|i| append_one(&store, "a", i, 30)).collect();
    let batch: Vec<NewEvent> = (0..5).map(|k| ev("a", 10 + k, 1000)).collect();
    let acks = block_on(store.append_batch(batch)).unwrap();
    let batch: Vec<Sent> =
        acks.into_iter().enumerate().map(|(k, ack)| Sent { entity: "a".into(), i: 10 + k, pad: 1000, ack }).collect();
    store.close().unwrap();

    let seg = segments(dir.path())[0].clone();
    let recs = parse(&read(&seg));
    assert_eq!(recs.len(), 8);
    zero(&seg, recs[7].offset, recs[7].end);
    let committed_end = recs[2].end;
    let left = nonzero_extent(&read(&seg), committed_end);
    assert!(left as usize > recs[6].offset - committed_end, "four whole batch records are left on disk");

    let store = open(dir.path());
    let r = report(&store);
    assert_eq!((r.records_recovered, r.last_position), (3, 3), "{r}");
    assert_eq!(r.bytes_truncated, left, "{r}");
    // The four valid-looking batch records are gone from the file, not just ignored.
    assert_zeros_from(&seg, committed_end);
    // Small appends that reuse the batch's positions and land where its records were.
    let new: Vec<Sent> = (0..3).map(|k| append_one(&store, "a", 20 + k, 8)).collect();
    assert_eq!(new.iter().map(|s| s.ack.version).collect::<Vec<_>>(), vec![4, 5, 6]);
    assert!(parse(&read(&seg)).last().unwrap().end < recs[4].offset, "the new records end inside the old batch");
    store.close().unwrap();

    // Fail would refuse any leftover record as mid-log corruption or an unfinished batch.
    let store = open_with(dir.path(), MidLogCorruption::Fail).expect("clean");
    assert_clean(&report(&store), 6);
    let mut present = refs(&singles);
    present.extend(new.iter());
    check_contents(&store, &present, &refs(&batch));
    store.close().unwrap();
    let recs = parse(&read(&seg));
    assert_eq!(recs.len(), 6);
    assert_zeros_from(&seg, recs[5].end);
}
