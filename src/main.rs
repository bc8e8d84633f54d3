//! The `tidelog` command line.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use tidelog::event::parse_event_json;
use tidelog::loadgen::{run_load, LoadSpec};
use tidelog::time::{format_rfc3339_us, parse_timestamp_us};
use tidelog::checkpoint::export::{export_parquet, ExportFilter};
use tidelog::checkpoint::CheckpointDamage;
use tidelog::{AppendAck, MidLogCorruption, NewEvent, Order, Query, Store, StoreConfig};

#[derive(Parser)]
#[command(name = "tidelog", version, about = "A durable, thread-per-core event store")]
struct Cli {
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
    /// How long an idle shard keeps polling before it sleeps, in µs (0: sleep at once).
    #[arg(long, global = true, env = "TIDELOG_SPIN_BEFORE_PARK_US", default_value_t = tidelog::config::DEFAULT_SPIN_BEFORE_PARK_US)]
    spin_before_park_us: u32,
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
}

#[derive(Clone, Copy, ValueEnum)]
enum DamageArg {
    Refuse,
    SetAside,
}

impl StoreArgs {
    fn open(&self) -> Result<Store, tidelog::Error> {
        let mut config = StoreConfig::new(&self.data_dir)
            .shards(self.shards.unwrap_or(0))
            .fsync_interval_ms(self.fsync_interval_ms)
            .segment_size_bytes(self.segment_size_mib << 20)
            .spin_before_park_us(self.spin_before_park_us);
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
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API on every shard's core until SIGINT or SIGTERM.
    Serve {
        /// Address to listen on (every shard accepts on it, SO_REUSEPORT).
        #[arg(long, env = "TIDELOG_LISTEN", default_value = "127.0.0.1:3900")]
        listen: std::net::SocketAddr,
        /// Largest accepted request body in bytes.
        #[arg(long, default_value_t = 16 << 20)]
        max_body_bytes: usize,
        #[arg(long, value_enum, default_value_t = LogFormat::Human)]
        log_format: LogFormat,
        /// JSON file of {"token": "tenant"}: requests then need `Authorization: Bearer <token>` and act on its tenant.
        #[arg(long, env = "TIDELOG_AUTH_FILE")]
        auth_file: Option<PathBuf>,
        /// OTLP logs: attribute keys tried in order for an event's entity_id (the record's attributes
        /// first, then the resource's).
        #[cfg(feature = "otlp")]
        #[arg(long, value_delimiter = ',', default_value = "service.name,host.name")]
        otlp_entity_attributes: Vec<String>,
        /// MCP: `Host` names (or host:port) that /mcp answers; others are refused (DNS-rebinding protection).
        /// Add the names clients use to reach a server that listens beyond loopback.
        #[cfg(feature = "mcp")]
        #[arg(long, value_delimiter = ',', default_value = "localhost,127.0.0.1,::1")]
        mcp_allowed_hosts: Vec<String>,
        #[command(flatten)]
        sql: SqlLimitArgs,
        /// Rows of a buffered JSON answer of POST /api/v1/sql at most (NDJSON and Arrow IPC stream without a cap).
        #[arg(long, default_value_t = tidelog::config::SqlLimits::default().max_json_rows)]
        sql_max_json_rows: u64,
    },
    /// Run SQL over one tenant's events (table `events`) and print the answer. Opens the data directory
    /// itself, like `query`: while a server holds it, POST to /api/v1/sql instead.
    #[cfg(feature = "sql")]
    Sql {
        /// One query, e.g. "SELECT event_type, count(*) FROM events GROUP BY event_type".
        query: String,
        #[arg(long, default_value = tidelog::DEFAULT_TENANT)]
        tenant: String,
        #[arg(long, value_enum, default_value_t = SqlFormat::Table)]
        format: SqlFormat,
        #[command(flatten)]
        limits: SqlLimitArgs,
    },
    /// Serve MCP (Model Context Protocol) on standard input and output, for a desktop agent that starts
    /// tidelog itself. Opens --data-dir directly (no server may hold it); with a running server, point the
    /// agent at its /mcp endpoint instead.
    #[cfg(feature = "mcp")]
    Mcp,
    /// Append one event and print its acknowledgement.
    Append {
        #[arg(long)]
        entity: String,
        #[arg(long = "type")]
        event_type: String,
        /// Payload JSON.
        #[arg(long)]
        payload: String,
        #[arg(long, default_value = tidelog::DEFAULT_TENANT)]
        tenant: String,
        /// Metadata JSON.
        #[arg(long)]
        metadata: Option<String>,
        /// Fail unless the entity is at this version (0: it has no events).
        #[arg(long)]
        expected_version: Option<u64>,
        /// Event id (UUID) for an idempotent retry.
        #[arg(long)]
        id: Option<uuid::Uuid>,
    },
    /// Append newline-delimited JSON events from standard input, in atomic batches.
    Ingest {
        #[arg(long, default_value_t = 1000)]
        batch_size: usize,
    },
    /// Query events; prints one JSON object per line.
    Query(QueryArgs),
    /// Print one event by id.
    Get {
        id: uuid::Uuid,
        #[arg(long, default_value = tidelog::DEFAULT_TENANT)]
        tenant: String,
    },
    /// Print an entity's state: its payloads merged in version order.
    State {
        entity: String,
        #[arg(long, default_value = tidelog::DEFAULT_TENANT)]
        tenant: String,
        /// RFC 3339 or microseconds: the state as of this instant.
        #[arg(long)]
        as_of: Option<String>,
    },
    /// Open the store, print what recovery found in each shard, and close it.
    Recover,
    /// Check a data directory without changing it (like fsck): segments, records, checksum failures.
    /// Exits with status 1 when it finds damage.
    Inspect {
        /// The data directory (default: --data-dir).
        dir: Option<PathBuf>,
    },
    /// Run the engine benchmark in a scratch directory (not --data-dir) and print the tables.
    Bench {
        /// Workload size multiplier (0.1 for a quick run).
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
        /// Scratch directory on the disk to measure; removed afterwards.
        #[arg(long, default_value = "./tidelog-bench")]
        dir: PathBuf,
        /// Where report.json and report.svg are written.
        #[arg(long, default_value = "target/bench")]
        report_dir: PathBuf,
        /// Skip the peer databases (when built with the `peers` feature).
        #[arg(long)]
        no_peers: bool,
    },
    /// Export events as a Hive-partitioned Parquet dataset (tenant_id=<t>/date=<YYYY-MM-DD>/*.parquet)
    /// that DuckDB, DataFusion, Spark, pandas or pyarrow read directly.
    Export {
        #[arg(long, value_enum, default_value_t = ExportFormat::Parquet)]
        format: ExportFormat,
        /// Output directory (must not exist or be empty).
        #[arg(long)]
        out: PathBuf,
        /// Only this tenant (default: all).
        #[arg(long)]
        tenant: Option<String>,
        /// RFC 3339 or microseconds, inclusive.
        #[arg(long)]
        since: Option<String>,
        /// RFC 3339 or microseconds, exclusive.
        #[arg(long)]
        until: Option<String>,
    },
    /// Generate load: concurrent appenders, then print throughput and latency.
    Load {
        #[arg(long, default_value_t = 64)]
        tasks: usize,
        #[arg(long, default_value_t = 100_000)]
        events: u64,
        #[arg(long, default_value_t = 1_000)]
        entities: u64,
        #[arg(long, default_value_t = 1)]
        batch_size: usize,
        #[arg(long, default_value_t = 200)]
        payload_bytes: usize,
        #[arg(long, default_value = tidelog::DEFAULT_TENANT)]
        tenant: String,
        /// Pipeline single-event appends from one caller through a Producer, this many in flight
        /// (0: `--tasks` callers, each awaiting every append).
        #[arg(long, default_value_t = 0)]
        pipeline: usize,
        /// Run the callers as tasks on this shard's executor (as the HTTP handlers run), not on a thread
        /// of their own.
        #[arg(long)]
        on_shard: Option<usize>,
        /// Print `ack <id> <tenant> <entity> <version>` for every acknowledged event.
        #[arg(long)]
        print_acks: bool,
    },
}

#[derive(Args)]
struct QueryArgs {
    #[arg(long, default_value = tidelog::DEFAULT_TENANT)]
    tenant: String,
    #[arg(long)]
    entity: Option<String>,
    #[arg(long = "type", conflicts_with = "type_prefix")]
    event_type: Option<String>,
    #[arg(long)]
    type_prefix: Option<String>,
    /// RFC 3339 or microseconds, inclusive.
    #[arg(long)]
    since: Option<String>,
    /// RFC 3339 or microseconds, exclusive.
    #[arg(long)]
    until: Option<String>,
    /// RFC 3339 or microseconds: only events at or before this instant.
    #[arg(long)]
    as_of: Option<String>,
    #[arg(long)]
    limit: Option<usize>,
    #[arg(long, default_value_t = 0)]
    offset: usize,
    #[arg(long, value_enum, default_value_t = OrderArg::Asc)]
    order: OrderArg,
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

#[derive(Clone, Copy, ValueEnum)]
enum SqlFormat {
    Table,
    Json,
    Csv,
}

#[derive(Clone, Copy, ValueEnum)]
enum ExportFormat {
    Parquet,
}

#[derive(Clone, Copy, ValueEnum)]
enum OrderArg {
    Asc,
    Desc,
}

fn timestamp(name: &str, text: &Option<String>) -> Result<Option<i64>, String> {
    match text {
        None => Ok(None),
        Some(t) => parse_timestamp_us(t).map(Some).ok_or_else(|| format!("--{name}: {t:?} is not RFC 3339 or microseconds")),
    }
}

fn ack_json(ack: &AppendAck) -> serde_json::Value {
    serde_json::json!({
        "event_id": ack.id.to_string(),
        "timestamp": format_rfc3339_us(ack.timestamp_us),
        "version": ack.version,
        "position": ack.position,
        "shard": ack.shard,
        "duplicate": ack.duplicate,
    })
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    futures_lite::future::block_on(f)
}

fn run(cli: Cli) -> Result<(), String> {
    if let Command::Bench { scale, dir, report_dir, no_peers } = &cli.command {
        let options = tidelog::bench::Options::new(dir, *scale).report_dir(report_dir);
        let options = if *no_peers { options.peers(false) } else { options };
        return tidelog::bench::run_with(&options).map(|_| ()).map_err(|e| e.to_string());
    }
    if let Command::Inspect { dir } = &cli.command {
        // Read-only: no lock, no recovery (which would truncate torn tails).
        return inspect(dir.as_ref().unwrap_or(&cli.store.data_dir));
    }
    let err = |e: tidelog::Error| e.to_string();
    let store = cli.store.open().map_err(err)?;
    let result = match cli.command {
        Command::Append { entity, event_type, payload, tenant, metadata, expected_version, id } => {
            let event = NewEvent {
                id,
                tenant_id: tenant,
                entity_id: entity,
                event_type,
                timestamp_us: None,
                payload,
                metadata,
                expected_version,
            };
            block_on(store.append(event)).map(|ack| println!("{}", ack_json(&ack))).map_err(err)
        }
        Command::Ingest { batch_size } => ingest(&store, batch_size.max(1)),
        Command::Query(q) => query(&store, q),
        Command::Get { id, tenant } => match store.get(&tenant, &id) {
            Some(event) => {
                println!("{}", tidelog::api::event_json(&event));
                Ok(())
            }
            None => Err(format!("no event {id} in tenant {tenant:?}")),
        },
        Command::State { entity, tenant, as_of } => {
            let as_of_us = timestamp("as-of", &as_of)?;
            match store.entity_state(&tenant, &entity, as_of_us) {
                Some(s) => {
                    let json = serde_json::json!({
                        "entity_id": s.entity_id, "current_state": s.state, "event_count": s.event_count,
                        "version": s.version, "last_updated": format_rfc3339_us(s.last_updated_us),
                    });
                    println!("{json}");
                    Ok(())
                }
                None => Err(format!("entity {entity:?} of tenant {tenant:?} has no events")),
            }
        }
        #[cfg(feature = "sql")]
        Command::Sql { query, tenant, format, limits } => sql(&store, &tenant, &query, format, limits.limits(u64::MAX)),
        Command::Serve {
            listen,
            max_body_bytes,
            log_format,
            auth_file,
            #[cfg(feature = "otlp")]
            otlp_entity_attributes,
            #[cfg(feature = "mcp")]
            mcp_allowed_hosts,
            sql,
            sql_max_json_rows,
        } => {
            let sql_limits = sql.limits(sql_max_json_rows);
            let api_keys = match auth_file {
                Some(path) => Some(std::sync::Arc::new(tidelog::server::ApiKeys::load(&path)?)),
                None => None,
            };
            let options = tidelog::server::HttpOptions {
                max_body_bytes,
                api_keys,
                #[cfg(feature = "otlp")]
                otlp: tidelog::server::otlp::OtlpOptions { entity_attributes: otlp_entity_attributes },
                #[cfg(feature = "mcp")]
                mcp_allowed_hosts,
                sql: sql_limits,
            };
            serve(&store, listen, options, log_format)
        }
        #[cfg(feature = "mcp")]
        Command::Mcp => tidelog::server::mcp::serve_stdio(store.clone()).map_err(|e| e.to_string()),
        Command::Inspect { .. } | Command::Bench { .. } => unreachable!("handled before opening the store"),
        Command::Export { format: ExportFormat::Parquet, out, tenant, since, until } => {
            let filter = ExportFilter { tenant_id: tenant, since_us: timestamp("since", &since)?, until_us: timestamp("until", &until)? };
            let files = export_parquet(&store, &out, &filter).map_err(err)?;
            for f in &files {
                println!("{} {} rows {} bytes", f.path.display(), f.rows, f.size_bytes);
            }
            eprintln!("{} events in {} files under {}", files.iter().map(|f| f.rows).sum::<u64>(), files.len(), out.display());
            Ok(())
        }
        Command::Recover => {
            for report in store.recovery_reports() {
                println!("{report}");
            }
            for decision in store.batch_decisions().iter().filter(|d| !d.kept()) {
                println!("{decision}");
            }
            Ok(())
        }
        Command::Load { tasks, events, entities, batch_size, payload_bytes, tenant, pipeline, on_shard, print_acks } => {
            if on_shard.is_some_and(|k| k >= store.shard_count()) {
                return Err(format!("--on-shard: the store has {} shards", store.shard_count()));
            }
            let spec = LoadSpec {
                tasks,
                events,
                entities,
                tenant_id: tenant,
                batch_size,
                payload_bytes,
                pipeline_window: pipeline,
                caller_on_shard: on_shard,
            };
            let printed = spec.clone();
            let report = run_load(&store, &spec, move |ack, seq| {
                if print_acks {
                    let entity = tidelog::loadgen::entity_of(&printed, seq);
                    println!("ack {} {} {entity} {}", ack.id, printed.tenant_id, ack.version);
                }
            })
            .map_err(err)?;
            let l = &report.latency_ns;
            eprintln!(
                "{} events in {:.2} s: {:.0} events/s; append latency p50 {:.1} us, p99 {:.1} us, max {:.1} us",
                report.events,
                report.elapsed.as_secs_f64(),
                report.events_per_s(),
                l.value_at_quantile(0.5) as f64 / 1e3,
                l.value_at_quantile(0.99) as f64 / 1e3,
                l.max() as f64 / 1e3
            );
            for shard in 0..store.shard_count() {
                let latency = store.shard_latency(shard);
                let (a, f) = (&latency.append_ns, &latency.fsync_ns);
                eprintln!(
                    "  shard {shard}: accepted-to-acknowledged p50 {:.1} us, p99 {:.1} us; {} fdatasyncs, p50 {:.1} us, p99 {:.1} us",
                    a.value_at_quantile(0.5) as f64 / 1e3,
                    a.value_at_quantile(0.99) as f64 / 1e3,
                    f.len(),
                    f.value_at_quantile(0.5) as f64 / 1e3,
                    f.value_at_quantile(0.99) as f64 / 1e3,
                );
            }
            Ok(())
        }
    };
    let closed = store.close().map_err(err);
    result.and(closed)
}

fn serve(store: &Store, listen: std::net::SocketAddr, options: tidelog::server::HttpOptions, format: LogFormat) -> Result<(), String> {
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let subscriber = tracing_subscriber::fmt().with_writer(std::io::stderr).with_target(false).with_ansi(ansi);
    match format {
        LogFormat::Human => subscriber.init(),
        LogFormat::Json => subscriber.json().init(),
    }
    let config = store.config();
    tracing::info!(
        data_dir = %config.data_dir.display(),
        shards = store.shard_count(),
        fsync_interval_ms = config.fsync.interval_ms(),
        "store open"
    );
    for report in store.recovery_reports() {
        tracing::info!(
            shard = report.shard,
            events_from_checkpoints = report.checkpoints.events,
            checkpoint_files = report.checkpoints.files,
            checkpoint_ms = report.checkpoints.duration.as_secs_f64() * 1000.0,
            set_aside = report.checkpoints.set_aside.len(),
            recovered = report.records_recovered,
            skipped = report.records_skipped,
            truncated_bytes = report.bytes_truncated,
            records_after_lost_write = report.records_after_lost_write,
            batch_parts_kept = report.batch_parts_kept,
            batch_parts_dropped = report.batch_parts_dropped,
            records_dropped_with_batches = report.records_dropped_with_batches,
            ms = report.duration.as_secs_f64() * 1000.0,
            "recovery"
        );
    }
    let decisions = store.batch_decisions();
    let dropped: Vec<_> = decisions.iter().filter(|d| !d.kept()).collect();
    if !decisions.is_empty() {
        tracing::info!(kept = decisions.len() - dropped.len(), dropped = dropped.len(), "cross-shard batches found in the WAL decided");
    }
    for decision in dropped {
        tracing::warn!(batch = format!("{:032x}", decision.batch), "recovery: {decision}");
    }
    let authenticated = options.api_keys.is_some();
    let server = tidelog::server::Server::start(store, tidelog::server::ServerConfig { listen, limits: options })
        .map_err(|e| e.to_string())?;
    tracing::info!(listen = %server.local_addr(), api_keys = authenticated, "serving");
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM])
        .map_err(|e| format!("installing signal handlers: {e}"))?;
    if let Some(signal) = signals.forever().next() {
        tracing::info!(signal, "stopping: finishing in-flight requests");
    }
    server.shutdown();
    tracing::info!("connections drained; syncing the WAL");
    Ok(())
}

