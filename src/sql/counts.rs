//! `count(*)` (or the count of a column that is never null) per event type or per entity, answered from the
//! shards' indexes.
//!
//! A `GROUP BY event_type` (or `entity_id`) count over the index scans of `scan.rs` still makes DataFusion
//! hash and compare one string per event, most of such a query's time. The per-type time index and the
//! entity index already hold each name's positions, so a shard can count them: a physical optimizer rule
//! replaces the partial (per-shard) aggregate over such a scan with [`IndexCountExec`], which emits one
//! row per name with the partial aggregate's schema; DataFusion's final aggregate sums them as before.
//! The counts apply the scan's own visibility (the snapshot's commit order, the visible position) and
//! filters. Where an index cannot answer at run time (a type with a late timestamp), the partition runs
//! the original aggregate.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::Result as DfResult;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::expressions::{Column, Literal};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};

use super::scan::{shard_scan_in, IndexGroup, ShardScanExec};

/// The rule: see the module's comment.
#[derive(Debug, Default)]
pub struct CountByIndex;

impl PhysicalOptimizerRule for CountByIndex {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _: &ConfigOptions) -> DfResult<Arc<dyn ExecutionPlan>> {
        plan.transform_down(|node| match IndexCountExec::replacing(&node) {
            Some(exec) => Ok(Transformed::yes(Arc::new(exec) as Arc<dyn ExecutionPlan>)),
            None => Ok(Transformed::no(node)),
        })
        .data()
    }

    fn name(&self) -> &str {
        "count_by_index"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Per shard, one row per event type (or entity) with its number of events: the output of the partial
/// aggregate it replaces.
pub struct IndexCountExec {
    scan: Arc<dyn ExecutionPlan>,
    group: IndexGroup,
    /// The partial aggregate this replaces: run where the index cannot answer.
    original: Arc<dyn ExecutionPlan>,
    /// How many count columns the aggregate has (`count(*), count(1)` are two).
    counts: usize,
    properties: PlanProperties,
}

impl IndexCountExec {
    /// An exec for `node` if it is a partial aggregate of only `count(*)`, `count(<literal>)` or
    /// `count(<column that is never null>)` grouped by the event
    /// type or the entity, straight over a scan the indexes can answer.
    fn replacing(node: &Arc<dyn ExecutionPlan>) -> Option<IndexCountExec> {
        let aggregate = node.as_any().downcast_ref::<AggregateExec>()?;
        let group_by = aggregate.group_expr();
        let plain = *aggregate.mode() == AggregateMode::Partial
            && aggregate.limit().is_none()
            && group_by.is_single()
            && group_by.expr().len() == 1
            && aggregate.filter_expr().iter().all(Option::is_none);
        let input_schema = aggregate.input_schema();
        // `count(x)` counts the rows where `x` is not null: every row when `x` is a non-null literal or a
        // column that never holds null (all but `metadata`).
        let never_null = |e: &Arc<dyn datafusion::physical_plan::PhysicalExpr>| {
            let any = e.as_any();
            any.downcast_ref::<Literal>().is_some_and(|l| !l.value().is_null())
                || any.downcast_ref::<Column>().is_some_and(|c| !input_schema.field(c.index()).is_nullable())
        };
        let counts_only = !aggregate.aggr_expr().is_empty()
            && aggregate.aggr_expr().iter().all(|a| a.fun().name() == "count" && !a.is_distinct() && a.expressions().iter().all(never_null));
        if !plain || !counts_only {
            return None;
        }
        let column = group_by.expr()[0].0.as_any().downcast_ref::<Column>()?;
        // Without DataFusion's CooperativeExec around the scan: the count yields by itself.
        let (input, _) = shard_scan_in(aggregate.input())?;
        let counted: Vec<&str> = aggregate
            .aggr_expr()
            .iter()
            .flat_map(|a| a.expressions())
            .filter_map(|e| e.as_any().downcast_ref::<Column>().map(|c| input_schema.field(c.index()).name().as_str()))
            .collect();
        let group = input.as_any().downcast_ref::<ShardScanExec>()?.index_group(column.name(), &counted)?;
        Some(IndexCountExec {
            scan: input,
            group,
            original: node.clone(),
            counts: aggregate.aggr_expr().len(),
            properties: aggregate.properties().clone(),
        })
    }
}

impl fmt::Debug for IndexCountExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        DisplayAs::fmt_as(self, DisplayFormatType::Default, f)
    }
}

impl DisplayAs for IndexCountExec {
    fn fmt_as(&self, format: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "IndexCountExec: by={:?}, over ", self.group)?;
        self.scan.as_any().downcast_ref::<ShardScanExec>().expect("a shard scan").fmt_as(format, f)
    }
}

impl ExecutionPlan for IndexCountExec {
    fn name(&self) -> &str {
        "IndexCountExec"
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn properties(&self) -> &PlanProperties {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn with_new_children(self: Arc<Self>, _: Vec<Arc<dyn ExecutionPlan>>) -> DfResult<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> DfResult<SendableRecordBatchStream> {
        let schema = self.properties.eq_properties.schema().clone();
        let (scan, group, original, counts) = (self.scan.clone(), self.group, self.original.clone(), self.counts);
        let stream = futures_lite::stream::once_future(async move {
            let scan = scan.as_any().downcast_ref::<ShardScanExec>().expect("a shard scan");
            match scan.index_counts(partition, group).await {
                Some(named) => {
                    let names: ArrayRef = Arc::new(StringArray::from_iter_values(named.iter().map(|(name, _)| &**name)));
                    let n: ArrayRef = Arc::new(Int64Array::from_iter_values(named.iter().map(|&(_, n)| n as i64)));
                    let columns = std::iter::once(names).chain(std::iter::repeat_n(n, counts)).collect();
                    Ok(vec![RecordBatch::try_new(schema, columns)?])
                }
                None => {
                    let batches = original.execute(partition, context)?;
                    datafusion::physical_plan::common::collect(batches).await
                }
            }
        });
        let batches = futures_lite::StreamExt::flat_map(stream, |answer: DfResult<Vec<RecordBatch>>| match answer {
            Ok(batches) => futures_lite::stream::iter(batches.into_iter().map(Ok).collect::<Vec<_>>()),
            Err(e) => futures_lite::stream::iter(vec![Err(e)]),
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(self.properties.eq_properties.schema().clone(), batches)))
    }
}
