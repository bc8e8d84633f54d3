//! The WAL as one component the shard hands records to.
//!
//! The shard stages framed records ([`Wal::stage`]) and queues a waiter on the position it needs
//! ([`Wal::wait`]). Two tasks on the shard's executor do the rest:
//! - the writer takes everything staged and writes it in one buffered write (one write in flight); a
//!   write completes once the bytes are in the page cache, which raises the `written` watermark;
//! - the syncer fdatasyncs the current segment and raises the `synced` watermark to what was written
//!   when the fdatasync started. With `FSYNC_INTERVAL=0` it runs whenever something is unsynced, in
//!   parallel with the next writes, so one fdatasync covers every record written before it started;
//!   with `FSYNC_INTERVAL=N` it runs every N ms.
//!
//! [`GroupCommit`] turns the watermarks into released waiters; the shard's [`CommitSink`] makes their
//! positions visible and answers them. Any write or fdatasync error is fatal: the sink fails every waiter
//! and nothing is acknowledged afterwards.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::Task;

use super::group_commit::{FsyncMode, GroupCommit};
use super::io::{WalFile, WalStorage};
use super::record::{append_frame, append_part_header, PartHeader};
use super::writer::{CurrentFile, WalWriter};
use super::WalError;

/// What the shard does when the WAL acknowledges or fails.
pub trait CommitSink<W> {
    /// Positions up to `acked` are acknowledged: make them visible, then answer `waiters`.
    fn release(&self, acked: u64, waiters: Vec<W>);
    /// A write or fdatasync failed: stop the shard and answer `waiters` with the failure.
    fn fail(&self, error: &WalError, waiters: Vec<W>);
    /// One write of `bytes` completed.
    fn wrote(&self, bytes: u64);
    /// One fdatasync completed, making `events` more events durable.
    fn synced(&self, elapsed: Duration, events: u64);
}

/// Records staged but not yet handed to the writer.
#[derive(Default)]
struct Staged {
    frames: Vec<u8>,
    first_position: u64,
    last_position: u64,
}

struct State<W> {
    staged: Staged,
    commit: GroupCommit<W>,
    failed: bool,
    closing: bool,
    /// Stop without writing what is staged (`Wal::halt`).
    halting: bool,
}

struct Inner<W> {
    state: RefCell<State<W>>,
    sink: Rc<dyn CommitSink<W>>,
    kick_writer: LocalSender<()>,
    kick_syncer: LocalSender<()>,
    /// Signalled after each write, for callers waiting for staged bytes to drain.
    space: RefCell<Option<LocalReceiver<()>>>,
    space_tx: LocalSender<()>,
}

impl<W> Inner<W> {
    fn needs_sync(&self) -> bool {
        let state = self.state.borrow();
        !state.failed && state.commit.has_unsynced()
    }

    fn fail(&self, error: &WalError) {
        let waiters = {
            let mut state = self.state.borrow_mut();
            state.failed = true;
            state.staged = Staged::default();
            state.commit.drain_all()
        };
        self.sink.fail(error, waiters);
        let _ = self.space_tx.try_send(());
    }

    fn release(&self, released: Vec<W>) {
        let (acked, failed) = {
            let state = self.state.borrow();
            (state.commit.acked(), state.failed)
        };
        // After a failure nothing more becomes acknowledged or visible, even if an fdatasync that was
        // already under way succeeds: its waiters were answered with the failure.
        if !failed {
            self.sink.release(acked, released);
        }
    }
}

/// The WAL of one shard. Dropping it stops its tasks.
pub struct Wal<W: 'static> {
    inner: Rc<Inner<W>>,
    done: LocalReceiver<Result<(), WalError>>,
    _tasks: Vec<Task<()>>,
}

