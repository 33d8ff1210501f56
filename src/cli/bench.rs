//! `bench meta | io | cpu`: runs a benchmark and prints its report.

use super::args::{BenchCommand, BenchCpuArgs, BenchIoArgs, BenchMetaArgs};
use crate::profile::Profile;
use anyhow::bail;
use std::path::PathBuf;

pub async fn run(command: BenchCommand, home: PathBuf) -> anyhow::Result<()> {
    match command {
        BenchCommand::Meta(args) => meta(args, home).await,
        BenchCommand::Io(args) => io(args, home).await,
        BenchCommand::Cpu(args) => cpu(args).await,
    }
}

async fn cpu(args: BenchCpuArgs) -> anyhow::Result<()> {
    let bytes = args.bytes;
    let report = tokio::task::spawn_blocking(move || crate::bench_cpu::run(bytes)).await??;
    if args.json {
        outln!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    outln!(
        "measured over   {} MiB each, one core, CPU time",
        report.bytes >> 20
    );
    outln!(
        "blake3          {:.3} CPU s/GiB ({:.0} MiB/s)",
        report.blake3_cpu_secs_per_gib,
        1024.0 / report.blake3_cpu_secs_per_gib
    );
    outln!(
        "AES-128-GCM     {:.3} CPU s/GiB to seal and open ({:.0} MiB/s)",
        report.aes128gcm_hop_cpu_secs_per_gib,
        1024.0 / report.aes128gcm_hop_cpu_secs_per_gib
    );
    outln!(
        "ticket check    {:.0} CPU µs, {:.0} µs for a coordinator's first, {:.1} µs for one seen before",
        report.ticket_check_cpu_us,
        report.ticket_first_check_cpu_us,
        report.ticket_kept_check_cpu_us
    );
    Ok(())
}

async fn io(args: BenchIoArgs, home: PathBuf) -> anyhow::Result<()> {
    let profile = Profile::load(&home)?;
    let config = crate::bench_io::BenchIoConfig {
        large_bytes: args.bytes,
        streams: args.streams,
        small_files: args.small_files,
        small_bytes: args.small_bytes,
        chunk_bytes: args.chunk_bytes,
        replicas: args.replicas,
        keep: args.keep,
    };
    let report = crate::bench_io::run(&profile, &config).await?;
    if args.json {
        outln!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    outln!(
        "directory        {} ({})",
        report.directory,
        if args.keep { "kept" } else { "removed" }
    );
    outln!("streams          {}", report.streams);
    outln!(
        "large files      {} MiB in {}-byte chunks, {} replicas",
        report.large_bytes >> 20,
        report.chunk_bytes,
        report.replicas
    );
    outln!("write            {:.1} MiB/s", report.write_mib_per_sec);
    outln!("read             {:.1} MiB/s", report.read_mib_per_sec);
    outln!(
        "small files      {} of {} bytes",
        report.small_files,
        report.small_bytes
    );
    outln!(
        "create           {:.0} files/s (p50 {:.2} ms, p99 {:.2} ms, p999 {:.2} ms)",
        report.small_files_per_sec,
        report.p50_ms,
        report.p99_ms,
        report.p999_ms
    );
    outln!("stat             {:.0} files/s", report.small_stats_per_sec);
    outln!(
        "read             {:.0} files/s (p99 {:.2} ms)",
        report.small_reads_per_sec,
        report.small_read_p99_ms
    );
    Ok(())
}

async fn meta(args: BenchMetaArgs, home: PathBuf) -> anyhow::Result<()> {
    let profile = Profile::load(&home)?;
    let report = crate::bench_meta::run(&profile, args.workload, args.clients, args.ops).await?;
    if args.json {
        outln!("{}", serde_json::to_string(&report)?);
    } else {
        outln!("workload     {:?}", report.workload);
        outln!("clients      {}", report.clients);
        outln!("operations   {} ({} failed)", report.ops, report.errors);
        outln!("elapsed      {:.2} s", report.elapsed_secs);
        outln!("throughput   {:.0} ops/s", report.ops_per_sec);
        outln!("latency p50  {:.2} ms", report.p50_ms);
        outln!("latency p99  {:.2} ms", report.p99_ms);
        outln!("latency p999 {:.2} ms", report.p999_ms);
        outln!("latency max  {:.2} ms", report.max_ms);
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
