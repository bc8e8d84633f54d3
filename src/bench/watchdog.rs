//! Stall detection for loads. A load in which nothing is acknowledged for seconds is not slow, it is
//! stuck (a run at 08:25 on 2026-11-22 sat 10 minutes with every executor asleep and one append pending
//! until a debugger attached). The watchdog says so on stderr while it happens, and the stall goes into
//! the report's warnings, so the figure of that workload is not read as a throughput.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// No acknowledgement for this long is reported as a stall.
const STALL: Duration = Duration::from_secs(10);
const TICK: Duration = Duration::from_millis(100);

static WARNINGS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Watches a progress counter from its own thread.
pub struct Watchdog {
    progress: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Duration>>,
    label: String,
}

impl Watchdog {
    pub fn start(label: &str) -> Watchdog {
        let progress = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (watched, stopped, name) = (progress.clone(), stop.clone(), label.to_string());
        let thread = std::thread::Builder::new()
            .name("bench-watchdog".into())
            .spawn(move || watch(&watched, &stopped, &name))
            .ok();
        Watchdog { progress, stop, thread, label: label.into() }
    }

    /// The counter the load increments for every acknowledgement.
    pub fn progress(&self) -> Arc<AtomicU64> {
        self.progress.clone()
    }

    /// Stops watching; a stall seen during the load becomes a warning of the report.
    pub fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let longest = self.thread.take().and_then(|t| t.join().ok()).unwrap_or_default();
        if longest >= STALL {
            warn(format!(
                "{}: no acknowledgement for {:.1} s (all executors idle?); its throughput is not a speed",
                self.label,
                longest.as_secs_f64()
            ));
        }
    }
}

/// Returns the longest time the counter stood still.
fn watch(progress: &AtomicU64, stop: &AtomicBool, label: &str) -> Duration {
    let (mut last, mut since, mut longest, mut said) = (progress.load(Ordering::Relaxed), Instant::now(), Duration::ZERO, false);
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(TICK);
        let now = progress.load(Ordering::Relaxed);
        if now != last {
            (last, since, said) = (now, Instant::now(), false);
            continue;
        }
        let still = since.elapsed();
        longest = longest.max(still);
        if still >= STALL && !said {
            eprintln!("warning: {label}: no acknowledgement for {:.0} s after {now} events", still.as_secs_f64());
            said = true;
        }
    }
    longest
}

pub fn warn(message: String) {
    WARNINGS.lock().unwrap_or_else(|p| p.into_inner()).push(message);
}

/// The warnings so far (the report takes them at the end of the run).
pub fn take() -> Vec<String> {
    std::mem::take(&mut *WARNINGS.lock().unwrap_or_else(|p| p.into_inner()))
}
