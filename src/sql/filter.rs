//! Filter pushdown: the predicates a shard scan evaluates itself, exactly, before it builds a row. Only
//! simple shapes on indexed columns are taken (equality and IN on `tenant_id`, `event_type`,
//! `entity_id`; comparisons and BETWEEN on `timestamp`); DataFusion evaluates everything else.

use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator};

use crate::event::StoredEvent;

/// What a scan checks on each event; the pushed filters, ANDed.
#[derive(Debug, Clone)]
pub struct ScanFilter {
    /// The event type is one of these (None: any).
    pub event_types: Option<Vec<String>>,
    pub entity_ids: Option<Vec<String>>,
    /// Inclusive bounds on the timestamp, µs.
    pub lo_us: i64,
    pub hi_us: i64,
    /// A pushed filter can never be true (another tenant, an empty range): the scan reads nothing.
    pub nothing: bool,
}

impl Default for ScanFilter {
    fn default() -> ScanFilter {
        ScanFilter { event_types: None, entity_ids: None, lo_us: i64::MIN, hi_us: i64::MAX, nothing: false }
    }
}

impl ScanFilter {
    /// Whether the timestamp is bounded on either side.
    pub fn has_time_range(&self) -> bool {
        (self.lo_us, self.hi_us) != (i64::MIN, i64::MAX)
    }

    /// The filter of all `exprs` (each one that [`pushable`] accepts; others are ignored, DataFusion
    /// evaluates them).
    pub fn of(exprs: &[Expr], tenant_id: &str) -> ScanFilter {
        let mut filter = ScanFilter::default();
        for expr in exprs {
            if let Some(term) = term(expr) {
                filter.and(term, tenant_id);
            }
        }
        filter
    }

    fn and(&mut self, term: Term, tenant_id: &str) {
        fn intersect(current: &mut Option<Vec<String>>, values: Vec<String>) {
            *current = Some(match current.take() {
                None => values,
                Some(have) => have.into_iter().filter(|v| values.contains(v)).collect(),
            });
        }
        match term {
            Term::In(StringColumn::Tenant, values) => self.nothing |= !values.iter().any(|v| v == tenant_id),
            Term::In(StringColumn::EventType, values) => intersect(&mut self.event_types, values),
            Term::In(StringColumn::EntityId, values) => intersect(&mut self.entity_ids, values),
            Term::Time { lo_us, hi_us } => {
                self.lo_us = self.lo_us.max(lo_us);
                self.hi_us = self.hi_us.min(hi_us);
            }
            Term::Never => self.nothing = true,
        }
        let empty = |v: &Option<Vec<String>>| v.as_ref().is_some_and(Vec::is_empty);
        self.nothing |= self.lo_us > self.hi_us || empty(&self.event_types) || empty(&self.entity_ids);
    }

    /// Whether an event of the scan's tenant passes the filter.
    pub fn matches(&self, event: &StoredEvent) -> bool {
        let ts = event.timestamp_us();
        !self.nothing
            && ts >= self.lo_us
            && ts <= self.hi_us
            && self.event_types.as_ref().is_none_or(|t| t.iter().any(|t| t == event.event_type()))
            && self.entity_ids.as_ref().is_none_or(|e| e.iter().any(|e| e == event.entity_id()))
    }
}

/// Whether the scan evaluates `expr` exactly (so DataFusion need not).
pub fn pushable(expr: &Expr) -> bool {
    term(expr).is_some()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StringColumn {
    Tenant,
    EventType,
    EntityId,
}

enum Term {
    In(StringColumn, Vec<String>),
    Time { lo_us: i64, hi_us: i64 },
    Never,
}

fn term(expr: &Expr) -> Option<Term> {
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            if *op == Operator::Or {
                // `c = 'a' OR c = 'b'` (what small IN lists become) on one string column.
                let (Term::In(a, mut x), Term::In(b, y)) = (term(left)?, term(right)?) else { return None };
                if a != b {
                    return None;
                }
                x.extend(y);
                return Some(Term::In(a, x));
            }
            if let (Some(column), Some(value)) = (string_column(left), string_literal(right)) {
                return (*op == Operator::Eq).then(|| Term::In(column, vec![value]));
            }
            if let (Some(value), Some(column)) = (string_literal(left), string_column(right)) {
                return (*op == Operator::Eq).then(|| Term::In(column, vec![value]));
            }
            if is_column(left, "timestamp") {
                return time_term(*op, timestamp_ns(right)?);
            }
            if is_column(right, "timestamp") {
                let flipped = match op {
                    Operator::Lt => Operator::Gt,
                    Operator::LtEq => Operator::GtEq,
                    Operator::Gt => Operator::Lt,
                    Operator::GtEq => Operator::LtEq,
                    Operator::Eq => Operator::Eq,
                    _ => return None,
                };
                return time_term(flipped, timestamp_ns(left)?);
            }
            None
        }
        Expr::InList(list) if !list.negated => {
            let column = string_column(&list.expr)?;
            let values = list.list.iter().map(string_literal).collect::<Option<Vec<String>>>()?;
            Some(Term::In(column, values))
        }
        Expr::Between(Between { expr, negated: false, low, high }) if is_column(expr, "timestamp") => {
            let (Term::Time { lo_us, .. }, Term::Time { hi_us, .. }) =
                (time_term(Operator::GtEq, timestamp_ns(low)?)?, time_term(Operator::LtEq, timestamp_ns(high)?)?)
            else {
                return Some(Term::Never);
            };
            Some(Term::Time { lo_us, hi_us })
        }
        _ => None,
    }
}

