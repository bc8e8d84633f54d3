//! The store's watch over its shard executors (`src/shard/wake_watch.rs`): a shard whose executor makes
//! no progress for a while gets its thread interrupted by a signal, which the process survives, and the
//! shard goes on afterwards.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{block_on, event};

#[test]
fn a_shard_that_makes_no_progress_is_signalled_and_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path(), 2, 0);
    let entity = (0..).map(|i| format!("e{i}")).find(|e| store.shard_of("t", e) == 1).unwrap();
    block_on(store.append(event("t", &entity, "before", 0))).unwrap();
    assert_eq!(store.status()[1].stall_wakes, 0, "a shard that runs is left alone");

    // Shard 1's executor runs one task without yielding: its timers (and beat) stop.
    let release = common::occupy_shard(&store, 1);
    common::wait_until("the watch signals shard 1", || store.status()[1].stall_wakes >= 1);
    std::thread::sleep(Duration::from_millis(600));
    release.store(true, Ordering::Relaxed);

    let ack = block_on(store.append(event("t", &entity, "after", 1))).unwrap();
    assert_eq!(ack.version, 2);
    let woken = store.status()[1].stall_wakes;
    std::thread::sleep(Duration::from_millis(1_200));
    assert_eq!(store.status()[1].stall_wakes, woken, "no more signals once the shard runs again");
    assert_eq!(store.status()[0].stall_wakes, 0);
    store.close().unwrap();
}
