//! `GET /api/v1/events/stream`: Server-Sent Events. First the stored events that match (catch-up), then
//! live ones. Each event's `id:` is a cursor (the last position delivered per shard); a client that
//! reconnects with `Last-Event-ID` resumes exactly after it: positions only grow within a shard, so
//! nothing is skipped or repeated.

use std::convert::Infallible;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::StreamBody;
use hyper::body::Frame;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::Response;

use super::routes::{ApiError, Body};
use super::Stop;
use crate::Store;

const PAGE_EVENTS: usize = 512;
const HEARTBEAT: Duration = Duration::from_secs(15);

/// Per-shard positions already delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor(Vec<u64>);

impl Cursor {
    pub fn start(shards: usize) -> Cursor {
        Cursor(vec![0; shards])
    }

    pub fn parse(text: &str, shards: usize) -> Result<Cursor, ApiError> {
        let bad = || ApiError::bad_request(format!("Last-Event-ID {text:?} is not a cursor of this store"));
        let positions: Vec<u64> = text
            .strip_prefix("c-")
            .ok_or_else(bad)?
            .split('-')
            .map(|p| p.parse().map_err(|_| bad()))
            .collect::<Result<_, _>>()?;
        if positions.len() != shards {
            return Err(bad());
        }
        Ok(Cursor(positions))
    }

    pub fn encode(&self) -> String {
        let mut text = String::from("c");
        for p in &self.0 {
            text.push('-');
            text.push_str(&p.to_string());
        }
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
}

pub fn response(store: Store, filter: Filter, cursor: Cursor, stop: Rc<Stop>) -> Response<Body> {
    let state = State { store, filter, cursor, stop, last_sent: Instant::now() };
    let frames = futures_lite::stream::unfold(state, |mut state| async move {
        let chunk = next_chunk(&mut state).await?;
        Some((Ok::<_, Infallible>(Frame::data(Bytes::from(chunk))), state))
    });
    let body: Body = Box::pin(StreamBody::new(frames));
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// The next piece of the stream: matching events, a heartbeat, or None when the server stops.
async fn next_chunk(state: &mut State) -> Option<String> {
    loop {
        if state.stop.stopped.get() {
            return None;
        }
        // Listen before scanning, so a publish between the scan and the wait is not missed.
        let listener = state.store.shard(0).published().listen();
        let chunk = scan(state);
        if !chunk.is_empty() {
            state.last_sent = Instant::now();
            return Some(chunk);
        }
        if state.last_sent.elapsed() >= HEARTBEAT {
            state.last_sent = Instant::now();
            return Some(": keep-alive\n\n".to_string());
        }
        // Wake on new events, or after a second to notice a stopping server.
        futures_lite::future::or(listener, glommio::timer::sleep(Duration::from_secs(1))).await;
    }
}

fn scan(state: &mut State) -> String {
    let mut out = String::new();
    let filter = &state.filter;
    for shard in 0..state.store.shard_count() {
        let prefix = filter.event_type_prefix.as_deref().unwrap_or("");
        let (events, scanned) = state.store.shard(shard).scan_after(
            &filter.tenant_id,
            filter.entity_id.as_deref(),
            state.cursor.0[shard],
            PAGE_EVENTS,
            |e| e.event_type().starts_with(prefix),
        );
        for event in events {
            state.cursor.0[shard] = event.position();
            out.push_str(&format!("id: {}\ndata: {}\n\n", state.cursor.encode(), event.to_json()));
        }
        state.cursor.0[shard] = state.cursor.0[shard].max(scanned);
    }
    out
}
