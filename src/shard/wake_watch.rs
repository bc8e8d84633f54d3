//! A watch over the shard executors' sleep: wakes one that sleeps through its own timers.
//!
//! glommio 0.9 parks an idle executor in `io_uring_enter` on its main ring, linked to its latency ring
//! (where timers and wakes from other threads land). In stress runs of the model test that sleep twice
//! missed everything for good: both executors parked with a 200 ms timer due, a caller waiting for an
//! answer, no CPU used, for minutes, until a debugger attached (which interrupts the syscall; the
//! executor then went on as if nothing had happened). The miss is inside glommio, so the store watches:
//! each shard beats every `BEAT` from a timer task; a thread of the store's looks every `LOOK` and, when a
//! shard's beat has not moved for `STALL`, interrupts that executor's thread with a signal (a handler that
//! does nothing, installed without `SA_RESTART`, so the `io_uring_enter` returns and glommio's loop runs).
//! A busy shard that runs one task past `STALL` also gets a signal: harmless, the handler returns. Each
//! such wake is counted (`ShardStatus::stall_wakes`, `/metrics`) and logged.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Once, Weak};
use std::time::{Duration, Instant};

use super::shared::ShardShared;

/// How often a running shard beats.
const BEAT: Duration = Duration::from_millis(50);
/// How often the watch looks.
const LOOK: Duration = Duration::from_millis(100);
/// A beat older than this is a stall.
const STALL: Duration = Duration::from_millis(500);
/// The signal that interrupts a stalled executor's sleep (ignored by default, so a stray one is
/// harmless). Its handler is process-wide and does nothing.
const SIGNAL: libc::c_int = libc::SIGURG;

/// One shard's side of the watch.
#[derive(Default)]
pub struct WakeWatch {
    /// The executor's thread while the shard runs on it.
    thread: Mutex<Option<libc::pthread_t>>,
    beats: AtomicU64,
}

impl WakeWatch {
    /// The shard runs on this (its executor's) thread from now on.
    pub(crate) fn enter(&self) {
        *self.thread.lock().unwrap_or_else(|e| e.into_inner()) = Some(unsafe { libc::pthread_self() });
    }

    /// The shard stops: its thread may end, so it is never signalled again.
    pub(crate) fn leave(&self) {
        *self.thread.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Beats every `BEAT` while the shard's executor runs its timers. Runs on the shard's executor.
    pub(crate) async fn beat_forever(&self) {
        loop {
            glommio::timer::sleep(BEAT).await;
            self.beats.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Interrupts the executor's thread of `shard` (whose watch this is), if the shard still runs on it.
    fn wake(&self, shard: &ShardShared) {
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(thread) = *thread {
            // The thread is alive: it clears `thread` under this lock before it ends.
            unsafe { libc::pthread_kill(thread, SIGNAL) };
            shard.stats.counters.stall_wakes.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(shard = shard.index, "shard executor made no progress for {STALL:?} (asleep past its timers, or one task running that long): interrupted with a signal");
        }
    }
}

/// Starts the store's watch over its shards; it ends once no shard is left (their state dropped).
pub(crate) fn watch(shards: Vec<Weak<ShardShared>>) -> std::io::Result<()> {
    install_handler();
    std::thread::Builder::new().name("tidelog-wake-watch".into()).spawn(move || {
        let mut last: Vec<(u64, Instant)> = vec![(u64::MAX, Instant::now()); shards.len()];
        loop {
            std::thread::sleep(LOOK);
            let mut alive = false;
            for (k, shard) in shards.iter().enumerate() {
                let Some(shard) = shard.upgrade() else { continue };
                alive = true;
                let beats = shard.wake.beats.load(Ordering::Relaxed);
                if beats != last[k].0 {
                    last[k] = (beats, Instant::now());
                } else if last[k].1.elapsed() >= STALL {
                    shard.wake.wake(&shard);
                    last[k].1 = Instant::now();
                }
            }
            if !alive {
                return;
            }
        }
    })?;
    Ok(())
}

fn install_handler() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| unsafe {
        extern "C" fn nothing(_: libc::c_int) {}
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = nothing as extern "C" fn(libc::c_int) as usize;
        // No SA_RESTART: the interrupted io_uring_enter must return.
        action.sa_flags = 0;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(SIGNAL, &action, std::ptr::null_mut());
    });
}
