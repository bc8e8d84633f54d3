//! Workload 7, HTTP: the real server in-process on a loopback port, driven by blocking clients on plain
//! threads (one keep-alive connection each): single-event POSTs, NDJSON batches of 1,000, and (feature
//! `otlp`) OTLP/HTTP protobuf log exports of 1,000 records. The clients share the machine's two cores
//! with the shards, as a local load generator would.

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

/// What a request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// One JSON event to /api/v1/events.
    Single,
    /// An NDJSON batch to /api/v1/events/batch.
    Ndjson,
    /// An OTLP ExportLogsServiceRequest in protobuf to /v1/logs.
    #[cfg(feature = "otlp")]
    Otlp,
}

/// One kind of request load.
struct HttpLoad {
    kind: Kind,
    connections: usize,
    events_per_request: u64,
    events: u64,
}

/// The record attribute the OTLP load names its entities with (the server maps it to entity_id).
#[cfg(feature = "otlp")]
const OTLP_ENTITY_ATTRIBUTE: &str = "entity";
/// Distinct OTLP bodies, built once before the clock starts and posted in turn.
#[cfg(feature = "otlp")]
const OTLP_BODIES: u64 = 8;

pub fn run(ctx: &Ctx, report: &mut Report) -> Result<(), Error> {
    let mut rows = Vec::new();
    for fsync_ms in [100u32, 0] {
        let (store, dir) = open(ctx, &format!("http-f{fsync_ms}"), 2, fsync_ms)?;
        let config = ServerConfig {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            limits: HttpOptions {
                max_body_bytes: 16 << 20,
                api_keys: None,
                #[cfg(feature = "otlp")]
                otlp: crate::server::otlp::OtlpOptions { entity_attributes: vec![OTLP_ENTITY_ATTRIBUTE.into()] },
                ..HttpOptions::default()
            },
        };
        let server = Server::start(&store, config)?;
        let base = format!("http://{}", server.local_addr());
        let batch_events = ctx.scaled(500_000, 2_000);
        let loads = [
            Some(HttpLoad { kind: Kind::Single, connections: SINGLE_CONNECTIONS, events_per_request: 1, events: ctx.scaled(50_000, 200) }),
            Some(HttpLoad { kind: Kind::Ndjson, connections: BATCH_CONNECTIONS, events_per_request: BATCH_EVENTS, events: batch_events }),
            // Whole exports only: the same number of events, rounded up to requests of BATCH_EVENTS records.
            #[cfg(feature = "otlp")]
            Some(HttpLoad {
                kind: Kind::Otlp,
                connections: BATCH_CONNECTIONS,
                events_per_request: BATCH_EVENTS,
                events: batch_events.div_ceil(BATCH_EVENTS) * BATCH_EVENTS,
            }),
        ];
        let mut result = Ok(());
        for load in loads.into_iter().flatten() {
            let before = fdatasyncs(&store);
            match drive(&base, &load) {
                Ok((elapsed_s, latency_ns)) => {
                    let kind = match load.kind {
                        Kind::Single => "single-event POST".to_string(),
                        Kind::Ndjson => format!("NDJSON batch {}", load.events_per_request),
                        #[cfg(feature = "otlp")]
                        Kind::Otlp => format!("OTLP protobuf logs {}", load.events_per_request),
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
    #[cfg(feature = "otlp")]
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new(match load.kind {
        Kind::Otlp => (0..OTLP_BODIES).map(|b| otlp_body(&spec, b * load.events_per_request, load.events_per_request)).collect(),
        _ => Vec::new(),
    });
    #[cfg(not(feature = "otlp"))]
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new(Vec::new());
    let next = Arc::new(AtomicU64::new(0));
    let label = format!("http: {} x{} conns", load.events_per_request, load.connections);
    let bar = progress::bar(load.events, &label);
    let started = Instant::now();
    let threads: Vec<_> = (0..load.connections)
        .map(|_| {
            let (next, spec, bar, bodies) = (next.clone(), spec.clone(), bar.clone(), bodies.clone());
            let (kind, events, per_request) = (load.kind, load.events, load.events_per_request);
            let url = match kind {
                Kind::Single => format!("{base}/api/v1/events"),
                Kind::Ndjson => format!("{base}/api/v1/events/batch"),
                #[cfg(feature = "otlp")]
                Kind::Otlp => format!("{base}/v1/logs"),
            };
            std::thread::spawn(move || client(&url, kind, &spec, &bodies, &next, events, per_request, &bar))
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

/// One keep-alive connection posting until the shared counter passes `events`. OTLP requests post the
/// prebuilt `bodies` in turn.
#[allow(clippy::too_many_arguments)]
fn client(
    url: &str,
    kind: Kind,
    spec: &LoadSpec,
    #[cfg_attr(not(feature = "otlp"), allow(unused_variables))] bodies: &[Vec<u8>],
    next: &AtomicU64,
    events: u64,
    per_request: u64,
    bar: &indicatif::ProgressBar,
) -> Result<Histogram<u64>, Error> {
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
        let (content_type, payload): (&str, &[u8]) = match kind {
            Kind::Single | Kind::Ndjson => {
                body.clear();
                for seq in first..last {
                    event_json(&mut body, spec, seq);
                    if kind == Kind::Ndjson {
                        body.push('\n');
                    }
                }
                (if kind == Kind::Single { "application/json" } else { "application/x-ndjson" }, body.as_bytes())
            }
            #[cfg(feature = "otlp")]
            Kind::Otlp => ("application/x-protobuf", &bodies[(first / per_request) as usize % bodies.len()]),
        };
        let t = Instant::now();
        let mut response = agent
            .post(url)
            .header("content-type", content_type)
            .send(payload)
            .map_err(|e| other_error(format!("POST {url}"), e))?;
        // Reading the whole answer returns the connection to the agent for the next request.
        let answer = response.body_mut().read_to_vec().map_err(|e| other_error(format!("POST {url}: body"), e))?;
        latency_ns.saturating_record(t.elapsed().as_nanos() as u64);
        if response.status() != 200 {
            let answer = String::from_utf8_lossy(&answer);
            return Err(other_error(format!("POST {url}"), format!("status {}: {answer}", response.status())));
        }
        // An OTLP 200 with a partial_success would mean records were dropped: the run would not count.
        #[cfg(feature = "otlp")]
        if kind == Kind::Otlp && !answer.is_empty() {
            return Err(other_error(format!("POST {url}"), format!("partial success: {}", String::from_utf8_lossy(&answer))));
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

/// An OTLP export of `count` log records, the load generator's events `first..first + count`: the
/// entity in an attribute, the event type as the event name, the payload's JSON as the body.
#[cfg(feature = "otlp")]
fn otlp_body(spec: &LoadSpec, first: u64, count: u64) -> Vec<u8> {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use prost::Message;
    let text = |s: String| Some(AnyValue { value: Some(Value::StringValue(s)) });
    let records = (first..first + count)
        .map(|seq| {
            let e = make_event(spec, seq);
            LogRecord {
                severity_number: 9,
                severity_text: "INFO".into(),
                event_name: e.event_type,
                body: text(e.payload),
                attributes: vec![KeyValue { key: OTLP_ENTITY_ATTRIBUTE.into(), value: text(e.entity_id), ..Default::default() }],
                trace_id: (seq as u128 + 1).to_be_bytes().to_vec(),
                span_id: (seq + 1).to_be_bytes().to_vec(),
                ..Default::default()
            }
        })
        .collect();
    let service = KeyValue { key: "service.name".into(), value: text("tidelog-bench".into()), ..Default::default() };
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource { attributes: vec![service], ..Default::default() }),
            scope_logs: vec![ScopeLogs { log_records: records, ..Default::default() }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}
