//! SQL over the event history with Apache DataFusion (feature `sql`): one table, `events`, of every
//! acknowledged event of one tenant, each shard a partition scanned from its shared maps.
//!
//! Queries run on the side tokio runtime (`crate::side_runtime`), never on a shard: the HTTP handler
//! spawns them there and awaits the handle. Files, one job each: `table` (the table provider), `scan`
//! (a shard's partition and its Arrow batches), `filter` (pushed-down predicates), `session` (the
//! per-query session, its limits and the read-only check), `plan_cache` (optimized plans of recent queries),
//! `output` (JSON, NDJSON, Arrow IPC); two physical
//! rules: `counts` (counts per type or entity from the indexes) and `entity_order` (scans in entity order
//! instead of sorts by entity); `date_trunc` (DataFusion's, by arithmetic for UTC timestamps).

mod counts;
mod date_trunc;
mod entity_order;
mod error;
mod filter;
pub mod output;
mod plan_cache;
mod scan;
mod session;
mod table;
mod window_keys;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::SendableRecordBatchStream;
use futures_lite::StreamExt;
use tokio::time::{timeout_at, Instant};

pub use crate::config::SqlLimits;
pub use error::SqlError;
pub use scan::{SCAN_BATCH_ROWS, SCAN_SLICE_POSITIONS};
pub use table::events_schema;

use crate::Store;

/// Queries running at once, at most; more wait for a turn (within their timeout). With the per-query
/// memory limit this bounds what SQL can hold in all: `MAX_CONCURRENT_QUERIES * memory_limit_bytes`.
pub const MAX_CONCURRENT_QUERIES: usize = 4;
static RUNNING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_CONCURRENT_QUERIES);

/// A running query: its output schema and its batches, under the query's deadline.
pub struct SqlStream {
    stream: SendableRecordBatchStream,
    deadline: Instant,
    limits: SqlLimits,
    /// The memory of a buffered answer, counted in the query's pool beside its operators.
    answer: MemoryReservation,
    /// The query's turn among [`MAX_CONCURRENT_QUERIES`], held until the stream is dropped.
    _turn: tokio::sync::SemaphorePermit<'static>,
}

impl SqlStream {
    pub fn schema(&self) -> SchemaRef {
        self.stream.schema()
    }

    /// The next batch; None at the end.
    pub async fn next_batch(&mut self) -> Option<Result<RecordBatch, SqlError>> {
        match timeout_at(self.deadline, self.stream.next()).await {
            Err(_) => Some(Err(SqlError::Timeout { timeout_ms: self.limits.timeout_ms })),
            Ok(None) => None,
            Ok(Some(batch)) => Some(batch.map_err(|e| SqlError::from_datafusion(e, &self.limits))),
        }
    }
}

/// Plans `sql` over the tenant's events and starts it. Run it on the side runtime: DataFusion's
/// operators are tokio tasks.
pub async fn start(store: &Store, tenant_id: &str, sql: &str, limits: &SqlLimits) -> Result<SqlStream, SqlError> {
    let deadline = Instant::now() + Duration::from_millis(limits.timeout_ms);
    let planned = async {
        let turn = RUNNING.acquire().await.map_err(|e| SqlError::Internal(e.to_string()))?;
        let ctx = session::context(store, tenant_id, limits)?;
        let df = |e| SqlError::from_datafusion(e, limits);
        let state = ctx.state();
        let table = ctx.table_provider("events").await.map_err(df)?;
        let partitions = state.config().target_partitions();
        let optimized = match plan_cache::get(partitions, tenant_id, sql, &table).map_err(df)? {
            Some(cached) => cached,
            None => {
                let plan = session::plan(&ctx, sql, limits).await?;
                let optimized = state.optimize(&plan).map_err(df)?;
                plan_cache::put(partitions, tenant_id, sql, &plan, &optimized).map_err(df)?;
                optimized
            }
        };
        let physical = state.query_planner().create_physical_plan(&optimized, &state).await.map_err(df)?;
        let stream = datafusion::physical_plan::execute_stream(physical, ctx.task_ctx()).map_err(df)?;
        let answer = MemoryConsumer::new("answer").register(&ctx.runtime_env().memory_pool);
        Ok(SqlStream { stream, deadline, limits: *limits, answer, _turn: turn })
    };
    timeout_at(deadline, planned).await.map_err(|_| SqlError::Timeout { timeout_ms: limits.timeout_ms })?
}

/// Runs a query to its end and keeps the answer: at most `max_rows` rows, and its batches count
/// against the query's memory limit.
pub async fn collect(store: &Store, tenant_id: &str, sql: &str, limits: &SqlLimits, max_rows: u64) -> Result<(SchemaRef, Vec<RecordBatch>), SqlError> {
    let mut stream = start(store, tenant_id, sql, limits).await?;
    let mut batches = Vec::new();
    let mut rows = 0u64;
    while let Some(batch) = stream.next_batch().await {
        let batch = batch?;
        rows += batch.num_rows() as u64;
        if rows > max_rows {
            return Err(SqlError::TooManyRows { max_rows });
        }
        stream.answer.try_grow(batch.get_array_memory_size()).map_err(|e| SqlError::from_datafusion(e, limits))?;
        batches.push(batch);
    }
    Ok((stream.schema(), batches))
}

/// A query's task on the side runtime, aborted when dropped: a client that goes away cancels its query.
pub struct QueryTask<T>(pub tokio::task::JoinHandle<T>);

impl<T: Send + 'static> QueryTask<T> {
    pub fn spawn(future: impl Future<Output = T> + Send + 'static) -> QueryTask<T> {
        QueryTask(crate::side_runtime::side_runtime().spawn(future))
    }
}

impl<T> Drop for QueryTask<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> Future for QueryTask<T> {
    type Output = Result<T, SqlError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map(|r| r.map_err(|e| SqlError::Internal(format!("the query task ended: {e}"))))
    }
}
