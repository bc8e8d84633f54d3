//! The write-ahead log of one shard: framing, segments, the writer, group commit, recovery, and the I/O
//! seam that tests use to inject faults. The on-disk format is in `docs/FORMAT.md`.

mod error;
#[cfg(feature = "fault-injection")]
pub mod fault;
pub mod group_commit;
pub mod io;
pub mod pipeline;
pub mod record;
pub mod recovery;
pub mod segment;
pub mod writer;

pub use error::WalError;
pub use group_commit::{FsyncMode, GroupCommit};
pub use pipeline::{CommitSink, Wal};
pub use recovery::{
    inspect_segment_bytes, inspect_shard, BatchDecision, BatchOutcome, MidLogCorruption, SegmentInspection, WalRecovery, WalItem,
};
