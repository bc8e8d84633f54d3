//! Model-based test: random sequences of appends, batches, queries, reads by id, entity states, clean
//! reopens, crash-reopens and power cuts (unsynced sectors lost or kept in any order), run against a real two-shard `Store` and against a plain in-memory model.
//! After a power cut each shard keeps a prefix of its log, and a batch that wrote on both shards is kept
//! only if both kept their part (recovery drops the other part otherwise).
//! Every answer of the store must equal the model's.
//!
//! The model knows each shard's next position (predicted, then checked against the acks), so it can
//! order events by (timestamp, position, shard) exactly even when timestamps collide; timestamps are
//! drawn from a small range, out of order, so collisions and out-of-order entities are common.
//!
//! A batch is all or nothing: a version or id conflict anywhere in it, also in a batch that spans both
//! shards, writes nothing anywhere. Which conflict a spanning batch reports is only required to be one
//! of its conflicts.
//!
//! A failure names the operation (its index and value) and the difference; proptest then prints the
//! shrunk operation sequence as "minimal failing input". `PROPTEST_CASES=n` runs more cases.

mod common;

use std::collections::{HashMap, HashSet};

use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use serde_json::{json, Map, Value};
use std::sync::Arc;

use tidelog::wal::fault::FaultPlan;
use tidelog::{AppendAck, Error, NewEvent, Order, Query, Store, StoredEvent};
use uuid::Uuid;

const TENANTS: [&str; 3] = ["t1", "t10", "t9"]; // "t9" never gets events (only the first two do)
const ENTITIES: [&str; 5] = ["e0", "e1", "e2", "e3", "e9"]; // "e9" never gets events
const TYPES: [&str; 4] = ["a.x", "a.y", "b.z", "a"]; // "a" is only ever asked for
const PREFIXES: [&str; 5] = ["a.", "b.", "a.x", "", "c"];
const PAYLOAD_KEYS: [&str; 3] = ["a", "b", "c"];
/// Explicit timestamps and query bounds are drawn below this.
const TS_RANGE: u16 = 600;

// ---------------------------------------------------------------------------------------------------
// Operations

#[derive(Debug, Clone)]
enum IdChoice {
    /// Let the store generate one.
    None,
    /// The k-th fresh id of this operation: the same k twice in one batch is the same id.
    Fresh(u8),
    /// The id of a stored event of the same tenant and entity (modulo their number): a client's retry,
    /// which must be answered with the original. Fresh if there is none.
    RetrySame(u8),
    /// Any id submitted earlier (stored or not, any entity), modulo their number; fresh if there is none.
    Retry(u8),
}

#[derive(Debug, Clone, Copy)]
enum Expect {
    None,
    /// The entity's version as the store should see it at this event.
    Right,
    /// The right version plus this (never 0; clamped so it stays a valid u64 and stays wrong).
    Wrong(i8),
}

#[derive(Debug, Clone)]
enum PayloadSpec {
    Object(Vec<(u8, i8)>),
    Number(i8),
    Other(u8),
}

#[derive(Debug, Clone)]
struct EventSpec {
    tenant: u8,
    entity: u8,
    etype: u8,
    /// `None`: the store assigns the timestamp.
    ts: Option<u16>,
    payload: PayloadSpec,
    metadata: Option<u8>,
    expect: Expect,
    id: IdChoice,
    /// In a batch: send the previous event of the batch again (same id, entity and content), with this
    /// spec's expected version.
    resend: bool,
}

/// A time bound: absent, absolute, or an existing event's timestamp plus -1, 0 or 1 (so boundaries are hit).
#[derive(Debug, Clone)]
enum Bound {
    None,
    Abs(u16),
    /// The timestamp of the (k modulo their number)-th stored event in the asker's scope (its tenant, and
    /// its entity if it names one), plus the delta; `Abs(k)` if there is none.
    Near(u8, i8),
}

#[derive(Debug, Clone)]
enum TypeSpec {
    None,
    Exact(u8),
    Prefix(u8),
}

#[derive(Debug, Clone)]
struct QuerySpec {
    tenant: u8,
    entity: Option<u8>,
    etype: TypeSpec,
    since: Bound,
    until: Bound,
    as_of: Bound,
    desc: bool,
    /// `None`: the store's default limit (100).
    limit: Option<u8>,
    offset: u8,
}

#[derive(Debug, Clone)]
enum Op {
    Append(EventSpec),
    /// `single_shard`: keep only the events on the first event's shard (else the batch usually spans both).
    Batch {
        events: Vec<EventSpec>,
        single_shard: bool,
    },
    Query(QuerySpec),
    /// An id submitted earlier (modulo), asked for in its own tenant (`None`) or in a given one.
    Get {
        id: u8,
        tenant: Option<u8>,
    },
    State {
        tenant: u8,
        entity: u8,
        as_of: Bound,
    },
    /// `close` then open again.
    Reopen,
    /// `halt` (no flush, no sync) then open again.
    Crash,
    /// `halt`, then a power cut that keeps a random choice of the unsynced sectors (seeded), in any
    /// order, then open again.
    PowerCut(u64),
    /// Write a Parquet checkpoint on every shard now (which also trims the WAL and may compact).
    Checkpoint,
}

