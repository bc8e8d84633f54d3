//! The store's event ids: where each is stored, and which client-given ids a shard has claimed.

use foldhash::fast::RandomState;
use dashmap::DashMap;
use uuid::Uuid;

/// The position of an id claimed by a shard that has not stored it (yet).
pub const RESERVED: u64 = u64::MAX;

/// Every stored event's id, and the claims that keep a client-given id unique across shards.
///
/// Each shard writes only its own `stored` map, so the bulk of appends (ids the shard generates, which
/// no other shard can produce) never touch a map the other cores write. An id a client gives may be
/// sent to any shard at the same moment: the shard first claims it in `claims`, one atomic step for the
/// whole store, and only then stores it. Ids stored before the store opened are only in `stored`, which
/// is why [`IdIndex::owner`] looks there too; a claim is always preceded by that look.
pub struct IdIndex {
    claims: DashMap<Uuid, u32, RandomState>,
    stored: Vec<DashMap<Uuid, u64, RandomState>>,
}

impl IdIndex {
    /// One map per shard, sized for what recovery will load into it, so it does not grow (and rehash)
    /// twenty times on the way.
    pub fn new(expected_events_per_shard: &[usize]) -> IdIndex {
        IdIndex {
            claims: DashMap::default(),
            stored: expected_events_per_shard
                .iter()
                .map(|&n| DashMap::with_capacity_and_hasher(n, RandomState::default()))
                .collect(),
        }
    }

    /// Records a stored event's id (its shard's executor only).
    pub fn store(&self, shard: u32, id: Uuid, position: u64) {
        self.stored[shard as usize].insert(id, position);
    }

    /// Where an id is stored (shard, position), or the shard that claimed it with [`RESERVED`].
    pub fn owner(&self, id: &Uuid) -> Option<(u32, u64)> {
        if let Some(shard) = self.claims.get(id).map(|s| *s) {
            return Some((shard, self.stored_on(shard, id).unwrap_or(RESERVED)));
        }
        self.stored(id)
    }

    /// Where an id is stored, claims aside.
    pub fn stored(&self, id: &Uuid) -> Option<(u32, u64)> {
        self.stored.iter().enumerate().find_map(|(k, map)| map.get(id).map(|p| (k as u32, *p)))
    }

    /// Where an id is stored on one shard.
    pub fn stored_on(&self, shard: u32, id: &Uuid) -> Option<u64> {
        self.stored[shard as usize].get(id).map(|p| *p)
    }

    /// Claims a client-given id for `shard`: fails with its owner if any shard claimed or stored it.
    pub fn claim(&self, shard: u32, id: Uuid) -> Result<(), (u32, u64)> {
        match self.claims.entry(id) {
            dashmap::Entry::Occupied(owner) => {
                let owner = *owner.get();
                Err((owner, self.stored_on(owner, &id).unwrap_or(RESERVED)))
            }
            dashmap::Entry::Vacant(slot) => {
                // Let go of the map's lock before looking in the shards' maps.
                drop(slot.insert(shard));
                // Stored before the store opened (recovered ids are not claims).
                match self.stored(&id) {
                    Some(owner) => {
                        self.claims.remove(&id);
                        Err(owner)
                    }
                    None => Ok(()),
                }
            }
        }
    }

    /// Gives back a claim of `shard` whose id was never stored.
    pub fn release(&self, shard: u32, id: &Uuid) {
        if self.stored_on(shard, id).is_none() {
            self.claims.remove_if(id, |_, owner| *owner == shard);
        }
    }
}