fn inspect(dir: &std::path::Path) -> Result<(), String> {
    let meta_path = dir.join("tidelog.json");
    let meta: serde_json::Value = std::fs::read(&meta_path)
        .map_err(|e| format!("{}: {e} (is this a tidelog data directory?)", meta_path.display()))
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| format!("{}: {e}", meta_path.display())))?;
    let shards = meta["shards"].as_u64().ok_or_else(|| format!("{}: no shard count", meta_path.display()))?;
    println!("{}: format version {}, {shards} shards", dir.display(), meta["format_version"]);
    let mut damaged = false;
    for shard in 0..shards as u32 {
        let checkpoint_dir = dir.join(format!("shard-{shard}")).join("checkpoints");
        let manifest = tidelog::checkpoint::Manifest::load(&checkpoint_dir, shard).map_err(|e| e.to_string())?;
        println!(
            "shard {shard}: {} checkpoints, {} events, covering positions up to {}",
            manifest.checkpoints.len(),
            manifest.events(),
            manifest.covered_position()
        );
        for entry in &manifest.checkpoints {
            let verdict = match tidelog::checkpoint::check_checkpoint(&checkpoint_dir, entry) {
                Ok(()) => "ok".to_string(),
                Err(reason) => {
                    damaged = true;
                    format!("DAMAGED: {reason}")
                }
            };
            println!("  {}: {} events, {:.1} MiB: {verdict}", entry.file, entry.events, entry.size_bytes as f64 / (1 << 20) as f64);
        }
        let wal_dir = dir.join(format!("shard-{shard}")).join("wal");
        let covered = manifest.covered_position();
        let segments = if wal_dir.exists() { tidelog::wal::inspect_shard(&wal_dir, shard, covered).map_err(|e| e.to_string())? } else { Vec::new() };
        let records: u64 = segments.iter().map(|s| s.records).sum();
        println!("shard {shard}: {} segments, {records} records after the checkpoints", segments.len());
        for s in &segments {
            let name = s.path.file_name().and_then(|n| n.to_str()).unwrap_or("?");
            let range = match (s.first_position, s.last_position) {
                (Some(a), Some(b)) => format!("positions {a}..={b}"),
                _ => "no records".to_string(),
            };
            let mut problems = Vec::new();
            if let Some(reason) = &s.bad_header {
                problems.push(format!("BAD HEADER: {reason}"));
            }
            if s.records_skipped > 0 || s.corrupt_bytes > 0 {
                problems.push(format!("{} records lost, {} corrupt bytes", s.records_skipped, s.corrupt_bytes));
            }
            if s.torn_tail_bytes > 0 {
                problems.push(format!("{} bytes of unfinished write at the end (recovery cuts them off)", s.torn_tail_bytes));
            }
            damaged |= s.bad_header.is_some() || s.records_skipped > 0 || s.corrupt_bytes > 0;
            let verdict = if problems.is_empty() { "ok".to_string() } else { problems.join("; ") };
            println!("  {name}: {} records, {range}, {:.1} MiB: {verdict}", s.records, s.size_bytes as f64 / (1 << 20) as f64);
        }
    }
    if damaged {
        Err("damage found (see above); opening the store skips damaged records, --strict-recovery refuses".into())
    } else {
        Ok(())
    }
}