fn event_spec() -> impl Strategy<Value = EventSpec> {
    let ts = prop_oneof![9 => (0..TS_RANGE).prop_map(Some), 1 => Just(None)];
    let payload = prop_oneof![
        8 => prop::collection::vec((0u8..3, any::<i8>()), 0..3).prop_map(PayloadSpec::Object),
        1 => any::<i8>().prop_map(PayloadSpec::Number),
        1 => any::<u8>().prop_map(PayloadSpec::Other),
    ];
    let metadata = prop_oneof![3 => Just(None), 1 => any::<u8>().prop_map(Some)];
    let expect = prop_oneof![
        12 => Just(Expect::None),
        6 => Just(Expect::Right),
        2 => prop_oneof![Just(-2i8), Just(-1), Just(1), Just(2)].prop_map(Expect::Wrong),
    ];
    let id = prop_oneof![
        6 => Just(IdChoice::None),
        3 => (0u8..3).prop_map(IdChoice::Fresh),
        2 => any::<u8>().prop_map(IdChoice::RetrySame),
        1 => any::<u8>().prop_map(IdChoice::Retry),
    ];
    let resend = prop_oneof![5 => Just(false), 1 => Just(true)];
    (0u8..2, 0u8..4, 0u8..3, ts, payload, metadata, expect, id, resend).prop_map(
        |(tenant, entity, etype, ts, payload, metadata, expect, id, resend)| EventSpec {
            tenant,
            entity,
            etype,
            ts,
            payload,
            metadata,
            expect,
            id,
            resend,
        },
    )
}

fn bound(none_weight: u32) -> impl Strategy<Value = Bound> {
    prop_oneof![
        none_weight => Just(Bound::None),
        1 => (0..TS_RANGE + 50).prop_map(Bound::Abs),
        2 => (any::<u8>(), prop_oneof![2 => Just(0i8), 1 => Just(-1), 1 => Just(1)]).prop_map(|(k, d)| Bound::Near(k, d)),
    ]
}

fn query_spec() -> impl Strategy<Value = QuerySpec> {
    let etype = prop_oneof![
        3 => Just(TypeSpec::None),
        1 => (0u8..TYPES.len() as u8).prop_map(TypeSpec::Exact),
        1 => (0u8..PREFIXES.len() as u8).prop_map(TypeSpec::Prefix),
    ];
    let entity = prop_oneof![4 => Just(None), 5 => (0u8..4).prop_map(Some), 1 => Just(Some(4))];
    let limit = prop_oneof![1 => Just(None), 3 => (1u8..5).prop_map(Some), 3 => (1u8..20).prop_map(Some)];
    (
        prop_oneof![5 => 0u8..2, 1 => Just(2u8)],
        entity,
        etype,
        bound(4),
        bound(4),
        bound(8),
        any::<bool>(),
        limit,
        prop_oneof![3 => Just(0u8), 1 => 1u8..10],
    )
        .prop_map(|(tenant, entity, etype, since, until, as_of, desc, limit, offset)| QuerySpec {
            tenant,
            entity,
            etype,
            since,
            until,
            as_of,
            desc,
            limit,
            offset,
        })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        25 => event_spec().prop_map(Op::Append),
        20 => (prop::collection::vec(event_spec(), 2..=6), any::<bool>())
            .prop_map(|(events, single_shard)| Op::Batch { events, single_shard }),
        25 => query_spec().prop_map(Op::Query),
        8 => (any::<u8>(), prop_oneof![1 => Just(None), 2 => (0u8..3).prop_map(Some)])
            .prop_map(|(id, tenant)| Op::Get { id, tenant }),
        10 => (0u8..3, 0u8..5, bound(1))
            .prop_map(|(tenant, entity, as_of)| Op::State { tenant, entity, as_of }),
        2 => Just(Op::Reopen),
        2 => Just(Op::Crash),
        2 => any::<u64>().prop_map(Op::PowerCut),
        2 => Just(Op::Checkpoint),
    ]
}

// ---------------------------------------------------------------------------------------------------
// The model

#[derive(Debug, Clone)]
struct MEvent {
    id: Uuid,
    tenant: String,
    entity: String,
    etype: String,
    ts: i64,
    version: u64,
    payload: String,
    metadata: Option<String>,
    shard: usize,
    position: u64,
    /// The cross-shard batch (its index in `Model::batch_shards`) whose part this event is in: a power
    /// cut that takes any part of it takes the whole batch.
    batch: Option<usize>,
}

impl MEvent {
    fn ack(&self, duplicate: bool) -> AppendAck {
        AppendAck {
            id: self.id,
            shard: self.shard as u32,
            position: self.position,
            version: self.version,
            timestamp_us: self.ts,
            duplicate,
        }
    }
}

#[derive(Default)]
struct Model {
    /// In append order, which is also version order per entity.
    events: Vec<MEvent>,
    by_id: HashMap<Uuid, usize>,
    versions: HashMap<(String, String), u64>,
    /// Last position given out, per shard.
    last_position: Vec<u64>,
    /// Latest store-assigned timestamp, per shard (they never go back within a shard).
    last_server_ts: Vec<i64>,
    /// Every id ever submitted or acknowledged, stored or not, without repeats.
    known_ids: Vec<Uuid>,
    known_set: HashSet<Uuid>,
    /// For each batch that wrote new events on more than one shard: how many shards.
    batch_shards: Vec<usize>,
}

