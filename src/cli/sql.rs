//! `tidelog sql`: SQL over one tenant's events, printed as a table, JSON or CSV.

use std::io::Write;

use clap::{Args, ValueEnum};
use tidelog::Store;

use super::{block_on, SqlLimitArgs};

#[derive(Args)]
pub struct SqlArgs {
    /// One query, e.g. "SELECT event_type, count(*) FROM events GROUP BY event_type".
    query: String,
    #[arg(long, default_value = tidelog::DEFAULT_TENANT)]
    tenant: String,
    #[arg(long, value_enum, default_value_t = SqlFormat::Table)]
    format: SqlFormat,
    #[command(flatten)]
    limits: SqlLimitArgs,
}

#[derive(Clone, Copy, ValueEnum)]
enum SqlFormat {
    Table,
    Json,
    Csv,
}

/// The query runs on the side runtime, as the server's do; this thread waits for it.
pub fn sql(store: &Store, args: SqlArgs) -> Result<(), String> {
    use tidelog::sql::output;
    let SqlArgs { query, tenant, format, limits } = args;
    let limits = limits.limits(u64::MAX);
    let task = tidelog::sql::QueryTask::spawn({
        let store = store.clone();
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
