//! The operations the model test draws: what each one does, and proptest strategies for them.

use proptest::prelude::*;
use proptest::strategy::Union;

pub const TENANTS: [&str; 3] = ["t1", "t10", "t9"]; // "t9" never gets events (only the first two do)
pub const ENTITIES: [&str; 5] = ["e0", "e1", "e2", "e3", "e9"]; // "e9" never gets events
pub const TYPES: [&str; 4] = ["a.x", "a.y", "b.z", "a"]; // "a" is only ever asked for
pub const PREFIXES: [&str; 5] = ["a.", "b.", "a.x", "", "c"];
pub const PAYLOAD_KEYS: [&str; 3] = ["a", "b", "c"];
/// Explicit timestamps and query bounds are drawn below this.
pub const TS_RANGE: u16 = 600;

#[derive(Debug, Clone)]
pub enum IdChoice {
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
pub enum Expect {
    None,
    /// The entity's version as the store should see it at this event.
    Right,
    /// The right version plus this (never 0; clamped so it stays a valid u64 and stays wrong).
    Wrong(i8),
}

#[derive(Debug, Clone)]
pub enum PayloadSpec {
    Object(Vec<(u8, i8)>),
    Number(i8),
    Other(u8),
}

#[derive(Debug, Clone)]
pub struct EventSpec {
    pub tenant: u8,
    pub entity: u8,
    pub etype: u8,
    /// `None`: the store assigns the timestamp.
    pub ts: Option<u16>,
    pub payload: PayloadSpec,
    pub metadata: Option<u8>,
    pub expect: Expect,
    pub id: IdChoice,
    /// In a batch: send the previous event of the batch again (same id, entity and content), with this
    /// spec's expected version.
    pub resend: bool,
}

/// A time bound: absent, absolute, or an existing event's timestamp plus -1, 0 or 1 (so boundaries are hit).
#[derive(Debug, Clone)]
pub enum Bound {
    None,
    Abs(u16),
    /// The timestamp of the (k modulo their number)-th stored event in the asker's scope (its tenant, and
    /// its entity if it names one), plus the delta; `Abs(k)` if there is none.
    Near(u8, i8),
}

#[derive(Debug, Clone)]
pub enum TypeSpec {
    None,
    Exact(u8),
    Prefix(u8),
}

#[derive(Debug, Clone)]
pub struct QuerySpec {
    pub tenant: u8,
    pub entity: Option<u8>,
    pub etype: TypeSpec,
    pub since: Bound,
    pub until: Bound,
    pub as_of: Bound,
    pub desc: bool,
    /// `None`: the store's default limit (100).
    pub limit: Option<u8>,
    pub offset: u8,
}

#[derive(Debug, Clone)]
pub enum Op {
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

pub fn event_spec() -> impl Strategy<Value = EventSpec> {
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

pub fn bound(none_weight: u32) -> impl Strategy<Value = Bound> {
    prop_oneof![
        none_weight => Just(Bound::None),
        1 => (0..TS_RANGE + 50).prop_map(Bound::Abs),
        2 => (any::<u8>(), prop_oneof![2 => Just(0i8), 1 => Just(-1), 1 => Just(1)]).prop_map(|(k, d)| Bound::Near(k, d)),
    ]
}

pub fn query_spec() -> impl Strategy<Value = QuerySpec> {
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

/// The weights of the operations that end a store's life (a clean reopen, a crash, a power cut) and of
/// asked-for checkpoints, beside appends 25, batches 20, queries 25, gets 8 and entity states 10; 0 leaves
/// one out.
#[derive(Debug, Clone, Copy)]
pub struct Mix {
    pub reopen: u32,
    pub crash: u32,
    pub power_cut: u32,
    pub checkpoint: u32,
}

pub fn op(mix: Mix) -> impl Strategy<Value = Op> {
    let options: Vec<(u32, BoxedStrategy<Op>)> = vec![
        (25, event_spec().prop_map(Op::Append).boxed()),
        (
            20,
            (prop::collection::vec(event_spec(), 2..=6), any::<bool>())
                .prop_map(|(events, single_shard)| Op::Batch { events, single_shard })
                .boxed(),
        ),
        (25, query_spec().prop_map(Op::Query).boxed()),
        (
            8,
            (any::<u8>(), prop_oneof![1 => Just(None), 2 => (0u8..3).prop_map(Some)])
                .prop_map(|(id, tenant)| Op::Get { id, tenant })
                .boxed(),
        ),
        (10, (0u8..3, 0u8..5, bound(1)).prop_map(|(tenant, entity, as_of)| Op::State { tenant, entity, as_of }).boxed()),
        (mix.reopen, Just(Op::Reopen).boxed()),
        (mix.crash, Just(Op::Crash).boxed()),
        (mix.power_cut, any::<u64>().prop_map(Op::PowerCut).boxed()),
        (mix.checkpoint, Just(Op::Checkpoint).boxed()),
    ];
    Union::new_weighted(options.into_iter().filter(|(weight, _)| *weight > 0).collect())
}
