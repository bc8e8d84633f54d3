//! The Parquet columns of a checkpoint, and the conversions between stored events and Arrow batches.
//! See `docs/FORMAT.md` ("Checkpoints").

use std::sync::{Arc, OnceLock};

use arrow::array::{
    Array, ArrayBuilder, ArrayRef, DictionaryArray, FixedSizeBinaryArray, FixedSizeBinaryBuilder, RecordBatch, StringArray,
    StringBuilder, StringDictionaryBuilder, TimestampMicrosecondArray, TimestampMicrosecondBuilder, UInt64Array,
    UInt64Builder,
};
use arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef, TimeUnit};
use parquet::basic::{Compression, Encoding};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::metadata::KeyValue;
use parquet::schema::types::ColumnPath;

use crate::event::{Event, StoredEvent};

/// Rows per row group: large enough for scans, small enough to bound the writer's memory.
pub const ROW_GROUP_ROWS: usize = 128 * 1024;

/// Column names, in file order.
pub const COLUMNS: [&str; 9] =
    ["position", "id", "tenant_id", "entity_id", "event_type", "timestamp", "version", "payload", "metadata"];

fn dictionary_utf8() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

/// The checkpoint schema. `without_tenant` drops `tenant_id` (exports carry it in the directory name,
/// Hive-style, and readers add it back as a partition column).
pub fn schema(without_tenant: bool) -> SchemaRef {
    static FULL: OnceLock<SchemaRef> = OnceLock::new();
    static EXPORT: OnceLock<SchemaRef> = OnceLock::new();
    let cell = if without_tenant { &EXPORT } else { &FULL };
    cell.get_or_init(|| {
        let fields = vec![
            Field::new("position", DataType::UInt64, false),
            Field::new("id", DataType::FixedSizeBinary(16), false),
            Field::new("tenant_id", dictionary_utf8(), false),
            Field::new("entity_id", dictionary_utf8(), false),
            Field::new("event_type", dictionary_utf8(), false),
            Field::new("timestamp", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false),
            Field::new("version", DataType::UInt64, false),
            Field::new("payload", DataType::Utf8, false),
            Field::new("metadata", DataType::Utf8, true),
        ];
        let fields = fields.into_iter().filter(|f| !(without_tenant && f.name() == "tenant_id")).collect::<Vec<_>>();
        Arc::new(Schema::new(fields))
    })
    .clone()
}

/// Snappy, 128K-row groups, statistics per page; dictionaries only where values repeat.
pub fn writer_properties(metadata: Vec<(String, String)>) -> WriterProperties {
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_size(ROW_GROUP_ROWS)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_created_by(format!("tidelog {}", env!("CARGO_PKG_VERSION")))
        .set_key_value_metadata(Some(metadata.into_iter().map(|(k, v)| KeyValue::new(k, v)).collect()));
    for column in ["id", "payload", "metadata"] {
        builder = builder.set_column_dictionary_enabled(ColumnPath::from(column), false);
    }
    for column in ["position", "version", "timestamp"] {
        // Increasing integers: delta encoding stores them in a few bits each.
        builder = builder
            .set_column_dictionary_enabled(ColumnPath::from(column), false)
            .set_column_encoding(ColumnPath::from(column), Encoding::DELTA_BINARY_PACKED);
    }
    builder.build()
}

/// Builds one Arrow batch from stored events, reading their archived fields in place. Checkpoints build
/// every column; SQL scans build only the columns a query reads (`projected`), so a query that never
/// touches `payload` never copies it.
pub struct BatchBuilder {
    /// The schema of the batches built: the checkpoint schema, less the columns left out.
    schema: SchemaRef,
    position: Option<UInt64Builder>,
    id: Option<FixedSizeBinaryBuilder>,
    tenant_id: Option<StringDictionaryBuilder<Int32Type>>,
    entity_id: Option<StringDictionaryBuilder<Int32Type>>,
    event_type: Option<StringDictionaryBuilder<Int32Type>>,
    timestamp: Option<TimestampMicrosecondBuilder>,
    version: Option<UInt64Builder>,
    payload: Option<StringBuilder>,
    metadata: Option<StringBuilder>,
    rows: usize,
}

