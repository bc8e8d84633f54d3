//! The `tidelog` command line: the arguments every command shares (those that open the store), the list
//! of commands and the dispatch. Each family of commands has its own file:
//!
//! - `serve`: `serve` (the HTTP API) and `mcp` (MCP on stdin/stdout)
//! - `events`: the client commands `append`, `ingest`, `query`, `get`, `state`
//! - `sql`: `sql`
//! - `inspect`: `inspect` (a read-only check of a data directory) and `recover`
//! - `export`: `export`
//! - `load`: `load`, the load generator
//! - `bench`: `bench`
//!
//! Query parameters, the tenant rule and the JSON printed come from `tidelog::api`, as the server's do;
//! the data directory's paths from `tidelog::layout`.

mod bench;
mod events;
mod export;
mod inspect;
mod load;
#[cfg(feature = "object-store")]
mod restore;
mod serve;
#[cfg(feature = "sql")]
mod sql;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use tidelog::api::ParamError;
use tidelog::checkpoint::CheckpointDamage;
use tidelog::{MidLogCorruption, Store, StoreConfig};

#[derive(Parser)]
#[command(name = "tidelog", version, about = "A durable, thread-per-core event store")]
pub struct Cli {
    #[command(flatten)]
    store: StoreArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct StoreArgs {
    /// Data directory (created if missing).
    #[arg(long, global = true, env = "TIDELOG_DATA_DIR", default_value = "./tidelog-data")]
    data_dir: PathBuf,
    /// Number of shards for a new data directory (default: one per core). An existing directory keeps its count.
    #[arg(long, global = true, env = "TIDELOG_SHARDS")]
    shards: Option<usize>,
    /// 0: acknowledge after fdatasync; N: acknowledge after the write, fdatasync at least every N ms.
    #[arg(long, global = true, env = "FSYNC_INTERVAL", default_value_t = tidelog::config::DEFAULT_FSYNC_INTERVAL_MS)]
    fsync_interval_ms: u32,
    /// WAL segment size in MiB.
    #[arg(long, global = true, default_value_t = 64)]
    segment_size_mib: u64,
    /// How long an idle shard keeps polling before it sleeps, in µs (0: sleep at once). Default: 100, and
    /// 0 at FSYNC_INTERVAL=0.
    #[arg(long, global = true, env = "TIDELOG_SPIN_BEFORE_PARK_US")]
    spin_before_park_us: Option<u32>,
    /// Largest accepted payload (and metadata) in bytes.
    #[arg(long, global = true, default_value_t = 1 << 20)]
    max_payload_bytes: usize,
    /// Refuse to open when a record in the middle of the WAL is damaged (default: skip it and report).
    #[arg(long, global = true)]
    strict_recovery: bool,
    /// Checkpoint a shard once this many events arrived since its last checkpoint (0: not by count).
    #[arg(long, global = true, env = "TIDELOG_CHECKPOINT_EVENTS", default_value_t = 1_000_000)]
    checkpoint_events: u64,
    /// Checkpoint a shard once this many seconds passed with new events (0: not by time).
    #[arg(long, global = true, env = "TIDELOG_CHECKPOINT_INTERVAL_S", default_value_t = 300)]
    checkpoint_interval_s: u64,
    /// No Parquet checkpoints (not even on shutdown): the WAL keeps everything.
    #[arg(long, global = true)]
    no_checkpoints: bool,
    /// A damaged checkpoint whose events the WAL no longer holds: refuse to open, or set it aside and
    /// open without its events.
    #[arg(long, global = true, value_enum, default_value_t = DamageArg::Refuse)]
    checkpoint_damage: DamageArg,
    /// Ship the history to an object store: s3://BUCKET/PREFIX (credentials, region and endpoint from
    /// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL, AWS_ALLOW_HTTP) or
    /// file:///DIR. Rebuild a node from it with `tidelog restore`.
    #[cfg(feature = "object-store")]
    #[arg(long, global = true, env = "TIDELOG_OBJECT_STORE")]
    object_store: Option<String>,
    /// How often the WAL is shipped to the object store, ms: what a lost machine can lose at most.
    #[cfg(feature = "object-store")]
    #[arg(long, global = true, env = "TIDELOG_SHIP_INTERVAL_MS", default_value_t = tidelog::ship::DEFAULT_SHIP_INTERVAL_MS)]
    ship_interval_ms: u32,
    /// With --object-store: keep at most this many MiB of shipped checkpoint files on the local disk (the
    /// oldest leave first; fetched back when the store opens). Default: keep all.
    #[cfg(feature = "object-store")]
    #[arg(long, global = true, env = "TIDELOG_LOCAL_CHECKPOINTS_MAX_MIB")]
    local_checkpoints_max_mib: Option<u64>,
    /// With --object-store: drop shipped checkpoint files older than this from the local disk, seconds.
    #[cfg(feature = "object-store")]
    #[arg(long, global = true, env = "TIDELOG_LOCAL_CHECKPOINTS_MAX_AGE_S")]
    local_checkpoints_max_age_s: Option<u64>,
    /// With --object-store: the Delta Lake table each shipped checkpoint is appended to (s3://... or
    /// file://...; nodes may share one), or `off`. Default: <object store>/tables/events.
    #[cfg(feature = "object-store")]
    #[arg(long, global = true, env = "TIDELOG_DELTA_TABLE")]
    delta_table: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum DamageArg {
    Refuse,
    SetAside,
}

impl StoreArgs {
    fn open(&self) -> Result<Store, tidelog::Error> {
        let mut config = self.config();
        #[cfg(feature = "object-store")]
        {
            config.object_store = self.object_store.clone().map(|url| tidelog::ship::ObjectStoreConfig {
                ship_interval_ms: self.ship_interval_ms.max(1),
                local_checkpoint_budget_bytes: self.local_checkpoints_max_mib.map(|mib| mib << 20),
                local_checkpoint_max_age_s: self.local_checkpoints_max_age_s,
                delta_table: match self.delta_table.as_deref() {
                    Some("off") => None,
                    Some(table) => Some(table.to_string()),
                    None => Some(tidelog::ship::default_delta_table(&url)),
                },
                ..tidelog::ship::ObjectStoreConfig::new(url.clone())
            });
        }
        let store = Store::open(config)?;
        for report in store.recovery_reports() {
            let damage = report.records_skipped > 0
                || report.bytes_truncated > 0
                || report.corrupt_bytes_skipped > 0
                || report.batch_parts_dropped > 0;
            if damage || !report.checkpoints.set_aside.is_empty() || report.checkpoints.events_lost > 0 {
                eprintln!("recovery: {report}");
            }
        }
        Ok(store)
    }

    /// The store's configuration from the flags, without an object store.
    fn config(&self) -> StoreConfig {
        let mut config = StoreConfig::new(&self.data_dir)
            .shards(self.shards.unwrap_or(0))
            .fsync_interval_ms(self.fsync_interval_ms)
            .segment_size_bytes(self.segment_size_mib << 20);
        config.spin_before_park_us = self.spin_before_park_us;
        config.limits.max_payload_bytes = self.max_payload_bytes;
        if self.strict_recovery {
            config = config.mid_log_corruption(MidLogCorruption::Fail);
        }
        config = config.checkpoint_events(self.checkpoint_events).checkpoint_interval_s(self.checkpoint_interval_s);
        if self.no_checkpoints {
            config = config.without_checkpoints();
        }
        config = config.checkpoint_damage(match self.checkpoint_damage {
            DamageArg::Refuse => CheckpointDamage::Refuse,
            DamageArg::SetAside => CheckpointDamage::SetAside,
        });
        config
    }
}

/// Limits of one SQL query.
#[derive(Args)]
struct SqlLimitArgs {
    /// Memory one SQL query may use, MiB (hash tables, sorts, a buffered answer).
    #[arg(long, default_value_t = tidelog::config::SqlLimits::default().memory_limit_bytes >> 20)]
    sql_memory_limit_mib: u64,
    /// Time one SQL query may take, seconds.
    #[arg(long, default_value_t = tidelog::config::SqlLimits::default().timeout_ms / 1000)]
    sql_timeout_s: u64,
}

impl SqlLimitArgs {
    fn limits(&self, max_json_rows: u64) -> tidelog::config::SqlLimits {
        tidelog::config::SqlLimits {
            memory_limit_bytes: self.sql_memory_limit_mib << 20,
            timeout_ms: self.sql_timeout_s.saturating_mul(1000),
            max_json_rows,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API on every shard's core until SIGINT or SIGTERM.
    Serve(serve::ServeArgs),
    /// Run SQL over one tenant's events (table `events`) and print the answer. Opens the data directory
    /// itself, like `query`: while a server holds it, POST to /api/v1/sql instead.
    #[cfg(feature = "sql")]
    Sql(sql::SqlArgs),
    /// Serve MCP (Model Context Protocol) on standard input and output, for a desktop agent that starts
    /// tidelog itself. Opens --data-dir directly (no server may hold it); with a running server, point the
    /// agent at its /mcp endpoint instead.
    #[cfg(feature = "mcp")]
    Mcp,
    /// Append one event and print its acknowledgement.
    Append(events::AppendArgs),
    /// Append newline-delimited JSON events from standard input, in atomic batches.
    Ingest(events::IngestArgs),
    /// Query events; prints one JSON object per line.
    Query(events::QueryFlags),
    /// Print one event by id.
    Get(events::GetArgs),
    /// Print an entity's state: its payloads merged in version order.
    State(events::StateArgs),
    /// Open the store, print what recovery found in each shard, and close it.
    Recover,
    /// Check a data directory without changing it (like fsck): segments, records, checksum failures.
    /// Exits with status 1 when it finds damage.
    Inspect(inspect::InspectArgs),
    /// Run the engine benchmark in a scratch directory (not --data-dir) and print the tables.
    Bench(bench::BenchArgs),
    /// Export events as a Hive-partitioned Parquet dataset (tenant_id=<t>/date=<YYYY-MM-DD>/*.parquet)
    /// that DuckDB, DataFusion, Spark, pandas or pyarrow read directly.
    Export(export::ExportArgs),
    /// Generate load: concurrent appenders, then print throughput and latency.
    Load(load::LoadArgs),
    /// Rebuild a data directory (--data-dir, empty or absent) from an object store the store shipped to:
    /// checkpoints and the shipped WAL. Prints what it recovered, up to when.
    #[cfg(feature = "object-store")]
    Restore(restore::RestoreArgs),
}

impl Cli {
    /// `serve` keeps running when a client goes away; the other commands are ordinary pipeline tools.
    pub fn serves(&self) -> bool {
        matches!(self.command, Command::Serve(_))
    }
}

/// Runs the command; the error is the message for standard error.
pub fn run(cli: Cli) -> Result<(), String> {
    match &cli.command {
        Command::Bench(args) => return bench::run(args),
        // Read-only: no lock, no recovery (which would truncate torn tails).
        Command::Inspect(args) => return inspect::inspect(args.dir.as_ref().unwrap_or(&cli.store.data_dir)),
        // Writes a new directory first, then opens it (without shipping).
        #[cfg(feature = "object-store")]
        Command::Restore(args) => return restore::restore(&cli.store.config(), args),
        _ => {}
    }
    let store = cli.store.open().map_err(|e| e.to_string())?;
    let result = match cli.command {
        Command::Serve(args) => serve::serve(&store, args),
        #[cfg(feature = "sql")]
        Command::Sql(args) => sql::sql(&store, args),
        #[cfg(feature = "mcp")]
        Command::Mcp => serve::mcp(&store),
        Command::Append(args) => events::append(&store, args),
        Command::Ingest(args) => events::ingest(&store, args),
        Command::Query(args) => events::query(&store, args),
        Command::Get(args) => events::get(&store, args),
        Command::State(args) => events::state(&store, args),
        Command::Recover => inspect::recover(&store),
        Command::Inspect(_) | Command::Bench(_) => unreachable!("handled before opening the store"),
        #[cfg(feature = "object-store")]
        Command::Restore(_) => unreachable!("handled before opening the store"),
        Command::Export(args) => export::export(&store, args),
        Command::Load(args) => load::load(&store, args),
    };
    let closed = store.close().map_err(|e| e.to_string());
    result.and(closed)
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    futures_lite::future::block_on(f)
}

/// A parameter error in the command line's words: the API's `as_of` is the flag `--as-of`.
fn flag_error(e: ParamError) -> String {
    match e {
        ParamError::Timestamp { param, value } => {
            ParamError::Timestamp { param: format!("--{}", param.replace('_', "-")), value }.to_string()
        }
        e => e.to_string(),
    }
}

/// An optional instant flag, RFC 3339 or microseconds; `name` is the parameter's API name (`as_of`).
fn timestamp(name: &str, text: &Option<String>) -> Result<Option<i64>, String> {
    tidelog::api::timestamp(name, text).map_err(flag_error)
}
