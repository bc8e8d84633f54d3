//! `tidelog export`: the events as a Hive-partitioned Parquet dataset.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use tidelog::store::export::{export_parquet, ExportFilter};
use tidelog::Store;

use super::timestamp;

#[derive(Args)]
pub struct ExportArgs {
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
}

#[derive(Clone, Copy, ValueEnum)]
enum ExportFormat {
    Parquet,
}

pub fn export(store: &Store, args: ExportArgs) -> Result<(), String> {
    let ExportArgs { format: ExportFormat::Parquet, out, tenant, since, until } = args;
    let filter = ExportFilter { tenant_id: tenant, since_us: timestamp("since", &since)?, until_us: timestamp("until", &until)? };
    let files = export_parquet(store, &out, &filter).map_err(|e| e.to_string())?;
    for f in &files {
        println!("{} {} rows {} bytes", f.path.display(), f.rows, f.size_bytes);
    }
    eprintln!("{} events in {} files under {}", files.iter().map(|f| f.rows).sum::<u64>(), files.len(), out.display());
    Ok(())
}
