//! The Delta Lake table of the acknowledged history (`PREFIX/tables/events` by default): each shipped
//! checkpoint's events are appended to it, so DuckDB, Spark, Trino, DataFusion and Python `deltalake` read
//! the history with no tidelog code. See docs/FORMAT.md ("Delta Lake table").
//!
//! Exactly once, across crashes and several writers: every commit carries a Delta application
//! transaction (`txn`) whose id names this store and shard and whose version is the last WAL position the
//! commit holds. A shard appends only events after the version the table already records for it, so a
//! commit that landed before a crash is not repeated, and compaction (which rewrites events already
//! appended into one file) adds nothing twice. Commits are put-if-absent (`PutMode::Create`: S3's
//! `If-None-Match`); a writer that loses the race re-reads the log and retries, which Delta allows for
//! blind appends: tidelog nodes with tenants partitioned between them may share one table.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Date32Array, RecordBatch, TimestampMicrosecondArray, UInt64Array};
use arrow::compute::{cast, filter_record_batch};
use arrow::datatypes::{DataType as ArrowType, Field, Schema, SchemaRef, TimeUnit};
use bytes::Bytes;
use deltalake_core::kernel::transaction::CommitProperties;
use deltalake_core::kernel::{DataType, Transaction};
use deltalake_core::logstore::{default_logstore, logstore_factories, LogStoreFactory, LogStoreRef, StorageConfig};
use deltalake_core::operations::create::CreateBuilder;
use deltalake_core::protocol::SaveMode;
use deltalake_core::writer::{DeltaWriter, RecordBatchWriter};
use deltalake_core::{DeltaResult, DeltaTable, DeltaTableBuilder, DeltaTableError, ObjectStore};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use url::Url;

use super::error::ShipError;
use super::remote::Remote;

/// The table's partition columns: queries by tenant and by day read only their directories.
pub const PARTITION_COLUMNS: [&str; 2] = ["tenant_id", "date"];

/// The table's columns: the export's (`tidelog export`), in Delta's types (Delta has no unsigned or
/// fixed-size binary types), and the `date` (UTC) of the timestamp to partition by.
fn columns() -> Vec<(&'static str, DataType, bool)> {
    vec![
        ("position", DataType::LONG, false),
        ("id", DataType::BINARY, false),
        ("tenant_id", DataType::STRING, false),
        ("entity_id", DataType::STRING, false),
        ("event_type", DataType::STRING, false),
        ("timestamp", DataType::TIMESTAMP, false),
        ("version", DataType::LONG, false),
        ("payload", DataType::STRING, false),
        ("metadata", DataType::STRING, true),
        ("date", DataType::DATE, false),
    ]
}

/// The Arrow form of `columns()`, what the writer is given.
fn arrow_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("position", ArrowType::Int64, false),
        Field::new("id", ArrowType::Binary, false),
        Field::new("tenant_id", ArrowType::Utf8, false),
        Field::new("entity_id", ArrowType::Utf8, false),
        Field::new("event_type", ArrowType::Utf8, false),
        Field::new("timestamp", ArrowType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false),
        Field::new("version", ArrowType::Int64, false),
        Field::new("payload", ArrowType::Utf8, false),
        Field::new("metadata", ArrowType::Utf8, true),
        Field::new("date", ArrowType::Date32, false),
    ]))
}

/// The Delta log over S3 needs only put-if-absent, which `object_store` does with `If-None-Match`:
/// the default log store, registered for `s3://` (deltalake-core registers only `file://`).
struct PutIfAbsentLogStore;

impl LogStoreFactory for PutIfAbsentLogStore {
    fn with_options(
        &self,
        prefixed_store: deltalake_core::logstore::ObjectStoreRef,
        root_store: deltalake_core::logstore::ObjectStoreRef,
        location: &Url,
        options: &StorageConfig,
    ) -> DeltaResult<LogStoreRef> {
        Ok(default_logstore(prefixed_store, root_store, location, options))
    }
}

