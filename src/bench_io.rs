//! `collective bench io`: a data-path benchmark in the manner of `juicefs bench`.
//!
//! Three phases against a running member, in a fresh directory removed afterwards:
//! 1. large files: N streams at once, each writing its share of the total as one file of
//!    pseudo-random bytes (every chunk distinct, so nothing deduplicates);
//! 2. the same files read back by N streams, every byte verified by the client;
//! 3. small files: created, stat'ed and read back by N workers, one file per operation.
//!
//! Each phase reports throughput; small-file operations also report latency percentiles. The
//! page caches of the nodes are not dropped here (that needs root); `bench/io.sh` does it
//! between phases for cold reads.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use collective_events::pb::{self, command_envelope::Command};
use hdrhistogram::Histogram;
use rand::{RngCore, SeedableRng};

use crate::client::{Client, Consistency};
use crate::datapath::{self, NoProgress, NodePool, ReadOptions, WriteOptions};
use crate::profile::Profile;
use crate::transport::root_der;

/// Upper bound of the latency histograms, in microseconds (60 s).
const LATENCY_US_MAX: u64 = 60_000_000;
const MIB: f64 = 1024.0 * 1024.0;

#[derive(Debug, Clone)]
pub struct BenchIoConfig {
    /// Total bytes of the large-file phase, across all streams.
    pub large_bytes: u64,
    pub streams: usize,
    pub small_files: usize,
    pub small_bytes: usize,
    pub chunk_bytes: usize,
    /// 0: the member's default.
    pub replicas: u32,
    /// Keep the files written instead of removing the directory at the end.
    pub keep: bool,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchIoReport {
    pub directory: String,
    pub streams: usize,
    pub large_bytes: u64,
    pub chunk_bytes: usize,
    pub replicas: u32,
    pub write_mib_per_sec: f64,
    pub read_mib_per_sec: f64,
    pub small_files: usize,
    pub small_bytes: usize,
    pub small_files_per_sec: f64,
    pub small_stats_per_sec: f64,
    pub small_reads_per_sec: f64,
    /// Latency of small-file creates (each a plan, an upload and a commit).
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub small_read_p99_ms: f64,
}

/// Pseudo-random bytes from a seed: fast, and distinct per stream.
struct RandomInput {
    rng: rand::rngs::SmallRng,
    left: u64,
}

impl std::io::Read for RandomInput {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (buf.len() as u64).min(self.left) as usize;
        self.rng.fill_bytes(&mut buf[..n]);
        self.left -= n as u64;
        Ok(n)
    }
}

fn random_input(seed: u64, bytes: u64) -> Box<dyn std::io::Read + Send> {
    Box::new(RandomInput {
        rng: rand::rngs::SmallRng::seed_from_u64(seed),
        left: bytes,
    })
}

