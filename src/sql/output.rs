//! Query answers as JSON (`{"columns", "rows", "row_count"}`), NDJSON (one object per row) and Arrow IPC
//! stream bytes; values as JSON: numbers as numbers, timestamps RFC 3339, NULL as null.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{
    DataType, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, Schema, SchemaRef, TimeUnit,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt16Type,
    UInt32Type, UInt64Type, UInt8Type, Date32Type,
};
use arrow::ipc::writer::StreamWriter;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use serde_json::{json, Map, Value};

use crate::time::format_rfc3339_us;

/// The type a client sees: a dictionary column is shown as its values' type.
pub fn type_name(data_type: &DataType) -> String {
    match data_type {
        DataType::Dictionary(_, values) => type_name(values),
        other => other.to_string(),
    }
}

/// `[{"name": ..., "type": ...}, ...]`.
pub fn columns_json(schema: &Schema) -> Value {
    Value::Array(schema.fields().iter().map(|f| json!({"name": f.name(), "type": type_name(f.data_type())})).collect())
}

/// A batch's columns with dictionaries unpacked, so each cell is read directly.
pub fn plain_columns(batch: &RecordBatch) -> Result<Vec<ArrayRef>, arrow::error::ArrowError> {
    batch
        .columns()
        .iter()
        .map(|c| match c.data_type() {
            DataType::Dictionary(_, values) => arrow::compute::cast(c, values),
            _ => Ok(c.clone()),
        })
        .collect()
}

/// The rows of a batch as JSON arrays.
pub fn rows_json(batch: &RecordBatch, out: &mut Vec<Value>) -> Result<(), arrow::error::ArrowError> {
    let columns = plain_columns(batch)?;
    for row in 0..batch.num_rows() {
        out.push(Value::Array(columns.iter().map(|c| cell(c.as_ref(), row)).collect()));
    }
    Ok(())
}

/// The rows of a batch as NDJSON: one `{"column": value, ...}` object a line.
pub fn ndjson(batch: &RecordBatch) -> Result<String, arrow::error::ArrowError> {
    let columns = plain_columns(batch)?;
    let schema = batch.schema();
    let mut out = String::new();
    for row in 0..batch.num_rows() {
        let object: Map<String, Value> =
            schema.fields().iter().zip(&columns).map(|(f, c)| (f.name().clone(), cell(c.as_ref(), row))).collect();
        out.push_str(&Value::Object(object).to_string());
        out.push('\n');
    }
    Ok(out)
}

/// The whole JSON answer.
pub fn answer_json(schema: &Schema, batches: &[RecordBatch]) -> Result<Value, arrow::error::ArrowError> {
    let mut rows = Vec::with_capacity(batches.iter().map(RecordBatch::num_rows).sum());
    for batch in batches {
        rows_json(batch, &mut rows)?;
    }
    Ok(json!({"columns": columns_json(schema), "row_count": rows.len(), "rows": rows}))
}

/// One cell as JSON.
pub fn cell(array: &dyn Array, row: usize) -> Value {
    if array.is_null(row) {
        return Value::Null;
    }
    let float = |v: f64| serde_json::Number::from_f64(v).map_or_else(|| Value::String(v.to_string()), Value::Number);
    match array.data_type() {
        DataType::Boolean => Value::Bool(array.as_boolean().value(row)),
        DataType::Int8 => json!(array.as_primitive::<Int8Type>().value(row)),
        DataType::Int16 => json!(array.as_primitive::<Int16Type>().value(row)),
        DataType::Int32 => json!(array.as_primitive::<Int32Type>().value(row)),
        DataType::Int64 => json!(array.as_primitive::<Int64Type>().value(row)),
        DataType::UInt8 => json!(array.as_primitive::<UInt8Type>().value(row)),
        DataType::UInt16 => json!(array.as_primitive::<UInt16Type>().value(row)),
        DataType::UInt32 => json!(array.as_primitive::<UInt32Type>().value(row)),
        DataType::UInt64 => json!(array.as_primitive::<UInt64Type>().value(row)),
        DataType::Float32 => float(f64::from(array.as_primitive::<Float32Type>().value(row))),
        DataType::Float64 => float(array.as_primitive::<Float64Type>().value(row)),
        DataType::Utf8 => Value::String(array.as_string::<i32>().value(row).to_string()),
        DataType::LargeUtf8 => Value::String(array.as_string::<i64>().value(row).to_string()),
        DataType::Utf8View => Value::String(array.as_string_view().value(row).to_string()),
        DataType::Timestamp(unit, _) => {
            let us = match unit {
                TimeUnit::Second => array.as_primitive::<TimestampSecondType>().value(row).checked_mul(1_000_000),
                TimeUnit::Millisecond => array.as_primitive::<TimestampMillisecondType>().value(row).checked_mul(1_000),
                TimeUnit::Microsecond => Some(array.as_primitive::<TimestampMicrosecondType>().value(row)),
                TimeUnit::Nanosecond => {
                    // Whole µs as every other timestamp of the API; nanoseconds only when there are some.
                    let ns = array.as_primitive::<TimestampNanosecondType>().value(row);
                    if ns % 1000 == 0 {
                        return Value::String(format_rfc3339_us(ns / 1000));
                    }
                    let t = chrono::DateTime::from_timestamp_nanos(ns);
                    return Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true));
                }
            };
            match us {
                Some(us) => Value::String(format_rfc3339_us(us)),
                None => displayed(array, row),
            }
        }
        DataType::Date32 => match array.as_primitive::<Date32Type>().value_as_date(row) {
            Some(date) => Value::String(date.to_string()),
            None => displayed(array, row),
        },
        _ => displayed(array, row),
    }
}

/// Any other type (decimals, intervals, lists, the JSON functions' unions) as Arrow displays it.
fn displayed(array: &dyn Array, row: usize) -> Value {
    match ArrayFormatter::try_new(array, &FormatOptions::default()) {
        Ok(formatter) => Value::String(formatter.value(row).to_string()),
        Err(e) => Value::String(format!("<{e}>")),
    }
}

/// Encodes batches as an Arrow IPC stream, handing back the bytes written so far after each step.
pub struct IpcEncoder {
    writer: StreamWriter<Vec<u8>>,
}

impl IpcEncoder {
    /// The encoder and the stream's first bytes (the schema message).
    pub fn new(schema: &SchemaRef) -> Result<(IpcEncoder, Vec<u8>), arrow::error::ArrowError> {
        let mut encoder = IpcEncoder { writer: StreamWriter::try_new(Vec::new(), schema)? };
        let head = encoder.take();
        Ok((encoder, head))
    }

    fn take(&mut self) -> Vec<u8> {
        std::mem::take(self.writer.get_mut())
    }

    pub fn batch(&mut self, batch: &RecordBatch) -> Result<Vec<u8>, arrow::error::ArrowError> {
        self.writer.write(batch)?;
        Ok(self.take())
    }

    /// The end-of-stream marker.
    pub fn finish(mut self) -> Result<Vec<u8>, arrow::error::ArrowError> {
        self.writer.finish()?;
        Ok(self.take())
    }
}

/// A batch with plain (non-dictionary) columns, for writers that want them (CSV).
pub fn plain_batch(batch: &RecordBatch) -> Result<RecordBatch, arrow::error::ArrowError> {
    let columns = plain_columns(batch)?;
    let fields: Vec<arrow::datatypes::Field> =
        batch.schema().fields().iter().zip(&columns).map(|(f, c)| f.as_ref().clone().with_data_type(c.data_type().clone())).collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
}
