//! The process's one tokio runtime, for the dependencies that need tokio (DataFusion, rmcp).
//!
//! The shards run on glommio and never enter this runtime: a handler on a shard spawns its tokio work here
//! and awaits the `JoinHandle` (a plain future, woken across threads). The runtime is small and bounded so it
//! shares the cores with the shards instead of competing with them: see `docs/RUNTIMES.md`.

use std::sync::OnceLock;

/// Worker threads of the side runtime: one, unpinned, so the shards keep their cores for appends.
pub const SIDE_WORKER_THREADS: usize = 1;
/// Threads for blocking work (file reads of the query engine), at most.
pub const SIDE_MAX_BLOCKING_THREADS: usize = 2;

static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();

/// The runtime, built on first use (a store that never answers SQL or MCP never starts it).
pub fn side_runtime() -> &'static tokio::runtime::Runtime {
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(SIDE_WORKER_THREADS)
            .max_blocking_threads(SIDE_MAX_BLOCKING_THREADS)
            .thread_name("tidelog-tokio")
            .enable_all()
            .build()
            .expect("building the side tokio runtime")
    })
}
