//! Workload 1 on the peers: single-row inserts from one caller, one commit per row, then point reads
//! by primary key in random order.

use std::path::Path;
use std::time::{Duration, Instant};

use super::sql::{Param, Row};
use super::{latency_ratio, throughput_ratio, PeerKind};
use crate::bench::report::{LatencyRow, Report, ThroughputRow};
use crate::bench::stats::LatencyUs;
use crate::bench::workloads::queries::Op;
use crate::bench::workloads::{seed, Ctx};
use crate::bench::{other_error, progress, table};
use crate::loadgen::{latency_histogram, LoadSpec};
use crate::Error;

const PEERS: [PeerKind; 4] =
    [PeerKind::StoolapMemory, PeerKind::StoolapFileSyncFull, PeerKind::SqliteWalNormal, PeerKind::SqliteWalFull];

pub fn run(ctx: &Ctx, report: &mut Report, dir: &Path, cap: Duration) -> Result<(), Error> {
    let events = ctx.scaled(100_000, 1_000);
    let spec = LoadSpec::default();
    let (mut inserts, mut reads) = (Vec::new(), Vec::new());
    for kind in PEERS {
        let peer = kind.create(dir)?;
        let mut conn = peer.connect()?;
        let bar = progress::bar(events, &format!("seed: {} inserts", peer.name()));
        let mut insert_ns = latency_histogram();
        let started = Instant::now();
        let mut inserted = 0u64;
        while inserted < events && started.elapsed() < cap {
            let row = Row::appended(&spec, inserted);
            let t = Instant::now();
            conn.insert(&row)?;
            insert_ns.saturating_record(t.elapsed().as_nanos() as u64);
            progress::step(&bar, inserted);
            inserted += 1;
        }
        let elapsed_s = started.elapsed().as_secs_f64();
        bar.finish_and_clear();
        let capped = if inserted < events { format!(", stopped at {:.0} s", cap.as_secs_f64()) } else { String::new() };
        inserts.push(
            ThroughputRow::new(seed::WORKLOAD, peer.name(), format!("1 caller, commit per row{capped}"), inserted, elapsed_s)
                .latency(LatencyUs::of(&insert_ns)),
        );

        let mut ids: Vec<i64> = (0..inserted as i64).collect();
        fastrand::shuffle(&mut ids);
        let mut read_ns = latency_histogram();
        for id in ids {
            let t = Instant::now();
            let found = conn.select(Op::Get, &[Param::Int(id)])?.len();
            read_ns.saturating_record(t.elapsed().as_nanos() as u64);
            if found != 1 {
                return Err(other_error(peer.name(), format!("row {id} not found after insert")));
            }
        }
        reads.push(LatencyRow::new(seed::WORKLOAD, peer.name(), seed::OP_GET, LatencyUs::of(&read_ns), 1.0));
    }
    table::print_throughput("1. seed on peers: single-row inserts, one caller", &inserts);
    table::print_latency("1. seed on peers: point reads by primary key", &reads);
    if let Some(tidelog) = report.tidelog_throughput(seed::WORKLOAD, seed::SETUP) {
        let ratios: Vec<_> = inserts.iter().map(|p| throughput_ratio("appends/s, 1 caller, each awaited", tidelog, p)).collect();
        report.peer_ratios.extend(ratios);
    }
    if let Some(tidelog) = report.tidelog_throughput(seed::WORKLOAD, seed::SETUP_ON_SHARD) {
        let measure = "appends/s, 1 caller on a shard's executor, each awaited";
        let ratios: Vec<_> = inserts.iter().map(|p| throughput_ratio(measure, tidelog, p)).collect();
        report.peer_ratios.extend(ratios);
    }
    // Pipelined appends against the fastest single-row insert there is here: stoolap in memory.
    let stoolap_memory = inserts.iter().zip(PEERS).find(|(_, kind)| matches!(kind, PeerKind::StoolapMemory)).map(|(p, _)| p);
    if let (Some(tidelog), Some(peer)) = (report.tidelog_throughput(seed::WORKLOAD, seed::SETUP_PIPELINED), stoolap_memory) {
        let ratio = throughput_ratio("pipelined appends/s, 1 caller (vs single inserts)", tidelog, peer);
        report.peer_ratios.push(ratio);
    }
    if let Some(tidelog) = report.tidelog_latency(seed::WORKLOAD, seed::OP_GET) {
        let ratios: Vec<_> = reads.iter().map(|p| latency_ratio(tidelog, p)).collect();
        report.peer_ratios.extend(ratios);
    }
    report.throughput.extend(inserts);
    report.latency.extend(reads);
    Ok(())
}