fn ingest(store: &Store, batch_size: usize) -> Result<(), String> {
    let stdin = std::io::stdin().lock();
    let mut batch = Vec::with_capacity(batch_size);
    let (mut ingested, mut line_no) = (0u64, 0usize);
    let mut flush = |batch: &mut Vec<NewEvent>, first_line: usize| -> Result<(), String> {
        if batch.is_empty() {
            return Ok(());
        }
        let n = batch.len() as u64;
        block_on(store.append_batch(std::mem::take(batch)))
            .map_err(|e| format!("batch starting at line {first_line}: {e} (nothing of this batch was written)"))?;
        ingested += n;
        Ok(())
    };
    let mut batch_first_line = 1;
    for line in stdin.lines() {
        line_no += 1;
        let line = line.map_err(|e| format!("reading standard input: {e}"))?;
        if line.trim().is_empty() {
            continue;
        }
        let event = parse_event_json(&line).map_err(|e| format!("line {line_no}: {e}"))?;
        if batch.is_empty() {
            batch_first_line = line_no;
        }
        batch.push(event);
        if batch.len() == batch_size {
            flush(&mut batch, batch_first_line)?;
        }
    }
    flush(&mut batch, batch_first_line)?;
    eprintln!("ingested {ingested} events");
    Ok(())
}

