//! A load generator: many concurrent appenders on one client executor. Used by `tidelog load`, the
//! benchmarks and the crash test.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use glommio::{LocalExecutorBuilder, Placement};
use hdrhistogram::Histogram;

use crate::coordinator::{AppendAck, Store};
use crate::error::Error;
use crate::event::NewEvent;

#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// Concurrent appenders.
    pub tasks: usize,
    pub events: u64,
    pub entities: u64,
    pub tenant_id: String,
    /// Events per append call (1: single-event appends).
    pub batch_size: usize,
    /// Approximate payload size.
    pub payload_bytes: usize,
    /// 0: every task awaits each append before the next. N > 0: one caller pipelines single-event
    /// appends through a [`crate::Producer`] with up to N in flight (`tasks` and `batch_size` unused).
    pub pipeline_window: usize,
}

impl Default for LoadSpec {
    fn default() -> LoadSpec {
        LoadSpec {
            tasks: 64,
            events: 100_000,
            entities: 1_000,
            tenant_id: "default".into(),
            batch_size: 1,
            payload_bytes: 200,
            pipeline_window: 0,
        }
    }
}

pub struct LoadReport {
    pub events: u64,
    pub elapsed: Duration,
    /// Append call latency in nanoseconds.
    pub latency_ns: Histogram<u64>,
}

impl LoadReport {
    pub fn events_per_s(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64()
    }
}

/// The entity of the `seq`-th event.
pub fn entity_of(spec: &LoadSpec, seq: u64) -> String {
    format!("entity-{}", seq % spec.entities.max(1))
}

/// The `seq`-th event of a load: entity `seq % entities`, a JSON payload of about `payload_bytes`.
pub fn make_event(spec: &LoadSpec, seq: u64) -> NewEvent {
    let entity = entity_of(spec, seq);
    let pad = "x".repeat(spec.payload_bytes.saturating_sub(60));
    let payload = format!(r#"{{"seq":{seq},"value":{},"note":"{pad}"}}"#, seq.wrapping_mul(2654435761) % 1000);
    let event_type = if seq % 10 == 0 { "metric.alert" } else { "metric.sample" };
    NewEvent::with_raw_payload(entity, event_type, payload).with_tenant(spec.tenant_id.clone())
}

/// Runs the load; `on_ack` sees every acknowledgement with its event's sequence number (on the client
/// thread). Stops at the first error.
pub fn run_load(
    store: &Store,
    spec: &LoadSpec,
    on_ack: impl Fn(&AppendAck, u64) + Send + 'static,
) -> Result<LoadReport, Error> {
    if spec.pipeline_window > 0 {
        return run_pipelined(store, spec, spec.pipeline_window, on_ack);
    }
    let store = store.clone();
    let spec = spec.clone();
    let handle = LocalExecutorBuilder::new(Placement::Unbound)
        .name("tidelog-load")
        .spawn(move || async move {
            let next = Rc::new(Cell::new(0u64));
            let on_ack = Rc::new(on_ack);
            let started = Instant::now();
            let mut tasks = Vec::with_capacity(spec.tasks);
            for _ in 0..spec.tasks.max(1) {
                let (store, spec, next, on_ack) = (store.clone(), spec.clone(), next.clone(), on_ack.clone());
                tasks.push(glommio::spawn_local(async move {
                    let mut latency = latency_histogram();
                    loop {
                        let first = next.get();
                        if first >= spec.events {
                            return Ok(latency);
                        }
                        let n = (spec.batch_size.max(1) as u64).min(spec.events - first);
                        next.set(first + n);
                        let batch: Vec<NewEvent> = (first..first + n).map(|seq| make_event(&spec, seq)).collect();
                        let t0 = Instant::now();
                        let acks = store.append_batch(batch).await?;
                        latency.saturating_record(t0.elapsed().as_nanos() as u64);
                        for (ack, seq) in acks.iter().zip(first..) {
                            on_ack(ack, seq);
                        }
                    }
                }));
            }
            let mut latency_ns = latency_histogram();
            let mut result = Ok(());
            for task in tasks {
                match task.await {
                    Ok(h) => latency_ns.add(h).expect("same histogram bounds"),
                    Err(e) => result = result.and(Err(e)),
                }
            }
            result.map(|()| LoadReport { events: spec.events, elapsed: started.elapsed(), latency_ns })
        })
        .map_err(|e| Error::io("start load executor", e.into()))?;
    handle.join().map_err(|e| Error::io("load executor", e.into()))?
}

/// Runs `spec` through one [`crate::Producer`] on one task: single-event appends with up to `window` in
/// flight, acknowledged in order. `on_ack` sees every acknowledgement with its sequence number.
fn run_pipelined(
    store: &Store,
    spec: &LoadSpec,
    window: usize,
    on_ack: impl Fn(&AppendAck, u64) + Send + 'static,
) -> Result<LoadReport, Error> {
    let store = store.clone();
    let spec = spec.clone();
    let handle = LocalExecutorBuilder::new(Placement::Unbound)
        .name("tidelog-load")
        .spawn(move || async move {
            let mut producer = store.producer();
            let mut latency_ns = latency_histogram();
            let mut in_flight = std::collections::VecDeque::with_capacity(window);
            let started = Instant::now();
            for seq in 0..spec.events {
                let ack = producer.send(make_event(&spec, seq)).await?;
                in_flight.push_back((seq, Instant::now(), ack));
                if in_flight.len() >= window.max(1) {
                    let (seq, sent, ack) = in_flight.pop_front().expect("window is not empty");
                    let ack = ack.await?;
                    latency_ns.saturating_record(sent.elapsed().as_nanos() as u64);
                    on_ack(&ack, seq);
                }
            }
            while let Some((seq, sent, ack)) = in_flight.pop_front() {
                let ack = ack.await?;
                latency_ns.saturating_record(sent.elapsed().as_nanos() as u64);
                on_ack(&ack, seq);
            }
            Ok(LoadReport { events: spec.events, elapsed: started.elapsed(), latency_ns })
        })
        .map_err(|e| Error::io("start load executor", e.into()))?;
    handle.join().map_err(|e| Error::io("load executor", e.into()))?
}

/// A histogram of nanoseconds from 1 ns to 100 s with 3 significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("valid bounds")
}
