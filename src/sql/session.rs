//! One query's DataFusion session: the tenant's `events` table and nothing else, the JSON functions,
//! a memory pool of the query's limit (no spilling to disk), and only read-only plans.

use std::sync::{Arc, Mutex};

use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::GreedyMemoryPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::catalog::MemoryCatalogProviderList;
use datafusion::common::DataFusionError;
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{SessionConfig, SessionContext, SQLOptions};

use super::counts::CountByIndex;
use super::entity_order::ScanInEntityOrder;
use super::error::SqlError;
use super::table::EventsTable;
use crate::config::SqlLimits;
use crate::Store;

/// A fresh session per query, so a query sees its tenant's table only and its limits are its own. It
/// starts from a copy of a template built once per shard count: building DataFusion's configuration and
/// function registry from scratch took ~0.2 ms of every query.
pub fn context(store: &Store, tenant_id: &str, limits: &SqlLimits) -> Result<SessionContext, SqlError> {
    crate::event::validate_tenant(tenant_id).map_err(|e| SqlError::Tenant(e.reason))?;
    let df = |e| SqlError::from_datafusion(e, limits);
    let runtime = RuntimeEnvBuilder::new()
        // Greedy: a query over its limit fails at once with ResourcesExhausted (nothing to spill to).
        .with_memory_pool(Arc::new(GreedyMemoryPool::new(limits.memory_limit_bytes as usize)))
        .with_disk_manager_builder(DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled))
        .build_arc()
        .map_err(df)?;
    let template = template(store.shard_count().max(1)).map_err(df)?;
    // The query's own catalog (the template's has no tables; this one gets the tenant's `events`) and
    // its own runtime (memory pool).
    let config = template.config().clone().with_create_default_catalog_and_schema(true);
    let state = SessionStateBuilder::new_from_existing(template)
        .with_config(config)
        .with_catalog_list(Arc::new(MemoryCatalogProviderList::new()))
        .with_runtime_env(runtime)
        .build();
    let ctx = SessionContext::new_with_state(state);
    ctx.register_table("events", Arc::new(EventsTable::new(store.clone(), tenant_id))).map_err(df)?;
    Ok(ctx)
}

/// The session every query starts from, for stores of `partitions` shards: configuration, functions and
/// rules, but no catalog and the default runtime (each query brings its own).
fn template(partitions: usize) -> Result<SessionState, DataFusionError> {
    static TEMPLATES: Mutex<Vec<(usize, SessionState)>> = Mutex::new(Vec::new());
    let mut templates = TEMPLATES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, state)) = templates.iter().find(|(p, _)| *p == partitions) {
        return Ok(state.clone());
    }
    // One partition per shard; the side runtime has one worker, so more would only add repartitioning.
    let config = SessionConfig::new()
        .with_target_partitions(partitions)
        .with_information_schema(false)
        .with_create_default_catalog_and_schema(false);
    let mut state = SessionStateBuilder::new()
        .with_config(config)
        .with_default_features()
        .with_optimizer_rule(Arc::new(super::window_keys::WindowKeysOnce))
        // After DataFusion's own rules, so they see the final plan's partial aggregates and sorts.
        .with_physical_optimizer_rule(Arc::new(CountByIndex))
        .with_physical_optimizer_rule(Arc::new(ScanInEntityOrder))
        .build();
    datafusion_functions_json::register_all(&mut state)?;
    // In place of DataFusion's own (same name and signature): UTC timestamps truncated by arithmetic.
    state.register_udf(Arc::new(super::date_trunc::udf()))?;
    templates.push((partitions, state.clone()));
    Ok(state)
}

/// Parses and plans `sql`, refusing anything but a query: DDL (CREATE [EXTERNAL] TABLE, VIEW, DROP),
/// DML (INSERT, UPDATE, DELETE, COPY) and statements (SET, transactions). The session has no file
/// tables or file-reading functions, so reads never leave the store.
pub async fn plan(ctx: &SessionContext, sql: &str, limits: &SqlLimits) -> Result<LogicalPlan, SqlError> {
    let plan = ctx.state().create_logical_plan(sql).await.map_err(|e| SqlError::from_datafusion(e, limits))?;
    let read_only = SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false);
    read_only.verify_plan(&plan).map_err(|e| SqlError::ReadOnly(e.find_root().message().to_string()))?;
    Ok(plan)
}
