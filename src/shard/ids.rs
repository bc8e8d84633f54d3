//! The store's event ids: where each is stored, and which client-given ids a shard has claimed.

use std::sync::Arc;

use dashmap::DashMap;
use foldhash::fast::RandomState;
use uuid::Uuid;

use super::slots::PositionSlots;
use crate::event::StoredEvent;

/// The position of an id claimed by a shard that has not stored it (yet).
pub const RESERVED: u64 = u64::MAX;

/// Bits of a generated id that hold the shard, and the position (see [`IdIndex::generate`]).
const SHARD_BITS: u32 = 12;
const POSITION_BITS: u32 = 40;
const POSITION_MASK: u64 = (1 << POSITION_BITS) - 1;

/// Every stored event's id, and the claims that keep a client-given id unique across shards.
///
/// An id the store generates names its own place: its shard and position are in its bits, so finding it
/// is one look at that slot, and storing it writes nothing (most appends carry no id). Only the other
/// ids go into the maps: those a client gives, and those an older build generated.
///
/// Each shard writes only its own `stored` map, so the maps the other cores write are never touched by
/// an append that carries no id. An id a client gives may be sent to any shard at the same moment: the
/// shard first claims it in `claims`, one atomic step for the whole store, and only then stores it. Ids
/// stored before the store opened are not claims, which is why [`IdIndex::owner`] looks at where they
/// are stored too; a claim is always preceded by that look.
pub struct IdIndex {
    /// XORed into the position of generated ids (40 bits, kept in `tidelog.json`): two stores that
    /// write the same positions in the same millisecond still generate different ids.
    salt: u64,
    /// Each shard's events by position (the shard's own slot array, shared).
    events: Vec<Arc<PositionSlots>>,
    claims: DashMap<Uuid, u32, RandomState>,
    stored: Vec<DashMap<Uuid, u64, RandomState>>,
}

impl IdIndex {
    /// The index of a store of `shards` shards, with each shard's (empty) slot array.
    pub fn new(shards: usize, salt: u64) -> IdIndex {
        IdIndex {
            salt: salt & POSITION_MASK,
            events: (0..shards).map(|_| Arc::new(PositionSlots::new())).collect(),
            claims: DashMap::default(),
            stored: (0..shards).map(|_| DashMap::default()).collect(),
        }
    }

    /// A shard's events by position, which the shard fills.
    pub(crate) fn events_of(&self, shard: u32) -> Arc<PositionSlots> {
        self.events[shard as usize].clone()
    }

    /// A new id for the event the shard stores at `position`: a UUID v7 (RFC 9562) with the millisecond
    /// of `now_us` (48 bits), the version, 12 random bits, the variant, then 10 random bits, the shard
    /// (12 bits) and the position XOR the salt (40 bits). The randomness comes from the thread's fast
    /// generator (no clock read and no shared counter per event). Unique within the store because
    /// (shard, position) is; across stores, the millisecond, the salt and 22 random bits must all agree.
    pub fn generate(&self, shard: u32, position: u64, now_us: i64) -> Uuid {
        let millis = (now_us.max(0) / 1000) as u128 & ((1 << 48) - 1);
        let random = fastrand::u64(..);
        let rand_b = if shard < 1 << SHARD_BITS && position <= POSITION_MASK {
            (random >> 12 & 0x3ff) << 52 | u64::from(shard) << POSITION_BITS | (position ^ self.salt)
        } else {
            // Past what the bits hold (never with real shard counts and positions): a random id, which
            // goes to the maps like a client's.
            random >> 2
        };
        Uuid::from_u128(millis << 80 | 0x7 << 76 | u128::from(random & 0xfff) << 64 | 0b10 << 62 | u128::from(rand_b))
    }

    /// The place an id's bits name, if it has the form of a generated id (whoever made it).
    fn named(&self, id: &Uuid) -> Option<(u32, u64)> {
        if id.get_version_num() != 7 || id.get_variant() != uuid::Variant::RFC4122 {
            return None;
        }
        let rand_b = id.as_u128() as u64;
        let shard = (rand_b >> POSITION_BITS) as u32 & ((1 << SHARD_BITS) - 1);
        Some((shard, (rand_b & POSITION_MASK) ^ self.salt))
    }

    /// The event an id names, if it is there.
    fn at_named_place(&self, id: &Uuid) -> Option<(u32, StoredEvent)> {
        let (shard, position) = self.named(id)?;
        let event = self.events.get(shard as usize)?.get(position)?;
        (event.id() == *id).then_some((shard, event))
    }

