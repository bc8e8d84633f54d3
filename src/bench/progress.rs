//! Progress bars for long workloads: drawn on stderr only when both stdout and stderr are terminals, so
//! piped or captured output stays exactly the printed tables. A bar is cleared before its section is
//! printed.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// Events between two bar updates from a hot loop: an update costs a clock read, and the loops being
/// measured run at millions of events per second.
pub const STEP_EVENTS: u64 = 1024;

/// A bar of `total` units labelled `label`, or a hidden one when output is not a terminal.
pub fn bar(total: u64, label: &str) -> ProgressBar {
    if !(std::io::stdout().is_terminal() && std::io::stderr().is_terminal()) {
        return ProgressBar::hidden();
    }
    let style = ProgressStyle::with_template("[{bar:24}] {pos:>9}/{len:<9} {elapsed:>4} {wide_msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    ProgressBar::new(total).with_style(style).with_message(label.to_string())
}

/// Counts event `seq` (0-based) of a hot loop, updating the bar once every `STEP_EVENTS` events.
#[inline]
pub fn step(bar: &ProgressBar, seq: u64) {
    if seq % STEP_EVENTS == STEP_EVENTS - 1 {
        bar.inc(STEP_EVENTS);
    }
}
