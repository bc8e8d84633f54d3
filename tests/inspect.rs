//! `tidelog inspect`: a read-only check of a data directory.

use std::process::Command;

fn tidelog(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tidelog")).args(args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

#[test]
fn inspect_reports_damage_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let (ok, out) = tidelog(&["--data-dir", d, "--shards", "1", "--segment-size-mib", "1", "--no-checkpoints", "load", "--events", "5000"]);
    assert!(ok, "{out}");
    let (ok, out) = tidelog(&["inspect", d]);
    assert!(ok, "{out}");
    assert!(out.contains("shard 0: 2 segments, 5000 records after the checkpoints"), "{out}");

    let segment = std::fs::read_dir(dir.path().join("shard-0/wal")).unwrap().map(|e| e.unwrap().path()).min().unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[5000] ^= 0x40;
    std::fs::write(&segment, &bytes).unwrap();
    let (ok, out) = tidelog(&["inspect", d]);
    assert!(!ok, "damage makes inspect fail: {out}");
    assert!(out.contains("1 records lost"), "{out}");
    assert_eq!(std::fs::read(&segment).unwrap(), bytes, "inspect wrote nothing");

    // With checkpoints (written on close): they are checked too, and their damage is found.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let (ok, out) = tidelog(&["--data-dir", d, "--shards", "1", "--segment-size-mib", "1", "load", "--events", "5000"]);
    assert!(ok, "{out}");
    let (ok, out) = tidelog(&["inspect", d]);
    assert!(ok, "{out}");
    assert!(out.contains("shard 0: 1 checkpoints, 5000 events, covering positions up to 5000"), "{out}");
    assert!(out.contains("5000 events") && out.contains(": ok"), "{out}");
    let checkpoint = std::fs::read_dir(dir.path().join("shard-0/checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "parquet"))
        .unwrap();
    let mut bytes = std::fs::read(&checkpoint).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    std::fs::write(&checkpoint, &bytes).unwrap();
    let (ok, out) = tidelog(&["inspect", d]);
    assert!(!ok && out.contains("DAMAGED: its CRC-32 does not match"), "{out}");

    let (ok, out) = tidelog(&["inspect", "/nonexistent"]);
    assert!(!ok && out.contains("tidelog data directory"), "{out}");
}