impl<W: 'static> Wal<W> {
    /// Starts the writer and syncer tasks on the current executor. `recovered_position`: everything up to
    /// it is already durable.
    pub fn start<S: WalStorage>(
        writer: WalWriter<S>,
        mode: FsyncMode,
        recovered_position: u64,
        sink: Rc<dyn CommitSink<W>>,
    ) -> Wal<W> {
        let (kick_writer, writer_rx) = local_channel::new_bounded::<()>(1);
        let (kick_syncer, syncer_rx) = local_channel::new_bounded::<()>(1);
        let (space_tx, space_rx) = local_channel::new_bounded::<()>(1);
        let (done_tx, done) = local_channel::new_bounded(1);
        let inner = Rc::new(Inner {
            state: RefCell::new(State {
                staged: Staged::default(),
                commit: GroupCommit::new(mode, recovered_position),
                failed: false,
                closing: false,
                halting: false,
            }),
            sink,
            kick_writer,
            kick_syncer,
            space: RefCell::new(Some(space_rx)),
            space_tx,
        });
        let current_file = writer.current_file();
        let mut tasks = vec![glommio::spawn_local(writer_task(inner.clone(), writer, writer_rx, done_tx))];
        tasks.push(match mode {
            FsyncMode::Always => glommio::spawn_local(sync_on_demand(inner.clone(), current_file, syncer_rx)),
            FsyncMode::IntervalMs(ms) => glommio::spawn_local(sync_every(inner.clone(), current_file, ms)),
        });
        Wal { inner, done, _tasks: tasks }
    }

    /// Frames `body` (the record at `position`) behind what is already staged.
    pub fn stage(&self, position: u64, body: &[u8], batch_continues: bool) {
        let mut state = self.inner.state.borrow_mut();
        let staged = &mut state.staged;
        if staged.frames.is_empty() {
            staged.first_position = position;
        }
        debug_assert!(staged.frames.is_empty() || position == staged.last_position + 1, "positions must be dense");
        staged.last_position = position;
        append_frame(&mut staged.frames, body, batch_continues);
    }

    /// Frames a cross-shard part's header; the part's events, from `first_position` on, are staged next
    /// (the header has no position of its own).
    pub fn stage_part_header(&self, first_position: u64, header: &PartHeader) {
        let mut state = self.inner.state.borrow_mut();
        let staged = &mut state.staged;
        if staged.frames.is_empty() {
            staged.first_position = first_position;
            staged.last_position = first_position - 1;
        }
        debug_assert_eq!(staged.last_position + 1, first_position, "positions must be dense");
        append_part_header(&mut staged.frames, header);
    }

    /// Queues `waiter` until `position` is acknowledged; returns it back at once if it already is.
    pub fn wait(&self, position: u64, waiter: W) -> Option<W> {
        self.inner.state.borrow_mut().commit.wait(position, waiter)
    }

    /// Hands what is staged to the writer.
    pub fn flush(&self) {
        let _ = self.inner.kick_writer.try_send(());
    }

    pub fn staged_bytes(&self) -> usize {
        self.inner.state.borrow().staged.frames.len()
    }

    /// Waits until a write completes (or the WAL failed), for back-pressure on staged bytes.
    pub async fn wait_for_space(&self) {
        let space = self.inner.space.borrow_mut().take();
        if let Some(space) = space {
            let _ = space.recv().await;
            *self.inner.space.borrow_mut() = Some(space);
        }
    }

    /// Everything up to here is fdatasynced.
    pub fn synced(&self) -> u64 {
        self.inner.state.borrow().commit.synced()
    }

    /// Writes what is staged, fdatasyncs, acknowledges everything, closes the segment file, and stops
    /// the writer.
    pub async fn close(&self) -> Result<(), WalError> {
        self.inner.state.borrow_mut().closing = true;
        self.flush();
        self.done.recv().await.unwrap_or(Ok(()))
    }

    /// Stops the writer without writing what is staged (a halt: what a crash here would leave), once
    /// the write in progress, if any, is done; closes the segment file.
    pub async fn halt(&self) {
        self.inner.state.borrow_mut().halting = true;
        self.flush();
        let _ = self.done.recv().await;
    }
}

async fn writer_task<W, S: WalStorage>(
    inner: Rc<Inner<W>>,
    mut wal: WalWriter<S>,
    kick: LocalReceiver<()>,
    done: LocalSender<Result<(), WalError>>,
) {
    loop {
        let _ = kick.recv().await;
        loop {
            let staged = {
                let mut state = inner.state.borrow_mut();
                if state.failed || state.halting {
                    break;
                }
                std::mem::take(&mut state.staged)
            };
            if staged.frames.is_empty() {
                break;
            }
            let bytes = staged.frames.len() as u64;
            if let Err(e) = wal.write(staged.frames, staged.first_position).await {
                inner.fail(&e);
                break;
            }
            inner.sink.wrote(bytes);
            let released = inner.state.borrow_mut().commit.on_written(staged.last_position);
            inner.release(released);
            let _ = inner.kick_syncer.try_send(());
            let _ = inner.space_tx.try_send(());
        }
        let (closing, halting) = {
            let state = inner.state.borrow();
            (state.closing, state.halting)
        };
        if closing || halting {
            let result = if closing { close(&inner, &wal).await } else { Ok(()) };
            // After the last sync: a failure to close loses nothing, so it is reported but not returned.
            if let Err(e) = wal.close_file().await {
                tracing::warn!(error = %e, "closing the WAL segment failed");
            }
            let _ = done.send(result).await;
            return;
        }
    }
}

