//! `POST /api/v1/sql?tenant_id=T` with `{"query": "SELECT ..."}`. The query runs on the side tokio
//! runtime; this shard only awaits its handle (or the channel of a streamed answer), so appends on this
//! core go on meanwhile. Dropping the response (the client went away) aborts the query's task.

use bytes::Bytes;
use futures_lite::StreamExt;
use http_body_util::StreamBody;
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderValue, ACCEPT, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use serde_json::json;

use super::respond::{ApiError, Body};
use super::routes::{read_body, HttpOptions};
use crate::sql::output::{self, IpcEncoder};
use crate::sql::{self, QueryTask, SqlError, SqlLimits};
use crate::Store;

pub const NDJSON: &str = "application/x-ndjson";
pub const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Ndjson,
    Arrow,
}

impl From<SqlError> for ApiError {
    fn from(e: SqlError) -> ApiError {
        let status = match e {
            SqlError::Tenant(_) | SqlError::Invalid(_) | SqlError::ReadOnly(_) | SqlError::Execution(_) => StatusCode::BAD_REQUEST,
            SqlError::MemoryLimit { .. } | SqlError::Timeout { .. } | SqlError::TooManyRows { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            SqlError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.code(), e.to_string())
    }
}

pub(super) async fn answer(store: &Store, options: &HttpOptions, request: Request<Incoming>, tenant_id: String) -> Result<Response<Body>, ApiError> {
    let accept = request.headers().get(ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    let format = if accept.contains(ARROW_STREAM) {
        Format::Arrow
    } else if accept.contains(NDJSON) {
        Format::Ndjson
    } else {
        Format::Json
    };
    let body = read_body(request, options, &["application/json"]).await?;
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct SqlRequest {
        query: String,
    }
    let SqlRequest { query } = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("expected {{\"query\": \"SELECT ...\"}}: {e}")))?;
    let (store, limits) = (store.clone(), options.sql);
    if format == Format::Json {
        let started = std::time::Instant::now();
        let task = QueryTask::spawn(async move {
            let (schema, batches) = sql::collect(&store, &tenant_id, &query, &limits, limits.max_json_rows).await?;
            let answer = output::answer_json(&schema, &batches).map_err(|e| SqlError::Internal(e.to_string()))?;
            Ok::<_, SqlError>(Bytes::from(answer.to_string()))
        });
        let body = task.await??;
        // The server's time for the query, answer encoded (W3C Server-Timing), so clients can tell it from
        // their own and the network's.
        let timing = format!("sql;dur={:.3}", started.elapsed().as_secs_f64() * 1e3);
        let mut response = Response::new(super::respond::full(body));
        response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Ok(timing) = HeaderValue::from_str(&timing) {
            response.headers_mut().insert("server-timing", timing);
        }
        return Ok(response);
    }
    streamed(store, tenant_id, query, limits, format).await
}

/// What the query's task sends the shard: encoded bytes, or the error that stopped it before any.
enum Chunk {
    Bytes(Bytes),
    Failed(SqlError),
}

/// NDJSON or Arrow IPC, streamed batch by batch. The status waits for the first batch, so a query that
/// fails early gets an error status; one that fails later ends its stream with an `{"error": ...}` line
/// (NDJSON) or without the end-of-stream marker (Arrow IPC), which readers report.
async fn streamed(store: Store, tenant_id: String, query: String, limits: SqlLimits, format: Format) -> Result<Response<Body>, ApiError> {
    // Two chunks in flight: a slow client holds the query back instead of piling up its answer.
    let (tx, rx) = flume::bounded::<Chunk>(2);
    let task = QueryTask::spawn(async move { produce(&store, &tenant_id, &query, &limits, format, tx).await });
    let first = match rx.recv_async().await {
        Ok(Chunk::Bytes(bytes)) => bytes,
        Ok(Chunk::Failed(e)) => return Err(e.into()),
        Err(_) => return Err(task.await.err().unwrap_or_else(|| SqlError::Internal("the query ended without an answer".into())).into()),
    };
    let rest = rx.into_stream().map(|chunk| match chunk {
        Chunk::Bytes(bytes) => bytes,
        Chunk::Failed(e) => Bytes::from(format!("{}\n", json!({"error": e.code(), "message": e.to_string()}))),
    });
    let chunks = futures_lite::stream::once(first).chain(rest);
    // The task lives as long as the body: a dropped body (the client went away) aborts the query.
    let frames = chunks.map(move |bytes| {
        let _task = &task;
        Ok::<_, std::convert::Infallible>(Frame::data(bytes))
    });
    let mut response = Response::new(Box::pin(StreamBody::new(frames)) as Body);
    let content_type = if format == Format::Arrow { ARROW_STREAM } else { NDJSON };
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok(response)
}

/// The query's side: runs it and encodes its batches; returns when done, failed or no longer wanted.
async fn produce(store: &Store, tenant_id: &str, query: &str, limits: &SqlLimits, format: Format, tx: flume::Sender<Chunk>) {
    let send = |chunk: Chunk| tx.send_async(chunk);
    let mut stream = match sql::start(store, tenant_id, query, limits).await {
        Ok(stream) => stream,
        Err(e) => {
            let _ = send(Chunk::Failed(e)).await;
            return;
        }
    };
    let internal = |e: arrow::error::ArrowError| SqlError::Internal(e.to_string());
    let mut ipc = None;
    let mut head = Vec::new();
    if format == Format::Arrow {
        match IpcEncoder::new(&stream.schema()) {
            Ok((encoder, bytes)) => {
                ipc = Some(encoder);
                head = bytes;
            }
            Err(e) => {
                let _ = send(Chunk::Failed(internal(e))).await;
                return;
            }
        }
    }
    let mut first = true;
    loop {
        let encoded = match stream.next_batch().await {
            None => break,
            Some(Err(e)) => Err(e),
            Some(Ok(batch)) => match &mut ipc {
                Some(encoder) => encoder.batch(&batch).map_err(internal),
                None => output::ndjson(&batch).map(String::into_bytes).map_err(internal),
            },
        };
        match encoded {
            Ok(mut bytes) => {
                if first {
                    head.append(&mut bytes);
                    bytes = std::mem::take(&mut head);
                    first = false;
                }
                if send(Chunk::Bytes(Bytes::from(bytes))).await.is_err() {
                    return; // the client went away: dropping the stream stops the query
                }
            }
            Err(e) => {
                // Before the first chunk the shard answers with an error status; later, NDJSON gets an
                // error line and Arrow IPC ends without its end-of-stream marker.
                if first || format == Format::Ndjson {
                    let _ = send(Chunk::Failed(e)).await;
                }
                return;
            }
        }
    }
    let mut tail = std::mem::take(&mut head);
    if let Some(encoder) = ipc {
        match encoder.finish() {
            Ok(mut bytes) => tail.append(&mut bytes),
            Err(e) => {
                if first {
                    let _ = send(Chunk::Failed(internal(e))).await;
                }
                return;
            }
        }
    }
    if !tail.is_empty() || first {
        let _ = send(Chunk::Bytes(Bytes::from(tail))).await;
    }
}
