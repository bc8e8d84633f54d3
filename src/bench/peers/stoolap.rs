//! stoolap 0.4: `memory://`, or `file://<dir>?sync_mode=full` (every commit fsyncs its WAL). A cloned
//! `Database` is a new connection (its own executor and transaction state) on the same engine, which
//! is what each thread of the concurrent workloads gets.

use std::path::Path;

use stoolap::{Database, Statement, Value};

use super::sql::{insert_sql, peer_error, select_sql, Connection, Param, Peer, Row, SCHEMA};
use crate::bench::workloads::queries::Op;
use crate::Error;

pub struct Stoolap {
    name: String,
    db: Database,
}

impl Stoolap {
    pub fn memory() -> Result<Stoolap, Error> {
        Stoolap::create("stoolap memory://", "memory://".into())
    }

    /// A new database in `dir` (removed first), fsyncing every commit.
    pub fn file_sync_full(dir: &Path) -> Result<Stoolap, Error> {
        let _ = std::fs::remove_dir_all(dir);
        Stoolap::create("stoolap file sync=full", format!("file://{}?sync_mode=full", dir.display()))
    }

    fn create(name: &str, dsn: String) -> Result<Stoolap, Error> {
        let db = Database::open(&dsn).map_err(|e| peer_error(name, "open", e))?;
        // memory:// is shared by DSN within the process: start from an empty table.
        db.execute("DROP TABLE IF EXISTS events", ()).map_err(|e| peer_error(name, "drop table", e))?;
        for statement in SCHEMA {
            db.execute(statement, ()).map_err(|e| peer_error(name, "create schema", e))?;
        }
        Ok(Stoolap { name: name.into(), db })
    }
}

impl Drop for Stoolap {
    fn drop(&mut self) {
        // Releases the engine (and the DSN in stoolap's registry) now, not at process exit.
        let _ = self.db.close();
    }
}

impl Peer for Stoolap {
    fn name(&self) -> &str {
        &self.name
    }

    fn connect(&self) -> Result<Box<dyn Connection + Send>, Error> {
        let db = self.db.clone();
        let err = |e| peer_error(&self.name, "prepare", e);
        let insert = db.prepare(&insert_sql()).map_err(err)?;
        let selects = Op::ALL.iter().map(|&op| db.prepare(&select_sql(op)).map_err(err)).collect::<Result<_, _>>()?;
        Ok(Box::new(StoolapConnection { name: self.name.clone(), db, insert, selects }))
    }
}

struct StoolapConnection {
    name: String,
    db: Database,
    insert: Statement,
    /// In `Op::ALL` order.
    selects: Vec<Statement>,
}

fn values(row: &Row) -> [Value; 6] {
    [
        Value::from(row.id),
        Value::from(row.entity_id.as_str()),
        Value::from(row.version),
        Value::from(row.event_type.as_str()),
        Value::from(row.ts_us),
        Value::from(row.payload.as_str()),
    ]
}

impl Connection for StoolapConnection {
    fn insert(&mut self, row: &Row) -> Result<(), Error> {
        self.insert.execute(values(row)).map(drop).map_err(|e| peer_error(&self.name, "insert", e))
    }

    fn insert_all(&mut self, rows: &[Row]) -> Result<(), Error> {
        let err = |e| peer_error(&self.name, "insert batch", e);
        let mut tx = self.db.begin().map_err(err)?;
        // A transaction takes SQL text (its `execute_prepared` wants a parsed statement, not the
        // prepared `Statement`); loading is not measured.
        let sql = insert_sql();
        for row in rows {
            tx.execute(&sql, values(row)).map_err(err)?;
        }
        tx.commit().map_err(err)
    }

    fn select(&mut self, op: Op, params: &[Param]) -> Result<Vec<Row>, Error> {
        let err = |e| peer_error(&self.name, op.name(), e);
        let index = Op::ALL.iter().position(|&o| o == op).unwrap_or(0);
        let params: Vec<Value> = params
            .iter()
            .map(|p| match p {
                Param::Int(v) => Value::from(*v),
                Param::Text(s) => Value::from(*s),
            })
            .collect();
        let mut out = Vec::new();
        for row in self.selects[index].query(params).map_err(err)? {
            let row = row.map_err(err)?;
            out.push(Row {
                id: row.get(0).map_err(err)?,
                entity_id: row.get(1).map_err(err)?,
                version: row.get(2).map_err(err)?,
                event_type: row.get(3).map_err(err)?,
                ts_us: row.get(4).map_err(err)?,
                payload: row.get(5).map_err(err)?,
            });
        }
        Ok(out)
    }

    fn analytic(&mut self, sql: &str) -> Result<usize, Error> {
        let err = |e| peer_error(&self.name, "analytic query", e);
        let mut count = 0;
        for row in self.db.query(sql, ()).map_err(err)? {
            std::hint::black_box(row.map_err(err)?);
            count += 1;
        }
        Ok(count)
    }
}