    /// The stored event with this id (visible or not) and its shard: one look at one slot for an id
    /// that names its place.
    pub fn event(&self, id: &Uuid) -> Option<(u32, StoredEvent)> {
        if let Some(found) = self.at_named_place(id) {
            return Some(found);
        }
        let (shard, position) = self.in_maps(id)?;
        Some((shard, self.events[shard as usize].get(position)?))
    }

    /// Where the shards' maps say an id is stored.
    fn in_maps(&self, id: &Uuid) -> Option<(u32, u64)> {
        self.stored.iter().enumerate().find_map(|(k, map)| map.get(id).map(|p| (k as u32, *p)))
    }

    /// Records a stored event's id (its shard's executor only): in its shard's map, unless it names
    /// its place.
    pub fn store(&self, shard: u32, id: Uuid, position: u64) {
        if self.named(&id) != Some((shard, position)) {
            self.stored[shard as usize].insert(id, position);
        }
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
        self.at_named_place(id)
            .map(|(shard, event)| (shard, event.position()))
            .or_else(|| self.in_maps(id))
    }

    /// Where an id is stored on one shard.
    pub fn stored_on(&self, shard: u32, id: &Uuid) -> Option<u64> {
        match self.at_named_place(id) {
            Some((k, event)) if k == shard => Some(event.position()),
            _ => self.stored[shard as usize].get(id).map(|p| *p),
        }
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

    /// Ids held in the maps (not naming their place), over all shards.
    #[cfg(test)]
    fn mapped(&self) -> usize {
        self.stored.iter().map(|m| m.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;

    fn event(id: Uuid, position: u64) -> StoredEvent {
        StoredEvent::encode(&Event {
            position,
            timestamp_us: 1,
            version: 1,
            id: *id.as_bytes(),
            tenant_id: "t".into(),
            entity_id: "e".into(),
            event_type: "x".into(),
            payload: "{}".into(),
            metadata: None,
        })
    }

    #[test]
    fn generated_ids_are_v7_carry_the_millisecond_and_differ() {
        let ids = IdIndex::new(2, 0x1234_5678_9abc);
        let now_us = 1_764_000_000_123_456i64;
        let (a, b) = (ids.generate(1, 7, now_us), ids.generate(1, 8, now_us));
        assert_eq!(a.get_version_num(), 7);
        assert_eq!(a.get_variant(), uuid::Variant::RFC4122);
        let (secs, nanos) = a.get_timestamp().expect("v7 has a timestamp").to_unix();
        assert_eq!(secs as i64 * 1_000_000 + i64::from(nanos / 1000), now_us / 1000 * 1000);
        assert_ne!(a, b);
        // The same place twice still differs in its random bits (22 of them: a clash here is 1 in 4M).
        assert_ne!(ids.generate(1, 7, now_us), ids.generate(1, 7, now_us));
        assert_eq!(ids.named(&a), Some((1, 7)));
    }

    #[test]
    fn a_generated_id_is_found_at_its_place_without_the_map() {
        let ids = IdIndex::new(2, 99);
        let id = ids.generate(1, 42, 5_000);
        ids.store(1, id, 42);
        assert_eq!(ids.mapped(), 0);
        // Named but not there yet: not stored.
        assert_eq!(ids.stored(&id), None);
        ids.events_of(1).insert(42, event(id, 42));
        assert_eq!(ids.stored(&id), Some((1, 42)));
        assert_eq!(ids.stored_on(1, &id), Some(42));
        assert_eq!(ids.stored_on(0, &id), None);
        assert_eq!(ids.owner(&id), Some((1, 42)));
        // A client cannot claim it.
        assert_eq!(ids.claim(0, id), Err((1, 42)));
    }

    #[test]
    fn ids_that_do_not_name_their_place_go_to_the_map() {
        let ids = IdIndex::new(2, 0);
        // A client's id of the generated form, naming a place where another event is.
        let elsewhere = ids.generate(0, 5, 1_000);
        let other = ids.generate(0, 5, 1_000);
        ids.events_of(0).insert(5, event(other, 5));
        ids.store(0, other, 5);
        ids.events_of(1).insert(3, event(elsewhere, 3));
        ids.store(1, elsewhere, 3);
        // A random (v4) id, and a v7 id from another salt.
        let random = Uuid::from_u128(0x0123_4567_89ab_4def_8123_4567_89ab_cdef);
        ids.events_of(1).insert(4, event(random, 4));
        ids.store(1, random, 4);
        assert_eq!(ids.mapped(), 2);
        assert_eq!(ids.stored(&elsewhere), Some((1, 3)));
        assert_eq!(ids.stored(&other), Some((0, 5)));
        assert_eq!(ids.stored(&random), Some((1, 4)));
        assert_eq!(ids.stored_on(1, &elsewhere), Some(3));
        assert_eq!(ids.stored_on(0, &elsewhere), None);
    }
}