impl Model {
    fn know(&mut self, id: Uuid) {
        if self.known_set.insert(id) {
            self.known_ids.push(id);
        }
    }

    /// Forgets what a power cut took from `shard`: every position after `last`.
    fn lose_after(&mut self, shard: usize, last: u64) {
        self.events.retain(|e| e.shard != shard || e.position <= last);
        self.last_position[shard] = last;
        self.reindex();
    }

    /// Forgets every cross-shard batch a power cut took a part of (recovery drops its other parts): after
    /// `lose_after` on every shard.
    fn drop_torn_batches(&mut self) {
        let mut shards_left: HashMap<usize, HashSet<usize>> = HashMap::new();
        for e in &self.events {
            if let Some(b) = e.batch {
                shards_left.entry(b).or_default().insert(e.shard);
            }
        }
        let torn = |b: usize| shards_left.get(&b).map_or(0, |s| s.len()) < self.batch_shards[b];
        let before = self.events.len();
        self.events.retain(|e| !e.batch.is_some_and(torn));
        if self.events.len() != before {
            self.reindex();
        }
    }

    fn reindex(&mut self) {
        self.by_id = self.events.iter().enumerate().map(|(i, e)| (e.id, i)).collect();
        self.versions.clear();
        for e in &self.events {
            let version = self.versions.entry((e.tenant.clone(), e.entity.clone())).or_default();
            *version = (*version).max(e.version);
        }
    }

    fn count(&self, shard: usize) -> u64 {
        self.events.iter().filter(|e| e.shard == shard).count() as u64
    }

    fn version(&self, tenant: &str, entity: &str) -> u64 {
        self.versions.get(&(tenant.to_string(), entity.to_string())).copied().unwrap_or(0)
    }

    fn resolve(&self, b: &Bound, tenant: &str, entity: Option<&str>) -> Option<i64> {
        let scope: Vec<&MEvent> =
            self.events.iter().filter(|e| e.tenant == tenant && entity.map_or(true, |x| e.entity == x)).collect();
        match *b {
            Bound::None => None,
            Bound::Abs(ts) => Some(ts as i64),
            Bound::Near(k, _) if scope.is_empty() => Some(k as i64),
            Bound::Near(k, d) => Some(scope[k as usize % scope.len()].ts + d as i64),
        }
    }

    /// A query's (since, until, as_of).
    fn bounds(&self, q: &QuerySpec) -> (Option<i64>, Option<i64>, Option<i64>) {
        let tenant = TENANTS[q.tenant as usize];
        let entity = q.entity.map(|e| ENTITIES[e as usize]);
        let r = |b| self.resolve(b, tenant, entity);
        (r(&q.since), r(&q.until), r(&q.as_of))
    }

    fn matches(e: &MEvent, q: &QuerySpec, (since, until, as_of): (Option<i64>, Option<i64>, Option<i64>)) -> bool {
        let tenant = TENANTS[q.tenant as usize];
        let ts = e.ts;
        e.tenant == tenant
            && q.entity.map_or(true, |x| e.entity == ENTITIES[x as usize])
            && match q.etype {
                TypeSpec::None => true,
                TypeSpec::Exact(t) => e.etype == TYPES[t as usize],
                TypeSpec::Prefix(p) => e.etype.starts_with(PREFIXES[p as usize]),
            }
            && since.map_or(true, |s| ts >= s)
            && until.map_or(true, |u| ts < u)
            && as_of.map_or(true, |a| ts <= a)
    }

    fn query(&self, q: &QuerySpec) -> (Vec<&MEvent>, bool) {
        let bounds = self.bounds(q);
        let mut hits: Vec<&MEvent> = self.events.iter().filter(|e| Model::matches(e, q, bounds)).collect();
        hits.sort_by_key(|e| (e.ts, e.position, e.shard));
        if q.desc {
            hits.reverse();
        }
        let limit = q.limit.map_or(100, |l| l as usize);
        let offset = q.offset as usize;
        let has_more = hits.len() > offset + limit;
        (hits.into_iter().skip(offset).take(limit).collect(), has_more)
    }

    /// (state, event_count, version, last_updated_us)
    fn state(&self, tenant: &str, entity: &str, as_of: Option<i64>) -> Option<(Value, u64, u64, i64)> {
        let mut folded: Option<(Value, u64, u64, i64)> = None;
        for e in self.events.iter().filter(|e| e.tenant == tenant && e.entity == entity) {
            if as_of.is_some_and(|a| e.ts > a) {
                continue;
            }
            let (state, count, version, last) = folded.get_or_insert((Value::Object(Map::new()), 0, 0, i64::MIN));
            let payload: Value = serde_json::from_str(&e.payload).unwrap();
            match (payload, &mut *state) {
                (Value::Object(fields), Value::Object(current)) => current.extend(fields),
                (value, current) => *current = value,
            }
            *count += 1;
            *version = e.version;
            *last = (*last).max(e.ts);
        }
        folded
    }
}

// ---------------------------------------------------------------------------------------------------
// Running

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

