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

/// Builds one Arrow batch from stored events, reading their archived fields in place.
pub struct BatchBuilder {
    without_tenant: bool,
    position: UInt64Builder,
    id: FixedSizeBinaryBuilder,
    tenant_id: StringDictionaryBuilder<Int32Type>,
    entity_id: StringDictionaryBuilder<Int32Type>,
    event_type: StringDictionaryBuilder<Int32Type>,
    timestamp: TimestampMicrosecondBuilder,
    version: UInt64Builder,
    payload: StringBuilder,
    metadata: StringBuilder,
}

impl BatchBuilder {
    pub fn new(without_tenant: bool, rows: usize) -> BatchBuilder {
        BatchBuilder {
            without_tenant,
            position: UInt64Builder::with_capacity(rows),
            id: FixedSizeBinaryBuilder::with_capacity(rows, 16),
            tenant_id: StringDictionaryBuilder::new(),
            entity_id: StringDictionaryBuilder::new(),
            event_type: StringDictionaryBuilder::new(),
            timestamp: TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("UTC"),
            version: UInt64Builder::with_capacity(rows),
            payload: StringBuilder::with_capacity(rows, rows * 256),
            metadata: StringBuilder::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.position.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn push(&mut self, event: &StoredEvent) {
        self.position.append_value(event.position());
        self.id.append_value(event.archived().id).expect("ids are 16 bytes");
        if !self.without_tenant {
            self.tenant_id.append_value(event.tenant_id());
        }
        self.entity_id.append_value(event.entity_id());
        self.event_type.append_value(event.event_type());
        self.timestamp.append_value(event.timestamp_us());
        self.version.append_value(event.version());
        self.payload.append_value(event.payload_json());
        self.metadata.append_option(event.metadata_json());
    }

    /// The rows pushed so far as one batch; the builder is empty afterwards.
    pub fn finish(&mut self) -> RecordBatch {
        let mut columns: Vec<ArrayRef> = vec![Arc::new(self.position.finish()), Arc::new(self.id.finish())];
        if !self.without_tenant {
            columns.push(Arc::new(self.tenant_id.finish()));
        }
        columns.push(Arc::new(self.entity_id.finish()));
        columns.push(Arc::new(self.event_type.finish()));
        columns.push(Arc::new(self.timestamp.finish()));
        columns.push(Arc::new(self.version.finish()));
        columns.push(Arc::new(self.payload.finish()));
        columns.push(Arc::new(self.metadata.finish()));
        RecordBatch::try_new(schema(self.without_tenant), columns).expect("columns match the schema")
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
