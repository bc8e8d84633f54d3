//! The driver: runs operations against a real two-shard `Store` and the reference model side by side,
//! and compares every answer (and, after every reopen, crash, power cut and checkpoint, everything).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::{json, Map, Value};
use tidelog::wal::fault::FaultPlan;
use tidelog::{AppendAck, Error, NewEvent, Order, Query, Store, StoredEvent};
use uuid::Uuid;

use crate::common;
use crate::ops::{Bound, EventSpec, Expect, IdChoice, Op, PayloadSpec, QuerySpec, TypeSpec};
use crate::ops::{ENTITIES, PAYLOAD_KEYS, PREFIXES, TENANTS, TYPES};
use crate::reference::{MEvent, Model};

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

/// Runs `ops` at FSYNC_INTERVAL=`interval` against a fresh store and the model, then checks everything,
/// reopens cleanly and checks again. An error names the operation that went wrong and how.
pub fn run(interval: u32, ops: &[Op]) -> Result<(), String> {
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
