//! What recovery found in one shard: what its checkpoints held, then what its WAL after them held.

use crate::checkpoint::CheckpointSummary;
use crate::wal::WalRecovery;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Loaded first: the checkpoints, up to the position they cover.
    pub checkpoints: CheckpointSummary,
    /// Then the WAL after that position.
    pub wal: WalRecovery,
}

impl RecoveryReport {
    /// Events in memory after recovery: from checkpoints and from the WAL.
    pub fn events(&self) -> u64 {
        self.checkpoints.events + self.wal.records_recovered
    }
}

/// A report reads as one: `report.records_recovered` is the WAL's count, `report.checkpoints` the
/// checkpoints' summary.
impl std::ops::Deref for RecoveryReport {
    type Target = WalRecovery;

    fn deref(&self) -> &WalRecovery {
        &self.wal
    }
}

impl std::fmt::Display for RecoveryReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.checkpoints;
        write!(f, "shard {}: ", self.wal.shard)?;
        if c.files > 0 || !c.set_aside.is_empty() {
            write!(f, "{} events from {} checkpoints in {:.1} ms", c.events, c.files, c.duration.as_secs_f64() * 1000.0)?;
            if c.events_lost > 0 {
                write!(f, " ({} events LOST with damaged checkpoints)", c.events_lost)?;
            }
            if !c.set_aside.is_empty() {
                write!(f, ", {} files set aside", c.set_aside.len())?;
            }
            write!(f, "; then ")?;
        }
        write!(f, "{}", self.wal)
    }
}
