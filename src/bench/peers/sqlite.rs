//! SQLite (rusqlite, bundled) in WAL mode: synchronous=NORMAL (a commit is not fdatasynced; the WAL is
//! synced at checkpoints) or FULL (every commit fdatasyncs the WAL). One connection per thread, with a
//! busy timeout so concurrent writers wait for the write lock instead of failing.

use std::path::PathBuf;
use std::time::Duration;

use rusqlite::{params, params_from_iter, OpenFlags};

use super::sql::{insert_sql, peer_error, select_sql, Connection, Param, Peer, Row, SCHEMA};
use crate::bench::workloads::queries::Op;
use crate::Error;

#[derive(Debug, Clone, Copy)]
pub enum Synchronous {
    Normal,
    Full,
}

pub struct Sqlite {
    name: String,
    path: PathBuf,
    synchronous: Synchronous,
}

const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

impl Sqlite {
    /// A new database file at `path` (removed first) with the events table.
    pub fn create(path: PathBuf, synchronous: Synchronous) -> Result<Sqlite, Error> {
        let name = match synchronous {
            Synchronous::Normal => "sqlite WAL sync=NORMAL",
            Synchronous::Full => "sqlite WAL sync=FULL",
        };
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
        let peer = Sqlite { name: name.into(), path, synchronous };
        let conn = peer.open()?;
        for statement in SCHEMA {
            conn.execute(statement, []).map_err(|e| peer_error(&peer.name, "create schema", e))?;
        }
        Ok(peer)
    }

    fn open(&self) -> Result<rusqlite::Connection, Error> {
        let err = |what: &str, e: rusqlite::Error| peer_error(&self.name, what, e);
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = rusqlite::Connection::open_with_flags(&self.path, flags).map_err(|e| err("open", e))?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| err("busy_timeout", e))?;
        // journal_mode answers with a row; pragma_update reads it.
        conn.pragma_update(None, "journal_mode", "WAL").map_err(|e| err("journal_mode", e))?;
        let synchronous = match self.synchronous {
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        };
        conn.pragma_update(None, "synchronous", synchronous).map_err(|e| err("synchronous", e))?;
        Ok(conn)
    }
}

impl Peer for Sqlite {
    fn name(&self) -> &str {
        &self.name
    }

    fn connect(&self) -> Result<Box<dyn Connection + Send>, Error> {
        Ok(Box::new(SqliteConnection { name: self.name.clone(), conn: self.open()? }))
    }
}

struct SqliteConnection {
    name: String,
    conn: rusqlite::Connection,
}

fn insert_row(conn: &rusqlite::Connection, row: &Row) -> rusqlite::Result<usize> {
    conn.prepare_cached(&insert_sql())?.execute(params![
        row.id,
        row.entity_id,
        row.version,
        row.event_type,
        row.ts_us,
        row.payload
    ])
}

impl Connection for SqliteConnection {
    fn insert(&mut self, row: &Row) -> Result<(), Error> {
        insert_row(&self.conn, row).map(drop).map_err(|e| peer_error(&self.name, "insert", e))
    }

    fn insert_all(&mut self, rows: &[Row]) -> Result<(), Error> {
        let err = |e| peer_error(&self.name, "insert batch", e);
        let tx = self.conn.transaction().map_err(err)?;
        for row in rows {
            insert_row(&tx, row).map_err(err)?;
        }
        tx.commit().map_err(err)
    }

    fn select(&mut self, op: Op, params: &[Param]) -> Result<Vec<Row>, Error> {
        let err = |e| peer_error(&self.name, op.name(), e);
        let mut statement = self.conn.prepare_cached(&select_sql(op)).map_err(err)?;
        let values = params.iter().map(|p| match p {
            Param::Int(v) => rusqlite::types::Value::Integer(*v),
            Param::Text(s) => rusqlite::types::Value::Text((*s).to_string()),
        });
        let rows = statement
            .query_map(params_from_iter(values), |r| {
                Ok(Row {
                    id: r.get(0)?,
                    entity_id: r.get(1)?,
                    version: r.get(2)?,
                    event_type: r.get(3)?,
                    ts_us: r.get(4)?,
                    payload: r.get(5)?,
                })
            })
            .map_err(err)?;
        rows.collect::<rusqlite::Result<Vec<Row>>>().map_err(err)
    }

    fn analytic(&mut self, sql: &str) -> Result<usize, Error> {
        let err = |e| peer_error(&self.name, "analytic query", e);
        let mut statement = self.conn.prepare_cached(sql).map_err(err)?;
        let columns = statement.column_count();
        let mut rows = statement.query([]).map_err(err)?;
        let mut count = 0;
        while let Some(row) = rows.next().map_err(err)? {
            // Read every column, as the other systems produce every value.
            for i in 0..columns {
                std::hint::black_box(row.get_ref(i).map_err(err)?);
            }
            count += 1;
        }
        Ok(count)
    }
}
