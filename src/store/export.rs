//! `tidelog export --format parquet`: writes events as a Hive-partitioned Parquet dataset,
//! `tenant_id=<t>/date=<YYYY-MM-DD>/part-00000.parquet`, which DuckDB, DataFusion, Spark, pandas and
//! pyarrow read as one table. The tenant is in the directory name (readers add it back as a partition
//! column), so the files leave that column out; the rest is the checkpoint schema. Rows within a file
//! are in (timestamp, shard, position) order.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::event::StoredEvent;
use crate::time::format_rfc3339_us;
use super::Store;
use crate::checkpoint::write_events;

/// Which events to export.
#[derive(Debug, Clone, Default)]
pub struct ExportFilter {
    /// One tenant, or all of them.
    pub tenant_id: Option<String>,
    /// Inclusive lower bound on the event timestamp (µs since the epoch, UTC).
    pub since_us: Option<i64>,
    /// Exclusive upper bound.
    pub until_us: Option<i64>,
}

impl ExportFilter {
    fn matches(&self, event: &StoredEvent) -> bool {
        let ts = event.timestamp_us();
        self.tenant_id.as_deref().is_none_or(|t| event.tenant_id() == t)
            && self.since_us.is_none_or(|s| ts >= s)
            && self.until_us.is_none_or(|u| ts < u)
    }
}

/// One file written.
#[derive(Debug, Clone)]
pub struct ExportedFile {
    pub path: PathBuf,
    pub rows: u64,
    pub size_bytes: u64,
}

/// Writes the acknowledged events of `store` that pass `filter` under `out`, which must not exist or be
/// empty. Runs on the calling thread (it starts a small glommio executor for the file writes).
pub fn export_parquet(store: &Store, out: &Path, filter: &ExportFilter) -> Result<Vec<ExportedFile>, Error> {
    if std::fs::read_dir(out).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(Error::DataDir { path: out.display().to_string(), reason: "the export directory is not empty".into() });
    }
    // Partition, then order each partition by time (events from several shards interleave).
    let mut partitions: BTreeMap<(String, String), Vec<(i64, u32, StoredEvent)>> = BTreeMap::new();
    for shard in 0..store.shard_count() {
        let shared = store.shard(shard);
        for position in 1..=shared.visible_position() {
            let Some(event) = shared.get_position(position) else { continue };
            if !filter.matches(&event) {
                continue;
            }
            let date = format_rfc3339_us(event.timestamp_us())[..10].to_string();
            let key = (event.tenant_id().to_string(), date);
            partitions.entry(key).or_default().push((event.timestamp_us(), shard as u32, event));
        }
    }
    let out = out.to_path_buf();
    let executor = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .name("tidelog-export")
        .make()
        .map_err(|e| Error::io("start the export executor", e.into()))?;
    executor.run(async move {
        let mut written = Vec::with_capacity(partitions.len());
        for ((tenant_id, date), mut rows) in partitions {
            rows.sort_by_key(|(ts, shard, e)| (*ts, *shard, e.position()));
            // Tenant ids are ASCII letters, digits, '-', '_' and '.': safe in a path as they are.
            let dir = out.join(format!("tenant_id={tenant_id}")).join(format!("date={date}"));
            std::fs::create_dir_all(&dir).map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
            let metadata = vec![("tidelog.export".to_string(), "hive".to_string())];
            let file = write_events(&dir, "part-00000.parquet", 0, u64::MAX, true, metadata, rows.into_iter().map(|(_, _, e)| e))
                .await?;
            written.push(ExportedFile { path: dir.join(&file.file), rows: file.events, size_bytes: file.size_bytes });
        }
        Ok(written)
    })
}
