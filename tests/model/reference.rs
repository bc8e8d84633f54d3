//! The reference: a plain in-memory model of what a two-shard store holds and answers.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};
use tidelog::AppendAck;
use uuid::Uuid;

use crate::ops::{Bound, QuerySpec, TypeSpec, ENTITIES, PREFIXES, TENANTS, TYPES};

#[derive(Debug, Clone)]
pub struct MEvent {
    pub id: Uuid,
    pub tenant: String,
    pub entity: String,
    pub etype: String,
    pub ts: i64,
    pub version: u64,
    pub payload: String,
    pub metadata: Option<String>,
    pub shard: usize,
    pub position: u64,
    /// The cross-shard batch (its index in `Model::batch_shards`) whose part this event is in: a power
    /// cut that takes any part of it takes the whole batch.
    pub batch: Option<usize>,
}

impl MEvent {
    pub fn ack(&self, duplicate: bool) -> AppendAck {
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
pub struct Model {
    /// In append order, which is also version order per entity.
    pub events: Vec<MEvent>,
    pub by_id: HashMap<Uuid, usize>,
    pub versions: HashMap<(String, String), u64>,
    /// Last position given out, per shard.
    pub last_position: Vec<u64>,
    /// Latest store-assigned timestamp, per shard (they never go back within a shard).
    pub last_server_ts: Vec<i64>,
    /// Every id ever submitted or acknowledged, stored or not, without repeats.
    pub known_ids: Vec<Uuid>,
    pub known_set: HashSet<Uuid>,
    /// For each batch that wrote new events on more than one shard: how many shards.
    pub batch_shards: Vec<usize>,
}

impl Model {
    pub fn know(&mut self, id: Uuid) {
        if self.known_set.insert(id) {
            self.known_ids.push(id);
        }
    }

    /// Forgets what a power cut took from `shard`: every position after `last`.
    pub fn lose_after(&mut self, shard: usize, last: u64) {
        self.events.retain(|e| e.shard != shard || e.position <= last);
        self.last_position[shard] = last;
        self.reindex();
    }

    /// Forgets every cross-shard batch a power cut took a part of (recovery drops its other parts): after
    /// `lose_after` on every shard.
    pub fn drop_torn_batches(&mut self) {
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

    pub fn reindex(&mut self) {
        self.by_id = self.events.iter().enumerate().map(|(i, e)| (e.id, i)).collect();
        self.versions.clear();
        for e in &self.events {
            let version = self.versions.entry((e.tenant.clone(), e.entity.clone())).or_default();
            *version = (*version).max(e.version);
        }
    }

    pub fn count(&self, shard: usize) -> u64 {
        self.events.iter().filter(|e| e.shard == shard).count() as u64
    }

    pub fn version(&self, tenant: &str, entity: &str) -> u64 {
        self.versions.get(&(tenant.to_string(), entity.to_string())).copied().unwrap_or(0)
    }

    pub fn resolve(&self, b: &Bound, tenant: &str, entity: Option<&str>) -> Option<i64> {
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
    pub fn bounds(&self, q: &QuerySpec) -> (Option<i64>, Option<i64>, Option<i64>) {
        let tenant = TENANTS[q.tenant as usize];
        let entity = q.entity.map(|e| ENTITIES[e as usize]);
        let r = |b| self.resolve(b, tenant, entity);
        (r(&q.since), r(&q.until), r(&q.as_of))
    }

    pub fn matches(e: &MEvent, q: &QuerySpec, (since, until, as_of): (Option<i64>, Option<i64>, Option<i64>)) -> bool {
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

    pub fn query(&self, q: &QuerySpec) -> (Vec<&MEvent>, bool) {
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
    pub fn state(&self, tenant: &str, entity: &str, as_of: Option<i64>) -> Option<(Value, u64, u64, i64)> {
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
