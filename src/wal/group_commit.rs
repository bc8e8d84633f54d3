//! Group commit: one component decides when an append may be acknowledged.
//!
//! Appends wait on a position. The WAL reports two watermarks: `written` (the write covering a position
//! completed) and `synced` (an fdatasync covering it completed). With `FsyncMode::Always` waiters are
//! released by `synced`, so one fdatasync acknowledges every append it covers; with
//! `FsyncMode::IntervalMs` they are released by `written` and a timer keeps `synced` at most N ms behind.

use std::collections::VecDeque;

/// When appends are acknowledged (the `FSYNC_INTERVAL` setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncMode {
    /// `FSYNC_INTERVAL=0`: after the fdatasync that covers the append.
    Always,
    /// `FSYNC_INTERVAL=N`: after the write; fdatasync at least every N ms while bytes are unsynced.
    IntervalMs(u32),
}

impl FsyncMode {
    pub fn from_interval_ms(interval_ms: u32) -> FsyncMode {
        if interval_ms == 0 {
            FsyncMode::Always
        } else {
            FsyncMode::IntervalMs(interval_ms)
        }
    }

    pub fn interval_ms(self) -> u32 {
        match self {
            FsyncMode::Always => 0,
            FsyncMode::IntervalMs(ms) => ms,
        }
    }
}

pub struct GroupCommit<W> {
    mode: FsyncMode,
    written: u64,
    synced: u64,
    /// Waiters in the order they were queued, each with the position it needs.
    waiters: VecDeque<(u64, W)>,
}

impl<W> GroupCommit<W> {
    /// `durable_position`: everything up to here is already on disk (recovered).
    pub fn new(mode: FsyncMode, durable_position: u64) -> GroupCommit<W> {
        GroupCommit { mode, written: durable_position, synced: durable_position, waiters: VecDeque::new() }
    }

    pub fn mode(&self) -> FsyncMode {
        self.mode
    }

    /// The position up to which appends are acknowledged (and so visible to readers).
    pub fn acked(&self) -> u64 {
        match self.mode {
            FsyncMode::Always => self.synced,
            FsyncMode::IntervalMs(_) => self.written,
        }
    }

    pub fn written(&self) -> u64 {
        self.written
    }

    pub fn synced(&self) -> u64 {
        self.synced
    }

    pub fn has_unsynced(&self) -> bool {
        self.synced < self.written
    }

    /// Appends waiting to be acknowledged.
    pub fn waiting(&self) -> usize {
        self.waiters.len()
    }

    /// Appends waiting whose position is written (so the next fdatasync would cover them). Waiters are in
    /// position order but for idempotent retries pointing back at an older position, which can make the
    /// count inexact; it only steers how long the syncer gathers, never what is acknowledged.
    pub fn waiting_written(&self) -> usize {
        self.waiters.partition_point(|(position, _)| *position <= self.written)
    }

    /// Queues `waiter` until `position` is acknowledged; returns it back at once if it already is.
    pub fn wait(&mut self, position: u64, waiter: W) -> Option<W> {
        if position <= self.acked() {
            return Some(waiter);
        }
        self.waiters.push_back((position, waiter));
        None
    }

    /// A write covering everything up to `position` completed. Returns the waiters it releases.
    pub fn on_written(&mut self, position: u64) -> Vec<W> {
        assert!(position >= self.written, "written watermark went back: {position} < {}", self.written);
        self.written = position;
        self.release()
    }

    /// An fdatasync that started when `position` was written completed. Returns the waiters it releases.
    pub fn on_synced(&mut self, position: u64) -> Vec<W> {
        assert!(position <= self.written, "synced {position} beyond written {}", self.written);
        self.synced = self.synced.max(position);
        self.release()
    }

    /// Everyone still waiting: on a fatal I/O error they are all failed.
    pub fn drain_all(&mut self) -> Vec<W> {
        self.waiters.drain(..).map(|(_, w)| w).collect()
    }

    fn release(&mut self) -> Vec<W> {
        let acked = self.acked();
        let mut released = Vec::new();
        // Waiters are queued in position order, except idempotent retries that point back at an older
        // position; those are released no later than the waiter in front of them, never early.
        while self.waiters.front().is_some_and(|(position, _)| *position <= acked) {
            released.push(self.waiters.pop_front().unwrap().1);
        }
        released
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn always_mode_acks_only_after_sync_and_one_sync_covers_many() {
        let mut gc = GroupCommit::new(FsyncMode::Always, 10);
        assert_eq!(gc.wait(10, "old"), Some("old"));
        assert_eq!(gc.wait(11, "a"), None);
        assert_eq!(gc.wait(12, "b"), None);
        assert_eq!(gc.wait(15, "c"), None);
        assert!(gc.on_written(12).is_empty(), "a write alone acknowledges nothing");
        assert_eq!(gc.acked(), 10);
        assert_eq!(gc.on_synced(12), vec!["a", "b"]);
        assert_eq!(gc.acked(), 12);
        gc.on_written(15);
        assert_eq!(gc.on_synced(15), vec!["c"]);
        assert!(!gc.has_unsynced());
    }

    #[test]
    fn waiting_counts_the_queue_and_the_written_part_of_it() {
        let mut gc = GroupCommit::new(FsyncMode::Always, 0);
        for position in 1..=4 {
            assert_eq!(gc.wait(position, position), None);
        }
        assert_eq!((gc.waiting(), gc.waiting_written()), (4, 0));
        gc.on_written(3);
        assert_eq!((gc.waiting(), gc.waiting_written()), (4, 3));
        assert_eq!(gc.on_synced(2), vec![1, 2]);
        assert_eq!((gc.waiting(), gc.waiting_written()), (2, 1));
    }

    #[test]
    fn interval_mode_acks_after_write() {
        let mut gc = GroupCommit::new(FsyncMode::IntervalMs(100), 0);
        assert_eq!(gc.wait(1, 1), None);
        assert_eq!(gc.on_written(1), vec![1]);
        assert!(gc.has_unsynced());
        assert!(gc.on_synced(1).is_empty());
        assert!(!gc.has_unsynced());
        assert_eq!(gc.wait(3, 3), None);
        assert_eq!(gc.drain_all(), vec![3]);
    }
}