impl BatchBuilder {
    pub fn new(without_tenant: bool, rows: usize) -> BatchBuilder {
        BatchBuilder::projected(without_tenant, rows, &[true; COLUMNS.len()])
    }

    /// A builder of the columns whose entry in `keep` (indexed like [`COLUMNS`]) is true, in file order.
    pub fn projected(without_tenant: bool, rows: usize, keep: &[bool; COLUMNS.len()]) -> BatchBuilder {
        let keep = |name: &str| {
            let index = COLUMNS.iter().position(|c| *c == name).expect("a known column");
            keep[index] && !(without_tenant && name == "tenant_id")
        };
        let full = schema(without_tenant);
        let indexes: Vec<usize> = full.fields().iter().enumerate().filter(|(_, f)| keep(f.name())).map(|(i, _)| i).collect();
        let schema = Arc::new(full.project(&indexes).expect("indexes of the schema"));
        BatchBuilder {
            schema,
            position: keep("position").then(|| UInt64Builder::with_capacity(rows)),
            id: keep("id").then(|| FixedSizeBinaryBuilder::with_capacity(rows, 16)),
            tenant_id: keep("tenant_id").then(StringDictionaryBuilder::new),
            entity_id: keep("entity_id").then(StringDictionaryBuilder::new),
            event_type: keep("event_type").then(StringDictionaryBuilder::new),
            timestamp: keep("timestamp").then(|| TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("UTC")),
            version: keep("version").then(|| UInt64Builder::with_capacity(rows)),
            payload: keep("payload").then(|| StringBuilder::with_capacity(rows, rows * 256)),
            metadata: keep("metadata").then(StringBuilder::new),
            rows: 0,
        }
    }

    /// The schema of the batches this builder makes.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn push(&mut self, event: &StoredEvent) {
        self.rows += 1;
        if let Some(b) = &mut self.position {
            b.append_value(event.position());
        }
        if let Some(b) = &mut self.id {
            b.append_value(event.archived().id).expect("ids are 16 bytes");
        }
        if let Some(b) = &mut self.tenant_id {
            b.append_value(event.tenant_id());
        }
        if let Some(b) = &mut self.entity_id {
            b.append_value(event.entity_id());
        }
        if let Some(b) = &mut self.event_type {
            b.append_value(event.event_type());
        }
        if let Some(b) = &mut self.timestamp {
            b.append_value(event.timestamp_us());
        }
        if let Some(b) = &mut self.version {
            b.append_value(event.version());
        }
        if let Some(b) = &mut self.payload {
            b.append_value(event.payload_json());
        }
        if let Some(b) = &mut self.metadata {
            b.append_option(event.metadata_json());
        }
    }

    /// The rows pushed so far as one batch; the builder is empty afterwards.
    pub fn finish(&mut self) -> RecordBatch {
        fn done(b: &mut Option<impl ArrayBuilder>) -> Option<ArrayRef> {
            b.as_mut().map(|b| b.finish())
        }
        let columns: Vec<ArrayRef> = [
            done(&mut self.position),
            done(&mut self.id),
            done(&mut self.tenant_id),
            done(&mut self.entity_id),
            done(&mut self.event_type),
            done(&mut self.timestamp),
            done(&mut self.version),
            done(&mut self.payload),
            done(&mut self.metadata),
        ]
        .into_iter()
        .flatten()
        .collect();
        let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(self.rows));
        self.rows = 0;
        RecordBatch::try_new_with_options(self.schema.clone(), columns, &options).expect("columns match the schema")
    }
}

