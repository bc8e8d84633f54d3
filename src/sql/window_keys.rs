//! Window keys computed once: `PARTITION BY json_get_str(payload, 'host') ORDER BY json_get_float(...)`.
//!
//! DataFusion evaluates a window's partition and order expressions where each operator needs them: to
//! hash rows to partitions, to sort them, and again in the window operator, so a JSON key is parsed out
//! of every payload three times (the p95-by-host question: ~55 ms of its ~190 ms over 200,000 events). This
//! logical rule computes such keys once, in a projection under the window, and hands the window plain
//! columns; a projection over it drops the helper columns again, so the plan above sees the same schema.
//! Each window expression keeps its name (aliased back), which the plan above refers to.

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, Result as DfResult};
use datafusion::logical_expr::expr::Alias;
use datafusion::logical_expr::{Expr, LogicalPlan, Projection, Window};
use datafusion::optimizer::optimizer::ApplyOrder;
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

/// Prefix of the helper columns' names (not a name a query can clash with by accident).
const KEY_PREFIX: &str = "__tidelog_window_key_";

/// The rule: see the module's comment.
#[derive(Debug, Default)]
pub struct WindowKeysOnce;

impl OptimizerRule for WindowKeysOnce {
    fn name(&self) -> &str {
        "tidelog_window_keys_once"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::BottomUp)
    }

    fn rewrite(&self, plan: LogicalPlan, _config: &dyn OptimizerConfig) -> DfResult<Transformed<LogicalPlan>> {
        let LogicalPlan::Window(window) = plan else { return Ok(Transformed::no(plan)) };
        let Some(keys) = computed_keys(&window) else { return Ok(Transformed::no(LogicalPlan::Window(window))) };
        let input_columns: Vec<Expr> = window.input.schema().columns().into_iter().map(Expr::Column).collect();
        let names: Vec<String> = (0..keys.len()).map(|i| format!("{KEY_PREFIX}{i}")).collect();
        let mut below = input_columns.clone();
        below.extend(keys.iter().zip(&names).map(|(key, name)| key.clone().alias(name)));
        let below = LogicalPlan::Projection(Projection::try_new(below, window.input.clone())?);
        let mut window_exprs = Vec::with_capacity(window.window_expr.len());
        let mut window_names = Vec::with_capacity(window.window_expr.len());
        for expr in &window.window_expr {
            let (name, function) = match expr {
                Expr::Alias(Alias { expr, name, .. }) => (name.clone(), expr.as_ref().clone()),
                other => (other.schema_name().to_string(), other.clone()),
            };
            let function = function
                .transform_down(|e| match keys.iter().position(|k| *k == e) {
                    Some(i) => Ok(Transformed::new(Expr::Column(Column::from_name(&names[i])), true, TreeNodeRecursion::Jump)),
                    None => Ok(Transformed::no(e)),
                })?
                .data;
            window_exprs.push(function.alias(&name));
            window_names.push(name);
        }
        let window = LogicalPlan::Window(Window::try_new(window_exprs, Arc::new(below))?);
        let mut above = input_columns;
        above.extend(window_names.iter().map(|name| Expr::Column(Column::from_name(name))));
        Ok(Transformed::yes(LogicalPlan::Projection(Projection::try_new(above, Arc::new(window))?)))
    }
}

/// The distinct partition and order expressions of the window's functions that are computed (not a
/// column or a literal); `None` if there are none, or if one is volatile (computing it once would change
/// the answer) or the window holds something other than window functions.
fn computed_keys(window: &Window) -> Option<Vec<Expr>> {
    let mut keys: Vec<Expr> = Vec::new();
    for expr in &window.window_expr {
        let function = match expr {
            Expr::Alias(Alias { expr, .. }) => expr.as_ref(),
            other => other,
        };
        let Expr::WindowFunction(function) = function else { return None };
        let params = &function.params;
        for key in params.partition_by.iter().chain(params.order_by.iter().map(|sort| &sort.expr)) {
            if matches!(key, Expr::Column(_) | Expr::Literal(..)) {
                continue;
            }
            if key.is_volatile() {
                return None;
            }
            if !keys.contains(key) {
                keys.push(key.clone());
            }
        }
    }
    (!keys.is_empty()).then_some(keys)
}