/// Appends shipped checkpoints to the table.
pub struct DeltaSink {
    url: Url,
    /// The object store at the root of the table's bucket (or file system).
    root: Arc<dyn ObjectStore>,
    table: Option<DeltaTable>,
    /// Names this store in the table's application transactions (`tidelog-<id salt>-shard-<k>`).
    app_prefix: String,
    /// Per shard: the last WAL position the table holds (the shard's `txn` version), once read.
    committed: Vec<Option<u64>>,
}

impl DeltaSink {
    /// `url`: where the table is (`s3://BUCKET/PATH` or `file:///DIR`); `store_id`: the data directory's
    /// id salt, which `tidelog restore` keeps (a restored node continues its shards' transactions).
    pub fn new(url: &str, store_id: &str, shards: usize) -> Result<DeltaSink, ShipError> {
        let bad = |reason: String| ShipError::BadUrl { url: url.to_string(), reason };
        let mut parsed = Url::parse(url).map_err(|e| bad(e.to_string()))?;
        if parsed.scheme() == "s3a" {
            parsed.set_scheme("s3").map_err(|()| bad("cannot use as s3://".into()))?;
        }
        let root = match parsed.scheme() {
            "s3" => {
                let bucket = parsed.host_str().unwrap_or_default();
                Remote::open(&format!("s3://{bucket}"))?.store
            }
            "file" => {
                let dir = parsed.to_file_path().map_err(|_| bad("not a local path".into()))?;
                std::fs::create_dir_all(&dir).map_err(|e| bad(format!("create {}: {e}", dir.display())))?;
                Arc::new(object_store::local::LocalFileSystem::new())
            }
            other => return Err(bad(format!("scheme {other:?} is not supported (s3:// or file://)"))),
        };
        logstore_factories().insert(Url::parse("s3://").expect("url"), Arc::new(PutIfAbsentLogStore));
        Ok(DeltaSink { url: parsed, root, table: None, app_prefix: format!("tidelog-{store_id}"), committed: vec![None; shards] })
    }

    fn app_id(&self, shard: usize) -> String {
        format!("{}-shard-{shard}", self.app_prefix)
    }

    /// The table, loaded (or created, if nothing is there yet) and brought up to date.
    async fn table(&mut self) -> Result<&mut DeltaTable, ShipError> {
        if self.table.is_none() {
            let builder = DeltaTableBuilder::from_url(self.url.clone())
                .map_err(delta_error("open"))?
                .with_storage_backend(self.root.clone(), self.url.clone());
            let mut table = builder.build().map_err(delta_error("open"))?;
            match table.load().await {
                Ok(()) => {}
                Err(DeltaTableError::NotATable(_)) => table = self.create(table.log_store()).await?,
                Err(e) => return Err(delta_error("load")(e)),
            }
            self.table = Some(table);
        } else if let Some(table) = self.table.as_mut() {
            table.update_incremental(None).await.map_err(delta_error("read the log of"))?;
        }
        Ok(self.table.as_mut().expect("set above"))
    }

    async fn create(&self, log_store: LogStoreRef) -> Result<DeltaTable, ShipError> {
        let mut create = CreateBuilder::new()
            .with_log_store(log_store.clone())
            .with_table_name("events")
            .with_comment("tidelog events: the acknowledged history, appended at each checkpoint")
            .with_partition_columns(PARTITION_COLUMNS)
            .with_save_mode(SaveMode::Ignore);
        for (name, data_type, nullable) in columns() {
            create = create.with_column(name, data_type, nullable, None);
        }
        match create.await {
            Ok(table) => Ok(table),
            // Another node created it first (both put version 0; one wins): use theirs.
            Err(DeltaTableError::VersionAlreadyExists(_)) | Err(DeltaTableError::Transaction { .. }) => {
                let mut table = DeltaTableBuilder::from_url(self.url.clone())
                    .map_err(delta_error("open"))?
                    .with_storage_backend(self.root.clone(), self.url.clone())
                    .build()
                    .map_err(delta_error("open"))?;
                table.load().await.map_err(delta_error("load"))?;
                Ok(table)
            }
            Err(e) => Err(delta_error("create")(e)),
        }
    }