macro_rules! ensure_eq {
    ($left:expr, $right:expr, $($fmt:tt)+) => {{
        let (l, r) = (&$left, &$right);
        if l != r {
            return Err(format!("{}: store {:?} != model {:?}", format!($($fmt)+), l, r));
        }
    }};
}

/// What the model expects of one event of a batch that is accepted.
#[derive(Debug, Clone)]
enum Planned {
    New {
        version: u64,
    },
    /// A retry of a stored event (index into `Model::events`).
    Existing(usize),
    /// The same id earlier in this batch (its index in the batch).
    SameBatch(usize),
}

#[derive(Debug, Clone, PartialEq)]
enum Conflict {
    Id { index: usize, id: Uuid },
    Version { index: usize, tenant: String, entity: String, expected: u64, current: u64 },
}

fn conflict_of(err: &Error) -> Option<Conflict> {
    match err {
        Error::IdConflict { id, index } => Some(Conflict::Id { index: *index, id: *id }),
        Error::VersionConflict { index, tenant_id, entity_id, expected, current } => Some(Conflict::Version {
            index: *index,
            tenant: tenant_id.clone(),
            entity: entity_id.clone(),
            expected: *expected,
            current: *current,
        }),
        _ => None,
    }
}

struct Harness {
    dir: tempfile::TempDir,
    /// The fault layer of the open store: it knows what was synced, for power cuts.
    plan: Arc<FaultPlan>,
    interval: u32,
    store: Option<Store>,
    model: Model,
    next_fresh: u128,
}

impl Harness {
    fn store(&self) -> &Store {
        self.store.as_ref().expect("store open")
    }

    fn open(&mut self) -> Result<(), String> {
        // Checkpoints every few events, so they also happen on their own (and get compacted) while the
        // operations run, and crashes land before, during and after them.
        let mut config = common::config(self.dir.path(), 2, self.interval);
        config.checkpoints.every_events = 5;
        config.checkpoints.compact_target_events = 20;
        config.checkpoints.compact_min_files = 3;
        self.plan = FaultPlan::new();
        let store = Store::open(config.fault_plan(self.plan.clone())).map_err(|e| format!("open: {e}"))?;
        ensure_eq!(store.shard_count(), 2, "shard count");
        self.store = Some(store);
        Ok(())
    }

    fn fresh_id(&mut self) -> Uuid {
        self.next_fresh += 1;
        Uuid::from_u128(0x7e57_0000_0000_0000_0000_0000_0000_0000 + self.next_fresh)
    }

    fn build(&self, spec: &EventSpec, id: Option<Uuid>) -> NewEvent {
        let payload = match &spec.payload {
            PayloadSpec::Object(fields) => {
                let map: Map<String, Value> =
                    fields.iter().map(|(k, v)| (PAYLOAD_KEYS[*k as usize % 3].to_string(), json!(v))).collect();
                Value::Object(map)
            }
            PayloadSpec::Number(n) => json!(n),
            PayloadSpec::Other(n) => match n % 3 {
                0 => Value::Null,
                1 => json!([n]),
                _ => json!(format!("s{n}")),
            },
        };
        let mut ev = NewEvent::new(ENTITIES[spec.entity as usize], TYPES[spec.etype as usize], &payload)
            .with_tenant(TENANTS[spec.tenant as usize]);
        if let Some(ts) = spec.ts {
            ev = ev.with_timestamp_us(ts as i64);
        }
        if let Some(m) = spec.metadata {
            ev = ev.with_metadata(&json!({ "m": m }));
        }
        ev.id = id;
        ev
    }

