//! Workload 7, HTTP: the real server in-process on a loopback port, driven by blocking clients on plain
//! threads (one keep-alive connection each): single-event POSTs, and NDJSON batches of 1,000. The
//! clients share the machine's two cores with the shards, as a local load generator would.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::{fdatasyncs, open, Ctx};
use crate::bench::report::{Report, ThroughputRow};
use crate::bench::stats::LatencyUs;
use crate::bench::{other_error, progress, table};
use crate::loadgen::{latency_histogram, make_event, LoadSpec};
use crate::server::{HttpOptions, Server, ServerConfig};
use crate::Error;

pub const WORKLOAD: &str = "http";
const SINGLE_CONNECTIONS: usize = 16;
const BATCH_CONNECTIONS: usize = 4;
const BATCH_EVENTS: u64 = 1_000;
/// A request that takes longer than this has hung; the run fails rather than waits forever.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// One kind of request load.
struct HttpLoad {
    connections: usize,
    /// Events per request: 1 posts one JSON event, more posts an NDJSON batch.
    events_per_request: u64,
    events: u64,
}

pub fn run(ctx: &Ctx, report: &mut Report) -> Result<(), Error> {
    let mut rows = Vec::new();
    for fsync_ms in [100u32, 0] {
        let (store, dir) = open(ctx, &format!("http-f{fsync_ms}"), 2, fsync_ms)?;
        let config = ServerConfig {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            limits: HttpOptions { max_body_bytes: 16 << 20, api_keys: None, sql: Default::default() },
        };
        let server = Server::start(&store, config)?;
        let base = format!("http://{}", server.local_addr());
        let loads = [
            HttpLoad { connections: SINGLE_CONNECTIONS, events_per_request: 1, events: ctx.scaled(50_000, 200) },
            HttpLoad { connections: BATCH_CONNECTIONS, events_per_request: BATCH_EVENTS, events: ctx.scaled(500_000, 2_000) },
        ];
        let mut result = Ok(());
        for load in loads {
            let before = fdatasyncs(&store);
            match drive(&base, &load) {
                Ok((elapsed_s, latency_ns)) => {
                    let kind = if load.events_per_request == 1 {
                        "single-event POST".to_string()
                    } else {
                        format!("NDJSON batch {}", load.events_per_request)
                    };
                    let setup = format!("2 shards, FSYNC_INTERVAL={fsync_ms}, {kind}, {} conns", load.connections);
                    rows.push(
                        ThroughputRow::new(WORKLOAD, "tidelog", setup, load.events, elapsed_s)
                            .latency(LatencyUs::of(&latency_ns))
                            .fdatasyncs(fdatasyncs(&store) - before),
                    );
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        server.shutdown();
        store.close()?;
        ctx.remove(&dir);
        result?;
    }
    table::print_throughput("7. HTTP over loopback (latency: one request)", &rows);
    report.throughput.extend(rows);
    Ok(())
}

/// Runs one load: `connections` threads take request numbers from a shared counter until `events` are
/// sent. Returns the elapsed seconds and the request latencies in ns.
fn drive(base: &str, load: &HttpLoad) -> Result<(f64, Histogram<u64>), Error> {
    let spec = LoadSpec::default();
    let next = Arc::new(AtomicU64::new(0));
    let label = format!("http: {} x{} conns", load.events_per_request, load.connections);
    let bar = progress::bar(load.events, &label);
    let started = Instant::now();
    let threads: Vec<_> = (0..load.connections)
        .map(|_| {
            let (next, spec, bar) = (next.clone(), spec.clone(), bar.clone());
            let (events, per_request) = (load.events, load.events_per_request);
            let url = if per_request == 1 { format!("{base}/api/v1/events") } else { format!("{base}/api/v1/events/batch") };
            std::thread::spawn(move || client(&url, &spec, &next, events, per_request, &bar))
        })
        .collect();
    let mut latency_ns = latency_histogram();
    let mut first_error = None;
    for thread in threads {
        match thread.join() {
            Ok(Ok(h)) => latency_ns.add(h).map_err(|e| other_error("merge latency", format!("{e:?}")))?,
            Ok(Err(e)) => first_error = first_error.or(Some(e)),
            Err(_) => first_error = first_error.or(Some(other_error("http client", "thread panicked"))),
        }
    }
    let elapsed_s = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    match first_error {
        Some(e) => Err(e),
        None => Ok((elapsed_s, latency_ns)),
    }
}

/// One keep-alive connection posting until the shared counter passes `events`.
fn client(url: &str, spec: &LoadSpec, next: &AtomicU64, events: u64, per_request: u64, bar: &indicatif::ProgressBar) -> Result<Histogram<u64>, Error> {
    // No proxy from the environment: the server is on loopback. Status codes are checked here.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .proxy(None)
        .http_status_as_error(false)
        .timeout_global(Some(REQUEST_TIMEOUT))
        .build()
        .new_agent();
    let mut latency_ns = latency_histogram();
    let mut body = String::new();
    loop {
        let first = next.fetch_add(per_request, Ordering::Relaxed);
        if first >= events {
            return Ok(latency_ns);
        }
        let last = (first + per_request).min(events);
        body.clear();
        for seq in first..last {
            event_json(&mut body, spec, seq);
            if per_request > 1 {
                body.push('\n');
            }
        }
        let content_type = if per_request == 1 { "application/json" } else { "application/x-ndjson" };
        let t = Instant::now();
        let mut response = agent
            .post(url)
            .header("content-type", content_type)
            .send(body.as_str())
            .map_err(|e| other_error(format!("POST {url}"), e))?;
        // Reading the whole answer returns the connection to the agent for the next request.
        let answer = response.body_mut().read_to_string().map_err(|e| other_error(format!("POST {url}: body"), e))?;
        latency_ns.saturating_record(t.elapsed().as_nanos() as u64);
        if response.status() != 200 {
            return Err(other_error(format!("POST {url}"), format!("status {}: {answer}", response.status())));
        }
        bar.inc(last - first);
    }
}

/// The JSON of the load generator's event `seq` (entity ids, types and payloads need no escaping).
fn event_json(out: &mut String, spec: &LoadSpec, seq: u64) {
    let e = make_event(spec, seq);
    out.push_str(&format!(
        r#"{{"event_type":"{}","entity_id":"{}","tenant_id":"{}","payload":{}}}"#,
        e.event_type, e.entity_id, e.tenant_id, e.payload
    ));
}
