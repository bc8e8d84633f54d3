//! Workload 4, queries on 2 shards: 200 events per entity, then get by id, an entity's history, its
//! latest event, an event-type filter and a time range across shards, and an as-of state fold. The
//! query cases (which id, entity, window, instant) are drawn once and reused by the peers, which load the
//! same events (see `peers/`).

use std::time::Instant;

use futures_lite::future::block_on;

use super::{load, open, AckInfo, Ctx};
use crate::bench::report::{LatencyRow, Report};
use crate::bench::stats::LatencyUs;
use crate::bench::{progress, table, targets};
use crate::loadgen::{entity_of, latency_histogram, LoadSpec};
use crate::{Error, Order, Query, Store};

pub const WORKLOAD: &str = "queries";
pub const EVENTS_PER_ENTITY: u64 = 200;
/// The rarer of the load generator's two event types (every 10th event).
pub const FILTER_TYPE: &str = "metric.alert";
pub const PAGE_LIMIT: usize = 100;
/// A time-range query's window, as a fraction of the loaded events' time span.
const WINDOW_OF_SPAN: f64 = 0.01;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Get,
    History,
    Latest,
    TypeFilter,
    TimeRange,
    StateAsOf,
}

impl Op {
    pub const ALL: [Op; 6] = [Op::Get, Op::History, Op::Latest, Op::TypeFilter, Op::TimeRange, Op::StateAsOf];

    pub fn name(self) -> &'static str {
        match self {
            Op::Get => "get by id",
            Op::History => "entity history (all its events)",
            Op::Latest => "latest of entity (desc, limit 1)",
            Op::TypeFilter => "event_type filter, desc, limit 100",
            Op::TimeRange => "time range (1% of span), limit 100",
            Op::StateAsOf => "as_of state fold of an entity",
        }
    }

    pub fn target_p99_us(self) -> Option<f64> {
        match self {
            Op::Get => Some(targets::POINT_READ_P99_US),
            Op::History => Some(targets::ENTITY_HISTORY_P99_US),
            Op::Latest => Some(targets::LATEST_OF_ENTITY_P99_US),
            _ => None,
        }
    }
}

/// One drawn query case; every operation uses the fields it needs.
#[derive(Debug, Clone)]
pub struct Case {
    /// Index into `QueryData::acks` of the event to get by id.
    pub ack: usize,
    pub entity: String,
    pub since_us: i64,
    pub until_us: i64,
    pub as_of_us: i64,
}

/// What the peers need to load the same events and run the same cases.
#[cfg_attr(not(feature = "peers"), allow(dead_code))]
pub struct QueryData {
    pub spec: LoadSpec,
    /// Sorted by sequence number: `acks[seq]`.
    pub acks: Vec<AckInfo>,
    pub cases: Vec<Case>,
    /// The SQL analytics questions asked of the same events (feature `sql`).
    #[cfg(feature = "sql")]
    pub analytics: super::analytics::AnalyticsData,
}

pub fn run(ctx: &Ctx, report: &mut Report) -> Result<QueryData, Error> {
    let entities = ctx.scaled(1_000, 10).min(1_000);
    let events = entities * EVENTS_PER_ENTITY;
    let (store, dir) = open(ctx, "queries", 2, 100)?;
    let spec = LoadSpec { tasks: 4, events, entities, batch_size: 1_000, ..LoadSpec::default() };
    let mut loaded = load(&store, &spec, "queries: loading 200 events per entity", Some(1))?;
    loaded.acks.sort_by_key(|a| a.seq);
    let cases = draw_cases(&spec, &loaded.acks, ctx.scaled(20_000, 200) as usize);
    let rows = run_ops("tidelog", &cases, |op, case| tidelog_op(&store, &loaded.acks, op, case));
    let rows = match rows {
        Ok(rows) => rows,
        Err(e) => {
            let _ = store.close();
            return Err(e);
        }
    };
    table::print_latency(
        &format!("4. queries, 2 shards, {entities} entities x {EVENTS_PER_ENTITY} events (calling thread)"),
        &rows,
    );
    report.latency.extend(rows);
    // SQL analytics on the same store and events, before the appends they add (which the peers do not have).
    #[cfg(feature = "sql")]
    let analytics = super::analytics::run(ctx, report, &store, &spec, &loaded.acks);
    store.close()?;
    ctx.remove(&dir);
    Ok(QueryData {
        spec,
        acks: loaded.acks,
        cases,
        #[cfg(feature = "sql")]
        analytics: analytics?,
    })
}

