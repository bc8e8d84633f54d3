//! Latency summaries and the process's resident memory.

use hdrhistogram::Histogram;
use serde::Serialize;

/// Quantiles of a histogram of nanoseconds, in microseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct LatencyUs {
    pub samples: u64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
}

impl LatencyUs {
    pub fn of(ns: &Histogram<u64>) -> LatencyUs {
        let us = |v: u64| v as f64 / 1e3;
        LatencyUs {
            samples: ns.len(),
            p50_us: us(ns.value_at_quantile(0.5)),
            p99_us: us(ns.value_at_quantile(0.99)),
            p999_us: us(ns.value_at_quantile(0.999)),
            max_us: us(ns.max()),
        }
    }
}

/// Resident set size of this process, from /proc/self/statm (second field, in pages).
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page_bytes = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page_bytes).ok().filter(|&p| p > 0).unwrap_or(4096))
}

/// Gives freed heap pages back to the kernel (glibc keeps them otherwise), so resident size follows what
/// is live.
pub fn trim_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free memory of the allocator's own arenas.
    unsafe {
        libc::malloc_trim(0);
    }
}