    /// Runs one batch (a single append is a batch of one) through the model and the store.
    fn append(&mut self, specs: &[EventSpec], single_shard: bool, single_call: bool) -> Result<(), String> {
        let store = self.store().clone();
        // Resolve ids: fresh ones are per operation, so `Fresh(k)` twice in a batch is one id.
        let mut fresh: HashMap<u8, Uuid> = HashMap::new();
        let mut events: Vec<(NewEvent, Expect, usize)> = Vec::with_capacity(specs.len());
        for spec in specs {
            if spec.resend {
                if let Some((prev, _, shard)) = events.last() {
                    let ev = NewEvent { expected_version: None, ..prev.clone() };
                    events.push((ev, spec.expect, *shard));
                    continue;
                }
            }
            let (tenant, entity) = (TENANTS[spec.tenant as usize], ENTITIES[spec.entity as usize]);
            let id = match spec.id {
                IdChoice::None => None,
                IdChoice::Fresh(k) => Some(match fresh.get(&k) {
                    Some(id) => *id,
                    None => {
                        let id = self.fresh_id();
                        fresh.insert(k, id);
                        id
                    }
                }),
                IdChoice::RetrySame(j) => {
                    let same: Vec<Uuid> = self
                        .model
                        .events
                        .iter()
                        .filter(|e| e.tenant == tenant && e.entity == entity)
                        .map(|e| e.id)
                        .collect();
                    Some(if same.is_empty() { self.fresh_id() } else { same[j as usize % same.len()] })
                }
                IdChoice::Retry(j) if !self.model.known_ids.is_empty() => {
                    Some(self.model.known_ids[j as usize % self.model.known_ids.len()])
                }
                IdChoice::Retry(_) => Some(self.fresh_id()),
            };
            let ev = self.build(spec, id);
            let shard = store.shard_of(&ev.tenant_id, &ev.entity_id);
            events.push((ev, spec.expect, shard));
        }
        if single_shard {
            let first = events[0].2;
            events.retain(|(_, _, shard)| *shard == first);
        }
        // Plan as the store should: conflicts found before anything is sent to a shard (an id on the other
        // shard, stored or earlier in this batch), then each shard's part on its own; any conflict rejects
        // the whole batch.
        let mut upfront: Option<Conflict> = None;
        let mut batch_shard: HashMap<Uuid, usize> = HashMap::new();
        for (index, (ev, _, shard)) in events.iter().enumerate() {
            let Some(id) = ev.id else { continue };
            let stored_elsewhere = self.model.by_id.get(&id).is_some_and(|&i| self.model.events[i].shard != *shard);
            let batch_elsewhere = batch_shard.get(&id).is_some_and(|s| s != shard);
            if stored_elsewhere || batch_elsewhere {
                upfront = Some(Conflict::Id { index, id });
                break;
            }
            batch_shard.entry(id).or_insert(*shard);
        }
        let mut plan = Vec::with_capacity(events.len());
        let mut part_conflict: [Option<Conflict>; 2] = [None, None];
        let mut sim_versions: HashMap<(String, String), u64> = HashMap::new();
        let mut part_ids: [HashMap<Uuid, (String, String, usize)>; 2] = [HashMap::new(), HashMap::new()];
        for (index, (ev, expect, shard)) in events.iter_mut().enumerate() {
            let shard = *shard;
            let owner = (ev.tenant_id.clone(), ev.entity_id.clone());
            let mut conflict = None;
            let mut planned = None;
            if let Some(id) = ev.id {
                if let Some(&i) = self.model.by_id.get(&id) {
                    let m = &self.model.events[i];
                    if (m.tenant.clone(), m.entity.clone()) != owner {
                        conflict = Some(Conflict::Id { index, id });
                    } else {
                        planned = Some(Planned::Existing(i));
                    }
                } else if let Some((t, e, first)) = part_ids[shard].get(&id) {
                    if (t.clone(), e.clone()) != owner {
                        conflict = Some(Conflict::Id { index, id });
                    } else {
                        planned = Some(Planned::SameBatch(*first));
                    }
                } else {
                    part_ids[shard].insert(id, (owner.0.clone(), owner.1.clone(), index));
                }
            }
            let current = sim_versions.get(&owner).copied().unwrap_or_else(|| self.model.version(&owner.0, &owner.1));
            let expect = *expect;
            let resolve = |base: u64| match expect {
                Expect::None => None,
                Expect::Right => Some(base),
                Expect::Wrong(d) => Some(if d < 0 && base >= d.unsigned_abs() as u64 {
                    base - d.unsigned_abs() as u64
                } else {
                    base + d.unsigned_abs() as u64
                }),
            };
            match (&planned, &conflict) {
                // A repeat carries what the original request carried (now stale); it must not matter.
                (Some(Planned::Existing(i)), _) => ev.expected_version = resolve(self.model.events[*i].version - 1),
                (Some(Planned::SameBatch(first)), _) => {
                    let Some(Planned::New { version }) = plan[*first] else { unreachable!("first use is new") };
                    ev.expected_version = resolve(version - 1);
                }
                (_, Some(_)) => ev.expected_version = resolve(current),
                (Some(Planned::New { .. }), None) => unreachable!("planned below"),
                (None, None) => {
                    ev.expected_version = resolve(current);
                    if let Some(expected) = ev.expected_version {
                        if expected != current {
                            conflict = Some(Conflict::Version {
                                index,
                                tenant: owner.0.clone(),
                                entity: owner.1.clone(),
                                expected,
                                current,
                            });
                        }
                    }
                    sim_versions.insert(owner, current + 1);
                    planned = Some(Planned::New { version: current + 1 });
                }
            }
            if let Some(c) = conflict {
                part_conflict[shard].get_or_insert(c);
            }
            plan.push(planned);
        }
        // The errors the store may answer with (a spanning batch may report either shard's conflict).
        let allowed_errors: Vec<Conflict> = match upfront {
            Some(c) => vec![c],
            None => part_conflict.into_iter().flatten().collect(),
        };

        let new_events: Vec<NewEvent> = events.iter().map(|(ev, _, _)| ev.clone()).collect();
        for ev in &new_events {
            if let Some(id) = ev.id {
                self.model.know(id);
            }
        }
        let result = with_deadline(&store, new_events.clone(), single_call)?;
        let acks = match (result, allowed_errors.is_empty()) {
            (Err(err), false) => {
                let got = conflict_of(&err);
                ensure!(
                    got.as_ref().is_some_and(|c| allowed_errors.contains(c)),
                    "append of {new_events:?} failed with {err} ({got:?}), model expects one of {allowed_errors:?}"
                );
                // Nothing of it was written, on any shard.
                for (shard, status) in store.status().iter().enumerate() {
                    ensure_eq!(
                        (status.events, status.visible_position),
                        (self.model.count(shard), self.model.last_position[shard]),
                        "shard {shard} after the rejected batch {new_events:?}"
                    );
                }
                return Ok(());
            }
            (Err(err), true) => return Err(format!("append of {new_events:?} failed: {err}")),
            (Ok(acks), false) => {
                return Err(format!(
                    "append of {new_events:?} succeeded with {acks:?}, model expects one of {allowed_errors:?}"
                ))
            }
            (Ok(acks), true) => acks,
        };
        ensure_eq!(acks.len(), new_events.len(), "ack count");

        // A batch whose new events land on two shards is written as parts: whole or absent after a crash.
        let writers: HashSet<usize> = events
            .iter()
            .zip(&plan)
            .filter(|(_, p)| matches!(p, Some(Planned::New { .. })))
            .map(|((_, _, shard), _)| *shard)
            .collect();
        let batch = (writers.len() > 1).then(|| {
            self.model.batch_shards.push(writers.len());
            self.model.batch_shards.len() - 1
        });
        for (index, ((ev, _, shard), planned)) in events.iter().zip(plan).enumerate() {
            let ack = &acks[index];
            match planned.expect("planned") {
                Planned::Existing(i) => {
                    ensure_eq!(*ack, self.model.events[i].ack(true), "ack of retry events[{index}]");
                }
                Planned::SameBatch(first) => {
                    let want = AppendAck { duplicate: true, ..acks[first].clone() };
                    ensure_eq!(*ack, want, "ack of in-batch repeat events[{index}]");
                }
                Planned::New { version } => {
                    let position = self.model.last_position[*shard] + 1;
                    ensure!(!ack.duplicate, "events[{index}] is new but acked as duplicate: {ack:?}");
                    ensure_eq!(ack.shard as usize, *shard, "shard of events[{index}]");
                    ensure_eq!(ack.position, position, "position of events[{index}]");
                    ensure_eq!(ack.version, version, "version of events[{index}]");
                    match ev.id {
                        Some(id) => ensure_eq!(ack.id, id, "id of events[{index}]"),
                        None => ensure!(
                            !ack.id.is_nil() && !self.model.by_id.contains_key(&ack.id),
                            "generated id {} of events[{index}] is nil or reused",
                            ack.id
                        ),
                    }
                    match ev.timestamp_us {
                        Some(ts) => ensure_eq!(ack.timestamp_us, ts, "timestamp of events[{index}]"),
                        None => {
                            let last = self.model.last_server_ts[*shard];
                            ensure!(
                                ack.timestamp_us >= last && ack.timestamp_us > 0,
                                "assigned timestamp {} of events[{index}] went back (last {last})",
                                ack.timestamp_us
                            );
                            self.model.last_server_ts[*shard] = ack.timestamp_us;
                        }
                    }
                    let m = MEvent {
                        id: ack.id,
                        tenant: ev.tenant_id.clone(),
                        entity: ev.entity_id.clone(),
                        etype: ev.event_type.clone(),
                        ts: ack.timestamp_us,
                        version,
                        payload: ev.payload.clone(),
                        metadata: ev.metadata.clone(),
                        shard: *shard,
                        position,
                        batch,
                    };
                    self.model.last_position[*shard] = position;
                    self.model.versions.insert((m.tenant.clone(), m.entity.clone()), version);
                    self.model.by_id.insert(m.id, self.model.events.len());
                    self.model.know(m.id);
                    self.model.events.push(m);
                }
            }
        }
        Ok(())
    }

