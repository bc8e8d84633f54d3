//! Workload 4b, SQL analytics (feature `sql`): five analytic queries over the query workload's events,
//! each run several times through `POST /api/v1/sql`'s engine (`crate::sql::collect`, on the side
//! runtime); the peers run the same questions in their SQL on the same rows (`peers/queries.rs`).
//! Then what a running analytic query costs appends: the same load alone and beside a loop of queries.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use futures_lite::future::block_on;

use super::{load, AckInfo, Ctx};
use crate::bench::report::{LatencyRow, Report, ThroughputRow};
use crate::bench::stats::LatencyUs;
use crate::bench::{other_error, progress, table};
use crate::loadgen::{latency_histogram, LoadSpec};
use crate::sql::{QueryTask, SqlLimits};
use crate::{Error, Store};

pub const WORKLOAD: &str = "sql analytics";
/// The per-entity, per-hour query reads this fraction of the loaded events' time span.
const WINDOW_OF_SPAN: f64 = 0.10;
/// µs in an hour: the peers bucket their integer timestamps with it.
const HOUR_US: i64 = 3_600_000_000;

/// One analytic question, asked of every system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Analytic {
    CountByType,
    PerEntityHour,
    TopEntities,
    LatestPerEntity,
    P95ByHost,
}

/// SQL dialects of the systems in the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// DataFusion over tidelog's `events` table (timestamp column, JSON functions of
    /// datafusion-functions-json).
    Tidelog,
    /// The peers' `events` table (`peers/sql.rs`): integer µs `ts`, `JSON_EXTRACT`.
    #[cfg_attr(not(feature = "peers"), allow(dead_code))]
    Peer,
}

/// The time window of [`Analytic::PerEntityHour`], in µs since the epoch.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub since_us: i64,
    pub until_us: i64,
}

impl Analytic {
    pub const ALL: [Analytic; 5] =
        [Analytic::CountByType, Analytic::PerEntityHour, Analytic::TopEntities, Analytic::LatestPerEntity, Analytic::P95ByHost];

    pub fn name(self) -> &'static str {
        match self {
            Analytic::CountByType => "count by event_type",
            Analytic::PerEntityHour => "events per entity per hour, 10% of the span",
            Analytic::TopEntities => "top 10 entities by count",
            Analytic::LatestPerEntity => "latest event per entity",
            Analytic::P95ByHost => "p95 of payload.value by payload.host",
        }
    }

    /// The query text. The same question in each dialect, with the same answer (the benchmark checks
    /// the row counts agree): the p95 is the nearest-rank one (`cume_dist`), which every system has,
    /// rather than DataFusion's approximate percentile.
    pub fn sql(self, dialect: Dialect, window: Window) -> String {
        let (host, value) = match dialect {
            Dialect::Tidelog => ("json_get_str(payload, 'host')", "json_get_float(payload, 'value')"),
            Dialect::Peer => ("JSON_EXTRACT(payload, '$.host')", "JSON_EXTRACT(payload, '$.value')"),
        };
        let Window { since_us, until_us } = window;
        match (self, dialect) {
            (Analytic::CountByType, _) => "SELECT event_type, count(*) AS n FROM events GROUP BY event_type".into(),
            (Analytic::PerEntityHour, Dialect::Tidelog) => format!(
                "SELECT entity_id, date_trunc('hour', \"timestamp\") AS hour, count(*) AS n FROM events \
                 WHERE \"timestamp\" >= to_timestamp_micros({since_us}) AND \"timestamp\" < to_timestamp_micros({until_us}) \
                 GROUP BY entity_id, date_trunc('hour', \"timestamp\")"
            ),
            (Analytic::PerEntityHour, Dialect::Peer) => format!(
                "SELECT entity_id, ts / {HOUR_US} AS hour, count(*) AS n FROM events \
                 WHERE ts >= {since_us} AND ts < {until_us} GROUP BY entity_id, ts / {HOUR_US}"
            ),
            (Analytic::TopEntities, _) => {
                "SELECT entity_id, count(*) AS n FROM events GROUP BY entity_id ORDER BY n DESC, entity_id LIMIT 10".into()
            }
            (Analytic::LatestPerEntity, _) => "SELECT entity_id, version, event_type, payload FROM (SELECT entity_id, version, \
                 event_type, payload, row_number() OVER (PARTITION BY entity_id ORDER BY version DESC) AS rn FROM events) AS ranked \
                 WHERE rn = 1"
                .into(),
            (Analytic::P95ByHost, _) => format!(
                "SELECT host, min(v) AS p95 FROM (SELECT {host} AS host, {value} AS v, \
                 cume_dist() OVER (PARTITION BY {host} ORDER BY {value}) AS cd FROM events) AS ranked \
                 WHERE cd >= 0.95 GROUP BY host"
            ),
        }
    }
}

/// What the peers need to ask the same questions and check their answers.
#[cfg_attr(not(feature = "peers"), allow(dead_code))]
pub struct AnalyticsData {
    pub window: Window,
    /// Times each question is asked, per system.
    pub runs: usize,
    /// tidelog's row count of each question, in [`Analytic::ALL`] order.
    pub rows: Vec<usize>,
}

/// Limits for the benchmark's queries: the whole table in memory is fine here.
fn limits() -> SqlLimits {
    SqlLimits { memory_limit_bytes: 2 << 30, timeout_ms: 300_000, max_json_rows: u64::MAX }
}

