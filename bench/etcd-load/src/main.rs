//! `etcd-load`: an etcd load generator that mirrors `collective bench meta` operation for operation.
//!
//! N clients, each with its own gRPC connection, issue a fixed number of operations in total (split
//! evenly) as fast as etcd acknowledges them: either puts of a new unique key (one Raft entry each,
//! fsynced in the WAL of a quorum before the answer, etcd's default) or linearizable gets of one
//! existing key (etcd's default read, a ReadIndex round). Latency is measured per operation from the
//! client's side into an HDR histogram in microseconds, and the report has the same JSON fields as
//! ours, so bench/meta.sh can divide one by the other.

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use etcd_client::{Client, ConnectOptions};
use hdrhistogram::Histogram;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Upper bound of the latency histogram, in microseconds (60 s), as in `collective bench meta`.
const LATENCY_US_MAX: u64 = 60_000_000;
/// Bytes in each value written: small, like the directory entry a mkdir commits.
const VALUE_BYTES: usize = 16;
/// How long to wait for a connection before giving up, in seconds.
const CONNECT_TIMEOUT_SECS: u64 = 10;
/// Failed operations reported one by one; past this only the count in the report grows, so a
/// dead member does not bury the terminal in identical lines.
const ERRORS_PRINTED_MAX: u64 = 10;

/// Failed operations seen so far across all clients, to apply `ERRORS_PRINTED_MAX`.
static ERRORS_SEEN: AtomicU64 = AtomicU64::new(0);

#[derive(Debug, Parser)]
#[command(name = "etcd-load", about = "etcd counterpart of `collective bench meta`")]
struct Args {
    /// Comma-separated etcd client endpoints, e.g. 127.0.0.1:2379,127.0.0.1:22379.
    #[arg(long, value_delimiter = ',', required = true)]
    endpoints: Vec<String>,
    /// Concurrent clients, each with its own connection.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Total operations across all clients.
    #[arg(long, default_value_t = 10_000)]
    ops: usize,
    #[arg(long, value_enum, default_value_t = Workload::Put)]
    workload: Workload,
    /// Which member each client talks to. `leader` (the default) sends every client to the
    /// current leader, as Collective's client does after its first redirect, and is also etcd's
    /// faster choice on one machine (no follower-to-leader forwarding); `round-robin` (client i
    /// to endpoint i mod n) is what etcd's own benchmark tool does.
    #[arg(long, value_enum, default_value_t = Target::Leader)]
    target: Target,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
enum Workload {
    /// Each operation puts one new key (one Raft entry, fsynced on a quorum).
    Put,
    /// Each operation is a linearizable get of one existing key.
    Get,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Target {
    RoundRobin,
    Leader,
}

#[derive(Debug, serde::Serialize)]
struct Report {
    workload: Workload,
    clients: usize,
    ops: u64,
    errors: u64,
    elapsed_secs: f64,
    ops_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    max_ms: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let report = run(&args).await?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("workload     {:?}", report.workload);
        println!("clients      {}", report.clients);
        println!("operations   {} ({} failed)", report.ops, report.errors);
        println!("elapsed      {:.2} s", report.elapsed_secs);
        println!("throughput   {:.0} ops/s", report.ops_per_sec);
        println!("latency p50  {:.2} ms", report.p50_ms);
        println!("latency p99  {:.2} ms", report.p99_ms);
        println!("latency p999 {:.2} ms", report.p999_ms);
        println!("latency max  {:.2} ms", report.max_ms);
    }
    if report.errors > 0 {
        bail!(
            "{} of {} operations failed (see the warnings above)",
            report.errors,
            report.ops + report.errors
        );
    }
    Ok(())
}

async fn run(args: &Args) -> anyhow::Result<Report> {
    if args.clients == 0 || args.ops == 0 {
        bail!("--clients and --ops must be at least 1");
    }
    let targets = match args.target {
        Target::RoundRobin => args.endpoints.clone(),
        Target::Leader => vec![leader_endpoint(&args.endpoints).await?],
    };
    let base = format!("/bench-{}", hex(&rand::random::<[u8; 4]>()));
    let value = vec![b'v'; VALUE_BYTES];
    // The key every get reads, written before the clock starts (ours stats the directory it made).
    connect(&targets[0])
        .await?
        .put(base.clone(), value.clone(), None)
        .await
        .with_context(|| format!("putting {base}"))?;

    // Connect every client before the clock starts, as each of ours holds its connection open.
    let mut clients = Vec::with_capacity(args.clients);
    for index in 0..args.clients {
        clients.push(connect(&targets[index % targets.len()]).await?);
    }

    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (index, mut client) in clients.into_iter().enumerate() {
        let share = args.ops / args.clients + usize::from(index < args.ops % args.clients);
        let (base, value, workload) = (base.clone(), value.clone(), args.workload);
        tasks.spawn(async move {
            let mut histogram = Histogram::<u64>::new_with_bounds(1, LATENCY_US_MAX, 3)?;
            let mut errors = 0u64;
            for n in 0..share {
                let began = Instant::now();
                let result = match workload {
                    Workload::Put => client
                        .put(format!("{base}/c{index}-{n}"), value.clone(), None)
                        .await
                        .map(drop),
                    // Default GetOptions: linearizable, not serializable.
                    Workload::Get => client.get(base.as_str(), None).await.and_then(|response| {
                        if response.kvs().len() == 1 {
                            Ok(())
                        } else {
                            Err(etcd_client::Error::InvalidArgs(format!("{base} not found")))
                        }
                    }),
                };
                match result {
                    Ok(()) => histogram.saturating_record(elapsed_us(began)),
                    Err(error) => {
                        errors += 1;
                        if ERRORS_SEEN.fetch_add(1, Ordering::Relaxed) < ERRORS_PRINTED_MAX {
                            eprintln!("warning: bench operation failed: {error}");
                        }
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
    Ok(Report {
        workload: args.workload,
        clients: args.clients,
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

/// One client with one connection to one endpoint.
async fn connect(endpoint: &str) -> anyhow::Result<Client> {
    let options = ConnectOptions::new().with_connect_timeout(Duration::from_secs(CONNECT_TIMEOUT_SECS));
    Client::connect([endpoint], Some(options))
        .await
        .with_context(|| format!("connecting to etcd at {endpoint}"))
}

/// The endpoint whose member says it is the leader.
async fn leader_endpoint(endpoints: &[String]) -> anyhow::Result<String> {
    for endpoint in endpoints {
        let status = connect(endpoint)
            .await?
            .status()
            .await
            .with_context(|| format!("status of {endpoint}"))?;
        let me = status.header().map(|header| header.member_id());
        if me == Some(status.leader()) {
            return Ok(endpoint.clone());
        }
    }
    bail!("no endpoint of {endpoints:?} is the leader")
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