/// `tidelog sql`: the query runs on the side runtime, as the server's do; this thread waits for it.
#[cfg(feature = "sql")]
fn sql(store: &Store, tenant: &str, query: &str, format: SqlFormat, limits: tidelog::config::SqlLimits) -> Result<(), String> {
    use tidelog::sql::output;
    let task = tidelog::sql::QueryTask::spawn({
        let (store, tenant, query) = (store.clone(), tenant.to_string(), query.to_string());
        async move { tidelog::sql::collect(&store, &tenant, &query, &limits, limits.max_json_rows).await }
    });
    let (schema, batches) = block_on(task).and_then(|r| r).map_err(|e| format!("{} ({})", e, e.code()))?;
    let mut out = std::io::stdout().lock();
    let arrow_err = |e: arrow::error::ArrowError| e.to_string();
    match format {
        SqlFormat::Table => {
            let table = arrow::util::pretty::pretty_format_batches(&batches).map_err(arrow_err)?;
            writeln!(out, "{table}").map_err(|e| e.to_string())?;
        }
        SqlFormat::Json => {
            let answer = output::answer_json(&schema, &batches).map_err(arrow_err)?;
            writeln!(out, "{answer}").map_err(|e| e.to_string())?;
        }
        SqlFormat::Csv => {
            let mut writer = arrow::csv::WriterBuilder::new().with_header(true).build(&mut out);
            if batches.is_empty() {
                // Still the header line: an empty answer has its columns.
                writer.write(&output::plain_batch(&arrow::array::RecordBatch::new_empty(schema.clone())).map_err(arrow_err)?).map_err(arrow_err)?;
            }
            for batch in &batches {
                writer.write(&output::plain_batch(batch).map_err(arrow_err)?).map_err(arrow_err)?;
            }
        }
    }
    eprintln!("{} rows", batches.iter().map(|b| b.num_rows()).sum::<usize>());
    Ok(())
}