    /// The last WAL position of `shard` the table holds.
    pub async fn committed(&mut self, shard: usize) -> Result<u64, ShipError> {
        if let Some(position) = self.committed[shard] {
            return Ok(position);
        }
        let app_id = self.app_id(shard);
        let table = self.table().await?;
        let log_store = table.log_store();
        let snapshot = table.snapshot().map_err(delta_error("read"))?;
        let version = snapshot.transaction_version(log_store.as_ref(), app_id).await.map_err(delta_error("read"))?;
        let position = version.map_or(0, |v| u64::try_from(v).unwrap_or(0));
        self.committed[shard] = Some(position);
        Ok(position)
    }

    /// Appends the events of one checkpoint file (`parquet`, the whole file) after the shard's committed
    /// position, up to `last_position`, in one commit. Returns the events appended.
    pub async fn append(&mut self, shard: usize, parquet: Bytes, last_position: u64) -> Result<u64, ShipError> {
        if last_position <= self.committed(shard).await? {
            return Ok(0);
        }
        // The table's own word, read fresh: a commit can land although its call failed (a post-commit step,
        // a lost reply), and then the position remembered here is behind.
        let app_id = self.app_id(shard);
        let table = self.table().await?;
        let log_store = table.log_store();
        let version = table
            .snapshot()
            .map_err(delta_error("read"))?
            .transaction_version(log_store.as_ref(), app_id.clone())
            .await
            .map_err(delta_error("read"))?;
        let after = version.map_or(0, |v| u64::try_from(v).unwrap_or(0)).max(self.committed[shard].unwrap_or(0));
        self.committed[shard] = Some(after);
        if last_position <= after {
            return Ok(0);
        }
        let batches = super::shipper::blocking(move || to_delta_batches(parquet, after)).await?;
        let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
        let properties = CommitProperties::default()
            .with_application_transaction(Transaction::new(app_id, i64::try_from(last_position).unwrap_or(i64::MAX)));
        let table = self.table.as_mut().expect("loaded above");
        let mut writer = RecordBatchWriter::for_table(table).map_err(delta_error("write to"))?.with_commit_properties(properties);
        for batch in batches {
            writer.write(batch).await.map_err(delta_error("write to"))?;
            // Encoding is CPU work on the side runtime's worker, which SQL shares: a batch at a time.
            tokio::task::yield_now().await;
        }
        writer.flush_and_commit(table).await.map_err(delta_error("commit to"))?;
        self.committed[shard] = Some(last_position);
        Ok(rows)
    }
}

fn delta_error(action: &'static str) -> impl Fn(DeltaTableError) -> ShipError {
    move |e| ShipError::Failed(format!("{action} the Delta table: {e}"))
}

/// A checkpoint file's rows after `after`, in the table's columns.
fn to_delta_batches(parquet: Bytes, after: u64) -> Result<Vec<RecordBatch>, ShipError> {
    let failed = |e: &dyn std::fmt::Display| ShipError::Failed(format!("read a checkpoint for the Delta table: {e}"));
    let reader = ParquetRecordBatchReaderBuilder::try_new(parquet).map_err(|e| failed(&e))?.build().map_err(|e| failed(&e))?;
    let schema = arrow_schema();
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| failed(&e))?;
        let positions = column::<UInt64Array>(&batch, "position").map_err(|e| failed(&e))?;
        let keep: arrow::array::BooleanArray = positions.iter().map(|p| Some(p.is_some_and(|p| p > after))).collect();
        let batch = filter_record_batch(&batch, &keep).map_err(|e| failed(&e))?;
        if batch.num_rows() == 0 {
            continue;
        }
        let timestamps = column::<TimestampMicrosecondArray>(&batch, "timestamp").map_err(|e| failed(&e))?;
        const US_PER_DAY: i64 = 86_400_000_000;
        let dates: Date32Array = timestamps.iter().map(|t| t.map(|t| t.div_euclid(US_PER_DAY) as i32)).collect();
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
        for field in schema.fields() {
            if field.name() == "date" {
                arrays.push(Arc::new(dates.clone()));
                continue;
            }
            let source = batch.column_by_name(field.name()).ok_or_else(|| failed(&format!("no column {}", field.name())))?;
            arrays.push(cast(source, field.data_type()).map_err(|e| failed(&e))?);
        }
        out.push(RecordBatch::try_new(schema.clone(), arrays).map_err(|e| failed(&e))?);
    }
    Ok(out)
}

fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> Result<&'a T, String> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| format!("column {name} is missing or of another type"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{DictionaryArray, FixedSizeBinaryArray, Int64Array, StringArray};
    use arrow::datatypes::Int32Type;
    use parquet::arrow::ArrowWriter;

    /// A checkpoint file's bytes holding positions 1..=3, the last two around the Unix epoch.
    fn checkpoint(timestamps_us: [i64; 3]) -> Bytes {
        let dictionary = |v: [&str; 3]| Arc::new(v.into_iter().collect::<DictionaryArray<Int32Type>>()) as ArrayRef;
        let ids: Vec<[u8; 16]> = (1..=3u8).map(|i| [i; 16]).collect();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(UInt64Array::from(vec![1, 2, 3])),
            Arc::new(FixedSizeBinaryArray::try_from_iter(ids.iter()).unwrap()),
            dictionary(["a", "b", "b"]),
            dictionary(["e1", "e2", "e2"]),
            dictionary(["t", "t", "u"]),
            Arc::new(TimestampMicrosecondArray::from(timestamps_us.to_vec()).with_timezone("UTC")),
            Arc::new(UInt64Array::from(vec![1, 1, 2])),
            Arc::new(StringArray::from(vec!["{}", "{\"x\":1}", "[]"])),
            Arc::new(StringArray::from(vec![None, Some("{\"m\":true}"), None])),
        ];
        let batch = RecordBatch::try_new(crate::checkpoint::schema::schema(false), columns).unwrap();
        let mut out = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut out, batch.schema(), None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        Bytes::from(out)
    }

    #[test]
    fn rows_after_the_committed_position_in_the_table_columns() {
        const DAY_US: i64 = 86_400_000_000;
        let batches = to_delta_batches(checkpoint([5, -1, DAY_US]), 1).unwrap();
        assert_eq!(batches.len(), 1);
        let batch = &batches[0];
        assert_eq!(batch.schema(), arrow_schema());
        assert_eq!(batch.num_rows(), 2, "position 1 is committed already");
        let position = batch.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(position.values(), &[2, 3]);
        let tenant = batch.column_by_name("tenant_id").unwrap().as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(tenant.value(0), "b");
        let date = batch.column_by_name("date").unwrap().as_any().downcast_ref::<Date32Array>().unwrap();
        assert_eq!(date.values(), &[-1, 1], "a microsecond before the epoch is 1969-12-31");
        let metadata = batch.column_by_name("metadata").unwrap();
        assert!(metadata.is_valid(0) && metadata.is_null(1));
        let id = batch.column_by_name("id").unwrap().as_any().downcast_ref::<arrow::array::BinaryArray>().unwrap();
        assert_eq!(id.value(0), &[2u8; 16]);
        assert!(to_delta_batches(checkpoint([5, -1, DAY_US]), 3).unwrap().is_empty(), "all committed: nothing");
    }

    #[test]
    fn the_arrow_columns_are_the_delta_columns() {
        let names: Vec<String> = arrow_schema().fields().iter().map(|f| f.name().clone()).collect();
        let delta: Vec<&str> = columns().iter().map(|c| c.0).collect();
        assert_eq!(names, delta);
        assert!(PARTITION_COLUMNS.iter().all(|p| delta.contains(p)));
    }
}