/// Runs one query to the end on the side runtime; returns its row count.
pub fn run_sql(store: &Store, sql: &str) -> Result<usize, Error> {
    let limits = limits();
    let task = QueryTask::spawn({
        let (store, sql) = (store.clone(), sql.to_string());
        async move { crate::sql::collect(&store, crate::DEFAULT_TENANT, &sql, &limits, limits.max_json_rows).await }
    });
    let (_, batches) = block_on(task).and_then(|r| r).map_err(|e| other_error(format!("sql: {sql}"), e))?;
    Ok(batches.iter().map(|b| b.num_rows()).sum())
}

/// Times `runs` executions of every question with `exec` (which returns the row count) and makes the
/// latency rows; also returns the row counts. Each question runs once untimed first, on every system alike:
/// the first run pays one-time costs (a query engine's lazy set-up, caches) that the others do not.
pub fn time_questions(
    system: &str,
    runs: usize,
    mut exec: impl FnMut(Analytic) -> Result<usize, Error>,
) -> Result<(Vec<LatencyRow>, Vec<usize>), Error> {
    let mut rows = Vec::new();
    let mut counts = Vec::new();
    for question in Analytic::ALL {
        let bar = progress::bar(runs as u64, &format!("{system}: {}", question.name()));
        let mut ns = latency_histogram();
        let mut count = exec(question)?;
        for _ in 0..runs {
            let t = Instant::now();
            count = exec(question)?;
            ns.saturating_record(t.elapsed().as_nanos() as u64);
            bar.inc(1);
        }
        bar.finish_and_clear();
        rows.push(LatencyRow::new(WORKLOAD, system, question.name(), LatencyUs::of(&ns), count as f64));
        counts.push(count);
    }
    Ok((rows, counts))
}

/// The questions on tidelog's store (loaded by the query workload, still open), then appends alone
/// and beside analytic queries.
pub fn run(ctx: &Ctx, report: &mut Report, store: &Store, spec: &LoadSpec, acks: &[AckInfo]) -> Result<AnalyticsData, Error> {
    let first_us = acks.iter().map(|a| a.timestamp_us).min().unwrap_or(0);
    let last_us = acks.iter().map(|a| a.timestamp_us).max().unwrap_or(0);
    let span_us = (last_us - first_us).max(1);
    let window_us = ((span_us as f64 * WINDOW_OF_SPAN) as i64).max(1);
    let since_us = first_us + fastrand::i64(0..=(span_us - window_us).max(0));
    let window = Window { since_us, until_us: since_us + window_us };
    let runs = ctx.scaled(20, 3) as usize;
    let (rows, counts) = time_questions("tidelog", runs, |q| run_sql(store, &q.sql(Dialect::Tidelog, window)))?;
    table::print_latency(&format!("4b. SQL analytics over {} events, 2 shards, {runs} runs each", acks.len()), &rows);
    report.latency.extend(rows);
    appends_beside_queries(ctx, report, store, spec)?;
    Ok(AnalyticsData { window, runs, rows: counts })
}

/// The same append load twice on the query store: alone, then while another thread runs the p95
/// question (a full scan, a sort and a window per host) back to back.
fn appends_beside_queries(ctx: &Ctx, report: &mut Report, store: &Store, spec: &LoadSpec) -> Result<(), Error> {
    let events = ctx.scaled(200_000, 2_000);
    let load_spec = LoadSpec { tasks: 4, events, batch_size: 100, ..spec.clone() };
    let setup = format!("2 shards, FSYNC_INTERVAL=100, 4 callers, batches of 100, {} events stored", store.status().iter().map(|s| s.events).sum::<u64>());
    let alone = load(store, &load_spec, "sql analytics: appends alone", None)?;
    let stop = Arc::new(AtomicBool::new(false));
    let queries = Arc::new(AtomicU64::new(0));
    let querier = {
        let (store, stop, queries) = (store.clone(), stop.clone(), queries.clone());
        let sql = Analytic::P95ByHost.sql(Dialect::Tidelog, Window { since_us: 0, until_us: 0 });
        std::thread::spawn(move || -> Result<(), Error> {
            while !stop.load(Ordering::Relaxed) {
                run_sql(&store, &sql)?;
                queries.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        })
    };
    let beside = load(store, &load_spec, "sql analytics: appends beside queries", None);
    stop.store(true, Ordering::Relaxed);
    let queried = querier.join().map_err(|_| other_error("sql analytics", "the query thread panicked"))?;
    let beside = beside?;
    queried?;
    let mut rows = Vec::new();
    for (system, loaded) in [("tidelog, appends alone", &alone), ("tidelog, beside back-to-back SQL (p95 by host)", &beside)] {
        let mut row = ThroughputRow::new(WORKLOAD, system, setup.clone(), loaded.report.events, loaded.report.elapsed.as_secs_f64());
        row.call_latency = Some(LatencyUs::of(&loaded.report.latency_ns));
        rows.push(row);
    }
    let ratio = rows[1].events_per_s / rows[0].events_per_s.max(f64::MIN_POSITIVE);
    table::print_throughput(
        &format!(
            "4b. appends beside analytic queries: {:.2} of the rate alone ({} queries ran meanwhile)",
            ratio,
            queries.load(Ordering::Relaxed)
        ),
        &rows,
    );
    report.throughput.extend(rows);
    Ok(())
}
