//! Optimized logical plans of recent queries, so a query asked again skips parsing, analysis and the
//! logical optimizer: most of a small query's time (`perf/README.md`, SQL planning).
//!
//! A cached plan holds no table: its scans of `events` read an empty stand-in, and a query that reuses
//! the plan puts its own session's table (its tenant's, in its store) in their place. So a cached plan
//! never keeps a store alive, and never reads a table other than the one the asking query was given. The
//! key still names the tenant and the shard count (the session's partitions), so plans are not shared
//! across tenants at all. What the plan says depends only on the SQL text and the session's rules, with
//! one exception: functions that are not immutable (`now()`, `current_date`, ...) are folded to the time
//! of planning, so a query that calls one is never cached.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, OnceLock};

use datafusion::catalog::TableProvider;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::Result as DfResult;
use datafusion::datasource::empty::EmptyTable;
use datafusion::datasource::{provider_as_source, source_as_provider};
use datafusion::logical_expr::{Expr, LogicalPlan, Volatility};

use super::table::{events_schema, EventsTable};

/// Plans kept, the least recently used dropped first. A plan is a few KiB.
const CACHED_PLANS: usize = 256;
/// Queries longer than this are planned every time (a key is the whole text).
const MAX_CACHED_SQL_BYTES: usize = 16 << 10;

#[derive(Hash, PartialEq, Eq)]
struct Key {
    partitions: usize,
    tenant_id: String,
    sql: String,
}

fn cache() -> &'static Mutex<lru::LruCache<Key, LogicalPlan>> {
    static CACHE: OnceLock<Mutex<lru::LruCache<Key, LogicalPlan>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(lru::LruCache::new(NonZeroUsize::new(CACHED_PLANS).expect("non-zero"))))
}

fn key(partitions: usize, tenant_id: &str, sql: &str) -> Key {
    Key { partitions, tenant_id: tenant_id.to_string(), sql: sql.to_string() }
}

/// The cached optimized plan of `sql`, reading `table`.
pub fn get(partitions: usize, tenant_id: &str, sql: &str, table: &Arc<dyn TableProvider>) -> DfResult<Option<LogicalPlan>> {
    let cached = cache().lock().unwrap_or_else(|e| e.into_inner()).get(&key(partitions, tenant_id, sql)).cloned();
    cached.map(|plan| with_table(plan, table.clone())).transpose()
}

/// Keeps `optimized` (the plan of `sql` as written: `unoptimized`) unless it must be planned every time.
pub fn put(partitions: usize, tenant_id: &str, sql: &str, unoptimized: &LogicalPlan, optimized: &LogicalPlan) -> DfResult<()> {
    if sql.len() > MAX_CACHED_SQL_BYTES
        || matches!(unoptimized, LogicalPlan::Explain(_) | LogicalPlan::Analyze(_))
        || reads_the_clock(unoptimized)?
        || !scans_only::<EventsTable>(optimized)?
    {
        return Ok(());
    }
    let stand_in: Arc<dyn TableProvider> = Arc::new(EmptyTable::new(events_schema()));
    let plan = with_table(optimized.clone(), stand_in)?;
    debug_assert!(scans_only::<EmptyTable>(&plan)?);
    cache().lock().unwrap_or_else(|e| e.into_inner()).put(key(partitions, tenant_id, sql), plan);
    Ok(())
}

/// Whether the plan calls a function that is not immutable (the optimizer folds the stable ones, such as
/// `now()`, to the planning time).
fn reads_the_clock(plan: &LogicalPlan) -> DfResult<bool> {
    let mut found = false;
    plan.apply_with_subqueries(|node| {
        node.apply_expressions(|expr| {
            expr.apply(|e| {
                if let Expr::ScalarFunction(f) = e {
                    if f.func.signature().volatility != Volatility::Immutable {
                        found = true;
                        return Ok(TreeNodeRecursion::Stop);
                    }
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })?;
        Ok(if found { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
    })?;
    Ok(found)
}

/// Whether every scan of the plan (subqueries' too) reads a `T`: table functions (`generate_series`, ...)
/// are scans of their own tables, and such a plan is not cached.
fn scans_only<T: 'static>(plan: &LogicalPlan) -> DfResult<bool> {
    let mut only = true;
    plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            only &= source_as_provider(&scan.source)?.as_any().is::<T>();
        }
        Ok(if only { TreeNodeRecursion::Continue } else { TreeNodeRecursion::Stop })
    })?;
    Ok(only)
}

/// The plan with every scan (subqueries' too) reading `table`; called on plans that scan only `events`
/// (or its stand-in).
fn with_table(plan: LogicalPlan, table: Arc<dyn TableProvider>) -> DfResult<LogicalPlan> {
    let plan = plan.transform_up_with_subqueries(|node| match node {
        LogicalPlan::TableScan(mut scan) => {
            scan.source = provider_as_source(table.clone());
            Ok(Transformed::yes(LogicalPlan::TableScan(scan)))
        }
        other => Ok(Transformed::no(other)),
    })?;
    Ok(plan.data)
}