    fn check_event(&self, got: &StoredEvent, want: &MEvent, what: &str) -> Result<(), String> {
        let got_fields = (
            got.id(),
            got.tenant_id(),
            got.entity_id(),
            got.event_type(),
            got.timestamp_us(),
            got.version(),
            got.position(),
            got.payload_json(),
            got.metadata_json(),
        );
        let want_fields = (
            want.id,
            want.tenant.as_str(),
            want.entity.as_str(),
            want.etype.as_str(),
            want.ts,
            want.version,
            want.position,
            want.payload.as_str(),
            want.metadata.as_deref(),
        );
        ensure_eq!(got_fields, want_fields, "{what}");
        Ok(())
    }

    fn query(&self, q: &QuerySpec) -> Result<(), String> {
        let mut query = Query::tenant(TENANTS[q.tenant as usize]).offset(q.offset as usize);
        if let Some(e) = q.entity {
            query = query.entity(ENTITIES[e as usize]);
        }
        match q.etype {
            TypeSpec::None => {}
            TypeSpec::Exact(t) => query = query.event_type(TYPES[t as usize]),
            TypeSpec::Prefix(p) => query = query.event_type_prefix(PREFIXES[p as usize]),
        }
        let (since, until, as_of) = self.model.bounds(q);
        if let Some(s) = since {
            query = query.since_us(s);
        }
        if let Some(u) = until {
            query = query.until_us(u);
        }
        if let Some(a) = as_of {
            query = query.as_of_us(a);
        }
        if q.desc {
            query = query.order(Order::Desc);
        }
        if let Some(l) = q.limit {
            query = query.limit(l as usize);
        }
        let got = block_on(self.store().query(&query)).map_err(|e| format!("{query:?} failed: {e}"))?;
        let (want, want_more) = self.model.query(q);
        let got_ids: Vec<Uuid> = got.events.iter().map(|e| e.id()).collect();
        let want_ids: Vec<Uuid> = want.iter().map(|e| e.id).collect();
        ensure_eq!(got_ids, want_ids, "ids of {query:?}");
        ensure_eq!(got.has_more, want_more, "has_more of {query:?}");
        for (g, w) in got.events.iter().zip(want) {
            self.check_event(g, w, &format!("event {} of {query:?}", w.id))?;
        }
        Ok(())
    }

