//! The scan of one shard: a partition of the `events` table. It reads the shard's shared maps from the
//! side runtime's thread (lock-free slots up to the visible position, so only acknowledged events) and
//! builds Arrow batches of the projected columns, one bounded slice at a time.
//!
//! A scan never takes a lock the shard's appends wait on, except the entity map's: for as long as it
//! copies one entity's positions, or (listing a tenant's entities) the keys of one of the map's 64
//! parts; so an append is never held by a query for more than such a copy. Each
//! poll inspects at most [`SCAN_SLICE_POSITIONS`] positions, so one partition cannot hold the side
//! runtime's worker either.
//!
//! A scan that projects only `position`, `tenant_id`, `event_type` and `timestamp` (counts by type, by
//! time bucket, `count(*)`) reads the shard's per-type time index instead of the events: a full scan of
//! the events touches every event's archived bytes, and those cache misses were most of such a query's
//! time. Its batches hold one event type each, so the string columns are one-value dictionaries.
//! Likewise a scan of only `position`, `tenant_id` and `entity_id` (counts by entity) reads the entity
//! index.
//!
//! A time range with no type filter takes its positions from every type's time index (while none has a late
//! key) rather than reading every event of the shard.
//!
//! The position lists a scan takes from the indexes (by entity, by event type) are counted against the
//! query's memory limit for as long as the scan holds them.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, FixedSizeBinaryArray, RecordBatch, StringArray, StringBuilder, TimestampMicrosecondArray, UInt64Array,
};
use arrow::buffer::{Buffer, OffsetBuffer};
use arrow::datatypes::DataType;
use arrow::datatypes::SchemaRef;
use datafusion::common::Result as DfResult;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, LexOrdering, PhysicalExpr};
use datafusion::physical_plan::coop::CooperativeExec;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties};

use super::filter::ScanFilter;
use crate::checkpoint::schema::{BatchBuilder, COLUMNS};
use crate::shard::{OrderedKeys, OwnedSnapshot};
use crate::Store;

