//! `date_trunc` for UTC timestamps at the speed of arithmetic.
//!
//! The `timestamp` column is UTC (`Timestamp(µs, "UTC")`). DataFusion's `date_trunc` truncates a
//! timestamp without a zone to an hour or a day by arithmetic, but one with any zone, UTC included, goes
//! through a time-zone conversion per value: about 0.9 ms of the 1.1 ms an hourly GROUP BY over 6,000
//! events spent in its partial aggregate (`EXPLAIN ANALYZE`). In UTC both give the same answer at every
//! granularity, so this wrapper hands DataFusion's function the values without their zone and puts the
//! zone back on the result. Other zones and everything else go to DataFusion's function unchanged.

use std::any::Any;
use std::sync::Arc;

use arrow::array::{make_array, Array};
use arrow::datatypes::{DataType, Field, TimeUnit};
use datafusion::common::{Result, ScalarValue};
use datafusion::functions::datetime::date_trunc::DateTruncFunc;
use datafusion::logical_expr::sort_properties::{ExprProperties, SortProperties};
use datafusion::logical_expr::{ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature};

#[derive(Debug, PartialEq, Eq, Hash, Default)]
pub struct UtcDateTrunc {
    inner: DateTruncFunc,
}

/// The function to register in place of DataFusion's `date_trunc` (same name, aliases and signature).
pub fn udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(UtcDateTrunc::default())
}

/// Zone names that mean UTC, as arrow parses them.
fn is_utc(tz: &str) -> bool {
    tz.eq_ignore_ascii_case("utc") || tz.eq_ignore_ascii_case("etc/utc") || tz.eq_ignore_ascii_case("z") || matches!(tz, "+00:00" | "+0000" | "+00")
}

/// `data_type` without its zone when the zone is UTC.
fn zone_dropped(data_type: &DataType) -> Option<DataType> {
    match data_type {
        DataType::Timestamp(unit, Some(tz)) if is_utc(tz) => Some(DataType::Timestamp(*unit, None)),
        _ => None,
    }
}

/// `value` retyped as `to` (same unit, other zone): the same i64 values, no copy.
fn retyped(value: ColumnarValue, to: &DataType) -> Result<ColumnarValue> {
    Ok(match value {
        ColumnarValue::Array(array) => {
            let data = array.to_data().into_builder().data_type(to.clone()).build()?;
            ColumnarValue::Array(make_array(data))
        }
        ColumnarValue::Scalar(scalar) => {
            let DataType::Timestamp(unit, tz) = to else { return Ok(ColumnarValue::Scalar(scalar)) };
            let value = match scalar {
                ScalarValue::TimestampSecond(v, _)
                | ScalarValue::TimestampMillisecond(v, _)
                | ScalarValue::TimestampMicrosecond(v, _)
                | ScalarValue::TimestampNanosecond(v, _) => v,
                other => return Ok(ColumnarValue::Scalar(other)),
            };
            ColumnarValue::Scalar(match unit {
                TimeUnit::Second => ScalarValue::TimestampSecond(value, tz.clone()),
                TimeUnit::Millisecond => ScalarValue::TimestampMillisecond(value, tz.clone()),
                TimeUnit::Microsecond => ScalarValue::TimestampMicrosecond(value, tz.clone()),
                TimeUnit::Nanosecond => ScalarValue::TimestampNanosecond(value, tz.clone()),
            })
        }
    })
}

impl ScalarUDFImpl for UtcDateTrunc {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn invoke_with_args(&self, mut args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let zoned = args.args.get(1).map(|a| a.data_type());
        let Some((zoned, plain)) = zoned.and_then(|z| zone_dropped(&z).map(|p| (z, p))) else {
            return self.inner.invoke_with_args(args);
        };
        let value = args.args.remove(1);
        args.args.insert(1, retyped(value, &plain)?);
        if let Some(field) = args.arg_fields.get_mut(1) {
            *field = Arc::new(field.as_ref().clone().with_data_type(plain.clone()));
        }
        args.return_field = Arc::new(Field::new(args.return_field.name(), plain, args.return_field.is_nullable()));
        retyped(self.inner.invoke_with_args(args)?, &zoned)
    }

    fn output_ordering(&self, input: &[ExprProperties]) -> Result<SortProperties> {
        self.inner.output_ordering(input)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::TimestampMicrosecondArray;
    use datafusion::config::ConfigOptions;

    fn truncate(udf: &dyn ScalarUDFImpl, granularity: &str, values: &[Option<i64>], tz: Option<&str>) -> Vec<Option<i64>> {
        let array = TimestampMicrosecondArray::from(values.to_vec()).with_timezone_opt(tz);
        let data_type = array.data_type().clone();
        let args = ScalarFunctionArgs {
            args: vec![ColumnarValue::Scalar(ScalarValue::Utf8(Some(granularity.into()))), ColumnarValue::Array(Arc::new(array))],
            arg_fields: vec![Arc::new(Field::new("g", DataType::Utf8, false)), Arc::new(Field::new("t", data_type.clone(), true))],
            number_rows: values.len(),
            return_field: Arc::new(Field::new("r", data_type.clone(), true)),
            config_options: Arc::new(ConfigOptions::default()),
        };
        let ColumnarValue::Array(out) = udf.invoke_with_args(args).unwrap() else { panic!("an array") };
        assert_eq!(out.data_type(), &data_type, "the zone is kept");
        let out = out.as_any().downcast_ref::<TimestampMicrosecondArray>().unwrap();
        out.iter().collect()
    }

    #[test]
    fn same_answers_as_datafusion_in_utc_and_other_zones() {
        // Around a leap day, the turn of a year, before 1970, and a DST change in Europe/Paris.
        let values: Vec<Option<i64>> = [951_782_399_999_999i64, 951_782_400_000_001, 978_307_199_123_456, -86_400_000_001, 1_711_846_799_000_000, 1_711_850_400_000_000]
            .into_iter()
            .map(Some)
            .chain([None])
            .collect();
        let ours = UtcDateTrunc::default();
        let theirs = DateTruncFunc::new();
        for granularity in ["second", "minute", "hour", "day", "week", "month", "quarter", "year"] {
            for tz in [Some("UTC"), Some("+00:00"), Some("Europe/Paris"), None] {
                assert_eq!(
                    truncate(&ours, granularity, &values, tz),
                    truncate(&theirs, granularity, &values, tz),
                    "{granularity} in {tz:?}"
                );
            }
        }
    }
}
