//! The scan of one shard: a partition of the `events` table. It reads the shard's shared maps from the
//! side runtime's thread (lock-free slots up to the visible position, so only acknowledged events) and
//! builds Arrow batches of the projected columns, one bounded slice at a time.
//!
//! A scan never takes a lock the shard's appends wait on, except the entity map's for as long as it
//! copies one entity's positions; so an append is never held by a query for more than that copy. Each
//! poll inspects at most [`SCAN_SLICE_POSITIONS`] positions, so one partition cannot hold the side
//! runtime's worker either.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, FixedSizeBinaryArray, RecordBatch, StringBuilder};
use arrow::datatypes::SchemaRef;
use datafusion::common::Result as DfResult;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties};

use super::filter::ScanFilter;
use crate::checkpoint::schema::{BatchBuilder, COLUMNS};
use crate::shard::OwnedSnapshot;
use crate::Store;

/// Rows in one batch at most.
pub const SCAN_BATCH_ROWS: usize = 8192;
/// Positions one poll of a partition inspects at most (matching or not) before it yields.
pub const SCAN_SLICE_POSITIONS: u64 = 65_536;

/// The physical scan of the `events` table: one partition per shard.
pub struct ShardScanExec {
    store: Store,
    tenant_id: Arc<str>,
    /// Projected columns, as indexes into [`COLUMNS`] (the table's column order).
    projection: Vec<usize>,
    schema: SchemaRef,
    filter: Arc<ScanFilter>,
    /// Rows each partition need produce at most (pushed LIMIT).
    limit: Option<usize>,
    /// Where in the commit order every partition reads: a cross-shard batch is in the answer wholly or
    /// not at all (docs/BATCHES.md).
    snapshot: Arc<OwnedSnapshot>,
    properties: PlanProperties,
}

impl ShardScanExec {
    pub fn new(store: Store, tenant_id: Arc<str>, projection: Vec<usize>, schema: SchemaRef, filter: ScanFilter, limit: Option<usize>) -> ShardScanExec {
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            Partitioning::UnknownPartitioning(store.shard_count()),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        let snapshot = Arc::new(store.read_snapshot());
        ShardScanExec { store, tenant_id, projection, schema, filter: Arc::new(filter), limit, snapshot, properties }
    }
}

impl fmt::Debug for ShardScanExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        DisplayAs::fmt_as(self, DisplayFormatType::Default, f)
    }
}

impl DisplayAs for ShardScanExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let columns: Vec<&str> = self.projection.iter().map(|&i| COLUMNS[i]).collect();
        write!(f, "ShardScanExec: shards={}, columns={columns:?}, filter={:?}, limit={:?}", self.store.shard_count(), self.filter, self.limit)
    }
}

impl ExecutionPlan for ShardScanExec {
    fn name(&self) -> &str {
        "ShardScanExec"
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

    fn execute(&self, partition: usize, _: Arc<TaskContext>) -> DfResult<SendableRecordBatchStream> {
        let scanner = ShardScanner::new(self, partition);
        let batches = futures_lite::stream::unfold(scanner, |mut scanner| async move {
            loop {
                match scanner.next_slice() {
                    Slice::Batch(batch) => return Some((batch, scanner)),
                    // Nothing matched in this slice: let other tasks run before the next one.
                    Slice::Nothing => tokio::task::yield_now().await,
                    Slice::Done => return None,
                }
            }
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), batches)))
    }
}

/// The positions a shard scan visits, in increasing order.
enum Positions {
    /// Every position up to the visible one.
    Range { next: u64, last: u64 },
    /// An index's answer (an entity's or an event type's positions).
    List { positions: Vec<u64>, next: usize },
}

impl Positions {
    fn next(&mut self) -> Option<u64> {
        match self {
            Positions::Range { next, last } => (*next <= *last).then(|| {
                *next += 1;
                *next - 1
            }),
            Positions::List { positions, next } => {
                let p = positions.get(*next).copied();
                *next += 1;
                p
            }
        }
    }
}

enum Slice {
    Batch(DfResult<RecordBatch>),
    Nothing,
    Done,
}

struct ShardScanner {
    store: Store,
    shard: usize,
    tenant_id: Arc<str>,
    filter: Arc<ScanFilter>,
    positions: Positions,
    builder: BatchBuilder,
    /// The builder's columns (file order) reordered to the projection.
    order: Vec<usize>,
    schema: SchemaRef,
    remaining_rows: usize,
    snapshot: Arc<OwnedSnapshot>,
}

