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
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    println!(
        "measured over   {} MiB each, one core, CPU time",
        report.bytes >> 20
    );
    println!(
        "blake3          {:.3} CPU s/GiB ({:.0} MiB/s)",
        report.blake3_cpu_secs_per_gib,
        1024.0 / report.blake3_cpu_secs_per_gib
    );
    println!(
        "AES-128-GCM     {:.3} CPU s/GiB to seal and open ({:.0} MiB/s)",
        report.aes128gcm_hop_cpu_secs_per_gib,
        1024.0 / report.aes128gcm_hop_cpu_secs_per_gib
    );
    println!(
        "ticket check    {:.0} CPU µs, {:.0} µs for a coordinator's first",
        report.ticket_check_cpu_us, report.ticket_first_check_cpu_us
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
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    println!(
        "directory        {} ({})",
        report.directory,
        if args.keep { "kept" } else { "removed" }
    );
    println!("streams          {}", report.streams);
    println!(
        "large files      {} MiB in {}-byte chunks, {} replicas",
        report.large_bytes >> 20,
        report.chunk_bytes,
        report.replicas
    );
    println!("write            {:.1} MiB/s", report.write_mib_per_sec);
    println!("read             {:.1} MiB/s", report.read_mib_per_sec);
    println!(
        "small files      {} of {} bytes",
        report.small_files, report.small_bytes
    );
    println!(
        "create           {:.0} files/s (p50 {:.2} ms, p99 {:.2} ms, p999 {:.2} ms)",
        report.small_files_per_sec, report.p50_ms, report.p99_ms, report.p999_ms
    );
    println!("stat             {:.0} files/s", report.small_stats_per_sec);
    println!(
        "read             {:.0} files/s (p99 {:.2} ms)",
        report.small_reads_per_sec, report.small_read_p99_ms
    );
    Ok(())
}

async fn meta(args: BenchMetaArgs, home: PathBuf) -> anyhow::Result<()> {
    let profile = Profile::load(&home)?;
    let report = crate::bench_meta::run(&profile, args.workload, args.clients, args.ops).await?;
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