    fn get(&self, id: Uuid, tenant: &str) -> Result<(), String> {
        let got = self.store().get(tenant, &id);
        let want = self.model.by_id.get(&id).map(|&i| &self.model.events[i]).filter(|m| m.tenant == tenant);
        match (got, want) {
            (None, None) => Ok(()),
            (Some(g), Some(w)) => self.check_event(&g, w, &format!("get({tenant}, {id})")),
            (g, w) => Err(format!("get({tenant}, {id}): store {:?} != model {:?}", g.map(|e| e.to_event()), w)),
        }
    }

    fn state(&self, tenant: &str, entity: &str, as_of: Option<i64>) -> Result<(), String> {
        let got = self.store().entity_state(tenant, entity, as_of);
        let want = self.model.state(tenant, entity, as_of);
        let got = got.map(|s| {
            ensure_eq!((s.tenant_id.as_str(), s.entity_id.as_str()), (tenant, entity), "state ids");
            Ok((s.state, s.event_count, s.version, s.last_updated_us))
        });
        let got = got.transpose()?;
        ensure_eq!(got, want, "entity_state({tenant}, {entity}, {as_of:?})");
        Ok(())
    }

    /// Everything the model knows, compared in full.
    fn check_all(&self) -> Result<(), String> {
        let store = self.store();
        for (shard, status) in store.status().iter().enumerate() {
            let count = self.model.count(shard);
            ensure_eq!(
                (status.events, status.visible_position, status.failure.clone()),
                (count, self.model.last_position[shard], None),
                "status of shard {shard}"
            );
        }
        for tenant in 0..TENANTS.len() as u8 {
            for desc in [false, true] {
                let q = QuerySpec {
                    tenant,
                    entity: None,
                    etype: TypeSpec::None,
                    since: Bound::None,
                    until: Bound::None,
                    as_of: Bound::None,
                    desc,
                    limit: None,
                    offset: 0,
                };
                self.query(&q)?;
                // The default limit is 100: page through the rest.
                let total = self.model.events.iter().filter(|e| e.tenant == TENANTS[tenant as usize]).count();
                let mut offset = 0;
                while offset < total {
                    let mut query = Query::tenant(TENANTS[tenant as usize]).limit(7).offset(offset);
                    if desc {
                        query = query.order(Order::Desc);
                    }
                    let got = block_on(store.query(&query)).map_err(|e| format!("{query:?} failed: {e}"))?;
                    let mut all: Vec<&MEvent> =
                        self.model.events.iter().filter(|e| e.tenant == TENANTS[tenant as usize]).collect();
                    all.sort_by_key(|e| (e.ts, e.position, e.shard));
                    if desc {
                        all.reverse();
                    }
                    let want_ids: Vec<Uuid> = all.iter().skip(offset).take(7).map(|e| e.id).collect();
                    ensure_eq!(got.events.iter().map(|e| e.id()).collect::<Vec<_>>(), want_ids, "page {query:?}");
                    ensure_eq!(got.has_more, offset + 7 < total, "has_more of page {query:?}");
                    offset += 7;
                }
            }
            for entity in ENTITIES {
                self.state(TENANTS[tenant as usize], entity, None)?;
            }
        }
        for e in &self.model.events {
            self.get(e.id, &e.tenant)?;
        }
        Ok(())
    }

    fn reopen(&mut self, crash: bool) -> Result<(), String> {
        let store = self.store.take().expect("store open");
        if crash {
            store.halt();
        } else {
            store.close().map_err(|e| format!("close: {e}"))?;
        }
        drop(store);
        self.open()?;
        let reports = self.store().recovery_reports().to_vec();
        ensure_eq!(reports.len(), 2, "recovery reports");
        for (shard, report) in reports.iter().enumerate() {
            let count = self.model.count(shard);
            ensure_eq!(
                (report.events(), report.records_skipped, report.corrupt_bytes_skipped, report.last_position),
                (count, 0, 0, self.model.last_position[shard]),
                "recovery of shard {shard} ({report})"
            );
            if !crash {
                ensure_eq!(report.bytes_truncated, 0, "bytes truncated after a clean close ({report})");
            }
        }
        self.check_all()
    }