/// Rows in one batch at most.
pub const SCAN_BATCH_ROWS: usize = 8192;
/// Positions one poll of a partition inspects at most (matching or not) before it yields.
pub const SCAN_SLICE_POSITIONS: u64 = 65_536;
/// The columns the per-type time index gives for every event without reading it.
const TYPE_INDEX_COLUMNS: [&str; 4] = ["position", "tenant_id", "event_type", "timestamp"];
/// The columns the entity index gives for every event without reading it.
const ENTITY_INDEX_COLUMNS: [&str; 3] = ["position", "tenant_id", "entity_id"];

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
    /// Rows one entity after another (entity ids in byte order), each entity's by version, descending if
    /// `Some(true)` (see [`ShardScanExec::in_entity_order`]); `None`: whatever order the scan finds.
    entity_order: Option<bool>,
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
        ShardScanExec { store, tenant_id, projection, schema, filter: Arc::new(filter), limit, snapshot, entity_order: None, properties }
    }

    /// This scan, reading each shard's rows one entity after another (entity ids in byte order, each
    /// entity's events by version, `descending` or not): the order `ordering` (entity_id, then version)
    /// describes, hash-partitioned by `keys` (the entity id: an entity's events are all on one shard).
    /// A window or sort by entity then needs no repartition and no sort. None with a pushed LIMIT, and
    /// with a type or time filter: the type indexes would spare reading the events it leaves out, while
    /// this reads every event of the entities.
    pub fn in_entity_order(&self, ordering: &LexOrdering, keys: Vec<Arc<dyn PhysicalExpr>>, descending: bool) -> Option<ShardScanExec> {
        if self.limit.is_some() || self.filter.event_types.is_some() || self.filter.has_time_range() {
            return None;
        }
        let properties = PlanProperties::new(
            EquivalenceProperties::new_with_orderings(self.schema.clone(), [ordering.iter().cloned()]),
            Partitioning::Hash(keys, self.store.shard_count()),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Some(ShardScanExec {
            store: self.store.clone(),
            tenant_id: self.tenant_id.clone(),
            projection: self.projection.clone(),
            schema: self.schema.clone(),
            filter: self.filter.clone(),
            limit: None,
            snapshot: self.snapshot.clone(),
            entity_order: Some(descending),
            properties,
        })
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
        write!(f, "ShardScanExec: shards={}, columns={columns:?}, filter={:?}, limit={:?}", self.store.shard_count(), self.filter, self.limit)?;
        match self.entity_order {
            Some(descending) => write!(f, ", by entity then version{}", if descending { " desc" } else { "" }),
            None => Ok(()),
        }
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

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> DfResult<SendableRecordBatchStream> {
        let mut scanner = ShardScanner::new(self, partition);
        // The positions an index answered with are the scan's own memory: they count against the
        // query's limit like any operator's, for as long as the scan runs.
        let mut reservation = MemoryConsumer::new(format!("ShardScanExec[{partition}]")).register(context.memory_pool());
        reservation.try_grow(scanner.positions.held_bytes())?;
        scanner.reservation = Some(reservation);
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

/// The shard scan `plan` is, also inside the CooperativeExec (a yield budget) DataFusion wraps leaves
/// in; and whether it was so wrapped. For the physical rules that replace what sits on a scan.
pub fn shard_scan_in(plan: &Arc<dyn ExecutionPlan>) -> Option<(Arc<dyn ExecutionPlan>, bool)> {
    let cooperative = plan.as_any().is::<CooperativeExec>();
    let leaf = if cooperative { plan.children().first().map(|&child| child.clone())? } else { plan.clone() };
    leaf.as_any().is::<ShardScanExec>().then_some((leaf, cooperative))
}

/// What an index can count a scan's rows by (`counts.rs`).
#[derive(Debug, Clone, Copy)]
pub enum IndexGroup {
    EventType,
    Entity,
}

impl ShardScanExec {
    /// Whether the indexes can count this scan's rows per value of `column`, as the scan itself would
    /// read them from an index (see `ShardScanner::new`), with no LIMIT in the way. `counted`: columns
    /// the scan reads only to count them (never null), which the count does not need to read.
    pub fn index_group(&self, column: &str, counted: &[&str]) -> Option<IndexGroup> {
        match column {
            _ if self.limit.is_some() => None,
            "event_type" if self.reads_type_index(counted) => Some(IndexGroup::EventType),
            "entity_id" if self.reads_entity_index(counted) => Some(IndexGroup::Entity),
            _ => None,
        }
    }

    /// Whether the scan may read the per-type time index instead of the events (it still falls back to
    /// the events where a type's keys are not all of its events: `type_runs`), apart from `extra` columns.
    fn reads_type_index(&self, extra: &[&str]) -> bool {
        self.filter.entity_ids.is_none()
            && self.projection.iter().all(|&i| TYPE_INDEX_COLUMNS.contains(&COLUMNS[i]) || extra.contains(&COLUMNS[i]))
    }

    /// Whether the scan reads the entity index instead of the events, apart from `extra` columns.
    fn reads_entity_index(&self, extra: &[&str]) -> bool {
        let filter = &self.filter;
        filter.event_types.is_none()
            && (filter.lo_us, filter.hi_us) == (i64::MIN, i64::MAX)
            && self.projection.iter().all(|&i| ENTITY_INDEX_COLUMNS.contains(&COLUMNS[i]) || extra.contains(&COLUMNS[i]))
    }

    /// The entities an entity-index scan reads on a shard, sorted, each once (`IN ('a', 'a')` is one
    /// entity's rows once).
    fn index_entities(&self, shared: &crate::shard::ShardShared) -> Vec<Box<str>> {
        let mut entities: Vec<Box<str>> = match &self.filter.entity_ids {
            Some(ids) => ids.iter().map(|e| e.as_str().into()).collect(),
            None => shared.tenant_entities(&self.tenant_id),
        };
        entities.sort_unstable();
        entities.dedup();
        entities
    }

    /// The number of rows this scan gives on `shard` per event type or entity (those with none left
    /// out), read from the index with the scan's visibility; `None` where the type index cannot answer
    /// (a type with a late timestamp). Counts by binary search over the indexes without copying positions;
    /// the longest step is one walk over the tenant's entities (a part of the map at a time), which is what
    /// listing them costs.
    pub async fn index_counts(&self, shard: usize, group: IndexGroup) -> Option<Vec<(Box<str>, u64)>> {
        let shared = self.store.shard(shard);
        let visible = shared.visible_position();
        // The parts of cross-shard batches this snapshot does not see, taken once: later decisions get
        // later commit numbers, so what is hidden now stays hidden for this snapshot, and a position
        // costs a comparison (a search of the few ranges, if any) instead of a lock per position.
        let hidden = shared.parts.hidden_ranges(visible, self.snapshot.seq);
        let seen = |position: u64| {
            position <= visible
                && (hidden.is_empty() || !hidden.iter().any(|&(first, last)| (first..=last).contains(&position)))
        };
        let mut counts = Vec::new();
        if self.filter.nothing {
            return Some(counts);
        }
        match group {
            IndexGroup::EventType => {
                for run in type_runs(shared, &self.tenant_id, &self.filter)? {
                    // Keys arrive in position order and (the run exists only without late keys) in time
                    // order: positions ascend along the run, so the visible ones are a prefix of it, less
                    // the hidden ranges, each a stretch of it. Binary searches, not a pass over the keys.
                    let position_below = |n: usize, bound: u64| run.keys.partition_point(n, |k| k.1 < bound).max(run.next);
                    let upto = position_below(run.end, visible.saturating_add(1));
                    let hidden_keys: usize = hidden
                        .iter()
                        .map(|&(first, last)| position_below(upto, last.saturating_add(1)) - position_below(upto, first))
                        .sum();
                    let n = (upto - run.next - hidden_keys) as u64;
                    debug_assert_eq!(n, (run.next..run.end).filter(|&i| seen(run.keys.get(i).1)).count() as u64);
                    if n > 0 {
                        counts.push((run.event_type, n));
                    }
                }
            }
            IndexGroup::Entity if self.filter.entity_ids.is_none() => {
                counts = shared.tenant_entity_counts(&self.tenant_id, visible, &hidden);
            }
            IndexGroup::Entity => {
                // The entities the filter names: each counted by binary search, no positions copied.
                for entity in self.index_entities(shared) {
                    let n = shared.entity_count(&self.tenant_id, &entity, visible, &hidden);
                    if n > 0 {
                        counts.push((entity, n));
                    }
                }
            }
        }
        Some(counts)
    }
}

/// The positions a shard scan visits, in increasing order (but in entity order, see `entity_order`).
enum Positions {
    /// Every position up to the visible one.
    Range { next: u64, last: u64 },
    /// An index's answer (entities' or event types' positions).
    List { positions: Vec<u64>, next: usize },
    /// The per-type time index's keys, one event type after another; the events are not read.
    Types(Vec<TypeRun>),
    /// The entity index, one entity after another; the events are not read.
    Entities(EntityRun),
}

/// The entities to read (`entities[next..]`) and the current one's positions, `positions[taken..]` to go.
struct EntityRun {
    entities: Vec<Box<str>>,
    next: usize,
    positions: Vec<u64>,
    taken: usize,
}

impl EntityRun {
    fn held_bytes(&self) -> usize {
        let names: usize = self.entities.iter().map(|e| e.len()).sum();
        self.entities.capacity() * size_of::<Box<str>>() + names + self.positions.capacity() * size_of::<u64>()
    }
}

/// One event type's in-order keys `(timestamp, position)`, `next..end` still to read.
struct TypeRun {
    event_type: Box<str>,
    keys: Arc<OrderedKeys>,
    next: usize,
    end: usize,
}

impl Positions {
    /// The heap bytes this holds of its own (the per-type runs share the index's keys).
    fn held_bytes(&self) -> usize {
        match self {
            Positions::Range { .. } | Positions::Types(_) => 0,
            Positions::List { positions, .. } => positions.capacity() * size_of::<u64>(),
            Positions::Entities(run) => run.held_bytes(),
        }
    }

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
            Positions::Types(_) | Positions::Entities(_) => unreachable!("read without the events"),
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
    visible: u64,
    projection: Vec<usize>,
    /// The query's memory taken by `positions` (set once the scan runs).
    reservation: Option<MemoryReservation>,
}

impl ShardScanner {
    fn new(exec: &ShardScanExec, shard: usize) -> ShardScanner {
        let shared = exec.store.shard(shard);
        // The scan sees the events acknowledged when it starts, and no later ones.
        let visible = shared.visible_position();
        let filter = &exec.filter;
        let positions = if filter.nothing {
            Positions::List { positions: Vec::new(), next: 0 }
        } else if let Some(descending) = exec.entity_order {
            let mut positions = Vec::new();
            for entity in exec.index_entities(shared) {
                let versions = shared.entity_positions_upto(&exec.tenant_id, &entity, visible);
                match descending {
                    true => positions.extend(versions.iter().rev()),
                    false => positions.extend(versions),
                }
            }
            Positions::List { positions, next: 0 }
        } else if let Some(runs) = exec.reads_type_index(&[]).then(|| type_runs(shared, &exec.tenant_id, filter)).flatten() {
            Positions::Types(runs)
        } else if exec.reads_entity_index(&[]) {
            Positions::Entities(EntityRun { entities: exec.index_entities(shared), next: 0, positions: Vec::new(), taken: 0 })
        } else if let Some(entities) = &filter.entity_ids {
            let mut positions: Vec<u64> =
                entities.iter().flat_map(|e| shared.entity_positions_upto(&exec.tenant_id, e, visible)).collect();
            positions.sort_unstable();
            positions.dedup();
            Positions::List { positions, next: 0 }
        } else {
            // Types asked for, or a time range of any type: the types' time indexes give the positions,
            // instead of reading every event of the shard.
            let types: Option<Vec<Box<str>>> = match &filter.event_types {
                Some(types) => Some(types.iter().map(|t| t.as_str().into()).collect()),
                None if filter.has_time_range() => shared.tenant_types(&exec.tenant_id).map(|types| types.into_iter().map(|(t, _)| t).collect()),
                None => None,
            };
            let by_type: Option<Vec<Vec<u64>>> = types.and_then(|types| {
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
            visible,
            projection: exec.projection.clone(),
            reservation: None,
        }
    }

    /// [`next_slice`](Self::next_slice) from the entity index: the positions of as many entities as fit.
    fn next_entity_slice(&mut self) -> Slice {
        let shared = self.store.shard(self.shard);
        let Positions::Entities(run) = &mut self.positions else { unreachable!("an entity scan") };
        let want = SCAN_BATCH_ROWS.min(self.remaining_rows);
        // Rows' positions, and their entity ids built as they come (a run of rows per entity).
        let (mut positions, mut entity_ids) = (Vec::new(), StringBuilder::new());
        let mut inspected = 0;
        while positions.len() < want && inspected < SCAN_SLICE_POSITIONS as usize {
            if run.taken == run.positions.len() {
                let Some(entity) = run.entities.get(run.next) else { break };
                run.next += 1;
                run.positions = shared.entity_positions_upto(&self.tenant_id, entity, self.visible);
                run.taken = 0;
                if let Some(reservation) = &mut self.reservation {
                    if let Err(e) = reservation.try_resize(run.held_bytes()) {
                        run.next = run.entities.len();
                        run.positions.clear();
                        return Slice::Batch(Err(e));
                    }
                }
                continue;
            }
            let entity = &*run.entities[run.next - 1];
            let take = (run.positions.len() - run.taken).min(want - positions.len()).min(SCAN_SLICE_POSITIONS as usize - inspected);
            for &position in &run.positions[run.taken..run.taken + take] {
                if !shared.parts.hidden(position, self.snapshot.seq) {
                    positions.push(position);
                    entity_ids.append_value(entity);
                }
            }
            run.taken += take;
            inspected += take;
        }
        let done = run.next == run.entities.len() && run.taken == run.positions.len();
        if positions.is_empty() {
            return if done || self.remaining_rows == 0 { Slice::Done } else { Slice::Nothing };
        }
        self.remaining_rows -= positions.len();
        let rows = positions.len();
        let position: ArrayRef = Arc::new(UInt64Array::from(positions));
        let entity_id: ArrayRef = Arc::new(entity_ids.finish());
        self.index_batch(rows, |column| match column {
            "position" => position.clone(),
            "entity_id" => entity_id.clone(),
            "tenant_id" => one_value(&self.tenant_id, rows),
            other => unreachable!("{other} is not in the entity index"),
        })
    }

    /// A batch of `rows` rows from an index scan: each projected column as `column` builds it by name.
    fn index_batch(&self, rows: usize, column: impl Fn(&str) -> ArrayRef) -> Slice {
        let columns = self.projection.iter().map(|&i| column(COLUMNS[i])).collect();
        let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(rows));
        Slice::Batch(RecordBatch::try_new_with_options(self.schema.clone(), columns, &options).map_err(Into::into))
    }

    /// [`next_slice`](Self::next_slice) from the per-type time index: up to [`SCAN_SLICE_POSITIONS`]
    /// keys of one event type.
    fn next_index_slice(&mut self) -> Slice {
        let shared = self.store.shard(self.shard);
        let Positions::Types(runs) = &mut self.positions else { unreachable!("an index scan") };
        let Some(run) = runs.last_mut().filter(|_| self.remaining_rows > 0) else { return Slice::Done };
        let want = SCAN_BATCH_ROWS.min(self.remaining_rows);
        let stop = run.end.min(run.next + SCAN_SLICE_POSITIONS as usize);
        let (mut positions, mut stamps) = (Vec::with_capacity(want), Vec::with_capacity(want));
        while run.next < stop && positions.len() < want {
            let (timestamp_us, position) = run.keys.get(run.next);
            run.next += 1;
            // The index also holds accepted events not yet acknowledged, and parts of cross-shard batches
            // the snapshot does not see.
            if position <= self.visible && !shared.parts.hidden(position, self.snapshot.seq) {
                positions.push(position);
                stamps.push(timestamp_us);
            }
        }
        let event_type = run.event_type.clone();
        if run.next == run.end {
            runs.pop();
        }
        if positions.is_empty() {
            return Slice::Nothing;
        }
        self.remaining_rows -= positions.len();
        let rows = positions.len();
        let position: ArrayRef = Arc::new(UInt64Array::from(positions));
        let timestamp: ArrayRef = Arc::new(TimestampMicrosecondArray::from(stamps).with_timezone("UTC"));
        self.index_batch(rows, |column| match column {
            "position" => position.clone(),
            "timestamp" => timestamp.clone(),
            "tenant_id" => one_value(&self.tenant_id, rows),
            "event_type" => one_value(&event_type, rows),
            other => unreachable!("{other} is not in the type index"),
        })
    }

    /// Inspects up to [`SCAN_SLICE_POSITIONS`] positions and returns the rows found, if any.
    fn next_slice(&mut self) -> Slice {
        match self.positions {
            Positions::Types(_) => return self.next_index_slice(),
            Positions::Entities(_) => return self.next_entity_slice(),
            _ => {}
        }
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
            .map(|(field, column)| match column.data_type() {
                _ if field.name() == "id" => Ok(uuid_text(column)),
                DataType::Dictionary(_, values) => arrow::compute::cast(column, values),
                _ => Ok(column.clone()),
            })
            .collect::<Result<_, _>>()?;
        let columns = self.order.iter().map(|&i| columns[i].clone()).collect();
        let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        Ok(RecordBatch::try_new_with_options(self.schema.clone(), columns, &options)?)
    }
}

/// A string column of `rows` times one value.
fn one_value(value: &str, rows: usize) -> ArrayRef {
    let offsets = OffsetBuffer::from_lengths(std::iter::repeat_n(value.len(), rows));
    Arc::new(StringArray::new(offsets, Buffer::from(value.repeat(rows).into_bytes()), None))
}

/// The tenant's event types on the shard that pass the filter, each with its keys in the filter's time
/// range; `None` when the index cannot answer (a type's keys are not all of its events).
fn type_runs(shared: &crate::shard::ShardShared, tenant_id: &str, filter: &ScanFilter) -> Option<Vec<TypeRun>> {
    let types = shared.tenant_types(tenant_id)?;
    let wanted = |t: &str| filter.event_types.as_ref().is_none_or(|types| types.iter().any(|w| w == t));
    let runs = types
        .into_iter()
        .filter(|(event_type, _)| wanted(event_type))
        .map(|(event_type, keys)| {
            let n = keys.len();
            let next = keys.partition_point(n, |k| *k < (filter.lo_us, 0));
            let end = keys.partition_point(n, |k| *k <= (filter.hi_us, u64::MAX)).max(next);
            TypeRun { event_type, keys, next, end }
        })
        .filter(|run| run.next < run.end)
        .collect();
    Some(runs)
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
