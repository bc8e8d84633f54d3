//! Model-based test: random sequences of appends, batches, queries, reads by id, entity states, clean
//! reopens, crash-reopens, power cuts (unsynced sectors lost or kept in any order) and checkpoints, run
//! against a real two-shard `Store` and against a plain in-memory model. Every answer of the store must
//! equal the model's.
//!
//! After a power cut each shard keeps a prefix of its log, and a batch that wrote on both shards is kept
//! only if both kept their part (recovery drops the other part otherwise).
//!
//! The model knows each shard's next position (predicted, then checked against the acks), so it can
//! order events by (timestamp, position, shard) exactly even when timestamps collide; timestamps are
//! drawn from a small range, out of order, so collisions and out-of-order entities are common.
//!
//! A batch is all or nothing: a version or id conflict anywhere in it, also in a batch that spans both
//! shards, writes nothing anywhere. Which conflict a spanning batch reports is only required to be one
//! of its conflicts.
//!
//! `ops.rs` holds the operations and their strategies, `reference.rs` the model, `driver.rs` what runs
//! both and compares them. The scenarios below differ in how often a store's life ends, and how: clean
//! reopens only, crashes, power cuts, checkpoints among crashes and power cuts, and all of them mixed.
//!
//! A failure names the operation (its index and value) and the difference; proptest then prints the
//! shrunk operation sequence as "minimal failing input". `PROPTEST_CASES=n` (48 by default) is the number
//! of cases of the mixed scenario, as when it was the only one; each focused scenario runs a sixth of it.

#[path = "../common/mod.rs"]
mod common;
mod driver;
mod ops;
mod reference;

use proptest::prelude::*;
use proptest::test_runner::{contextualize_config, Config, TestCaseError, TestRunner};

use ops::{op, Mix};

/// `share`/48 of `PROPTEST_CASES` (48 by default), at least one.
fn cases(share: u32) -> u32 {
    let total: u32 = std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(48);
    (total * share / 48).max(1)
}

/// Runs `share`/48 of the cases of 30 to 80 operations drawn with `mix`, at FSYNC_INTERVAL=0 or 100,
/// against a fresh store and the model each; fails with the shrunk sequence of the first that differs.
fn check(share: u32, mix: Mix) {
    // Other PROPTEST_* variables apply as usual; shrinking is capped at 2 minutes: an append that never
    // answers costs 20 s per attempt.
    let mut config = contextualize_config(Config { failure_persistence: None, max_shrink_time: 120_000, ..Config::default() });
    config.cases = cases(share);
    let scenario = (prop_oneof![Just(0u32), Just(100u32)], prop::collection::vec(op(mix), 30..80));
    let result = TestRunner::new(config).run(&scenario, |(interval, ops)| driver::run(interval, &ops).map_err(TestCaseError::fail));
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Appends, batches, queries, gets and entity states, with clean reopens.
#[test]
fn operations_match_the_model() {
    check(8, Mix { reopen: 2, crash: 0, power_cut: 0, checkpoint: 0 });
}

/// Crashes (a halt: nothing flushed or synced) among the operations: nothing acknowledged is lost.
#[test]
fn crashes_match_the_model() {
    check(8, Mix { reopen: 2, crash: 6, power_cut: 0, checkpoint: 0 });
}

/// Power cuts among the operations: at FSYNC_INTERVAL=0 nothing acknowledged is lost, at 100 each shard
/// keeps a prefix, and a batch that lost a part on one shard is gone on every shard.
#[test]
fn power_cuts_match_the_model() {
    check(8, Mix { reopen: 2, crash: 0, power_cut: 6, checkpoint: 0 });
}

/// Checkpoints asked for among the operations (besides those every few events), with crashes and power
/// cuts before, between and after them.
#[test]
fn checkpoints_match_the_model() {
    check(8, Mix { reopen: 0, crash: 2, power_cut: 2, checkpoint: 6 });
}

/// All of it mixed, each as often as the others.
#[test]
fn everything_matches_the_model() {
    check(48, Mix { reopen: 2, crash: 2, power_cut: 2, checkpoint: 2 });
}
