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
    assert!(out.contains("shard 0: 2 segments, 5000 records"), "{out}");

    let segment = std::fs::read_dir(dir.path().join("shard-0/wal")).unwrap().map(|e| e.unwrap().path()).min().unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[5000] ^= 0x40;
    std::fs::write(&segment, &bytes).unwrap();
    let (ok, out) = tidelog(&["inspect", d]);
    assert!(!ok, "damage makes inspect fail: {out}");
    assert!(out.contains("1 records lost"), "{out}");
    assert_eq!(std::fs::read(&segment).unwrap(), bytes, "inspect wrote nothing");

    let (ok, out) = tidelog(&["inspect", "/nonexistent"]);
    assert!(!ok && out.contains("tidelog data directory"), "{out}");
}
