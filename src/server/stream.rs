//! `GET /api/v1/events/stream`: Server-Sent Events. First the stored events that match (catch-up), then
//! live ones. Each event's `id:` is a cursor (the last position delivered per shard, and the store's
//! epoch); a client that reconnects with `Last-Event-ID` resumes exactly after it: positions only grow
//! within a shard, so nothing is skipped or repeated, and across a power loss that gave positions back
//! the epoch says where to resume (`docs/CURSORS.md`).

use std::cell::Cell;
use std::convert::Infallible;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use glommio::channels::local_channel;
use glommio::{Latency, Shares, TaskQueueHandle};
use http_body_util::StreamBody;
use hyper::body::Frame;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::Response;

use super::respond::{ApiError, Body};
use super::Stop;
use crate::epoch::Epochs;
use crate::Store;

/// Events of one shard a stream sends in one slice, at most.
const PAGE_EVENTS: usize = 512;
/// Positions of one shard a stream reads in one slice, at most (with an entity filter, positions of that
/// entity). A stream yields its executor before each slice (docs/CURSORS.md).
pub const CATCH_UP_SLICE_POSITIONS: u64 = 4096;
/// Streams run in their own task queue on each shard executor, with this latency goal: while streams
/// have work, the executor stops running them at least this often to reap I/O completions and wake
/// appends from other threads (without it, a busy queue of yielding streams would keep them waiting for
/// glommio's default 100 ms preemption), and runs the append path first (it has more shares).
pub const STREAM_QUEUE_LATENCY: Duration = Duration::from_millis(1);
/// The streams queue's CPU share against the default queue's 1000 (appends, HTTP handlers): when both
/// have work, streams get about a tenth of the core.
const STREAM_QUEUE_SHARES: usize = 100;
const HEARTBEAT: Duration = Duration::from_secs(15);

/// Per-shard positions already delivered, in the numbering of this open's epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    positions: Vec<u64>,
    /// The epoch the positions belong to (see `docs/CURSORS.md`).
    epoch: u64,
}

impl Cursor {
    pub fn start(shards: usize, epoch: u64) -> Cursor {
        Cursor { positions: vec![0; shards], epoch }
    }

    /// Reads a `Last-Event-ID`: `c-<p0>-…-<pN-1>-e<epoch>`, or without the epoch (cursors handed out
    /// before epochs existed, taken as older than every recorded epoch), and translates it to the
    /// current epoch: on a shard where a later epoch began below the cursor's position (a power loss
    /// took acknowledged events back and their positions went to new events), it resumes just before
    /// that epoch's first position, so no new event is skipped.
    pub fn parse(text: &str, epochs: &Epochs, shards: usize) -> Result<Cursor, ApiError> {
        let bad = || ApiError::bad_request(format!("Last-Event-ID {text:?} is not a cursor of this store"));
        let mut parts: Vec<&str> = text.strip_prefix("c-").ok_or_else(bad)?.split('-').collect();
        let epoch = match parts.last().and_then(|last| last.strip_prefix('e')) {
            Some(epoch) => {
                let epoch = epoch.parse().map_err(|_| bad())?;
                parts.pop();
                epoch
            }
            None => 0,
        };
        let positions: Vec<u64> = parts.iter().map(|p| p.parse().map_err(|_| bad())).collect::<Result<_, _>>()?;
        if positions.len() != shards {
            return Err(bad());
        }
        let positions = positions
            .iter()
            .enumerate()
            .map(|(shard, &p)| epochs.resume_position(epoch, shard, p))
            .collect::<Result<Vec<u64>, _>>()
            .map_err(|e| {
                ApiError::bad_request(format!(
                    "Last-Event-ID {text:?} names epoch {}, but this store is at epoch {}",
                    e.epoch, e.current
                ))
            })?;
        Ok(Cursor { positions, epoch: epochs.current() })
    }

    pub fn encode(&self) -> String {
        let mut text = String::from("c");
        for p in &self.positions {
            text.push('-');
            text.push_str(&p.to_string());
        }
        text.push_str("-e");
        text.push_str(&self.epoch.to_string());
        text
    }
}

pub struct Filter {
    pub tenant_id: String,
    pub entity_id: Option<String>,
    pub event_type_prefix: Option<String>,
}

struct State {
    store: Store,
    filter: Filter,
    cursor: Cursor,
    stop: Rc<Stop>,
    last_sent: Instant,
    /// Set when the response body is dropped (the client went away): the producer stops reading.
    gone: Rc<Cell<bool>>,
}