fn tidelog_op(store: &Store, acks: &[AckInfo], op: Op, case: &Case) -> Result<usize, Error> {
    let tenant = || Query::tenant(crate::DEFAULT_TENANT);
    Ok(match op {
        Op::Get => usize::from(store.get(crate::DEFAULT_TENANT, &acks[case.ack].id).is_some()),
        Op::History => block_on(store.query(&tenant().entity(case.entity.as_str()).limit(10_000)))?.events.len(),
        Op::Latest => block_on(store.query(&tenant().entity(case.entity.as_str()).order(Order::Desc).limit(1)))?.events.len(),
        Op::TypeFilter => {
            block_on(store.query(&tenant().event_type(FILTER_TYPE).order(Order::Desc).limit(PAGE_LIMIT)))?.events.len()
        }
        Op::TimeRange => {
            block_on(store.query(&tenant().since_us(case.since_us).until_us(case.until_us).limit(PAGE_LIMIT)))?.events.len()
        }
        Op::StateAsOf => store
            .entity_state(crate::DEFAULT_TENANT, &case.entity, Some(case.as_of_us))
            .map_or(0, |s| s.event_count as usize),
    })
}

/// Random cases over the loaded events: a random event, a random entity, a window of 1% of the time span
/// at a random place, a random instant in the span.
fn draw_cases(spec: &LoadSpec, acks: &[AckInfo], count: usize) -> Vec<Case> {
    let first_us = acks.iter().map(|a| a.timestamp_us).min().unwrap_or(0);
    let last_us = acks.iter().map(|a| a.timestamp_us).max().unwrap_or(0);
    let span_us = (last_us - first_us).max(1);
    let window_us = ((span_us as f64 * WINDOW_OF_SPAN) as i64).max(1);
    (0..count)
        .map(|_| {
            let since_us = first_us + fastrand::i64(0..span_us);
            Case {
                ack: fastrand::usize(0..acks.len().max(1)),
                entity: entity_of(spec, fastrand::u64(0..spec.entities.max(1))),
                since_us,
                until_us: since_us + window_us,
                as_of_us: first_us + fastrand::i64(0..=span_us),
            }
        })
        .collect()
}

/// Times every operation over every case (one operation at a time) and makes its row. `exec` runs one
/// operation and returns how many events it produced.
pub fn run_ops(
    system: &str,
    cases: &[Case],
    mut exec: impl FnMut(Op, &Case) -> Result<usize, Error>,
) -> Result<Vec<LatencyRow>, Error> {
    let mut rows = Vec::new();
    for op in Op::ALL {
        let bar = progress::bar(cases.len() as u64, &format!("{system}: {}", op.name()));
        let mut ns = latency_histogram();
        let mut events = 0usize;
        for case in cases {
            let t = Instant::now();
            let n = exec(op, case)?;
            ns.saturating_record(t.elapsed().as_nanos() as u64);
            events += n;
            bar.inc(1);
        }
        bar.finish_and_clear();
        let per_call = events as f64 / cases.len().max(1) as f64;
        let mut row = LatencyRow::new(WORKLOAD, system, op.name(), LatencyUs::of(&ns), per_call);
        if let (Some(target), "tidelog") = (op.target_p99_us(), system) {
            row = row.target_p99(target);
        }
        rows.push(row);
    }
    Ok(rows)
}
