//! The `events` table of one tenant: a DataFusion table provider over every acknowledged event of the
//! store, one partition per shard. The tenant is fixed when the table is made (one table per query), so
//! no SQL can reach another tenant's rows.

use std::any::Any;
use std::sync::{Arc, OnceLock};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::Result as DfResult;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;

use super::filter::{pushable, ScanFilter};
use super::scan::ShardScanExec;
use crate::checkpoint::schema::{schema as checkpoint_schema, COLUMNS};
use crate::Store;

/// The table's columns: the checkpoint schema (`crate::checkpoint::schema`), with `id` as UUID text and
/// the names (tenant, entity, event type) as plain strings rather than dictionaries: DataFusion groups a
/// plain string column with its vectorised byte maps, but a dictionary only through its generic row
/// format, which was most of a `GROUP BY event_type`'s time.
pub fn events_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let fields: Vec<Field> = checkpoint_schema(false)
                .fields()
                .iter()
                .map(|f| match f.data_type() {
                    _ if f.name() == "id" => Field::new("id", DataType::Utf8, false),
                    DataType::Dictionary(_, values) => Field::new(f.name(), values.as_ref().clone(), f.is_nullable()),
                    _ => f.as_ref().clone(),
                })
                .collect();
            debug_assert!(fields.iter().map(|f| f.name().as_str()).eq(COLUMNS));
            Arc::new(Schema::new(fields))
        })
        .clone()
}

pub struct EventsTable {
    store: Store,
    tenant_id: Arc<str>,
}

impl EventsTable {
    pub fn new(store: Store, tenant_id: &str) -> EventsTable {
        EventsTable { store, tenant_id: tenant_id.into() }
    }
}

impl std::fmt::Debug for EventsTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventsTable").field("tenant_id", &self.tenant_id).finish()
    }
}

#[async_trait]
impl TableProvider for EventsTable {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn schema(&self) -> SchemaRef {
        events_schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    /// Exact for the shapes the scan evaluates itself (so LIMIT can be pushed past them too).
    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| if pushable(f) { TableProviderFilterPushDown::Exact } else { TableProviderFilterPushDown::Unsupported })
            .collect())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let projection: Vec<usize> = projection.cloned().unwrap_or_else(|| (0..COLUMNS.len()).collect());
        let schema = Arc::new(events_schema().project(&projection)?);
        let filter = ScanFilter::of(filters, &self.tenant_id);
        Ok(Arc::new(ShardScanExec::new(self.store.clone(), self.tenant_id.clone(), projection, schema, filter, limit)))
    }
}