fn is_column(expr: &Expr, name: &str) -> bool {
    matches!(expr, Expr::Column(c) if c.name == name)
}

/// A string column, also under a cast to a string type (a dictionary column compared with a string
/// literal may be cast; the values are the same).
fn string_column(expr: &Expr) -> Option<StringColumn> {
    let expr = match expr {
        Expr::Cast(cast) if cast.data_type.is_string() => cast.expr.as_ref(),
        other => other,
    };
    let Expr::Column(c) = expr else { return None };
    match c.name.as_str() {
        "tenant_id" => Some(StringColumn::Tenant),
        "event_type" => Some(StringColumn::EventType),
        "entity_id" => Some(StringColumn::EntityId),
        _ => None,
    }
}

fn string_literal(expr: &Expr) -> Option<String> {
    fn of(value: &ScalarValue) -> Option<String> {
        match value {
            ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)) => Some(s.clone()),
            ScalarValue::Dictionary(_, inner) => of(inner),
            _ => None,
        }
    }
    match expr {
        Expr::Literal(value, _) => of(value),
        _ => None,
    }
}

/// A timestamp literal in ns since the epoch (i128: no unit overflows).
fn timestamp_ns(expr: &Expr) -> Option<i128> {
    let Expr::Literal(value, _) = expr else { return None };
    match value {
        ScalarValue::TimestampSecond(Some(v), _) => Some(*v as i128 * 1_000_000_000),
        ScalarValue::TimestampMillisecond(Some(v), _) => Some(*v as i128 * 1_000_000),
        ScalarValue::TimestampMicrosecond(Some(v), _) => Some(*v as i128 * 1_000),
        ScalarValue::TimestampNanosecond(Some(v), _) => Some(*v as i128),
        _ => None,
    }
}

/// `timestamp <op> ns` as inclusive µs bounds. Event timestamps are whole µs, so a bound between two µs
/// rounds inward.
fn time_term(op: Operator, ns: i128) -> Option<Term> {
    let floor = ns.div_euclid(1000);
    let ceil = floor + i128::from(ns.rem_euclid(1000) != 0);
    let clamp = |v: i128| v.clamp(i64::MIN as i128, i64::MAX as i128) as i64;
    let (lo, hi) = match op {
        Operator::GtEq => (ceil, i64::MAX as i128),
        Operator::Gt => (floor + 1, i64::MAX as i128),
        Operator::LtEq => (i64::MIN as i128, floor),
        Operator::Lt => (i64::MIN as i128, ceil - 1),
        Operator::Eq if floor == ceil => (floor, floor),
        Operator::Eq => return Some(Term::Never),
        _ => return None,
    };
    if lo > hi || lo > i64::MAX as i128 || hi < i64::MIN as i128 {
        return Some(Term::Never);
    }
    Some(Term::Time { lo_us: clamp(lo), hi_us: clamp(hi) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_bounds_round_inward() {
        let bounds = |op, ns| match time_term(op, ns) {
            Some(Term::Time { lo_us, hi_us }) => Some((lo_us, hi_us)),
            _ => None,
        };
        assert_eq!(bounds(Operator::GtEq, 1_500), Some((2, i64::MAX)));
        assert_eq!(bounds(Operator::Gt, 1_500), Some((2, i64::MAX)));
        assert_eq!(bounds(Operator::Gt, 2_000), Some((3, i64::MAX)));
        assert_eq!(bounds(Operator::Lt, 2_000), Some((i64::MIN, 1)));
        assert_eq!(bounds(Operator::Lt, 1_500), Some((i64::MIN, 1)));
        assert_eq!(bounds(Operator::LtEq, 1_500), Some((i64::MIN, 1)));
        assert_eq!(bounds(Operator::Eq, 3_000), Some((3, 3)));
        assert!(matches!(time_term(Operator::Eq, 3_001), Some(Term::Never)));
        assert_eq!(bounds(Operator::LtEq, -1_500), Some((i64::MIN, -2)));
    }
}
