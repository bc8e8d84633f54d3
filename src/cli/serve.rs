//! The serving commands: `serve` (the HTTP API on every shard's core, with OTLP and MCP when built in) and
//! `mcp` (MCP on standard input and output).

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use tidelog::Store;

use super::SqlLimitArgs;

#[derive(Args)]
pub struct ServeArgs {
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
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

pub fn serve(store: &Store, args: ServeArgs) -> Result<(), String> {
    let ServeArgs {
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
    } = args;
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
    run_server(store, listen, options, log_format)
}

fn run_server(store: &Store, listen: std::net::SocketAddr, options: tidelog::server::HttpOptions, format: LogFormat) -> Result<(), String> {
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

/// `tidelog mcp`: MCP on standard input and output over the store this process opened.
#[cfg(feature = "mcp")]
pub fn mcp(store: &Store) -> Result<(), String> {
    tidelog::server::mcp::serve_stdio(store.clone()).map_err(|e| e.to_string())
}
