//! The WAL alone, the ceiling of batch ingest: the same record bodies as the batch workload's events,
//! staged in batches of 1,000 straight into each shard's [`Wal`] on its own pinned executor, with no
//! encoding, routing, validation or index. What batch ingest loses against this row is the engine's
//! own per-event cost.

use std::collections::VecDeque;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_channel::oneshot;
use glommio::{LocalExecutorBuilder, Placement};

use super::Ctx;
use crate::bench::other_error;
use crate::bench::report::ThroughputRow;
use crate::event::{Event, StoredEvent};
use crate::loadgen::{make_event, LoadSpec};
use crate::wal::io::FileStorage;
use crate::wal::writer::WalWriter;
use crate::wal::{CommitSink, FsyncMode, Wal, WalError};
use crate::Error;

/// Batches in flight per shard (as the batch workload's many callers keep its queues busy).
const IN_FLIGHT_BATCHES: usize = 8;
const SEGMENT_SIZE_BYTES: u64 = 64 << 20;
const MAX_STAGED_BYTES: usize = 8 << 20;

struct AckSink;

impl CommitSink<oneshot::Sender<()>> for AckSink {
    fn release(&self, _acked: u64, waiters: Vec<oneshot::Sender<()>>) {
        waiters.into_iter().for_each(|w| {
            let _ = w.send(());
        });
    }
    fn fail(&self, _error: &WalError, _waiters: Vec<oneshot::Sender<()>>) {}
    fn wrote(&self, _bytes: u64) {}
    fn synced(&self, _elapsed: Duration, _events: u64) {}
}

/// `events` records over `shards` WALs at `FSYNC_INTERVAL=100`, batches of `batch_events`.
pub fn run(ctx: &Ctx, events: u64, shards: usize, batch_events: usize) -> Result<ThroughputRow, Error> {
    let dir = ctx.fresh("wal-alone")?;
    let spec = LoadSpec::default();
    let bodies: Vec<Vec<u8>> = (0..batch_events as u64).map(|seq| body_of(&spec, seq)).collect();
    let cores: Vec<usize> = core_affinity::get_core_ids().map(|ids| ids.into_iter().map(|c| c.id).collect()).unwrap_or_default();
    let per_shard = events / shards as u64;
    let started = Instant::now();
    let mut handles = Vec::new();
    for shard in 0..shards {
        let (wal_dir, bodies) = (dir.join(format!("shard-{shard}")), bodies.clone());
        std::fs::create_dir_all(&wal_dir).map_err(|e| Error::io("create wal-alone dir", e))?;
        let placement = cores.get(shard % cores.len().max(1)).map_or(Placement::Unbound, |&c| Placement::Fixed(c));
        let handle = LocalExecutorBuilder::new(placement)
            .name(&format!("tidelog-wal-alone-{shard}"))
            .spawn(move || async move {
                let writer = WalWriter::new(Rc::new(FileStorage), wal_dir, shard as u32, SEGMENT_SIZE_BYTES, None);
                let wal = Wal::start(writer, FsyncMode::IntervalMs(100), 0, Rc::new(AckSink));
                let mut in_flight = VecDeque::new();
                let mut position = 0u64;
                while position < per_shard {
                    for body in bodies.iter().take((per_shard - position) as usize) {
                        position += 1;
                        wal.stage(position, body, false);
                    }
                    let (tx, rx) = oneshot::channel();
                    if let Some(tx) = wal.wait(position, tx) {
                        let _ = tx.send(());
                    }
                    wal.flush();
                    in_flight.push_back(rx);
                    while wal.staged_bytes() >= MAX_STAGED_BYTES {
                        wal.wait_for_space().await;
                    }
                    if in_flight.len() >= IN_FLIGHT_BATCHES {
                        in_flight.pop_front().expect("not empty").await.map_err(|_| "the WAL failed")?;
                    }
                }
                for rx in in_flight {
                    rx.await.map_err(|_| "the WAL failed")?;
                }
                wal.close().await.map_err(|e| e.to_string())?;
                Ok::<(), String>(())
            })
            .map_err(|e| Error::io("start wal-alone executor", e.into()))?;
        handles.push(handle);
    }
    for handle in handles {
        handle.join().map_err(|e| Error::io("wal-alone executor", e.into()))?.map_err(|e| other_error("wal alone", e))?;
    }
    let elapsed_s = started.elapsed().as_secs_f64();
    ctx.remove(&dir);
    let setup = format!("WAL only, {shards} shards, FSYNC_INTERVAL=100, batch {batch_events}, same record bodies");
    Ok(ThroughputRow::new("batch ingest", "WAL alone", setup, per_shard * shards as u64, elapsed_s))
}

/// The archived body of the load's `seq`-th event, as the shard would frame it.
fn body_of(spec: &LoadSpec, seq: u64) -> Vec<u8> {
    let event = make_event(spec, seq);
    let stored = StoredEvent::encode(&Event {
        position: seq + 1,
        timestamp_us: crate::time::now_us(),
        version: 1,
        id: *uuid::Uuid::now_v7().as_bytes(),
        tenant_id: event.tenant_id,
        entity_id: event.entity_id,
        event_type: event.event_type,
        payload: event.payload,
        metadata: event.metadata,
    });
    stored.bytes().to_vec()
}