/// Marks a stream gone when its body is dropped.
struct Gone(Rc<Cell<bool>>);

impl Drop for Gone {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

thread_local! {
    /// This shard executor's task queue for streams (see [`STREAM_QUEUE_LATENCY`]), made on first use.
    static STREAM_QUEUE: std::cell::Cell<Option<TaskQueueHandle>> = const { std::cell::Cell::new(None) };
}

/// The task queue streams produce their events in, on the calling shard's executor.
fn stream_queue() -> Option<TaskQueueHandle> {
    if let Some(queue) = STREAM_QUEUE.get() {
        return Some(queue);
    }
    if !crate::shard::on_shard_thread() {
        return None;
    }
    let queue = glommio::executor().create_task_queue(
        Shares::Static(STREAM_QUEUE_SHARES),
        Latency::Matters(STREAM_QUEUE_LATENCY),
        "tidelog-streams",
    );
    STREAM_QUEUE.set(Some(queue));
    Some(queue)
}

pub fn response(store: Store, filter: Filter, cursor: Cursor, stop: Rc<Stop>) -> Response<Body> {
    let gone = Rc::new(Cell::new(false));
    let state = State { store, filter, cursor, stop, last_sent: Instant::now(), gone: gone.clone() };
    // The events are read and encoded by a task of their own in the streams' queue, so the executor
    // preempts it for appends (see `STREAM_QUEUE_LATENCY`); the body only passes its chunks on.
    let (chunks, rx) = local_channel::new_bounded::<String>(1);
    let produce = async move {
        let mut state = state;
        while let Some(chunk) = next_chunk(&mut state).await {
            if chunks.send(chunk).await.is_err() {
                return; // the client went away
            }
        }
    };
    let spawned = match stream_queue() {
        Some(queue) => glommio::spawn_local_into(produce, queue),
        None => Ok(glommio::spawn_local(produce)),
    };
    if let Ok(task) = spawned {
        task.detach();
    }
    let frames = futures_lite::stream::unfold((rx, Gone(gone)), |(rx, gone)| async move {
        let chunk = rx.recv().await?;
        Some((Ok::<_, Infallible>(Frame::data(Bytes::from(chunk))), (rx, gone)))
    });
    let body: Body = Box::pin(StreamBody::new(frames));
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// The next piece of the stream: matching events, a heartbeat, or None when the server stops. Reads
/// in slices of at most [`CATCH_UP_SLICE_POSITIONS`] positions of one shard and [`PAGE_EVENTS`]
/// events, with a yield before each, so a catch-up over a large store never holds the executor long.
async fn next_chunk(state: &mut State) -> Option<String> {
    loop {
        if state.stop.stopped.get() || state.gone.get() {
            return None;
        }
        // Listen before scanning, so a publish between the scan and the wait is not missed.
        let listener = state.store.shard(0).published().listen();
        let mut chunk = String::new();
        let mut caught_up = true;
        for shard in 0..state.store.shard_count() {
            futures_lite::future::yield_now().await;
            caught_up &= scan_slice(state, shard, &mut chunk);
        }
        if !chunk.is_empty() {
            state.last_sent = Instant::now();
            return Some(chunk);
        }
        if state.last_sent.elapsed() >= HEARTBEAT {
            state.last_sent = Instant::now();
            return Some(": keep-alive\n\n".to_string());
        }
        if !caught_up {
            continue;
        }
        // Wake on new events, or after a second to notice a stopping server.
        futures_lite::future::or(listener, glommio::timer::sleep(Duration::from_secs(1))).await;
    }
}

/// Reads one slice of `shard` after the cursor into `out`; whether it reached what is visible.
fn scan_slice(state: &mut State, shard: usize, out: &mut String) -> bool {
    let filter = &state.filter;
    let prefix = filter.event_type_prefix.as_deref().unwrap_or("");
    let slice = state.store.shard(shard).scan_after(
        &filter.tenant_id,
        filter.entity_id.as_deref(),
        state.cursor.positions[shard],
        PAGE_EVENTS,
        CATCH_UP_SLICE_POSITIONS,
        |e| e.event_type().starts_with(prefix),
    );
    for event in slice.events {
        state.cursor.positions[shard] = event.position();
        out.push_str(&format!("id: {}\ndata: {}\n\n", state.cursor.encode(), crate::api::event_json(&event)));
    }
    state.cursor.positions[shard] = state.cursor.positions[shard].max(slice.scanned_to);
    slice.reached_end
}
