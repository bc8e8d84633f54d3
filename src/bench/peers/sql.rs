//! What the SQL peers share: the events table, its rows, one connection's operations, and the state
//! fold (the same shallow JSON merge as tidelog's `fold_state`, done on the rows the peer returns).

use crate::bench::workloads::queries::{Op, PAGE_LIMIT};
use crate::loadgen::{make_event, LoadSpec};
use crate::Error;

/// The schema: the id is an integer primary key (the load generator's sequence number), which is the
/// cheapest key for both peers; tidelog reads by its 16-byte UUID.
pub const SCHEMA: [&str; 3] = [
    "CREATE TABLE events (id INTEGER PRIMARY KEY, entity_id TEXT NOT NULL, version INTEGER NOT NULL, \
     event_type TEXT NOT NULL, ts INTEGER NOT NULL, payload TEXT NOT NULL)",
    "CREATE INDEX events_entity_version ON events (entity_id, version)",
    "CREATE INDEX events_type_ts ON events (event_type, ts)",
];

const COLUMNS: &str = "id, entity_id, version, event_type, ts, payload";

pub fn insert_sql() -> String {
    format!("INSERT INTO events ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)")
}

/// The SELECT of each operation. Parameters: $1 id | entity | event_type | since, $2 as_of | until.
pub fn select_sql(op: Op) -> String {
    match op {
        Op::Get => format!("SELECT {COLUMNS} FROM events WHERE id = $1"),
        Op::History => format!("SELECT {COLUMNS} FROM events WHERE entity_id = $1 ORDER BY version"),
        Op::Latest => format!("SELECT {COLUMNS} FROM events WHERE entity_id = $1 ORDER BY version DESC LIMIT 1"),
        Op::TypeFilter => format!("SELECT {COLUMNS} FROM events WHERE event_type = $1 ORDER BY ts DESC LIMIT {PAGE_LIMIT}"),
        Op::TimeRange => format!("SELECT {COLUMNS} FROM events WHERE ts >= $1 AND ts < $2 ORDER BY ts LIMIT {PAGE_LIMIT}"),
        Op::StateAsOf => format!("SELECT {COLUMNS} FROM events WHERE entity_id = $1 AND ts <= $2 ORDER BY version"),
    }
}

/// One event as a row.
#[derive(Debug, Clone)]
pub struct Row {
    pub id: i64,
    pub entity_id: String,
    pub version: i64,
    pub event_type: String,
    pub ts_us: i64,
    pub payload: String,
}

impl Row {
    /// The load generator's event `seq` with the given version and timestamp.
    pub fn of(spec: &LoadSpec, seq: u64, version: u64, ts_us: i64) -> Row {
        let e = make_event(spec, seq);
        Row { id: seq as i64, entity_id: e.entity_id, version: version as i64, event_type: e.event_type, ts_us, payload: e.payload }
    }

    /// Event `seq` appended by a client that numbers versions itself: entity `seq % entities` gets its
    /// k-th event at seq = k * entities + entity.
    pub fn appended(spec: &LoadSpec, seq: u64) -> Row {
        Row::of(spec, seq, seq / spec.entities.max(1) + 1, crate::time::now_us())
    }
}

/// The parameters of one query case: a text or integer first parameter and an optional second.
#[derive(Debug, Clone)]
pub enum Param<'a> {
    Int(i64),
    Text(&'a str),
}

/// One connection to a peer database.
pub trait Connection {
    /// One row in its own transaction (autocommit).
    fn insert(&mut self, row: &Row) -> Result<(), Error>;
    /// Many rows in one transaction (loading, not measured as ingest).
    fn insert_all(&mut self, rows: &[Row]) -> Result<(), Error>;
    /// Runs `op` and reads every column of every row it returns.
    fn select(&mut self, op: Op, params: &[Param]) -> Result<Vec<Row>, Error>;
    /// Runs one analytic query (SQL text, no parameters), reads every row, and returns how many.
    fn analytic(&mut self, sql: &str) -> Result<usize, Error>;
}

/// A database that hands out connections (one per thread).
pub trait Peer: Sync {
    fn name(&self) -> &str;
    fn connect(&self) -> Result<Box<dyn Connection + Send>, Error>;
}

/// Shallow merge of the payload objects in version order, like tidelog's `fold_state`; returns how
/// many events were folded.
pub fn fold(rows: &[Row]) -> usize {
    let mut state = serde_json::Value::Object(serde_json::Map::new());
    for row in rows {
        match (serde_json::from_str::<serde_json::Value>(&row.payload), &mut state) {
            (Ok(serde_json::Value::Object(fields)), serde_json::Value::Object(current)) => current.extend(fields),
            (Ok(value), current) => *current = value,
            (Err(_), _) => {}
        }
    }
    std::hint::black_box(&state);
    rows.len()
}

pub fn peer_error(peer: &str, what: &str, e: impl std::fmt::Display) -> Error {
    crate::bench::other_error(format!("{peer}: {what}"), e)
}
