//! `collective bench meta`: a metadata load generator in the manner of `etcdctl check perf`.
//!
//! N clients, each with its own connection, issue a fixed number of operations in total as fast
//! as the member acknowledges them: either commits (mkdir, one Raft entry each, durable on a
//! quorum before the answer) or linearizable reads (stat, after a read-index round). Latency is
//! measured per operation from the client's side.

use crate::cli::args::BenchWorkload;
use crate::client::{Client, Consistency};
use crate::profile::Profile;
use anyhow::{Context, bail};
use collective_events::pb::{self, command_envelope::Command};
use hdrhistogram::Histogram;
use std::time::{Duration, Instant};

/// Upper bound of the latency histogram, in microseconds (60 s).
const LATENCY_US_MAX: u64 = 60_000_000;

#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchReport {
    pub workload: BenchWorkload,
    pub clients: usize,
    pub ops: u64,
    pub errors: u64,
    pub elapsed_secs: f64,
    pub ops_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

pub async fn run(
    profile: &Profile,
    workload: BenchWorkload,
    clients: usize,
    ops: usize,
) -> anyhow::Result<BenchReport> {
    if clients == 0 || ops == 0 {
        bail!("--clients and --ops must be at least 1");
    }
    let run_id = hex(&rand::random::<[u8; 4]>());
    let base = format!("/bench-{run_id}");
    let mut setup = Client::new(profile.clone());
    setup
        .submit(Command::CreateDirectory(pb::CreateDirectory {
            path: base.clone(),
            parents: true,
        }))
        .await
        .with_context(|| format!("creating {base}"))?;

    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for client_index in 0..clients {
        let share = ops / clients + usize::from(client_index < ops % clients);
        let mut client = Client::new(profile.clone());
        let base = base.clone();
        tasks.spawn(async move {
            let mut histogram = Histogram::<u64>::new_with_bounds(1, LATENCY_US_MAX, 3)?;
            let mut errors = 0u64;
            for n in 0..share {
                let began = Instant::now();
                let result = match workload {
                    BenchWorkload::Mkdir => client
                        .submit(Command::CreateDirectory(pb::CreateDirectory {
                            path: format!("{base}/c{client_index}-{n}"),
                            parents: false,
                        }))
                        .await
                        .map(drop),
                    BenchWorkload::Read => client.stat(&base, Consistency::Linearizable).await.map(drop),
                };
                match result {
                    Ok(()) => histogram.saturating_record(elapsed_us(began)),
                    Err(error) => {
                        errors += 1;
                        tracing::warn!(%error, "bench operation failed");
                    }
                }
            }
            anyhow::Ok((histogram, errors))
        });
    }
    let mut histogram = Histogram::<u64>::new_with_bounds(1, LATENCY_US_MAX, 3)?;
    let mut errors = 0;
    while let Some(joined) = tasks.join_next().await {
        let (part, part_errors) = joined??;
        histogram.add(part)?;
        errors += part_errors;
    }
    let elapsed = start.elapsed();
    let done = histogram.len();
    Ok(BenchReport {
        workload,
        clients,
        ops: done,
        errors,
        elapsed_secs: elapsed.as_secs_f64(),
        ops_per_sec: done as f64 / elapsed.as_secs_f64().max(f64::EPSILON),
        p50_ms: ms(histogram.value_at_quantile(0.50)),
        p99_ms: ms(histogram.value_at_quantile(0.99)),
        p999_ms: ms(histogram.value_at_quantile(0.999)),
        max_ms: ms(histogram.max()),
    })
}

fn elapsed_us(began: Instant) -> u64 {
    u64::try_from(began.elapsed().as_micros())
        .unwrap_or(u64::MAX)
        .max(1)
}

fn ms(us: u64) -> f64 {
    Duration::from_micros(us).as_secs_f64() * 1000.0
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
