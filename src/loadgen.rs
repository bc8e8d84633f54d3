//! A load generator: one caller, many concurrent callers, or one pipelining caller, on a thread or
//! executor of their own or on a shard's executor. Used by `tidelog load`, the benchmarks and the crash
//! tests.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::{Duration, Instant};


use glommio::{LocalExecutorBuilder, Placement};
use hdrhistogram::Histogram;

use crate::store::{AppendAck, Store};
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
    /// Run the callers as tasks on this shard's executor instead of a thread of their own.
    pub caller_on_shard: Option<usize>,
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
            caller_on_shard: None,
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
    use std::fmt::Write;
    let entity = entity_of(spec, seq);
    // `"host":"host-NN",` is 17 bytes of the size: 16 hosts give the SQL benchmark a string to group by.
    let pad_bytes = spec.payload_bytes.saturating_sub(77);
    let host = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 60;
    // Written into a buffer of its final size: the load generator shares the cores with the shards, so
    // its own allocations (a reallocation per growth step) would be charged to the store.
    let mut payload = String::with_capacity(pad_bytes + 80);
    let value = seq.wrapping_mul(2654435761) % 1000;
    write!(payload, r#"{{"seq":{seq},"value":{value},"host":"host-{host:02}","note":""#).expect("write to a String");
    payload.extend(std::iter::repeat_n('x', pad_bytes));
    payload.push_str(r#""}"#);
    let event_type = if seq % 10 == 0 { "metric.alert" } else { "metric.sample" };
    NewEvent::with_raw_payload(entity, event_type, payload).with_tenant(spec.tenant_id.clone())
}

/// Runs the load; `on_ack` sees every acknowledgement with its event's sequence number (on the client
/// thread). Stops at the first error.
///
/// Where the callers run: with `caller_on_shard`, as tasks on that shard's executor (as the HTTP handlers
/// do: appends to that shard take the direct path); otherwise one caller (`tasks` = 1, not pipelined) is a
/// plain thread that blocks on each append, and several callers or a pipeline are tasks of a load
/// executor of their own.
pub fn run_load(
    store: &Store,
    spec: &LoadSpec,
    on_ack: impl Fn(&AppendAck, u64) + Send + 'static,
) -> Result<LoadReport, Error> {
    let (store, spec) = (store.clone(), spec.clone());
    if let Some(shard) = spec.caller_on_shard {
        let (tx, rx) = std::sync::mpsc::channel();
        let on_shard = store.clone();
        futures_lite::future::block_on(store.spawn_on(shard, move |_| async move {
            let _ = tx.send(drive(on_shard, spec, on_ack).await);
        }))?;
        return rx.recv().unwrap_or(Err(Error::Closed));
    }
    if spec.tasks <= 1 && spec.pipeline_window == 0 {
        let caller = std::thread::Builder::new()
            .name("tidelog-load".into())
            .spawn(move || futures_lite::future::block_on(drive(store, spec, on_ack)))
            .map_err(|e| Error::io("start load thread", e))?;
        return caller.join().map_err(|_| Error::io("load thread", std::io::Error::other("panicked")))?;
    }
    let handle = LocalExecutorBuilder::new(Placement::Unbound)
        .name("tidelog-load")
        .spawn(move || drive(store, spec, on_ack))
        .map_err(|e| Error::io("start load executor", e.into()))?;
    handle.join().map_err(|e| Error::io("load executor", e.into()))?
}

/// The load itself, on whatever runs it.
async fn drive(store: Store, spec: LoadSpec, on_ack: impl Fn(&AppendAck, u64) + 'static) -> Result<LoadReport, Error> {
    if spec.pipeline_window > 0 {
        pipelined(store, spec, on_ack).await
    } else {
        callers(store, spec, on_ack).await
    }
}

/// `spec.tasks` callers, each waiting for its append before the next.
async fn callers(store: Store, spec: LoadSpec, on_ack: impl Fn(&AppendAck, u64) + 'static) -> Result<LoadReport, Error> {
    let next = Rc::new(Cell::new(0u64));
    let on_ack = Rc::new(on_ack);
    // One histogram for all callers (they share this thread): a histogram per caller is ~0.4 MB, and with
    // 1,024 callers their records miss the cache.
    let latency = Rc::new(RefCell::new(latency_histogram()));
    let started = Instant::now();
    let caller = |store: Store, spec: LoadSpec| {
        let (next, on_ack, latency) = (next.clone(), on_ack.clone(), latency.clone());
        async move {
            loop {
                let first = next.get();
                if first >= spec.events {
                    return Ok::<(), Error>(());
                }
                let n = (spec.batch_size.max(1) as u64).min(spec.events - first);
                next.set(first + n);
                let batch: Vec<NewEvent> = (first..first + n).map(|seq| make_event(&spec, seq)).collect();
                let t0 = Instant::now();
                let acks = store.append_batch(batch).await?;
                latency.borrow_mut().saturating_record(t0.elapsed().as_nanos() as u64);
                for (ack, seq) in acks.iter().zip(first..) {
                    on_ack(ack, seq);
                }
            }
        }
    };
    let result = if spec.tasks <= 1 {
        // One caller runs inline: no task, no scheduler between it and its acks.
        caller(store, spec.clone()).await
    } else {
        let tasks: Vec<_> = (0..spec.tasks).map(|_| glommio::spawn_local(caller(store.clone(), spec.clone()))).collect();
        let mut result = Ok(());
        for task in tasks {
            result = result.and(task.await);
        }
        result
    };
    let latency_ns = latency.borrow().clone();
    result.map(|()| LoadReport { events: spec.events, elapsed: started.elapsed(), latency_ns })
}

/// One caller pipelining single-event appends through a [`crate::Producer`], up to
/// `spec.pipeline_window` in flight, acknowledged in order.
async fn pipelined(store: Store, spec: LoadSpec, on_ack: impl Fn(&AppendAck, u64)) -> Result<LoadReport, Error> {
    let window = spec.pipeline_window.max(1);
    let mut producer = store.producer();
    let mut latency_ns = latency_histogram();
    let mut in_flight = VecDeque::with_capacity(window);
    let started = Instant::now();
    for seq in 0..spec.events {
        let ack = producer.send(make_event(&spec, seq)).await?;
        in_flight.push_back((seq, Instant::now(), ack));
        if in_flight.len() >= window {
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
}

/// A histogram of nanoseconds from 1 ns to 100 s with 3 significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("valid bounds")
}

/// With an object store: the shipping lag, sampled every 50 ms on a thread of its own while a load runs
/// (`tidelog load` prints it, the benchmark records it).
#[cfg(feature = "object-store")]
pub struct LagSampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Vec<u64>>,
}

#[cfg(feature = "object-store")]
impl LagSampler {
    /// `None` when the store ships nowhere.
    pub fn start(store: &Store) -> Option<LagSampler> {
        store.ship_status()?;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (store, done) = (store.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut lags_ms = Vec::new();
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                lags_ms.extend(store.ship_status().map(|s| s.lag_ms));
                std::thread::sleep(Duration::from_millis(50));
            }
            lags_ms
        });
        Some(LagSampler { stop, thread })
    }

    /// Stops sampling; the lags seen, in ms, ascending. Call before closing the store (the sampler holds a
    /// handle to it).
    pub fn stop(self) -> Vec<u64> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut lags_ms = self.thread.join().unwrap_or_default();
        lags_ms.sort_unstable();
        lags_ms
    }
}