pub async fn run(profile: &Profile, config: &BenchIoConfig) -> anyhow::Result<BenchIoReport> {
    if config.streams == 0 {
        bail!("--streams must be at least 1");
    }
    let pool = NodePool::new(profile.identity.clone(), root_der(&profile.root_ca_pem)?);
    let run_id: u32 = rand::random();
    let directory = format!("/bench-io-{run_id:08x}");
    let mut client = Client::new(profile.clone());
    client
        .submit(Command::CreateDirectory(pb::CreateDirectory {
            path: directory.clone(),
            parents: true,
        }))
        .await
        .with_context(|| format!("creating {directory}"))?;
    let write_options = WriteOptions {
        chunk_bytes: config.chunk_bytes,
        replicas: config.replicas,
        ..WriteOptions::default()
    };

    // Phase 1: large writes.
    let share = config.large_bytes / config.streams as u64;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for stream in 0..config.streams {
        let (mut client, pool, options) = (Client::new(profile.clone()), pool.clone(), write_options.clone());
        let path = format!("{directory}/large-{stream}");
        let seed = u64::from(run_id) << 16 | stream as u64;
        tasks.spawn(async move {
            datapath::write_file(
                &mut client,
                &pool,
                &path,
                random_input(seed, share),
                &options,
                Arc::new(NoProgress),
            )
            .await
            .with_context(|| format!("writing {path}"))
        });
    }
    let mut replicas = config.replicas;
    while let Some(done) = tasks.join_next().await {
        replicas = done??.replicas;
    }
    let write_secs = started.elapsed().as_secs_f64();

    // Phase 2: large reads.
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for stream in 0..config.streams {
        let (mut client, pool) = (Client::new(profile.clone()), pool.clone());
        let path = format!("{directory}/large-{stream}");
        tasks.spawn(async move {
            let mut sink = datapath::Discard;
            datapath::read_file(
                &mut client,
                &pool,
                &path,
                &mut sink,
                &ReadOptions::default(),
                Arc::new(NoProgress),
            )
            .await
            .with_context(|| format!("reading {path}"))
        });
    }
    while let Some(done) = tasks.join_next().await {
        let summary = done??;
        if summary.bytes != share {
            bail!("read {} bytes of {}, wrote {share}", summary.bytes, summary.path);
        }
    }
    let read_secs = started.elapsed().as_secs_f64();

    // Phase 3: small files.
    let small = |worker: usize| (worker..config.small_files).step_by(config.streams);
    let (create_secs, creates) = timed_ops(config.streams, |worker| {
        let (mut client, pool, options) = (Client::new(profile.clone()), pool.clone(), write_options.clone());
        let directory = directory.clone();
        let bytes = config.small_bytes as u64;
        let files: Vec<usize> = small(worker).collect();
        async move {
            let mut latencies = Vec::with_capacity(files.len());
            for file in files {
                let began = Instant::now();
                let path = format!("{directory}/small-{file}");
                datapath::write_file(
                    &mut client,
                    &pool,
                    &path,
                    random_input(file as u64 ^ u64::from(run_id) << 32, bytes),
                    &options,
                    Arc::new(NoProgress),
                )
                .await
                .with_context(|| format!("writing {path}"))?;
                latencies.push(began.elapsed());
            }
            Ok(latencies)
        }
    })
    .await?;
    let (stat_secs, _) = timed_ops(config.streams, |worker| {
        let mut client = Client::new(profile.clone());
        let directory = directory.clone();
        let files: Vec<usize> = small(worker).collect();
        async move {
            let mut latencies = Vec::with_capacity(files.len());
            for file in files {
                let began = Instant::now();
                client
                    .stat(&format!("{directory}/small-{file}"), Consistency::Linearizable)
                    .await?;
                latencies.push(began.elapsed());
            }
            Ok(latencies)
        }
    })
    .await?;
    let (small_read_secs, reads) = timed_ops(config.streams, |worker| {
        let (mut client, pool) = (Client::new(profile.clone()), pool.clone());
        let directory = directory.clone();
        let files: Vec<usize> = small(worker).collect();
        async move {
            let mut latencies = Vec::with_capacity(files.len());
            for file in files {
                let began = Instant::now();
                let path = format!("{directory}/small-{file}");
                let mut sink = datapath::Discard;
                datapath::read_file(
                    &mut client,
                    &pool,
                    &path,
                    &mut sink,
                    &ReadOptions::default(),
                    Arc::new(NoProgress),
                )
                .await
                .with_context(|| format!("reading {path}"))?;
                latencies.push(began.elapsed());
            }
            Ok(latencies)
        }
    })
    .await?;

    if !config.keep {
        client
            .submit(Command::RemoveEntry(pb::RemoveEntry {
                path: directory.clone(),
                recursive: true,
            }))
            .await
            .with_context(|| format!("removing {directory}"))?;
    }
    let per_sec = |count: usize, secs: f64| if secs > 0.0 { count as f64 / secs } else { 0.0 };
    let moved = (share * config.streams as u64) as f64 / MIB;
    Ok(BenchIoReport {
        directory,
        streams: config.streams,
        large_bytes: share * config.streams as u64,
        chunk_bytes: config.chunk_bytes,
        replicas,
        write_mib_per_sec: moved / write_secs,
        read_mib_per_sec: moved / read_secs,
        small_files: config.small_files,
        small_bytes: config.small_bytes,
        small_files_per_sec: per_sec(config.small_files, create_secs),
        small_stats_per_sec: per_sec(config.small_files, stat_secs),
        small_reads_per_sec: per_sec(config.small_files, small_read_secs),
        p50_ms: quantile_ms(&creates, 0.5),
        p99_ms: quantile_ms(&creates, 0.99),
        p999_ms: quantile_ms(&creates, 0.999),
        small_read_p99_ms: quantile_ms(&reads, 0.99),
    })
}

/// Runs `workers` workers at once; returns the wall time and every operation's latency.
async fn timed_ops<F, Fut>(workers: usize, mut worker: F) -> anyhow::Result<(f64, Histogram<u64>)>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Vec<Duration>>> + Send + 'static,
{
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..workers {
        tasks.spawn(worker(index));
    }
    let mut histogram = Histogram::<u64>::new_with_bounds(1, LATENCY_US_MAX, 3)?;
    while let Some(done) = tasks.join_next().await {
        for latency in done?? {
            histogram.saturating_record(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
        }
    }
    Ok((started.elapsed().as_secs_f64(), histogram))
}

fn quantile_ms(histogram: &Histogram<u64>, quantile: f64) -> f64 {
    histogram.value_at_quantile(quantile) as f64 / 1000.0
}
