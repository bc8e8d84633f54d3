//! Sorts by entity that the scan makes unneeded.
//!
//! A window `PARTITION BY entity_id ORDER BY version` (the latest event of each entity, running counts
//! per entity) makes DataFusion repartition every row by a hash of its entity and sort each partition
//! by (entity_id, version), payloads and all. A shard holds all of an entity's events, and its entity
//! index lists each entity's events in version order, so the scan can hand them over already so: this
//! rule replaces such a sort (and the repartition under it) with the scan in entity order
//! ([`ShardScanExec::in_entity_order`]), which says it is sorted and partitioned that way.

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::Result as DfResult;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::coop::CooperativeExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::{ExecutionPlan, Partitioning, PhysicalExpr};

use super::scan::{shard_scan_in, ShardScanExec};

/// The rule: see the module's comment.
#[derive(Debug, Default)]
pub struct ScanInEntityOrder;

impl PhysicalOptimizerRule for ScanInEntityOrder {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _: &ConfigOptions) -> DfResult<Arc<dyn ExecutionPlan>> {
        plan.transform_down(|node| match replacing(&node) {
            Some(scan) => Ok(Transformed::yes(scan)),
            None => Ok(Transformed::no(node)),
        })
        .data()
    }

    fn name(&self) -> &str {
        "scan_in_entity_order"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

fn column_name(expr: &Arc<dyn PhysicalExpr>) -> Option<&str> {
    expr.as_any().downcast_ref::<Column>().map(|c| c.name())
}

/// The scan in entity order, if `node` is a per-partition sort by `entity_id` ascending then `version`
/// (either way), with no fetch, over a hash repartition by `entity_id` of a shard scan that may read in
/// entity order (no LIMIT, no type or time filter: see `in_entity_order`).
fn replacing(node: &Arc<dyn ExecutionPlan>) -> Option<Arc<dyn ExecutionPlan>> {
    let sort = node.as_any().downcast_ref::<SortExec>()?;
    let ordering = sort.expr();
    if !sort.preserve_partitioning() || sort.fetch().is_some() || ordering.len() != 2 {
        return None;
    }
    let (entity, version) = (&ordering[0], &ordering[1]);
    if column_name(&entity.expr) != Some("entity_id") || entity.options.descending || column_name(&version.expr) != Some("version") {
        return None;
    }
    let repartition = sort.input().as_any().downcast_ref::<RepartitionExec>()?;
    let Partitioning::Hash(keys, _) = repartition.partitioning() else { return None };
    if keys.len() != 1 || column_name(&keys[0]) != Some("entity_id") {
        return None;
    }
    // DataFusion's CooperativeExec (a yield budget) around the scan is kept around the new one.
    let (leaf, cooperative) = shard_scan_in(repartition.input())?;
    let scan = leaf.as_any().downcast_ref::<ShardScanExec>()?.in_entity_order(ordering, keys.clone(), version.options.descending)?;
    let scan: Arc<dyn ExecutionPlan> = Arc::new(scan);
    Some(if cooperative { Arc::new(CooperativeExec::new(scan)) } else { scan })
}
