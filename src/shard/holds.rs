//! The entities a shard holds back for cross-shard batches, and the appends waiting on them.
//!
//! Two kinds of hold, both per entity (by a 64-bit hash of tenant and entity: a collision only makes an
//! append wait a little, never lets one through):
//! - a *prepared* batch holds its entities from Prepare to Commit or Abort: nothing may change their
//!   versions, so Commit applies the plan made at Prepare;
//! - an *undecided* part (written, its batch not yet committed) holds its entities against later single
//!   appends, so an entity's versions become visible in order. Other parts do not wait on it (two
//!   parts waiting on each other across shards would deadlock; see `docs/BATCHES.md`).
//!
//! Appends to other entities never wait. A waiting append also holds back later appends to its own
//! entities, so each entity's appends keep their arrival order.

use std::collections::{HashMap, VecDeque};

use xxhash_rust::xxh3::Xxh3;

use super::actor::Reply;
use crate::event::NewEvent;

/// The hash an entity is held by.
pub(crate) fn entity_hash(tenant_id: &str, entity_id: &str) -> u64 {
    let mut hasher = Xxh3::new();
    hasher.update(tenant_id.as_bytes());
    hasher.update(&[0]);
    hasher.update(entity_id.as_bytes());
    hasher.digest()
}

pub(crate) fn entity_hashes(events: &[(usize, NewEvent)]) -> Vec<u64> {
    let mut keys: Vec<u64> = events.iter().map(|(_, e)| entity_hash(&e.tenant_id, &e.entity_id)).collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

pub(crate) struct Parked {
    pub events: Vec<(usize, NewEvent)>,
    pub reply: Reply,
    keys: Vec<u64>,
}

#[derive(Default)]
pub(crate) struct Holds {
    prepared: HashMap<u64, u32>,
    undecided: HashMap<u64, u32>,
    /// What each batch holds here, and whether as prepared.
    by_txn: HashMap<u128, (Vec<u64>, bool)>,
    parked: VecDeque<Parked>,
    parked_keys: HashMap<u64, u32>,
}

fn add(map: &mut HashMap<u64, u32>, keys: &[u64]) {
    for k in keys {
        *map.entry(*k).or_default() += 1;
    }
}

fn remove(map: &mut HashMap<u64, u32>, keys: &[u64]) {
    for k in keys {
        if let Some(n) = map.get_mut(k) {
            *n -= 1;
            if *n == 0 {
                map.remove(k);
            }
        }
    }
}

impl Holds {
    /// Whether an append (a part if `part`) may have to wait: cheap, no hashing.
    pub fn may_block(&self, part: bool) -> bool {
        !self.prepared.is_empty() || !self.parked.is_empty() || (!part && !self.undecided.is_empty())
    }

    /// Whether an append to `keys` must wait.
    pub fn blocks(&self, keys: &[u64], part: bool) -> bool {
        keys.iter().any(|k| {
            self.prepared.contains_key(k) || self.parked_keys.contains_key(k) || (!part && self.undecided.contains_key(k))
        })
    }

    /// The index of the first of `keys` a prepared batch holds.
    pub fn held_by_prepared(&self, keys: &[u64]) -> Option<usize> {
        keys.iter().position(|k| self.prepared.contains_key(k))
    }

    pub fn hold(&mut self, txn: u128, keys: Vec<u64>, prepared: bool) {
        add(if prepared { &mut self.prepared } else { &mut self.undecided }, &keys);
        let previous = self.by_txn.insert(txn, (keys, prepared));
        debug_assert!(previous.is_none(), "a batch holds once at a time");
    }

    /// Lets go of what `txn` holds here (nothing if it holds nothing).
    pub fn release(&mut self, txn: u128) {
        if let Some((keys, prepared)) = self.by_txn.remove(&txn) {
            remove(if prepared { &mut self.prepared } else { &mut self.undecided }, &keys);
        }
    }

    pub fn park(&mut self, events: Vec<(usize, NewEvent)>, reply: Reply, keys: Vec<u64>) {
        add(&mut self.parked_keys, &keys);
        self.parked.push_back(Parked { events, reply, keys });
    }

    /// The waiting appends that may go now, in arrival order; the others keep waiting.
    pub fn unblocked(&mut self) -> Vec<Parked> {
        if self.parked.is_empty() {
            return Vec::new();
        }
        let waiting = std::mem::take(&mut self.parked);
        self.parked_keys.clear();
        let mut ready = Vec::new();
        for parked in waiting {
            let part = matches!(parked.reply, Reply::Part(..));
            if self.blocks(&parked.keys, part) {
                add(&mut self.parked_keys, &parked.keys);
                self.parked.push_back(parked);
            } else {
                ready.push(parked);
            }
        }
        ready
    }
}