impl ShardScanner {
    fn new(exec: &ShardScanExec, shard: usize) -> ShardScanner {
        let shared = exec.store.shard(shard);
        // The scan sees the events acknowledged when it starts, and no later ones.
        let visible = shared.visible_position();
        let filter = &exec.filter;
        let positions = if filter.nothing {
            Positions::List { positions: Vec::new(), next: 0 }
        } else if let Some(entities) = &filter.entity_ids {
            let mut positions: Vec<u64> =
                entities.iter().flat_map(|e| shared.entity_positions_upto(&exec.tenant_id, e, visible)).collect();
            positions.sort_unstable();
            positions.dedup();
            Positions::List { positions, next: 0 }
        } else {
            let by_type: Option<Vec<Vec<u64>>> = filter.event_types.as_ref().and_then(|types| {
                types.iter().map(|t| shared.type_positions(&exec.tenant_id, t, filter.lo_us, filter.hi_us, visible)).collect()
            });
            match by_type {
                Some(lists) => {
                    let mut positions: Vec<u64> = lists.into_iter().flatten().collect();
                    positions.sort_unstable();
                    positions.dedup();
                    Positions::List { positions, next: 0 }
                }
                None => Positions::Range { next: 1, last: visible },
            }
        };
        let mut keep = [false; COLUMNS.len()];
        exec.projection.iter().for_each(|&i| keep[i] = true);
        let mut sorted = exec.projection.clone();
        sorted.sort_unstable();
        let order = exec.projection.iter().map(|i| sorted.binary_search(i).expect("a projected column")).collect();
        ShardScanner {
            store: exec.store.clone(),
            shard,
            tenant_id: exec.tenant_id.clone(),
            filter: exec.filter.clone(),
            positions,
            builder: BatchBuilder::projected(false, SCAN_BATCH_ROWS, &keep),
            order,
            schema: exec.schema.clone(),
            remaining_rows: exec.limit.unwrap_or(usize::MAX),
            snapshot: exec.snapshot.clone(),
        }
    }

    /// Inspects up to [`SCAN_SLICE_POSITIONS`] positions and returns the rows found, if any.
    fn next_slice(&mut self) -> Slice {
        let shared = self.store.shard(self.shard);
        let mut done = self.remaining_rows == 0;
        let mut inspected = 0u64;
        while !done && inspected < SCAN_SLICE_POSITIONS && self.builder.len() < SCAN_BATCH_ROWS.min(self.remaining_rows) {
            let Some(position) = self.positions.next() else {
                done = true;
                break;
            };
            inspected += 1;
            // Positions come from below the visible one: acknowledged. An empty slot is a position lost
            // to corruption; a part of a cross-shard batch not committed at the snapshot reads as none.
            let Some(event) = shared.get_position_at(position, self.snapshot.seq) else { continue };
            if event.tenant_id() == &*self.tenant_id && self.filter.matches(&event) {
                self.builder.push(&event);
            }
        }
        if !self.builder.is_empty() {
            self.remaining_rows -= self.builder.len();
            let batch = self.builder.finish();
            return Slice::Batch(self.to_table_batch(batch));
        }
        if done {
            Slice::Done
        } else {
            Slice::Nothing
        }
    }

    /// The checkpoint columns (file order) as the table's: `id` as UUID text, in the projection's order.
    fn to_table_batch(&self, batch: RecordBatch) -> DfResult<RecordBatch> {
        let columns: Vec<ArrayRef> = batch
            .schema()
            .fields()
            .iter()
            .zip(batch.columns())
            .map(|(field, column)| if field.name() == "id" { uuid_text(column) } else { column.clone() })
            .collect();
        let columns = self.order.iter().map(|&i| columns[i].clone()).collect();
        let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        Ok(RecordBatch::try_new_with_options(self.schema.clone(), columns, &options)?)
    }
}

/// 16-byte ids as hyphenated UUID text.
fn uuid_text(column: &ArrayRef) -> ArrayRef {
    let ids = column.as_any().downcast_ref::<FixedSizeBinaryArray>().expect("the id column is 16-byte binary");
    let mut text = StringBuilder::with_capacity(ids.len(), ids.len() * 36);
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    for row in 0..ids.len() {
        let bytes: [u8; 16] = ids.value(row).try_into().expect("16 bytes");
        text.append_value(uuid::Uuid::from_bytes(bytes).hyphenated().encode_lower(&mut buf));
    }
    Arc::new(text.finish())
}
