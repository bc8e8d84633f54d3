//! Workload 4 on the peers: the same events as tidelog's query workload (same payloads, versions and
//! timestamps), loaded in large transactions, then the same query cases in SQL.

use std::path::Path;

use super::sql::{fold, Connection, Param, Row};
use super::{latency_ratio, PeerKind};
use crate::bench::report::Report;
use crate::bench::table;
use crate::bench::workloads::queries::{run_ops, Op, QueryData, FILTER_TYPE, WORKLOAD};
#[cfg(feature = "sql")]
use crate::bench::workloads::analytics;
use crate::Error;

const PEERS: [PeerKind; 2] = [PeerKind::StoolapMemory, PeerKind::SqliteWalNormal];
const LOAD_ROWS_PER_TRANSACTION: usize = 10_000;

pub fn run(report: &mut Report, dir: &Path, data: &QueryData) -> Result<(), Error> {
    let mut rows = Vec::new();
    #[cfg(feature = "sql")]
    let mut analytics = Vec::new();
    for kind in PEERS {
        let peer = kind.create(dir)?;
        let mut conn = peer.connect()?;
        let events: Vec<Row> = data.acks.iter().map(|a| Row::of(&data.spec, a.seq, a.version, a.timestamp_us)).collect();
        for chunk in events.chunks(LOAD_ROWS_PER_TRANSACTION) {
            conn.insert_all(chunk)?;
        }
        drop(events);
        rows.extend(run_ops(peer.name(), &data.cases, |op, case| {
            let entity = Param::Text(&case.entity);
            let params = match op {
                Op::Get => vec![Param::Int(data.acks[case.ack].seq as i64)],
                Op::History | Op::Latest => vec![entity],
                Op::TypeFilter => vec![Param::Text(FILTER_TYPE)],
                Op::TimeRange => vec![Param::Int(case.since_us), Param::Int(case.until_us)],
                Op::StateAsOf => vec![entity, Param::Int(case.as_of_us)],
            };
            select(conn.as_mut(), op, &params)
        })?);
        #[cfg(feature = "sql")]
        analytics.extend(ask_analytics(peer.name(), conn.as_mut(), data)?);
    }
    table::print_latency("4. queries on peers (same events, same cases)", &rows);
    for row in &rows {
        if let Some(tidelog) = report.tidelog_latency(WORKLOAD, &row.operation) {
            let ratio = latency_ratio(tidelog, row);
            report.peer_ratios.push(ratio);
        }
    }
    report.latency.extend(rows);
    #[cfg(feature = "sql")]
    {
        table::print_latency("4b. SQL analytics on peers (same events, same questions)", &analytics);
        for row in &analytics {
            if let Some(tidelog) = report.tidelog_latency(analytics::WORKLOAD, &row.operation) {
                let ratio = latency_ratio(tidelog, row);
                report.peer_ratios.push(ratio);
            }
        }
        report.latency.extend(analytics);
    }
    Ok(())
}

/// The analytics questions on one peer, each answer checked against tidelog's row count.
#[cfg(feature = "sql")]
fn ask_analytics(
    name: &str,
    conn: &mut (dyn Connection + Send),
    data: &QueryData,
) -> Result<Vec<crate::bench::report::LatencyRow>, Error> {
    use analytics::{time_questions, Analytic, Dialect};
    let ours = &data.analytics;
    let (rows, counts) = time_questions(name, ours.runs, |q| conn.analytic(&q.sql(Dialect::Peer, ours.window)))?;
    for ((question, theirs), mine) in Analytic::ALL.iter().zip(&counts).zip(&ours.rows) {
        if theirs != mine {
            return Err(crate::bench::other_error(
                format!("{name}: {}", question.name()),
                format!("{theirs} rows where tidelog answered {mine}: the questions differ"),
            ));
        }
    }
    Ok(rows)
}

/// Rows read (for the state, rows folded).
fn select(conn: &mut (dyn Connection + Send), op: Op, params: &[Param]) -> Result<usize, Error> {
    let rows = conn.select(op, params)?;
    Ok(if op == Op::StateAsOf { fold(&rows) } else { rows.len() })
}
