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
/// The runtime's threads run at this nice value: when a core is contended, the shard pinned there (nice
/// 0, weight 1024 against 110) gets about nine tenths of it, so a long analytic query slows appends
/// little; on an idle core the query runs at full speed.
pub const SIDE_NICE: i32 = 10;

static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();

/// The runtime, built on first use (a store that never answers SQL or MCP never starts it).
pub fn side_runtime() -> &'static tokio::runtime::Runtime {
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(SIDE_WORKER_THREADS)
            .max_blocking_threads(SIDE_MAX_BLOCKING_THREADS)
            .thread_name("tidelog-tokio")
            .on_thread_start(|| {
                // On Linux this sets the calling thread's nice value only. Failing leaves it at 0: slower
                // appends under queries, nothing worse, so the error is ignored.
                // SAFETY: a plain system call on the current thread.
                unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, SIDE_NICE) };
            })
            .enable_all()
            .build()
            .expect("building the side tokio runtime")
    })
}
