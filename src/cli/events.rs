//! The client commands over an open store: `append`, `ingest`, `query`, `get` and `state`. They print
//! what the HTTP API answers (`tidelog::api`): an event per line, an acknowledgement, an entity's state.

use std::io::{BufRead, Write};

use clap::{Args, ValueEnum};
use tidelog::api;
use tidelog::event::parse_event_json;
use tidelog::{NewEvent, Store};

use super::{block_on, flag_error, timestamp};

#[derive(Args)]
pub struct AppendArgs {
    #[arg(long)]
    entity: String,
    #[arg(long = "type")]
    event_type: String,
    /// Payload JSON.
    #[arg(long)]
    payload: String,
    #[arg(long, default_value = tidelog::DEFAULT_TENANT)]
    tenant: String,
    /// Metadata JSON.
    #[arg(long)]
    metadata: Option<String>,
    /// Fail unless the entity is at this version (0: it has no events).
    #[arg(long)]
    expected_version: Option<u64>,
    /// Event id (UUID) for an idempotent retry.
    #[arg(long)]
    id: Option<uuid::Uuid>,
}

#[derive(Args)]
pub struct IngestArgs {
    #[arg(long, default_value_t = 1000)]
    batch_size: usize,
}

#[derive(Args)]
pub struct QueryFlags {
    #[arg(long, default_value = tidelog::DEFAULT_TENANT)]
    tenant: String,
    #[arg(long)]
    entity: Option<String>,
    #[arg(long = "type", conflicts_with = "type_prefix")]
    event_type: Option<String>,
    #[arg(long)]
    type_prefix: Option<String>,
    /// RFC 3339 or microseconds, inclusive.
    #[arg(long)]
    since: Option<String>,
    /// RFC 3339 or microseconds, exclusive.
    #[arg(long)]
    until: Option<String>,
    /// RFC 3339 or microseconds: only events at or before this instant.
    #[arg(long)]
    as_of: Option<String>,
    #[arg(long)]
    limit: Option<usize>,
    #[arg(long, default_value_t = 0)]
    offset: usize,
    #[arg(long, value_enum, default_value_t = OrderArg::Asc)]
    order: OrderArg,
}

#[derive(Clone, Copy, ValueEnum)]
enum OrderArg {
    Asc,
    Desc,
}

#[derive(Args)]
pub struct GetArgs {
    id: uuid::Uuid,
    #[arg(long, default_value = tidelog::DEFAULT_TENANT)]
    tenant: String,
}

#[derive(Args)]
pub struct StateArgs {
    entity: String,
    #[arg(long, default_value = tidelog::DEFAULT_TENANT)]
    tenant: String,
    /// RFC 3339 or microseconds: the state as of this instant.
    #[arg(long)]
    as_of: Option<String>,
}

pub fn append(store: &Store, args: AppendArgs) -> Result<(), String> {
    let AppendArgs { entity, event_type, payload, tenant, metadata, expected_version, id } = args;
    let event = NewEvent {
        id,
        tenant_id: tenant,
        entity_id: entity,
        event_type,
        timestamp_us: None,
        payload,
        metadata,
        expected_version,
    };
    let ack = block_on(store.append(event)).map_err(|e| e.to_string())?;
    println!("{}", api::ack_detail_json(&ack));
    Ok(())
}

pub fn ingest(store: &Store, args: IngestArgs) -> Result<(), String> {
    let batch_size = args.batch_size.max(1);
    let stdin = std::io::stdin().lock();
    let mut batch = Vec::with_capacity(batch_size);
    let (mut ingested, mut line_no) = (0u64, 0usize);
    let mut flush = |batch: &mut Vec<NewEvent>, first_line: usize| -> Result<(), String> {
        if batch.is_empty() {
            return Ok(());
        }
        let n = batch.len() as u64;
        block_on(store.append_batch(std::mem::take(batch)))
            .map_err(|e| format!("batch starting at line {first_line}: {e} (nothing of this batch was written)"))?;
        ingested += n;
        Ok(())
    };
    let mut batch_first_line = 1;
    for line in stdin.lines() {
        line_no += 1;
        let line = line.map_err(|e| format!("reading standard input: {e}"))?;
        if line.trim().is_empty() {
            continue;
        }
        let event = parse_event_json(&line).map_err(|e| format!("line {line_no}: {e}"))?;
        if batch.is_empty() {
            batch_first_line = line_no;
        }
        batch.push(event);
        if batch.len() == batch_size {
            flush(&mut batch, batch_first_line)?;
        }
    }
    flush(&mut batch, batch_first_line)?;
    eprintln!("ingested {ingested} events");
    Ok(())
}

pub fn query(store: &Store, q: QueryFlags) -> Result<(), String> {
    let args = api::QueryArgs {
        tenant_id: None,
        entity_id: q.entity,
        event_type: q.event_type,
        event_type_prefix: q.type_prefix,
        since: q.since,
        until: q.until,
        as_of: q.as_of,
        limit: q.limit,
        offset: Some(q.offset),
        order: Some(match q.order {
            OrderArg::Asc => "asc".into(),
            OrderArg::Desc => "desc".into(),
        }),
    };
    // The tenant as given: a local process acts on any tenant, and the store checks its name.
    let query = args.to_query_in(q.tenant).map_err(flag_error)?;
    let result = block_on(store.query(&query)).map_err(|e| e.to_string())?;
    let mut out = std::io::stdout().lock();
    for event in &result.events {
        writeln!(out, "{}", api::event_json(event)).map_err(|e| e.to_string())?;
    }
    eprintln!("{} events{}", result.events.len(), if result.has_more { " (more match)" } else { "" });
    Ok(())
}

pub fn get(store: &Store, args: GetArgs) -> Result<(), String> {
    let GetArgs { id, tenant } = args;
    match store.get(&tenant, &id) {
        Some(event) => {
            println!("{}", api::event_json(&event));
            Ok(())
        }
        None => Err(format!("no event {id} in tenant {tenant:?}")),
    }
}

pub fn state(store: &Store, args: StateArgs) -> Result<(), String> {
    let StateArgs { entity, tenant, as_of } = args;
    let as_of_us = timestamp("as_of", &as_of)?;
    match store.entity_state(&tenant, &entity, as_of_us) {
        Some(state) => {
            println!("{}", api::entity_state_json(&state));
            Ok(())
        }
        None => Err(format!("entity {entity:?} of tenant {tenant:?} has no events")),
    }
}