fn query(store: &Store, q: QueryArgs) -> Result<(), String> {
    let mut query = Query::tenant(q.tenant);
    query.entity_id = q.entity;
    if let Some(t) = q.event_type {
        query = query.event_type(t);
    }
    if let Some(p) = q.type_prefix {
        query = query.event_type_prefix(p);
    }
    query.since_us = timestamp("since", &q.since)?;
    query.until_us = timestamp("until", &q.until)?;
    query.as_of_us = timestamp("as-of", &q.as_of)?;
    query.limit = q.limit;
    query.offset = q.offset;
    query.order = match q.order {
        OrderArg::Asc => Order::Asc,
        OrderArg::Desc => Order::Desc,
    };
    let result = block_on(store.query(&query)).map_err(|e| e.to_string())?;
    let mut out = std::io::stdout().lock();
    for event in &result.events {
        writeln!(out, "{}", tidelog::api::event_json(event)).map_err(|e| e.to_string())?;
    }
    eprintln!("{} events{}", result.events.len(), if result.has_more { " (more match)" } else { "" });
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve { .. }) {
        // Printing into a closed pipe (`tidelog query | head`) ends the program quietly, as usual for
        // command-line tools. Not for the server, where a client going away must not kill the process.
        // SAFETY: setting a signal disposition before any other thread exists.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
