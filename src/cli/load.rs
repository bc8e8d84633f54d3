//! `tidelog load`: the load generator, then its throughput and latency and each shard's.

use clap::Args;
use tidelog::loadgen::{run_load, LoadSpec};
use tidelog::Store;

#[derive(Args)]
pub struct LoadArgs {
    #[arg(long, default_value_t = 64)]
    tasks: usize,
    #[arg(long, default_value_t = 100_000)]
    events: u64,
    #[arg(long, default_value_t = 1_000)]
    entities: u64,
    #[arg(long, default_value_t = 1)]
    batch_size: usize,
    #[arg(long, default_value_t = 200)]
    payload_bytes: usize,
    #[arg(long, default_value = tidelog::DEFAULT_TENANT)]
    tenant: String,
    /// Pipeline single-event appends from one caller through a Producer, this many in flight
    /// (0: `--tasks` callers, each awaiting every append).
    #[arg(long, default_value_t = 0)]
    pipeline: usize,
    /// Run the callers as tasks on this shard's executor (as the HTTP handlers run), not on a thread
    /// of their own.
    #[arg(long)]
    on_shard: Option<usize>,
    /// Print `ack <id> <tenant> <entity> <version>` for every acknowledged event.
    #[arg(long)]
    print_acks: bool,
}

pub fn load(store: &Store, args: LoadArgs) -> Result<(), String> {
    let LoadArgs { tasks, events, entities, batch_size, payload_bytes, tenant, pipeline, on_shard, print_acks } = args;
    if on_shard.is_some_and(|k| k >= store.shard_count()) {
        return Err(format!("--on-shard: the store has {} shards", store.shard_count()));
    }
    let spec = LoadSpec {
        tasks,
        events,
        entities,
        tenant_id: tenant,
        batch_size,
        payload_bytes,
        pipeline_window: pipeline,
        caller_on_shard: on_shard,
    };
    let printed = spec.clone();
    #[cfg(feature = "object-store")]
    let lag = tidelog::loadgen::LagSampler::start(store);
    let report = run_load(store, &spec, move |ack, seq| {
        if print_acks {
            let entity = tidelog::loadgen::entity_of(&printed, seq);
            println!("ack {} {} {entity} {}", ack.id, printed.tenant_id, ack.version);
        }
    })
    .map_err(|e| e.to_string())?;
    #[cfg(feature = "object-store")]
    if let Some(lag) = lag {
        report_shipping(lag, store);
    }
    let l = &report.latency_ns;
    eprintln!(
        "{} events in {:.2} s: {:.0} events/s; append latency p50 {:.1} us, p99 {:.1} us, max {:.1} us",
        report.events,
        report.elapsed.as_secs_f64(),
        report.events_per_s(),
        l.value_at_quantile(0.5) as f64 / 1e3,
        l.value_at_quantile(0.99) as f64 / 1e3,
        l.max() as f64 / 1e3
    );
    for shard in 0..store.shard_count() {
        let latency = store.shard_latency(shard);
        let (a, f) = (&latency.append_ns, &latency.fsync_ns);
        eprintln!(
            "  shard {shard}: accepted-to-acknowledged p50 {:.1} us, p99 {:.1} us; {} fdatasyncs, p50 {:.1} us, p99 {:.1} us",
            a.value_at_quantile(0.5) as f64 / 1e3,
            a.value_at_quantile(0.99) as f64 / 1e3,
            f.len(),
            f.value_at_quantile(0.5) as f64 / 1e3,
            f.value_at_quantile(0.99) as f64 / 1e3,
        );
    }
    Ok(())
}

/// With an object store: the lag sampled during the load, and what was shipped.
#[cfg(feature = "object-store")]
fn report_shipping(lag: tidelog::loadgen::LagSampler, store: &Store) {
    let lags_ms = lag.stop();
    let Some(status) = store.ship_status() else { return };
    eprintln!(
        "  object store {}: shipping lag during the load p50 {} ms, max {} ms ({} samples); {:.1} MiB in {} objects uploaded, {} rounds failed{}",
        status.url,
        lags_ms.get(lags_ms.len() / 2).copied().unwrap_or(0),
        lags_ms.last().copied().unwrap_or(0),
        lags_ms.len(),
        status.uploaded_bytes as f64 / (1 << 20) as f64,
        status.uploaded_objects,
        status.rounds_failed,
        status.last_error.map(|e| format!(" (last: {e})")).unwrap_or_default()
    );
}