    /// A power cut that wrote back a random choice of unsynced sectors, in any order. At
    /// `FSYNC_INTERVAL=0` every acknowledged event survives; at N each shard keeps a prefix of its log
    /// (what was synced, at least), and the model forgets the rest.
    fn power_cut(&mut self, seed: u64) -> Result<(), String> {
        let store = self.store.take().expect("store open");
        store.halt();
        drop(store);
        self.plan.power_cut_reordered(seed).map_err(|e| format!("power cut: {e}"))?;
        self.open()?;
        let reports = self.store().recovery_reports().to_vec();
        for (shard, report) in reports.iter().enumerate() {
            ensure_eq!(
                (report.records_skipped, report.corrupt_bytes_skipped),
                (0, 0),
                "a power cut is not corruption (shard {shard}: {report})"
            );
            let acknowledged = self.model.last_position[shard];
            if self.interval == 0 {
                ensure_eq!(report.last_position, acknowledged, "FSYNC_INTERVAL=0 keeps every acknowledged event ({report})");
            } else {
                ensure!(report.last_position <= acknowledged, "shard {shard} recovered past what was appended ({report})");
                self.model.lose_after(shard, report.last_position);
            }
        }
        // A cross-shard batch that lost a part on one shard is dropped on the others too (at
        // FSYNC_INTERVAL=0 none is: every acknowledged part was synced).
        self.model.drop_torn_batches();
        for (shard, report) in reports.iter().enumerate() {
            ensure_eq!(report.events(), self.model.count(shard), "recovered events of shard {shard} ({report})");
            if self.interval == 0 {
                ensure_eq!(report.batch_parts_dropped, 0, "FSYNC_INTERVAL=0 drops no acknowledged batch ({report})");
            }
        }
        self.check_all()
    }

    fn step(&mut self, op: &Op) -> Result<(), String> {
        match op {
            Op::Append(spec) => self.append(std::slice::from_ref(spec), true, true),
            Op::Batch { events, single_shard } => self.append(events, *single_shard, false),
            Op::Query(q) => self.query(q),
            Op::Get { id, tenant } => {
                let (id, own_tenant) = match self.model.known_ids.len() {
                    0 => (Uuid::from_u128(0xdead), TENANTS[0].to_string()),
                    n => {
                        let id = self.model.known_ids[*id as usize % n];
                        let own = self.model.by_id.get(&id).map(|&i| self.model.events[i].tenant.clone());
                        (id, own.unwrap_or_else(|| TENANTS[0].to_string()))
                    }
                };
                let tenant = tenant.map_or(own_tenant, |t| TENANTS[t as usize].to_string());
                self.get(id, &tenant)
            }
            Op::State { tenant, entity, as_of } => {
                let (tenant, entity) = (TENANTS[*tenant as usize], ENTITIES[*entity as usize]);
                self.state(tenant, entity, self.model.resolve(as_of, tenant, Some(entity)))
            }
            Op::Reopen => self.reopen(false),
            Op::Crash => self.reopen(true),
            Op::PowerCut(seed) => self.power_cut(*seed),
            Op::Checkpoint => {
                let covered = common::block_on(self.store().checkpoint()).map_err(|e| format!("checkpoint: {e}"))?;
                for (shard, status) in self.store().status().iter().enumerate() {
                    ensure_eq!(status.checkpoint_failures, 0, "checkpoint failures on shard {shard}");
                    ensure_eq!(covered[shard], status.checkpointed_position, "checkpointed position of shard {shard}");
                }
                self.check_all()
            }
        }
    }
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    common::block_on(f)
}

/// Appends on another thread and waits at most 20 s, so an append the store never answers (say, one
/// parked behind an entity a failed batch still holds) fails the test instead of hanging it.
fn with_deadline(
    store: &Store,
    events: Vec<NewEvent>,
    single_call: bool,
) -> Result<Result<Vec<AppendAck>, Error>, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let store = store.clone();
    let what = format!("{events:?}");
    std::thread::spawn(move || {
        let result = if single_call {
            block_on(store.append(events.into_iter().next().expect("one event"))).map(|ack| vec![ack])
        } else {
            block_on(store.append_batch(events))
        };
        let _ = tx.send(result);
    });
    rx.recv_timeout(std::time::Duration::from_secs(20)).map_err(|_| format!("append of {what} got no answer in 20 s"))
}

fn run(interval: u32, ops: &[Op]) -> Result<(), String> {
    let mut h = Harness {
        dir: tempfile::tempdir().map_err(|e| e.to_string())?,
        plan: FaultPlan::new(),
        interval,
        store: None,
        model: Model { last_position: vec![0; 2], last_server_ts: vec![i64::MIN; 2], ..Model::default() },
        next_fresh: 0,
    };
    h.open()?;
    for (i, op) in ops.iter().enumerate() {
        h.step(op).map_err(|e| format!("op #{i} of {} ({op:?}), fsync interval {interval}: {e}", ops.len()))?;
    }
    h.check_all().map_err(|e| format!("final check, fsync interval {interval}: {e}"))?;
    h.reopen(false).map_err(|e| format!("final reopen, fsync interval {interval}: {e}"))?;
    h.store.take().unwrap().close().map_err(|e| format!("final close: {e}"))?;
    Ok(())
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(48)
}

proptest! {
    // PROPTEST_CASES=n runs more (or fewer) cases.
    // Shrinking is capped at 2 minutes: an append that never answers costs 20 s per attempt.
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        max_shrink_time: 120_000,
        ..ProptestConfig::default()
    })]

    #[test]
    fn store_matches_model(interval in prop_oneof![Just(0u32), Just(100u32)], ops in prop::collection::vec(op(), 30..80)) {
        if let Err(e) = run(interval, &ops) {
            prop_assert!(false, "{}", e);
        }
    }
}
