//! `bench meta`: runs the metadata load generator and prints its report.

use super::args::{BenchCommand, BenchMetaArgs};
use crate::profile::Profile;
use anyhow::bail;
use std::path::PathBuf;

pub async fn run(command: BenchCommand, home: PathBuf) -> anyhow::Result<()> {
    match command {
        BenchCommand::Meta(args) => meta(args, home).await,
    }
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