/// A string column that is either dictionary-encoded (as we write it) or plain (as another tool may).
enum Strings<'a> {
    Dictionary { keys: &'a [i32], values: &'a StringArray },
    Plain(&'a StringArray),
}

impl<'a> Strings<'a> {
    fn of(batch: &'a RecordBatch, name: &str) -> Result<Strings<'a>, String> {
        let column = batch.column_by_name(name).ok_or_else(|| format!("no column {name:?}"))?;
        if column.null_count() > 0 {
            return Err(format!("column {name:?} has nulls"));
        }
        if let Some(dict) = column.as_any().downcast_ref::<DictionaryArray<Int32Type>>() {
            let values = dict.values().as_any().downcast_ref::<StringArray>();
            let values = values.ok_or_else(|| format!("column {name:?} is not a dictionary of strings"))?;
            return Ok(Strings::Dictionary { keys: dict.keys().values(), values });
        }
        column.as_any().downcast_ref::<StringArray>().map(Strings::Plain).ok_or_else(|| format!("column {name:?} is not a string"))
    }

    fn get(&self, row: usize) -> &'a str {
        match self {
            Strings::Dictionary { keys, values } => values.value(keys[row] as usize),
            Strings::Plain(values) => values.value(row),
        }
    }
}

fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> Result<&'a T, String> {
    let column = batch.column_by_name(name).ok_or_else(|| format!("no column {name:?}"))?;
    column.as_any().downcast_ref::<T>().ok_or_else(|| format!("column {name:?} has type {}", column.data_type()))
}

/// Turns a checkpoint batch back into stored events, in row order. Any schema mismatch is an error
/// (a file we did not write, or a damaged one), never a silently wrong event.
pub fn events_of(batch: &RecordBatch, mut on_event: impl FnMut(StoredEvent)) -> Result<(), String> {
    let position = column::<UInt64Array>(batch, "position")?;
    let id = column::<FixedSizeBinaryArray>(batch, "id")?;
    let timestamp = column::<TimestampMicrosecondArray>(batch, "timestamp")?;
    let version = column::<UInt64Array>(batch, "version")?;
    let payload = column::<StringArray>(batch, "payload")?;
    let metadata = column::<StringArray>(batch, "metadata")?;
    let (tenant_id, entity_id, event_type) =
        (Strings::of(batch, "tenant_id")?, Strings::of(batch, "entity_id")?, Strings::of(batch, "event_type")?);
    for array in [position as &dyn Array, id, timestamp, version, payload] {
        if array.null_count() > 0 {
            return Err("a required column has nulls".into());
        }
    }
    if id.value_length() != 16 {
        return Err(format!("id column is {} bytes wide, not 16", id.value_length()));
    }
    // One owned event, refilled for every row: its strings keep their capacity, so a row costs no
    // allocation but the archived bytes.
    let mut event = Event {
        position: 0,
        timestamp_us: 0,
        version: 0,
        id: [0; 16],
        tenant_id: String::new(),
        entity_id: String::new(),
        event_type: String::new(),
        payload: String::new(),
        metadata: None,
    };
    let refill = |to: &mut String, from: &str| {
        to.clear();
        to.push_str(from);
    };
    for row in 0..batch.num_rows() {
        event.position = position.value(row);
        event.timestamp_us = timestamp.value(row);
        event.version = version.value(row);
        event.id = id.value(row).try_into().expect("16 bytes");
        refill(&mut event.tenant_id, tenant_id.get(row));
        refill(&mut event.entity_id, entity_id.get(row));
        refill(&mut event.event_type, event_type.get(row));
        refill(&mut event.payload, payload.value(row));
        match (metadata.is_valid(row), &mut event.metadata) {
            (false, m) => *m = None,
            (true, Some(m)) => refill(m, metadata.value(row)),
            (true, m) => *m = Some(metadata.value(row).to_owned()),
        }
        on_event(StoredEvent::encode(&event));
    }
    Ok(())
}
