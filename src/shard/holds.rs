//! The entities a shard holds back for cross-shard batches, and the appends waiting on them.
//!
//! Two kinds of hold:
//! - a *prepared* batch holds its entities (by a 64-bit hash of tenant and entity: a collision only makes
//!   an append wait a little, never lets one through) from Prepare to Commit or Abort: nothing may change
//!   their versions, so Commit applies the plan made at Prepare;
//! - an *undecided* part (written, its batch not yet committed) holds its positions: a later single
//!   append waits if its entity's latest event is among them, so an entity's versions become visible in
//!   order. Held by range, a part costs nothing per event. Other parts do not wait on it (two parts
//!   waiting on each other across shards would deadlock; see `docs/BATCHES.md`).
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
    /// What each prepared batch holds here.
    prepared_by_txn: HashMap<u128, Vec<u64>>,
    /// Each undecided part's positions (first, last), by batch.
    undecided: HashMap<u128, (u64, u64)>,
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

    /// Whether an append of `events` (entity hashes `keys`) must wait. `last_position` gives an entity's
    /// latest position, acknowledged or not.
    pub fn blocks(
        &self,
        events: &[(usize, NewEvent)],
        keys: &[u64],
        part: bool,
        last_position: &mut impl FnMut(&str, &str) -> Option<u64>,
    ) -> bool {
        keys.iter().any(|k| self.prepared.contains_key(k) || self.parked_keys.contains_key(k))
            || (!part
                && !self.undecided.is_empty()
                && events.iter().any(|(_, e)| {
                    last_position(&e.tenant_id, &e.entity_id).is_some_and(|p| self.undecided_at(p))
                }))
    }

    fn undecided_at(&self, position: u64) -> bool {
        self.undecided.values().any(|&(first, last)| (first..=last).contains(&position))
    }

    /// The index of the first of `keys` a prepared batch holds.
    pub fn held_by_prepared(&self, keys: &[u64]) -> Option<usize> {
        keys.iter().position(|k| self.prepared.contains_key(k))
    }

    pub fn hold_prepared(&mut self, txn: u128, keys: Vec<u64>) {
        add(&mut self.prepared, &keys);
        let previous = self.prepared_by_txn.insert(txn, keys);
        debug_assert!(previous.is_none(), "a batch is prepared once");
    }

    /// Holds a written part's positions `first..=last` until its batch is decided.
    pub fn hold_undecided(&mut self, txn: u128, first: u64, last: u64) {
        debug_assert!(first <= last);
        let previous = self.undecided.insert(txn, (first, last));
        debug_assert!(previous.is_none(), "a batch has one part per shard");
    }

    /// Lets go of what `txn` holds here (nothing if it holds nothing).
    pub fn release(&mut self, txn: u128) {
        if let Some(keys) = self.prepared_by_txn.remove(&txn) {
            remove(&mut self.prepared, &keys);
        }
        self.undecided.remove(&txn);
    }

    pub fn park(&mut self, events: Vec<(usize, NewEvent)>, reply: Reply, keys: Vec<u64>) {
        add(&mut self.parked_keys, &keys);
        self.parked.push_back(Parked { events, reply, keys });
    }

    /// The waiting appends that may go now, in arrival order; the others keep waiting.
    pub fn unblocked(&mut self, mut last_position: impl FnMut(&str, &str) -> Option<u64>) -> Vec<Parked> {
        if self.parked.is_empty() {
            return Vec::new();
        }
        let waiting = std::mem::take(&mut self.parked);
        self.parked_keys.clear();
        let mut ready = Vec::new();
        for parked in waiting {
            let part = matches!(parked.reply, Reply::Part(..));
            if self.blocks(&parked.events, &parked.keys, part, &mut last_position) {
                add(&mut self.parked_keys, &parked.keys);
                self.parked.push_back(parked);
            } else {
                ready.push(parked);
            }
        }
        ready
    }
}