async fn close<W, S: WalStorage>(inner: &Inner<W>, wal: &WalWriter<S>) -> Result<(), WalError> {
    if inner.state.borrow().failed {
        return Err(WalError::Stopped);
    }
    let written = inner.state.borrow().commit.written();
    if let Err(e) = wal.sync().await {
        inner.fail(&e);
        return Err(e);
    }
    let released = inner.state.borrow_mut().commit.on_synced(written);
    inner.release(released);
    Ok(())
}

/// What one fdatasync did: how long it took, and how many appends were waiting for durability when it
/// completed (those it released and those still queued).
struct Synced {
    elapsed: Duration,
    waiters: usize,
}

/// One fdatasync of the current segment, raising `synced` to what was written when it started.
async fn sync_once<W, F: WalFile>(inner: &Inner<W>, current_file: &CurrentFile<F>) -> Result<Option<Synced>, ()> {
    let (target, synced_before, file) = {
        if !inner.needs_sync() {
            return Ok(None);
        }
        let state = inner.state.borrow();
        // Read together, with no await between: `target` is covered by `file` or by earlier segments,
        // which were synced when the writer rolled past them.
        (state.commit.written(), state.commit.synced(), current_file.borrow().clone())
    };
    let Some((file, path)) = file else { return Ok(None) };
    let started = Instant::now();
    match file.fdatasync().await {
        Ok(()) => {
            let elapsed = started.elapsed();
            let positions = target.saturating_sub(synced_before);
            inner.sink.synced(elapsed, positions);
            let waiters = inner.state.borrow().commit.waiting();
            let released = inner.state.borrow_mut().commit.on_synced(target);
            inner.release(released);
            Ok(Some(Synced { elapsed, waiters }))
        }
        Err(e) => {
            inner.fail(&WalError::io("fdatasync", path)(e));
            Err(())
        }
    }
}

/// `FSYNC_INTERVAL=0`: fdatasync whenever something is written and unsynced, again and again, while the
/// writer goes on writing.
///
/// Before each fdatasync it gathers (adaptive group commit). The appends waiting when the last fdatasync
/// completed are the callers in the loop: those it released usually come back at once (their callers
/// send the next), so it waits until as many appends are written and waiting again, or for at most the
/// last fdatasync's duration (never more than `MAX_GATHER`), whichever comes first. One appender is
/// never delayed (one was waiting, one is written), and a few appenders wait only for each other, not for
/// the deadline; many appenders share one fdatasync instead of chasing each other in small groups.
async fn sync_on_demand<W, F: WalFile>(inner: Rc<Inner<W>>, current_file: CurrentFile<F>, kick: LocalReceiver<()>) {
    let mut last: Option<Synced> = None;
    loop {
        let _ = kick.recv().await;
        while inner.needs_sync() {
            if let Some(last) = &last {
                gather(&inner, &kick, last).await;
            }
            match sync_once(&inner, &current_file).await {
                Ok(Some(synced)) => last = Some(synced),
                Ok(None) => {}
                Err(()) => return,
            }
        }
    }
}

/// The longest an fdatasync waits for more appends to join it, absolutely and in multiples of the last
/// fdatasync's duration. Measured with 16, 256 and 1,024 appenders (`tidelog load --fsync-interval-ms 0`,
/// 3 alternated rounds): a factor of 1 against the earlier target (the last fdatasync's positions, half
/// its duration) gave 216-234 instead of 170-175 events per fdatasync at 1,024 and 87-91 instead of 59-67
/// at 256, for 2-6% less throughput; a factor of 2 gave ~300 at 1,024 but 5-10% less throughput.
const MAX_GATHER: Duration = Duration::from_millis(2);
const GATHER_FACTOR: u32 = 1;

async fn gather<W>(inner: &Inner<W>, kick: &LocalReceiver<()>, last: &Synced) {
    let deadline = Instant::now() + (last.elapsed * GATHER_FACTOR).min(MAX_GATHER);
    loop {
        let ready = inner.state.borrow().commit.waiting_written();
        let now = Instant::now();
        if ready >= last.waiters.max(1) || now >= deadline || !inner.needs_sync() {
            return;
        }
        // Woken by the next completed write, or by the deadline.
        futures_lite::future::or(
            async {
                let _ = kick.recv().await;
            },
            glommio::timer::sleep(deadline - now),
        )
        .await;
    }
}

/// `FSYNC_INTERVAL=N`: fdatasync every N ms while something is unsynced.
async fn sync_every<W, F: WalFile>(inner: Rc<Inner<W>>, current_file: CurrentFile<F>, interval_ms: u32) {
    let interval = Duration::from_millis(u64::from(interval_ms));
    loop {
        glommio::timer::sleep(interval).await;
        if sync_once(&inner, &current_file).await.is_err() {
            return;
        }
    }
}
