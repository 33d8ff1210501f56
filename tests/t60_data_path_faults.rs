//! The data path under faults, with every component a real process: three coordinators and
//! three storage nodes on loopback, files written and read through the CLI.
//!
//! - SIGKILL a node during a write, another after the writes: every acknowledged file reads
//!   back byte-identical, and repair restores two healthy replicas of every chunk.
//! - A flipped byte in a stored chunk: no read returns it, scrub finds it, repair replaces it.
//! - A full node: writes go elsewhere or fail clearly; nothing stored is harmed.
//! - A paused node (SIGSTOP) that the member still counts up: reads take its chunks from the
//!   other replica and writes place them elsewhere, each after one stall timeout; garbage
//!   collection goes on with the other nodes.
//! - Node clocks skewed with libfaketime: 15 s (tolerated) changes nothing; 10 minutes (every
//!   ticket expired by the node's clock) loses no byte, shows in `status`, gets no new chunk,
//!   and has its chunks copied elsewhere, trimmed back once its clock is right. A coordinator
//!   10 minutes ahead: writes and reads are refused, saying why; no chunk is reported lost,
//!   and nothing is.
//! - Partitions (each process in a network namespace of its own, packets dropped with
//!   nftables): a node cut off from the coordinators is declared down and its chunks copied
//!   elsewhere, then trimmed back once the link returns; a node the client cannot reach, which
//!   the member still counts up, is given up by reads and writes; a repair target cut off from
//!   the other nodes hands the copy to another; a leader cut off from the other coordinators
//!   is left by clients and nodes for the one the others elect; a follower cut off from the
//!   others costs no write and catches up; a client cut off from the leader writes through a
//!   follower, which passes its requests on, and a node cut off from the leader heartbeats
//!   through one. Nothing is lost.
//! - Mixed faults, one after another for 40 s from a seed: node and coordinator kills,
//!   pauses, partitions. Nothing acknowledged is lost, and every chunk gets two replicas back.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use rand::{RngCore, SeedableRng};
use support::net::Network;
use support::{Cluster, binary, path};

const MIB: usize = 1024 * 1024;
/// Coordinators declare a node down after this much silence, in these tests.
const DOWN_AFTER_MS: u64 = 1500;

fn env(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = vec![
        (
            "COLLECTIVE_NODE_DOWN_AFTER_MS".to_string(),
            DOWN_AFTER_MS.to_string(),
        ),
        ("COLLECTIVE_NODE_HEARTBEAT_MS".to_string(), "200".to_string()),
        ("COLLECTIVE_REPAIR_INTERVAL_MS".to_string(), "300".to_string()),
    ];
    env.extend(extra.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())));
    env
}

/// `bytes` pseudo-random bytes in a new file under the cluster's directory.
fn random_file(cluster: &Cluster, name: &str, bytes: usize, seed: u64) -> anyhow::Result<PathBuf> {
    random_file_in(cluster.dir.path(), name, bytes, seed)
}

/// [`random_file`] in `dir`.
fn random_file_in(dir: &Path, name: &str, bytes: usize, seed: u64) -> anyhow::Result<PathBuf> {
    let file = dir.join(name);
    let mut out = std::io::BufWriter::new(std::fs::File::create(&file)?);
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    let mut block = vec![0u8; MIB];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(MIB);
        rng.fill_bytes(&mut block[..n]);
        out.write_all(&block[..n])?;
        left -= n;
    }
    out.flush()?;
    Ok(file)
}

fn digest(file: &Path) -> anyhow::Result<blake3::Hash> {
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(std::fs::File::open(file)?)?;
    Ok(hasher.finalize())
}

/// Reads `remote` into a local file and returns its digest.
fn read_back(cluster: &Cluster, remote: &str) -> anyhow::Result<blake3::Hash> {
    let out = cluster
        .dir
        .path()
        .join(format!("read-{}", remote.replace('/', "_")));
    cluster.cli_ok(&["read", remote, path(&out)])?;
    let hash = digest(&out)?;
    std::fs::remove_file(&out)?;
    Ok(hash)
}

/// Per chunk of `remote`, the nodes holding a replica that the member sees up.
fn healthy_replicas(cluster: &Cluster, remote: &str) -> anyhow::Result<Vec<Vec<String>>> {
    let text = cluster.cli_ok(&["debug", "chunks", "--file", remote, "--json"])?;
    let json: serde_json::Value = serde_json::from_str(&text)?;
    let chunks = json["chunks"].as_array().context("chunks")?;
    Ok(chunks
        .iter()
        .map(|c| {
            c["replicas"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|r| r["status"] == "up")
                .filter_map(|r| r["node"].as_str().map(str::to_string))
                .collect()
        })
        .collect())
}

/// The leader's chunk health from `status --json`, once a pass reported it.
fn chunk_health(cluster: &Cluster) -> anyhow::Result<Option<serde_json::Value>> {
    let status = cluster.status_json()?;
    Ok(Some(status["chunks"].clone()).filter(|c| !c.is_null()))
}

/// Waits until every chunk of every file in `files` has `replicas` healthy replicas and the
/// leader reports nothing under-replicated or lost; returns how long that took.
fn wait_repaired(
    cluster: &Cluster,
    files: &[&str],
    replicas: usize,
    timeout: Duration,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        let health = chunk_health(cluster).ok().flatten();
        let settled = health
            .as_ref()
            .is_some_and(|h| h["under_replicated"] == 0 && h["lost"] == 0);
        let mut full = settled;
        if settled {
            for file in files {
                full &= healthy_replicas(cluster, file)?
                    .iter()
                    .all(|r| r.len() >= replicas);
            }
        }
        if full {
            return Ok(started.elapsed());
        }
        if started.elapsed() > timeout {
            cluster.dump_logs();
            bail!("not repaired within {timeout:?}: {health:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn start_nodes(cluster: &mut Cluster, names: &[&str], extra: &[&[&str]]) -> anyhow::Result<()> {
    for (i, name) in names.iter().enumerate() {
        cluster.prepare_node(name, extra.get(i).copied().unwrap_or(&[]))?;
        cluster.start_node(name)?;
    }
    for name in names {
        cluster.wait_node_status(name, "UP", Duration::from_secs(30))?;
    }
    Ok(())
}

#[test]
fn killed_nodes_lose_no_acknowledged_byte_and_repair_restores_two_replicas() -> anyhow::Result<()> {
    let mut cluster = Cluster::with_voters_env(3, env(&[]))?;
    start_nodes(&mut cluster, &["node-01", "node-02", "node-03"], &[])?;
    cluster.cli_ok(&["mkdir", "/data"])?;

    let a = random_file(&cluster, "a.bin", 256 * MIB, 1)?;
    let began = Instant::now();
    cluster.cli_ok(&["write", "/data/a.bin", path(&a), "--replicas", "2"])?;
    eprintln!("wrote 256 MiB with 2 replicas in {:?}", began.elapsed());
    ensure!(
        healthy_replicas(&cluster, "/data/a.bin")?
            .iter()
            .all(|r| r.len() == 2),
        "every chunk has two replicas after the write"
    );

    // A second write, with a node SIGKILLed while it uploads.
    let b = random_file(&cluster, "b.bin", 128 * MIB, 2)?;
    let mut writer = Command::new(binary())
        .args(["write", "/data/b.bin", path(&b), "--replicas", "2"])
        .env("COLLECTIVE_HOME", &cluster.home)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    std::thread::sleep(Duration::from_millis(400));
    let writing = writer.try_wait()?.is_none();
    cluster.kill_node("node-02");
    let killed_at = Instant::now();
    let output = writer.wait_with_output()?;
    eprintln!(
        "second write (node killed {} it finished): {}; stderr: {}",
        if writing { "before" } else { "after" },
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let mut acknowledged = vec![("/data/a.bin", digest(&a)?)];
    if output.status.success() {
        acknowledged.push(("/data/b.bin", digest(&b)?));
    } else {
        let stat = cluster.cli(&["stat", "/data/b.bin"]);
        ensure!(!stat.status.success(), "a failed write left a visible file");
        let stderr = String::from_utf8_lossy(&stat.stderr);
        ensure!(
            stderr.contains("does not exist"),
            "stat after a failed write: {stderr}"
        );
    }
    let files: Vec<&str> = acknowledged.iter().map(|(f, _)| *f).collect();
    cluster.wait_node_status("node-02", "DOWN", Duration::from_secs(30))?;
    let took = wait_repaired(&cluster, &files, 2, Duration::from_secs(120))?;
    eprintln!(
        "repair after node-02's SIGKILL: two healthy replicas of every chunk {:?} after the kill",
        killed_at.elapsed()
    );
    let _ = took;

    // While node-02 is down, one of its recorded chunk files disappears (a lost file, a
    // replaced disk). When it returns it is reconciled: the missing replica is recorded as
    // removed, the others count again.
    let chunks = serde_json::from_str::<serde_json::Value>(&cluster.cli_ok(&[
        "debug",
        "chunks",
        "--file",
        "/data/a.bin",
        "--json",
    ])?)?;
    let on_two = chunks["chunks"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| {
            c["replicas"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|r| r["node"] == "node-02@alice.home.collective")
        })
        .and_then(|c| c["hash"].as_str().map(str::to_string))
        .context("a chunk of a.bin recorded on node-02")?;
    let lost = chunk_files(&cluster.node("node-02").data_dir)
        .into_iter()
        .find(|p| p.file_name().and_then(|n| n.to_str()) == Some(on_two.as_str()))
        .context("its file on node-02")?;
    std::fs::remove_file(&lost)?;
    cluster.start_node("node-02")?;
    cluster.wait_node_status("node-02", "UP", Duration::from_secs(30))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let events = cluster.cli_ok(&["audit", "export"])?;
        if events
            .lines()
            .any(|l| l.contains("replicaRemoved") && l.contains("reconciliation") && l.contains("node-02"))
        {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "node-02 was not reconciled after its return"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // node-02's copies count again, so the chunks repair copied elsewhere have three healthy
    // replicas: the leader trims each back to two.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut exact = true;
        for file in &files {
            exact &= healthy_replicas(&cluster, file)?.iter().all(|r| r.len() == 2);
        }
        if exact {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "extra replicas were not trimmed after node-02 returned"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("extra replicas trimmed after node-02's return");
    cluster.kill_node("node-03");
    let killed_at = Instant::now();
    for (file, expected) in &acknowledged {
        ensure!(
            read_back(&cluster, file)? == *expected,
            "{file} reads back byte-identical"
        );
    }
    eprintln!(
        "all acknowledged files read back intact {:?} after node-03's SIGKILL",
        killed_at.elapsed()
    );
    cluster.wait_node_status("node-03", "DOWN", Duration::from_secs(30))?;
    wait_repaired(&cluster, &files, 2, Duration::from_secs(120))?;
    eprintln!(
        "repair after node-03's SIGKILL: two healthy replicas of every chunk {:?} after the kill",
        killed_at.elapsed()
    );
    for (file, expected) in &acknowledged {
        ensure!(
            read_back(&cluster, file)? == *expected,
            "{file} reads back byte-identical after repair"
        );
    }
    let events = cluster.cli_ok(&["audit", "export"])?;
    ensure!(events.contains("chunkPlaced"), "repairs are recorded as events");
    Ok(())
}

/// The summary `collective read --json` prints on stderr.
fn read_summary(stderr: &[u8]) -> anyhow::Result<serde_json::Value> {
    let text = String::from_utf8_lossy(stderr);
    let line = text
        .lines()
        .rev()
        .find(|line| line.starts_with('{'))
        .with_context(|| format!("no JSON summary in: {text}"))?;
    Ok(serde_json::from_str(line)?)
}

/// The environment of the paused-node tests: the member keeps a silent node up for a minute
/// (its down timeout), so clients and the leader must notice the silence themselves, which they
/// do after 2 s here (`COLLECTIVE_REPLICA_STALL_MS`).
fn paused_env(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    [
        ("COLLECTIVE_NODE_DOWN_AFTER_MS", "60000"),
        ("COLLECTIVE_NODE_HEARTBEAT_MS", "200"),
        ("COLLECTIVE_REPLICA_STALL_MS", "2000"),
    ]
    .iter()
    .chain(extra)
    .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
    .collect()
}

/// Starts the CLI with the cluster's environment and pipes for its input and output.
fn spawn_cli(cluster: &Cluster, args: &[&str]) -> anyhow::Result<std::process::Child> {
    Ok(Command::new(binary())
        .args(args)
        .envs(cluster.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("COLLECTIVE_HOME", &cluster.home)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?)
}

/// Waits up to `limit` for `child` to exit, with all its output; kills it if it does not.
fn finish_within(mut child: std::process::Child, limit: Duration) -> anyhow::Result<std::process::Output> {
    let deadline = Instant::now() + limit;
    while child.try_wait()?.is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output()?;
            bail!(
                "still running after {limit:?}; stderr: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(child.wait_with_output()?)
}

#[test]
fn a_paused_node_is_given_up_by_reads_and_writes_and_nothing_is_lost() -> anyhow::Result<()> {
    // The node is paused in the middle of each transfer, on connections that are already open.
    let mut cluster = Cluster::with_voters_env(1, paused_env(&[]))?;
    start_nodes(&mut cluster, &["node-01", "node-02", "node-03"], &[])?;
    cluster.cli_ok(&["mkdir", "/data"])?;
    let a = random_file(&cluster, "a.bin", 64 * MIB, 5)?;
    cluster.cli_ok(&["write", "/data/a.bin", path(&a), "--replicas", "2"])?;

    // A read to stdout, drained by this test: after its first 16 MiB, the node it has fetched
    // most from is paused (the reader prefers the replica it found fastest, so it will ask that
    // one again), and the rest must come from the other replicas.
    let nodes = ["node-01", "node-02", "node-03"];
    let sent_before = nodes
        .iter()
        .map(|node| cluster.node_bytes_sent(node))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut reader = spawn_cli(
        &cluster,
        &["read", "/data/a.bin", "-", "--json", "--read-ahead", "2"],
    )?;
    let mut stdout = reader.stdout.take().context("the reader's stdout")?;
    let mut content = vec![0u8; 16 * MIB];
    std::io::Read::read_exact(&mut stdout, &mut content)?;
    let mut favourite = (0, nodes[0]);
    for (node, before) in nodes.iter().zip(sent_before) {
        let sent = cluster.node_bytes_sent(node)?.saturating_sub(before);
        favourite = favourite.max((sent, node));
    }
    let favourite = favourite.1;
    cluster.pause_node(favourite, true)?;
    let began = Instant::now();
    let drain = std::thread::spawn(move || {
        let mut rest = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut rest).map(|_| rest)
    });
    let read = finish_within(reader, Duration::from_secs(60));
    let read_took = began.elapsed();

    // A write from stdin, fed by this test: its first 16 MiB are uploaded to every node, then
    // node-01 is paused and the rest is fed.
    let b = random_file(&cluster, "b.bin", 64 * MIB, 6)?;
    let b_content = std::fs::read(&b)?;
    cluster.pause_node(favourite, false)?;
    let mut writer = spawn_cli(&cluster, &["write", "/data/b.bin", "-", "--replicas", "2"])?;
    let mut stdin = writer.stdin.take().context("the writer's stdin")?;
    stdin.write_all(&b_content[..16 * MIB])?;
    std::thread::sleep(Duration::from_secs(2));
    cluster.pause_node("node-01", true)?;
    let began = Instant::now();
    stdin.write_all(&b_content[16 * MIB..])?;
    drop(stdin);
    let write = finish_within(writer, Duration::from_secs(90));
    let write_took = began.elapsed();
    cluster.pause_node("node-01", false)?;

    let read = read.with_context(|| format!("the read with {favourite} paused"))?;
    ensure!(
        read.status.success(),
        "read with {favourite} paused: {}",
        String::from_utf8_lossy(&read.stderr)
    );
    let rest = drain
        .join()
        .map_err(|_| anyhow::anyhow!("the drain thread panicked"))??;
    content.extend_from_slice(&rest);
    ensure!(
        blake3::hash(&content) == digest(&a)?,
        "the read returned the file byte for byte ({} bytes)",
        content.len()
    );
    let summary = read_summary(&read.stderr)?;
    let failovers = summary["failovers"]
        .as_u64()
        .context("failovers in the summary")?;
    let hedged = summary["hedged"].as_u64().context("hedged in the summary")?;
    eprintln!(
        "read, {favourite} paused after 16 MiB: the rest took {read_took:?}, {failovers} \
         failovers, {hedged} chunks raced"
    );
    ensure!(
        failovers + hedged >= 1,
        "the paused node was asked, and given up or raced: {summary}"
    );
    let write = write.context("the write with node-01 paused")?;
    ensure!(
        write.status.success(),
        "write with node-01 paused: {}",
        String::from_utf8_lossy(&write.stderr)
    );
    eprintln!("write, node-01 paused after 16 MiB: the rest took {write_took:?}");
    ensure!(
        read_back(&cluster, "/data/b.bin")? == digest(&b)?,
        "b.bin reads back"
    );
    ensure!(
        read_back(&cluster, "/data/a.bin")? == digest(&a)?,
        "a.bin still reads back"
    );
    for file in ["/data/a.bin", "/data/b.bin"] {
        let healthy = healthy_replicas(&cluster, file)?;
        ensure!(
            healthy.iter().all(|r| r.len() == 2),
            "{file}: every chunk keeps two healthy replicas: {healthy:?}"
        );
    }
    Ok(())
}

#[test]
fn a_paused_node_does_not_hold_garbage_collection_on_the_others() -> anyhow::Result<()> {
    // The leader's collection pass must give up on the paused node and go on with the other.
    let mut cluster = Cluster::with_voters_env(
        1,
        paused_env(&[
            ("COLLECTIVE_REPAIR_INTERVAL_MS", "300"),
            ("COLLECTIVE_GC_GRACE_MS", "500"),
            ("COLLECTIVE_GC_MIN_IDLE_MS", "0"),
        ]),
    )?;
    start_nodes(&mut cluster, &["node-01", "node-02"], &[])?;
    cluster.cli_ok(&["mkdir", "/data"])?;
    let dir_01 = cluster.node("node-01").data_dir.clone();
    let dir_02 = cluster.node("node-02").data_dir.clone();
    // One collection first, so the leader holds open connections to both nodes: a paused node
    // then stalls a call on a live connection instead of failing to connect.
    let warm = random_file(&cluster, "warm.bin", MIB, 8)?;
    cluster.cli_ok(&["write", "/data/warm.bin", path(&warm), "--replicas", "2"])?;
    cluster.cli_ok(&["rm", "/data/warm.bin"])?;
    ensure!(
        wait_until(Duration::from_secs(40), || chunk_files(&dir_01).is_empty()
            && chunk_files(&dir_02).is_empty()),
        "the first file is collected from both nodes"
    );
    let a = random_file(&cluster, "a.bin", 12 * MIB, 7)?;
    cluster.cli_ok(&["write", "/data/a.bin", path(&a), "--replicas", "2"])?;
    ensure!(
        chunk_files(&dir_01).len() == 3 && chunk_files(&dir_02).len() == 3,
        "both nodes hold the three chunks"
    );

    cluster.pause_node("node-01", true)?;
    cluster.cli_ok(&["rm", "/data/a.bin"])?;
    let began = Instant::now();
    let collected = wait_until(Duration::from_secs(40), || chunk_files(&dir_02).is_empty());
    let took = began.elapsed();
    cluster.pause_node("node-01", false)?;
    ensure!(
        collected,
        "node-02 still holds {:?} with node-01 paused",
        chunk_files(&dir_02)
    );
    eprintln!("node-02's copies collected {took:?} after the rm, node-01 paused");
    ensure!(
        wait_until(Duration::from_secs(40), || chunk_files(&dir_01).is_empty()),
        "node-01's copies are collected once it is back: {:?}",
        chunk_files(&dir_01)
    );
    Ok(())
}

/// Polls `done` every 100 ms until it holds (true) or `limit` passes (false).
fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while !done() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    true
}

/// The stored files of chunk replicas under a node's data directory (not quarantined ones).
fn chunk_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else {
            continue;
        };
        for entry in entries.flatten() {
            let p = entry.path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n == "quarantine") {
                    continue;
                }
                stack.push(p);
            } else if p
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit()))
            {
                found.push(p);
            }
        }
    }
    found
}

fn flip_byte(file: &Path) -> anyhow::Result<()> {
    let mut bytes = std::fs::read(file)?;
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(file, bytes)?;
    Ok(())
}

/// Waits up to 30 s for a `replicaRemoved` event in the audit log whose line passes `wanted`.
fn wait_replica_removed(cluster: &Cluster, what: &str, wanted: impl Fn(&str) -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let events = cluster.cli_ok(&["audit", "export"])?;
        let removed: Vec<&str> = events.lines().filter(|l| l.contains("replicaRemoved")).collect();
        if removed.iter().any(|l| wanted(l)) {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "no {what} within 30 s; replicas removed: {removed:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_flipped_byte_is_never_served_and_scrub_and_repair_replace_it() -> anyhow::Result<()> {
    let mut cluster = Cluster::single_with_env(env(&[
        ("COLLECTIVE_NODE_SCRUB_BYTES_PER_SEC", "268435456"),
        ("COLLECTIVE_NODE_SCRUB_INTERVAL_MS", "500"),
    ]))?;
    start_nodes(&mut cluster, &["node-01", "node-02"], &[])?;
    let file = random_file(&cluster, "c.bin", 12 * MIB, 3)?;
    let expected = digest(&file)?;
    cluster.cli_ok(&["write", "/c.bin", path(&file), "--replicas", "2"])?;

    let victim = chunk_files(&cluster.node("node-01").data_dir);
    ensure!(victim.len() == 3, "node-01 holds the three chunks: {victim:?}");
    flip_byte(&victim[0])?;
    let flipped_at = Instant::now();

    // The scrubber finds it and the node gives the replica up.
    wait_replica_removed(&cluster, "the scrubber's report of the corrupt copy", |l| {
        l.contains("scrub")
    })?;
    eprintln!(
        "scrub found the flipped byte {:?} after it was flipped",
        flipped_at.elapsed()
    );
    let took = wait_repaired(&cluster, &["/c.bin"], 2, Duration::from_secs(60))?;
    eprintln!("repair restored the replica {took:?} after scrub reported it");
    let restored = std::fs::read(&victim[0])?;
    ensure!(
        blake3::hash(&restored).to_hex().as_str()
            == victim[0].file_name().and_then(|n| n.to_str()).unwrap_or(""),
        "the replaced copy on node-01 is good again"
    );

    // Reads never return a corrupt byte: flip a byte on each node, one chunk each, and read.
    let on_one = chunk_files(&cluster.node("node-01").data_dir);
    let on_two = chunk_files(&cluster.node("node-02").data_dir);
    flip_byte(&on_one[1])?;
    let other = on_two
        .iter()
        .find(|p| p.file_name() != on_one[1].file_name())
        .context("another chunk on node-02")?;
    flip_byte(other)?;
    for _ in 0..3 {
        ensure!(
            read_back(&cluster, "/c.bin")? == expected,
            "every read returns the original bytes"
        );
    }
    wait_repaired(&cluster, &["/c.bin"], 2, Duration::from_secs(60))?;
    ensure!(read_back(&cluster, "/c.bin")? == expected, "and after repair");
    Ok(())
}

/// One coordinator, node-01 with its only data directory on an ext4 image of its own (512 MiB,
/// on a loop device) and its scrubber off, and node-02; both up.
fn node_01_on_its_own_disk() -> anyhow::Result<(Cluster, support::disk::Ext4Disk)> {
    let mut cluster = Cluster::single_with_env(env(&[]))?;
    let disk = support::disk::Ext4Disk::new(cluster.dir.path(), "node-01-disk", 512 * MIB as u64)?;
    cluster.prepare_node("node-01", &["--data", path(disk.mount_point())])?;
    cluster.start_node_with(
        "node-01",
        &[("COLLECTIVE_NODE_SCRUB_BYTES_PER_SEC".into(), "0".into())],
    )?;
    start_nodes(&mut cluster, &["node-02"], &[])?;
    cluster.wait_node_status("node-01", "UP", Duration::from_secs(30))?;
    Ok((cluster, disk))
}

/// A disk that can no longer read one chunk's copy: the file system refuses its inode under the
/// running node (`support::disk`). Reads go on returning the file whole, the read that met the
/// damage reports it, the member gives the replica up and repair makes a new one elsewhere.
#[test]
fn a_copy_the_disk_cannot_read_is_reported_and_replaced() -> anyhow::Result<()> {
    // The scrubber stays off on node-01: the client's read must be what finds the damage.
    let (mut cluster, disk) = node_01_on_its_own_disk()?;
    let file = random_file(&cluster, "d.bin", 12 * MIB, 7)?;
    let expected = digest(&file)?;
    cluster.cli_ok(&["write", "/d.bin", path(&file), "--replicas", "2"])?;
    // A third node to repair onto.
    start_nodes(&mut cluster, &["node-03"], &[])?;

    let on_disk = chunk_files(disk.mount_point());
    ensure!(on_disk.len() == 3, "node-01 holds the three chunks: {on_disk:?}");
    // The first chunk: read plans list its replicas by node name (rotated by the chunk's index,
    // to spread reads), so readers ask node-01 for it first and meet the damage.
    let chunks = || -> anyhow::Result<Vec<serde_json::Value>> {
        let text = cluster.cli_ok(&["debug", "chunks", "--file", "/d.bin", "--json"])?;
        let json: serde_json::Value = serde_json::from_str(&text)?;
        json["chunks"].as_array().cloned().context("chunks")
    };
    let victim = chunks()?[0]["hash"].as_str().context("a hash")?.to_owned();
    let victim_file = on_disk
        .iter()
        .find(|p| p.file_name().and_then(|n| n.to_str()) == Some(victim.as_str()))
        .context("node-01 holds the first chunk")?;
    disk.damage_inode(victim_file)?;

    for _ in 0..2 {
        ensure!(
            read_back(&cluster, "/d.bin")? == expected,
            "every read returns the file whole"
        );
    }
    wait_replica_removed(&cluster, "node-01's report of the unreadable copy", |l| {
        l.contains("node-01") && l.contains("read")
    })?;
    let took = wait_repaired(&cluster, &["/d.bin"], 2, Duration::from_secs(60))?;
    eprintln!("repair restored the replica {took:?} after the read reported it");
    let after = chunks()?;
    let holders: Vec<&str> = after[0]["replicas"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["node"].as_str())
        .collect();
    ensure!(
        holders.len() == 2 && !holders.iter().any(|n| n.starts_with("node-01@")),
        "the damaged chunk has two replicas again, neither the unreadable copy: {holders:?}"
    );
    ensure!(read_back(&cluster, "/d.bin")? == expected, "and after repair");
    Ok(())
}

/// A node whose disk dies while it runs (its file system shut down under it: every operation
/// `EIO`) takes that data directory out of service: it says so in its heartbeat, and the member
/// asks it again which chunks it holds, copies the ones it lost onto the other nodes, and places
/// no new chunk on it. Nobody reads the file meanwhile, and the scrubber is off: the node's own
/// probe must notice.
#[test]
fn a_failed_disk_is_taken_out_of_service_and_its_chunks_copied_again() -> anyhow::Result<()> {
    let (mut cluster, disk) = node_01_on_its_own_disk()?;
    let file = random_file(&cluster, "f.bin", 24 * MIB, 9)?;
    let expected = digest(&file)?;
    cluster.cli_ok(&["write", "/f.bin", path(&file), "--replicas", "2"])?;
    let on_disk = chunk_files(disk.mount_point()).len();
    ensure!(on_disk == 6, "node-01 holds the file's six chunks: {on_disk}");
    // A third node to copy them onto.
    start_nodes(&mut cluster, &["node-03"], &[])?;

    disk.fail()?;
    let failed_at = Instant::now();
    let reported = loop {
        let node = cluster.node_json("node-01")?.context("node-01 in status")?;
        let failed: Vec<String> = node["failed_data_dirs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d.as_str().map(str::to_owned))
            .collect();
        if !failed.is_empty() {
            break failed;
        }
        ensure!(
            failed_at.elapsed() < Duration::from_secs(30),
            "node-01 did not report its failed disk within 30 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    eprintln!(
        "node-01 reported {reported:?} {:?} after the disk failed",
        failed_at.elapsed()
    );
    ensure!(
        reported.len() == 1 && reported[0].contains(path(disk.mount_point())),
        "the failed directory is named: {reported:?}"
    );
    let human = cluster.cli_ok(&["status"])?;
    ensure!(
        human.contains("data directory FAILED"),
        "`status` shows the failed directory: {human}"
    );
    cluster.wait_node_status("node-01", "UP", Duration::from_secs(5))?;

    // Every chunk back to two replicas, none of them on node-01.
    let node_01 = |nodes: &[String]| nodes.iter().any(|n| n.starts_with("node-01@"));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let replicas = healthy_replicas(&cluster, "/f.bin")?;
        if replicas.iter().all(|r| r.len() == 2 && !node_01(r)) {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "the lost replicas were not copied elsewhere within 60 s: {replicas:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!(
        "every chunk had two replicas off node-01 {:?} after the disk failed",
        failed_at.elapsed()
    );
    wait_replica_removed(&cluster, "removal at reconciliation", |l| {
        l.contains("node-01") && l.contains("reconciliation")
    })?;
    ensure!(
        read_back(&cluster, "/f.bin")? == expected,
        "the file reads back whole"
    );

    // New chunks go to the working nodes only.
    let more = random_file(&cluster, "g.bin", 16 * MIB, 10)?;
    cluster.cli_ok(&["write", "/g.bin", path(&more), "--replicas", "2"])?;
    let placed = healthy_replicas(&cluster, "/g.bin")?;
    ensure!(
        placed.iter().all(|r| r.len() == 2 && !node_01(r)),
        "no new chunk is placed on the failed disk: {placed:?}"
    );
    ensure!(read_back(&cluster, "/g.bin")? == digest(&more)?);
    Ok(())
}

/// A node whose only data directory's disk is not mounted when it starts refuses to start, saying
/// why, and leaves the empty mount point empty. (Before, it filled the file system under the
/// mount point anew, and the member counted every chunk on the real disk as lost.) With the disk
/// mounted again, the node starts and serves the chunks it held.
#[test]
fn a_node_whose_disk_is_not_mounted_refuses_to_start_and_serves_again_once_it_is() -> anyhow::Result<()> {
    let (mut cluster, mut disk) = node_01_on_its_own_disk()?;
    let file = random_file(&cluster, "m.bin", 8 * MIB, 11)?;
    cluster.cli_ok(&["write", "/m.bin", path(&file), "--replicas", "2"])?;
    ensure!(
        chunk_files(disk.mount_point()).len() == 2,
        "node-01 holds both chunks"
    );

    cluster.kill_node("node-01");
    disk.unmount()?;
    let mut node = Command::new(binary())
        .args([
            "node",
            "run",
            "--data-dir",
            path(&cluster.node("node-01").data_dir),
        ])
        .envs(cluster.env.iter().cloned())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let exited = wait_until(Duration::from_secs(20), || {
        node.try_wait().ok().flatten().is_some()
    });
    if !exited {
        let _ = node.kill();
        let _ = node.wait();
        anyhow::bail!("node-01 started on the empty mount point");
    }
    let output = node.wait_with_output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(!output.status.success(), "the node refuses to start");
    ensure!(stderr.contains("is its disk mounted"), "and says why: {stderr}");
    ensure!(
        std::fs::read_dir(disk.mount_point())?.next().is_none(),
        "nothing was written under the mount point"
    );

    disk.mount()?;
    cluster.start_node("node-01")?;
    cluster.wait_node_status("node-01", "UP", Duration::from_secs(30))?;
    // node-01 alone now serves the file.
    cluster.kill_node("node-02");
    ensure!(
        read_back(&cluster, "/m.bin")? == digest(&file)?,
        "node-01 serves its chunks again"
    );
    Ok(())
}

/// A node behind a slow link: a read probes it with one chunk, races that fetch once it runs
/// long, and takes the chunks from the nearer replica (at most the probe comes from the slow one).
#[test]
fn reads_take_chunks_from_the_nearer_replica() -> anyhow::Result<()> {
    let mut cluster = Cluster::in_network(env(&[]))?;
    start_nodes(&mut cluster, &["node-01", "node-02"], &[])?;
    let file = random_file(&cluster, "n.bin", 48 * MIB, 8)?;
    cluster.cli_ok(&["write", "/n.bin", path(&file), "--replicas", "2"])?;
    // node-01 now sends 24 Mbit/s: about 1.4 s per 4 MiB chunk. Read plans list it first for
    // every other chunk (by name, rotated by the chunk's index).
    let namespace = cluster
        .node("node-01")
        .namespace
        .clone()
        .context("node-01's namespace")?;
    cluster.network().shape(&namespace, "24mbit")?;
    let out = cluster.dir.path().join("n.out");
    let read = cluster.cli(&["read", "/n.bin", path(&out), "--json"]);
    ensure!(
        read.status.success(),
        "read failed: {}",
        String::from_utf8_lossy(&read.stderr)
    );
    ensure!(digest(&out)? == digest(&file)?, "the file reads back whole");
    let summary = read_summary(&read.stderr)?;
    eprintln!("{summary}");
    let from = summary["fetched_from"]
        .as_object()
        .context("chunks served by node")?;
    let served: u64 = from.values().filter_map(|n| n.as_u64()).sum();
    ensure!(served == 12, "12 chunks served in all: {from:?}");
    let slow = from
        .get(&format!("node-01@{}.{}", support::MEMBER, support::FEDERATION))
        .and_then(|n| n.as_u64())
        .unwrap_or(0);
    ensure!(
        slow <= 2,
        "the node behind the slow link served {slow} of 12 chunks: {from:?}"
    );
    Ok(())
}

#[test]
fn a_full_node_gets_no_more_chunks_and_keeps_what_it_has() -> anyhow::Result<()> {
    let mut cluster = Cluster::single_with_env(env(&[]))?;
    let small = 96 * MIB;
    let capacity = small.to_string();
    start_nodes(
        &mut cluster,
        &["node-01", "node-02"],
        &[&["--capacity", &capacity], &[]],
    )?;
    // One replica each: chunks that do not fit on node-01 go to node-02.
    let first = random_file(&cluster, "first.bin", 64 * MIB, 4)?;
    cluster.cli_ok(&["write", "/first.bin", path(&first), "--replicas", "1"])?;
    let big = random_file(&cluster, "big.bin", 256 * MIB, 5)?;
    cluster.cli_ok(&["write", "/big.bin", path(&big), "--replicas", "1"])?;
    let on_small: u64 = chunk_files(&cluster.node("node-01").data_dir)
        .iter()
        .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum();
    ensure!(
        on_small <= small as u64,
        "node-01 holds {on_small} bytes, above its capacity"
    );
    ensure!(read_back(&cluster, "/first.bin")? == digest(&first)?);
    ensure!(read_back(&cluster, "/big.bin")? == digest(&big)?);

    // Two replicas of another large file cannot fit: the write fails clearly, leaves nothing.
    let more = random_file(&cluster, "more.bin", 128 * MIB, 6)?;
    let output = cluster.cli(&["write", "/more.bin", path(&more), "--replicas", "2"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(!output.status.success(), "a write that cannot be placed fails");
    ensure!(
        stderr.contains("room") || stderr.contains("full") || stderr.contains("space"),
        "the error says why: {stderr}"
    );
    ensure!(
        !cluster.cli(&["stat", "/more.bin"]).status.success(),
        "nothing visible"
    );
    ensure!(
        read_back(&cluster, "/first.bin")? == digest(&first)?,
        "stored files unharmed"
    );
    ensure!(
        read_back(&cluster, "/big.bin")? == digest(&big)?,
        "stored files unharmed"
    );
    Ok(())
}

/// The environment that runs a process under libfaketime with its wall clock `offset` from the
/// real one (e.g. "+600s"); its monotonic clock, which timers and timeouts use, stays real.
fn skewed_clock(offset: &str) -> anyhow::Result<Vec<(String, String)>> {
    let library = ["x86_64-linux-gnu", "aarch64-linux-gnu", ""]
        .iter()
        .map(|triple| {
            Path::new("/usr/lib")
                .join(triple)
                .join("faketime/libfaketime.so.1")
        })
        .find(|candidate| candidate.exists())
        .context("libfaketime is not installed (scripts/setup.sh installs Debian's libfaketime)")?;
    Ok(vec![
        ("LD_PRELOAD".to_string(), library.display().to_string()),
        ("FAKETIME".to_string(), offset.to_string()),
        ("FAKETIME_DONT_FAKE_MONOTONIC".to_string(), "1".to_string()),
    ])
}

/// Node `name`'s clock offset from the leader's, as `status --json` shows it.
fn clock_offset(cluster: &Cluster, name: &str) -> anyhow::Result<Option<i64>> {
    let status = cluster.status_json()?;
    Ok(status["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|n| n["address"].as_str().is_some_and(|a| a.starts_with(name)))
        .and_then(|n| n["clock_offset_ms"].as_i64()))
}

/// Four files of 12 MiB of pseudo-random bytes (from `seed` on), written as `/{prefix}-N.bin`;
/// their remote paths and digests.
fn write_files(cluster: &Cluster, prefix: &str, seed: u64) -> anyhow::Result<Vec<(String, blake3::Hash)>> {
    let mut written = Vec::new();
    for i in 0..4u64 {
        let file = random_file(cluster, &format!("{prefix}-{i}.bin"), 12 * MIB, seed + i)?;
        let remote = format!("/{prefix}-{i}.bin");
        cluster.cli_ok(&["write", &remote, path(&file)])?;
        written.push((remote, digest(&file)?));
    }
    Ok(written)
}

/// Every file of `files` (remote path, digest) reads back byte-identical.
fn ensure_read_back<'a>(
    cluster: &Cluster,
    files: impl IntoIterator<Item = &'a (String, blake3::Hash)>,
) -> anyhow::Result<()> {
    for (remote, expected) in files {
        ensure!(
            read_back(cluster, remote)? == *expected,
            "{remote} reads back whole"
        );
    }
    Ok(())
}

/// The nodes holding a replica of some chunk of `files`.
fn nodes_holding(cluster: &Cluster, files: &[String]) -> anyhow::Result<Vec<String>> {
    let mut holding = Vec::new();
    for file in files {
        for replicas in healthy_replicas(cluster, file)? {
            holding.extend(replicas);
        }
    }
    holding.sort();
    holding.dedup();
    Ok(holding)
}

#[test]
fn a_node_with_a_skewed_clock_costs_no_byte_and_tolerated_skew_changes_nothing() -> anyhow::Result<()> {
    // Tickets live 5 minutes and nodes tolerate 30 s of skew. node-03 runs 15 s ahead (within
    // it); node-04 starts on time, then is restarted 10 minutes ahead, where every ticket the
    // coordinator issues has expired by its clock. Every file, written before or after, reads
    // back whole; the leader sees node-04's clock in its heartbeats, `status` says so, no new
    // chunk is placed on it, and its chunks are copied elsewhere; once its clock is right
    // again, the extra replicas are trimmed.
    let mut cluster = Cluster::single_with_env(env(&[]))?;
    let names = ["node-01", "node-02", "node-03", "node-04"];
    for name in names {
        cluster.prepare_node(name, &[])?;
    }
    cluster.start_node("node-01")?;
    cluster.start_node("node-02")?;
    cluster.start_node_with("node-03", &skewed_clock("+15s")?)?;
    cluster.start_node("node-04")?;
    for name in names {
        cluster.wait_node_status(name, "UP", Duration::from_secs(30))?;
    }
    let before = write_files(&cluster, "before", 40)?;
    let remotes: Vec<String> = before.iter().map(|(r, _)| r.clone()).collect();
    let holding = nodes_holding(&cluster, &remotes)?;
    ensure!(
        holding.iter().any(|n| n.starts_with("node-03")),
        "node-03, 15 s ahead, takes replicas like any node: {holding:?}"
    );
    ensure!(
        holding.iter().any(|n| n.starts_with("node-04")),
        "node-04 holds replicas of the first files: {holding:?}"
    );

    cluster.kill_node("node-04");
    cluster.start_node_with("node-04", &skewed_clock("+600s")?)?;
    cluster.wait_node_status("node-04", "UP", Duration::from_secs(30))?;
    // The leader compares each heartbeat's clock with its own, and `status` shows the offset.
    let offset = |name: &str| clock_offset(&cluster, name);
    let started = Instant::now();
    while offset("node-04")?.is_none_or(|o| o <= 590_000) {
        ensure!(
            started.elapsed() < Duration::from_secs(10),
            "status shows node-04's clock 600 s ahead: {:?}",
            offset("node-04")?
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let node_03 = offset("node-03")?.context("node-03's clock offset")?;
    ensure!(
        (5_000..25_000).contains(&node_03),
        "node-03 is about 15 s ahead: {node_03} ms"
    );
    let text = cluster.cli_ok(&["status"])?;
    ensure!(
        text.contains("ahead of the leader's") && text.contains("refuses every ticket"),
        "status tells the operator: {text}"
    );
    // node-04's replicas can be neither read nor copied now: repair copies those chunks to
    // other nodes.
    let started = Instant::now();
    let elsewhere = || -> anyhow::Result<bool> {
        let mut elsewhere = true;
        for remote in &remotes {
            elsewhere &= healthy_replicas(&cluster, remote)?
                .iter()
                .all(|r| r.iter().filter(|n| !n.starts_with("node-04")).count() >= 2);
        }
        Ok(elsewhere)
    };
    if !wait_until(Duration::from_secs(60), || elsewhere().unwrap_or(false)) {
        cluster.dump_logs();
        bail!("the chunks on node-04 were not copied elsewhere within 60 s");
    }
    let took = started.elapsed();
    eprintln!("chunks on the skewed node copied elsewhere in {took:?}");
    ensure_read_back(&cluster, &before)?;
    // No chunk is planned on node-04 any more: its uploads would all be refused.
    let puts_refused = || {
        std::fs::read_to_string(&cluster.node("node-04").log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("ticket refused") && l.contains("TICKET_OP_PUT"))
            .count()
    };
    let refused_before = puts_refused();
    let after = write_files(&cluster, "after", 50)?;
    ensure_read_back(&cluster, &after)?;
    for (remote, _) in &after {
        for (index, replicas) in healthy_replicas(&cluster, remote)?.iter().enumerate() {
            ensure!(
                replicas.len() >= 2 && !replicas.iter().any(|n| n.starts_with("node-04")),
                "chunk {index} of {remote}: two replicas, none on node-04: {replicas:?}"
            );
        }
    }
    ensure!(
        puts_refused() == refused_before,
        "no upload went to node-04 after its clock was known to be off"
    );
    let log = |name: &str| std::fs::read_to_string(&cluster.node(name).log).unwrap_or_default();
    ensure!(
        log("node-04").contains("ticket expired"),
        "node-04 refused the tickets it was shown (reads, the leader's checks) as expired"
    );
    ensure!(
        !log("node-03").contains("ticket refused"),
        "node-03 refused no ticket"
    );

    // With its clock right again node-04's replicas count again, and the extra ones are trimmed.
    cluster.kill_node("node-04");
    cluster.start_node("node-04")?;
    let all: Vec<&(String, blake3::Hash)> = before.iter().chain(&after).collect();
    let exact = || -> anyhow::Result<bool> {
        if clock_offset(&cluster, "node-04")?.is_none_or(|o| o.abs() >= 5_000) {
            return Ok(false);
        }
        let mut exact = true;
        for (remote, _) in &all {
            exact &= healthy_replicas(&cluster, remote)?.iter().all(|r| r.len() == 2);
        }
        Ok(exact)
    };
    if !wait_until(Duration::from_secs(60), || exact().unwrap_or(false)) {
        cluster.dump_logs();
        bail!("not back to two replicas per chunk within 60 s");
    }
    ensure_read_back(&cluster, all)?;
    Ok(())
}

#[test]
fn a_coordinator_with_a_skewed_clock_refuses_clearly_and_loses_nothing() -> anyhow::Result<()> {
    // The member's only coordinator is restarted 10 minutes ahead: every ticket it issues starts
    // in the nodes' future, so they refuse it. Writes are refused before any upload, reads fail,
    // both saying why; once its clock is right, every file reads back whole.
    let mut cluster = Cluster::single_with_env(env(&[]))?;
    start_nodes(&mut cluster, &["node-01", "node-02"], &[])?;
    let kept = random_file(&cluster, "kept.bin", 12 * MIB, 60)?;
    cluster.cli_ok(&["write", "/kept.bin", path(&kept)])?;
    let expected = digest(&kept)?;

    cluster.kill(1);
    cluster.start_with(1, &skewed_clock("+600s")?)?;
    cluster.wait_for_leader(Duration::from_secs(20))?;
    let started = Instant::now();
    for name in ["node-01", "node-02"] {
        while clock_offset(&cluster, name)?.is_none_or(|o| o > -590_000) {
            ensure!(
                started.elapsed() < Duration::from_secs(20),
                "status shows {name}'s clock 600 s behind the leader's: {:?}",
                clock_offset(&cluster, name)?
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    // The replicas are as good as ever: repair passes (every 300 ms here) report none lost.
    std::thread::sleep(Duration::from_secs(1));
    let health = chunk_health(&cluster)?.context("a repair pass reported")?;
    ensure!(
        health["lost"] == 0 && health["under_replicated"] == 0,
        "with only the leader's clock off, no chunk is reported lost: {health}"
    );
    let more = random_file(&cluster, "more.bin", 8 * MIB, 61)?;
    let write = cluster.cli(&["write", "/more.bin", path(&more)]);
    let stderr = String::from_utf8_lossy(&write.stderr);
    ensure!(!write.status.success(), "the write is refused");
    ensure!(
        stderr.contains("check the leader's clock"),
        "the error says why: {stderr}"
    );
    ensure!(
        !cluster.cli(&["stat", "/more.bin"]).status.success(),
        "nothing visible"
    );
    let out = cluster.dir.path().join("read-while-skewed");
    let read = cluster.cli(&["read", "/kept.bin", path(&out)]);
    let stderr = String::from_utf8_lossy(&read.stderr);
    ensure!(!read.status.success(), "the nodes refuse the read's tickets");
    ensure!(
        stderr.contains("not valid before") && stderr.contains("clock is behind"),
        "the error says why: {stderr}"
    );

    cluster.kill(1);
    cluster.start(1)?;
    cluster.wait_for_leader(Duration::from_secs(20))?;
    ensure!(
        read_back(&cluster, "/kept.bin")? == expected,
        "kept.bin reads back whole"
    );
    for (index, replicas) in healthy_replicas(&cluster, "/kept.bin")?.iter().enumerate() {
        ensure!(
            replicas.len() == 2,
            "chunk {index} still has two replicas: {replicas:?}"
        );
    }
    cluster.cli_ok(&["write", "/more.bin", path(&more)])?;
    ensure!(
        read_back(&cluster, "/more.bin")? == digest(&more)?,
        "more.bin is written now"
    );
    Ok(())
}

/// Every chunk of every file in `files` has exactly two replicas on nodes the member sees up.
fn exactly_two_replicas(cluster: &Cluster, files: &[&(String, blake3::Hash)]) -> anyhow::Result<bool> {
    let mut exact = true;
    for (remote, _) in files {
        exact &= healthy_replicas(cluster, remote)?.iter().all(|r| r.len() == 2);
    }
    Ok(exact)
}

/// A member in network namespaces ([`Cluster::in_network`]) with three nodes and the first
/// files written, some of them on the node about to be cut off.
struct Partitioned {
    cluster: Cluster,
    before: Vec<(String, blake3::Hash)>,
    /// The namespace of that node.
    namespace: String,
    /// Chunk files under that node's data directory once the first files are written.
    stored: usize,
}

/// [`Partitioned`], with `node` holding replicas of the files written from `seed` on.
fn partitioned(node: &str, seed: u64) -> anyhow::Result<Partitioned> {
    let mut cluster = Cluster::in_network(env(&[]))?;
    start_nodes(&mut cluster, &["node-01", "node-02", "node-03"], &[])?;
    let before = write_files(&cluster, "before", seed)?;
    let remotes: Vec<String> = before.iter().map(|(r, _)| r.clone()).collect();
    ensure!(
        nodes_holding(&cluster, &remotes)?
            .iter()
            .any(|n| n.starts_with(node)),
        "{node} holds replicas of the first files"
    );
    let namespace = cluster
        .node(node)
        .namespace
        .clone()
        .context("the node's namespace")?;
    let stored = chunk_files(&cluster.node(node).data_dir).len();
    Ok(Partitioned {
        cluster,
        before,
        namespace,
        stored,
    })
}

#[test]
fn a_node_cut_off_from_the_coordinators_loses_nothing_and_is_reconciled_once_healed() -> anyhow::Result<()> {
    // Every packet between node-01 and the coordinators is dropped, both ways, while the client
    // still reaches it. The member declares it down, copies its chunks to the others, and writes
    // go elsewhere; every file reads back whole. Once the link is back node-01 is up again, its
    // replicas count again, and the extra copies are trimmed to two per chunk.
    let Partitioned {
        cluster,
        before,
        namespace,
        stored,
    } = partitioned("node-01", 60)?;

    let coordinator = Network::coordinator_address(1);
    cluster.network().cut(&namespace, &coordinator)?;
    let cut = Instant::now();
    cluster.wait_node_status("node-01", "DOWN", Duration::from_secs(30))?;
    let remotes: Vec<&str> = before.iter().map(|(r, _)| r.as_str()).collect();
    wait_repaired(&cluster, &remotes, 2, Duration::from_secs(60))?;
    eprintln!(
        "node-01 cut off: down and its chunks copied elsewhere {:?} after the cut",
        cut.elapsed()
    );
    ensure_read_back(&cluster, &before)?;
    let during = write_files(&cluster, "during", 70)?;
    ensure_read_back(&cluster, &during)?;
    ensure!(
        chunk_files(&cluster.node("node-01").data_dir).len() == stored,
        "no chunk was placed on node-01 while the member could not hear it"
    );

    cluster.network().heal(&namespace, &coordinator)?;
    let healed = Instant::now();
    cluster.wait_node_status("node-01", "UP", Duration::from_secs(30))?;
    eprintln!("node-01 up {:?} after the link came back", healed.elapsed());
    let all: Vec<&(String, blake3::Hash)> = before.iter().chain(&during).collect();
    if !wait_until(Duration::from_secs(60), || {
        exactly_two_replicas(&cluster, &all).unwrap_or(false)
    }) {
        cluster.dump_logs();
        bail!("not back to two replicas per chunk within 60 s of the link coming back");
    }
    eprintln!(
        "two replicas per chunk again {:?} after the link came back",
        healed.elapsed()
    );
    ensure_read_back(&cluster, all)?;
    Ok(())
}

#[test]
fn a_node_the_client_cannot_reach_is_given_up_and_nothing_is_lost() -> anyhow::Result<()> {
    // Every packet between the client and node-02 is dropped, both ways, while node-02 keeps
    // heartbeating: the member counts it up and keeps planning on it. New connections to it
    // get no answer at all (unlike a paused node, whose kernel still accepts them). Reads take
    // its chunks from the other replica and writes place them elsewhere, each within the
    // connect timeout; nothing is lost, and once the link is back everything reads back.
    let Partitioned {
        cluster,
        before,
        namespace,
        stored,
    } = partitioned("node-02", 80)?;

    cluster.network().cut(&namespace, Network::CLIENT)?;
    std::thread::sleep(Duration::from_millis(2 * DOWN_AFTER_MS));
    ensure!(
        cluster.node_json("node-02")?.is_some_and(|n| n["status"] == "UP"),
        "the member still hears node-02"
    );
    // A dial that gets no answer is given up after the data path's connect timeout (3 s), not
    // the kernel's (about two minutes); the bound leaves room for a slow debug build.
    for (remote, expected) in &before {
        let started = Instant::now();
        ensure!(
            read_back(&cluster, remote)? == *expected,
            "{remote} reads back whole"
        );
        let took = started.elapsed();
        eprintln!("{remote} read with node-02 unreachable in {took:?}");
        ensure!(took < Duration::from_secs(20), "{remote} took {took:?} to read");
    }
    let started = Instant::now();
    let during = write_files(&cluster, "during", 90)?;
    eprintln!(
        "{} files written with node-02 unreachable in {:?}",
        during.len(),
        started.elapsed()
    );
    ensure!(
        chunk_files(&cluster.node("node-02").data_dir).len() == stored,
        "nothing reached node-02"
    );
    for (remote, _) in &during {
        for (index, replicas) in healthy_replicas(&cluster, remote)?.iter().enumerate() {
            ensure!(
                replicas.len() >= 2 && !replicas.iter().any(|n| n.starts_with("node-02")),
                "chunk {index} of {remote}: two replicas, none on node-02: {replicas:?}"
            );
        }
    }

    cluster.network().heal(&namespace, Network::CLIENT)?;
    ensure_read_back(&cluster, before.iter().chain(&during))?;
    Ok(())
}

#[test]
fn repair_routes_around_a_target_that_cannot_reach_the_source() -> anyhow::Result<()> {
    // node-04 joins empty after the first writes, and every packet between it and the other
    // nodes is dropped; the member and the client still reach it. node-03 is then killed. The
    // empty node-04 is the natural target for the copies node-03 held, but it cannot fetch them
    // from their other replicas: repair must have another node make each copy, and every file
    // still reads back whole.
    let mut cluster = Cluster::in_network(env(&[]))?;
    start_nodes(&mut cluster, &["node-01", "node-02", "node-03"], &[])?;
    let before = write_files(&cluster, "before", 100)?;
    start_nodes(&mut cluster, &["node-04"], &[])?;
    let namespace = cluster
        .node("node-04")
        .namespace
        .clone()
        .context("node-04's namespace")?;
    let peers: Vec<String> = ["node-01", "node-02", "node-03"]
        .iter()
        .map(|name| {
            let endpoint = &cluster.node(name).endpoint;
            endpoint.split(':').next().unwrap_or(endpoint).to_owned()
        })
        .collect();
    for peer in &peers {
        cluster.network().cut(&namespace, peer)?;
    }

    cluster.kill_node("node-03");
    cluster.wait_node_status("node-03", "DOWN", Duration::from_secs(30))?;
    let remotes: Vec<&str> = before.iter().map(|(r, _)| r.as_str()).collect();
    let took = wait_repaired(&cluster, &remotes, 2, Duration::from_secs(60))?;
    eprintln!("repaired around the cut-off node-04 in {took:?}");
    ensure_read_back(&cluster, &before)?;
    for peer in &peers {
        cluster.network().heal(&namespace, peer)?;
    }
    ensure_read_back(&cluster, &before)?;
    Ok(())
}

/// One write of the writer in [`writes_through`].
struct Attempt {
    remote: String,
    digest: blake3::Hash,
    acknowledged: bool,
    started: Instant,
    took: Duration,
}

/// What the writer in [`writes_through`] did, and when the fault began and ended.
struct Writes {
    attempts: Vec<Attempt>,
    cut_at: Instant,
    healed_at: Instant,
}

impl Writes {
    /// The writes started while the links were cut.
    fn during(&self) -> impl Iterator<Item = &Attempt> {
        self.attempts
            .iter()
            .filter(|a| a.started >= self.cut_at && a.started < self.healed_at)
    }

    /// There were writes started while the links were cut, and each was acknowledged.
    fn ensure_acknowledged_during_the_cut(&self) -> anyhow::Result<()> {
        ensure!(
            self.during().count() > 0 && self.during().all(|a| a.acknowledged),
            "every write during the cut is acknowledged"
        );
        Ok(())
    }

    /// There were writes started once the links were back, and each was acknowledged.
    fn ensure_acknowledged_after_the_heal(&self) -> anyhow::Result<()> {
        let after: Vec<&Attempt> = self
            .attempts
            .iter()
            .filter(|a| a.started >= self.healed_at)
            .collect();
        ensure!(
            !after.is_empty() && after.iter().all(|a| a.acknowledged),
            "every write after the heal is acknowledged"
        );
        Ok(())
    }
}

/// Three coordinators and three nodes, each in a network namespace of its own.
fn three_coordinators_in_network() -> anyhow::Result<Cluster> {
    let mut cluster = Cluster::in_network(env(&[]))?;
    cluster.add_coordinator(2, true)?;
    cluster.add_coordinator(3, true)?;
    start_nodes(&mut cluster, &["node-01", "node-02", "node-03"], &[])?;
    Ok(cluster)
}

/// Three coordinators and three nodes, each in a namespace of its own. A writer writes one
/// 1 MiB file after another while `fault` runs: 2 s in, it is given the cluster and the
/// leader's id, injects faults (cuts links, kills or pauses processes), undoes them, and
/// returns when it began and when it was done. The writer stops 3 s after that. Then every
/// acknowledged write must read back whole, and a write that failed must have left either
/// nothing or the whole file (an ambiguous failure: committed, but not acknowledged). What else
/// must hold is the test's to check.
fn writes_through(
    fault: impl FnOnce(&mut Cluster, u64) -> anyhow::Result<(Instant, Instant)>,
) -> anyhow::Result<(Cluster, Writes)> {
    let mut cluster = three_coordinators_in_network()?;
    // The writer runs the CLI as the cluster does, while the fault has the cluster.
    let (env, home, dir) = (
        cluster.env.clone(),
        cluster.home.clone(),
        cluster.dir.path().to_path_buf(),
    );
    let cli = |args: &[&str]| {
        Command::new(binary())
            .args(args)
            .envs(env.iter().cloned())
            .env("COLLECTIVE_HOME", &home)
            .stdin(Stdio::null())
            .output()
    };
    let stop = std::sync::atomic::AtomicBool::new(false);
    let writes = std::thread::scope(|scope| -> anyhow::Result<Writes> {
        let writer = scope.spawn(|| -> anyhow::Result<Vec<Attempt>> {
            let mut attempts = Vec::new();
            for i in 0.. {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let file = random_file_in(&dir, "w.bin", MIB, 1000 + i)?;
                let (remote, digest) = (format!("/w-{i}.bin"), digest(&file)?);
                let started = Instant::now();
                let output = cli(&["write", &remote, path(&file)])?;
                let acknowledged = output.status.success();
                if !acknowledged {
                    eprintln!(
                        "{remote} failed: {}",
                        String::from_utf8_lossy(&output.stderr).trim()
                    );
                }
                attempts.push(Attempt {
                    remote,
                    digest,
                    acknowledged,
                    started,
                    took: started.elapsed(),
                });
            }
            Ok(attempts)
        });
        let fault = (|| {
            std::thread::sleep(Duration::from_secs(2));
            let leader = cluster.wait_for_leader(Duration::from_secs(10))?;
            let (cut_at, healed_at) = fault(&mut cluster, leader)?;
            std::thread::sleep(Duration::from_secs(3));
            anyhow::Ok((cut_at, healed_at))
        })();
        // The writer stops whatever happened to the fault, so a failure ends the test at once.
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let attempts = writer
            .join()
            .map_err(|_| anyhow::anyhow!("the writer panicked"))??;
        let (cut_at, healed_at) = fault?;
        Ok(Writes {
            attempts,
            cut_at,
            healed_at,
        })
    })?;

    cluster.wait_for_leader(Duration::from_secs(30))?;
    let acknowledged = |a: &&Attempt| a.acknowledged;
    eprintln!(
        "{} writes, {} acknowledged; started during the cut: {} ({} acknowledged); slowest {:?}",
        writes.attempts.len(),
        writes.attempts.iter().filter(acknowledged).count(),
        writes.during().count(),
        writes.during().filter(acknowledged).count(),
        writes.attempts.iter().map(|a| a.took).max().unwrap_or_default(),
    );
    for attempt in &writes.attempts {
        let out = cluster.dir.path().join("read-back.bin");
        let read = cluster.cli(&["read", &attempt.remote, path(&out)]);
        let whole = read.status.success() && digest(&out)? == attempt.digest;
        if attempt.acknowledged {
            ensure!(
                whole,
                "acknowledged {} reads back whole: {}",
                attempt.remote,
                String::from_utf8_lossy(&read.stderr)
            );
        } else {
            ensure!(
                whole || String::from_utf8_lossy(&read.stderr).contains("does not exist"),
                "failed {} is either whole or absent: {}",
                attempt.remote,
                String::from_utf8_lossy(&read.stderr)
            );
        }
    }
    Ok((cluster, writes))
}

/// Cuts (or heals, with `heal`) every link between coordinator `id` and the other two.
fn isolate_coordinator(cluster: &Cluster, id: u64, heal: bool) -> anyhow::Result<()> {
    let namespace = cluster.network().coordinator_namespace(id);
    for other in (1..=3).filter(|other| *other != id) {
        let address = Network::coordinator_address(other);
        if heal {
            cluster.network().heal(&namespace, &address)?;
        } else {
            cluster.network().cut(&namespace, &address)?;
        }
    }
    Ok(())
}

#[test]
fn an_isolated_leader_loses_no_acknowledged_write() -> anyhow::Result<()> {
    // Every packet between the leader and the other two coordinators is dropped for 8 s (the
    // client and the nodes still reach all three). Writes go on through the leader the other
    // two elect, and every write after the heal succeeds.
    let (_cluster, writes) = writes_through(|cluster, leader| {
        let cut_at = Instant::now();
        isolate_coordinator(cluster, leader, false)?;
        eprintln!("coordinator {leader} (the leader) cut off from the others");
        std::thread::sleep(Duration::from_secs(2));
        // Asked directly, the stale leader says it is cut off rather than healthy.
        let status = cluster.cli_with_home(&cluster.home_for(leader)?, &["status", "--json"]);
        let status: serde_json::Value = serde_json::from_slice(&status.stdout)
            .with_context(|| String::from_utf8_lossy(&status.stderr).into_owned())?;
        ensure!(
            status["health"] == "unavailable"
                && status["health_detail"]
                    .as_str()
                    .is_some_and(|d| d.contains("cut off from a quorum")),
            "the cut-off leader's status: {} ({})",
            status["health"],
            status["health_detail"]
        );
        std::thread::sleep(Duration::from_secs(6));
        isolate_coordinator(cluster, leader, true)?;
        Ok((cut_at, Instant::now()))
    })?;
    // The two coordinators still in touch elect a leader and serve: the nodes and the client
    // leave the stale one (it refuses what only a leader with a quorum may do), so the new
    // leader neither waits on them nor declares the nodes down.
    ensure!(
        writes.during().any(|a| a.acknowledged),
        "writes are acknowledged while the old leader is cut off"
    );
    writes.ensure_acknowledged_after_the_heal()?;
    Ok(())
}

#[test]
fn an_isolated_follower_costs_no_write_and_catches_up() -> anyhow::Result<()> {
    // Every packet between a follower and the other two coordinators is dropped for 8 s (the
    // client and the nodes still reach all three). The leader keeps its quorum, so every write
    // is acknowledged, during the cut and after it, whichever coordinator the client asks
    // first; once healed, the follower has every acknowledged write.
    let mut isolated = 0;
    let (cluster, writes) = writes_through(|cluster, leader| {
        isolated = (1..=3).find(|id| *id != leader).context("a follower")?;
        let cut_at = Instant::now();
        isolate_coordinator(cluster, isolated, false)?;
        eprintln!("coordinator {isolated} (a follower) cut off from the others");
        std::thread::sleep(Duration::from_secs(8));
        isolate_coordinator(cluster, isolated, true)?;
        Ok((cut_at, Instant::now()))
    })?;
    writes.ensure_acknowledged_during_the_cut()?;
    writes.ensure_acknowledged_after_the_heal()?;
    let last = writes.attempts.last().context("some writes")?;
    let home = cluster.home_for(isolated)?;
    let caught_up = wait_until(Duration::from_secs(10), || {
        cluster
            .cli_with_home(&home, &["stat", &last.remote, "--stale-ms", "5000"])
            .status
            .success()
    });
    ensure!(
        caught_up,
        "the follower has the last write {} once healed",
        last.remote
    );
    Ok(())
}

#[test]
fn a_client_cut_off_from_the_leader_still_writes_and_reads_through_the_followers() -> anyhow::Result<()> {
    // Every packet between the client and the leader is dropped for 25 s; the coordinators and
    // the nodes still reach one another, and the client still reaches the followers and the
    // nodes. A client that cannot dial the leader asks a follower to pass its requests on,
    // for writes and for reads.
    // The write in flight at the cut waits for its connection to the leader to be given up
    // and for one dial to fail (5 s). That process leaves a hint in the profile, so the later
    // writes (new processes) go to a follower at once instead of each waiting on its own dial.
    let (_cluster, writes) = writes_through(|cluster, leader| {
        let namespace = cluster.network().coordinator_namespace(leader);
        let cut_at = Instant::now();
        cluster.network().cut(&namespace, Network::CLIENT)?;
        eprintln!("the client cut off from coordinator {leader} (the leader)");
        // Reads go through a follower too: the plan and its tickets are the leader's, made out
        // to the client.
        let out = cluster.dir.path().join("read-during-the-cut.bin");
        let read = cluster.cli(&["read", "/w-0.bin", path(&out)]);
        ensure!(
            read.status.success(),
            "a read during the cut: {}",
            String::from_utf8_lossy(&read.stderr)
        );
        ensure!(
            digest(&out)? == digest(&random_file(cluster, "w-0.bin", MIB, 1000)?)?,
            "/w-0.bin reads back whole during the cut"
        );
        std::thread::sleep(Duration::from_secs(25).saturating_sub(cut_at.elapsed()));
        cluster.network().heal(&namespace, Network::CLIENT)?;
        Ok((cut_at, Instant::now()))
    })?;
    writes.ensure_acknowledged_during_the_cut()?;
    writes.ensure_acknowledged_after_the_heal()?;
    // A 1 MiB write takes well under a second here; one that took the dial limit dialed the
    // leader. The first write started during the cut may still have (the one in flight may not
    // have marked it yet); the others must not.
    let took: Vec<Duration> = writes.during().map(|a| a.took).collect();
    ensure!(
        took.len() >= 3 && took.iter().filter(|t| **t >= Duration::from_secs(5)).count() <= 1,
        "writes during the cut each dialed the unreachable leader again: {took:?}"
    );
    Ok(())
}

#[test]
fn a_node_cut_off_from_the_leader_alone_heartbeats_through_the_followers() -> anyhow::Result<()> {
    // Three coordinators. Every packet between node-01 and the leader is dropped for 30 s; the
    // node still reaches the followers, and the client reaches everyone. The leader first
    // declares the node down (its heartbeats stop arriving). Once the node has failed to dial
    // the leader, it asks a follower to pass its heartbeats on, and the leader counts it up
    // again, all while the cut lasts. Nothing is lost, and once healed every chunk is back to
    // exactly two replicas.
    let cluster = three_coordinators_in_network()?;
    let before = write_files(&cluster, "before", 70)?;
    let leader = cluster.wait_for_leader(Duration::from_secs(10))?;
    let namespace = cluster
        .node("node-01")
        .namespace
        .clone()
        .context("the node's namespace")?;
    let leader_address = Network::coordinator_address(leader);
    cluster.network().cut(&namespace, &leader_address)?;
    let cut_at = Instant::now();
    let down = cluster.wait_node_status("node-01", "DOWN", Duration::from_secs(15))?;
    let up = cluster.wait_node_status("node-01", "UP", Duration::from_secs(25))?;
    eprintln!(
        "node-01 cut off from coordinator {leader} (the leader): down after {down:?}, up again {up:?} later"
    );
    let during = write_files(&cluster, "during", 80)?;
    ensure!(
        cut_at.elapsed() < Duration::from_secs(30),
        "the node was up again, and the files written, while the cut lasted ({:?})",
        cut_at.elapsed()
    );
    ensure_read_back(&cluster, before.iter().chain(&during))?;
    std::thread::sleep(Duration::from_secs(30).saturating_sub(cut_at.elapsed()));
    cluster.network().heal(&namespace, &leader_address)?;
    let all: Vec<&(String, blake3::Hash)> = before.iter().chain(&during).collect();
    ensure!(
        wait_until(Duration::from_secs(30), || exactly_two_replicas(&cluster, &all)
            .unwrap_or(false)),
        "every chunk is back to exactly two replicas once healed"
    );
    ensure_read_back(&cluster, all)?;
    Ok(())
}

#[test]
fn nothing_acknowledged_is_lost_under_mixed_faults() -> anyhow::Result<()> {
    // Three coordinators and three nodes; a writer writes 1 MiB files one after another for
    // about 40 s while faults follow one another, each held 4 to 12 s and undone before the
    // next: a node killed (SIGKILL) and restarted, a node paused (SIGSTOP) and resumed, a node
    // cut off from the leader, a coordinator cut off from the other two, a coordinator killed
    // and restarted. The sequence comes from a seed (COLLECTIVE_FAULT_SEED, printed) so that a
    // failure can be replayed; the default one kills a coordinator and cuts off the leader
    // right after it restarts. With one fault at a time a quorum of coordinators and two
    // nodes are always there, so every write must be acknowledged (and read back whole), and
    // repair must give every chunk of every file two replicas again.
    use rand::Rng;
    let seed: u64 = match std::env::var("COLLECTIVE_FAULT_SEED") {
        Ok(seed) => seed.parse().context("COLLECTIVE_FAULT_SEED")?,
        Err(_) => 4,
    };
    eprintln!("fault sequence seed {seed}");
    let nodes = ["node-01", "node-02", "node-03"];
    let (cluster, writes) = writes_through(|cluster, _| {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
        let began = Instant::now();
        while began.elapsed() < Duration::from_secs(40) {
            let node = nodes[rng.random_range(0..nodes.len())];
            let coordinator = rng.random_range(1..=3u64);
            let hold = Duration::from_millis(rng.random_range(4000..12000));
            let started = Instant::now();
            let fault = match rng.random_range(0..5) {
                0 => {
                    cluster.kill_node(node);
                    std::thread::sleep(hold);
                    cluster.start_node(node)?;
                    format!("{node} killed and restarted")
                }
                1 => {
                    cluster.pause_node(node, true)?;
                    std::thread::sleep(hold);
                    cluster.pause_node(node, false)?;
                    format!("{node} paused")
                }
                2 => {
                    let leader = cluster.wait_for_leader(Duration::from_secs(30))?;
                    let namespace = cluster.node(node).namespace.clone().context("a namespace")?;
                    let address = Network::coordinator_address(leader);
                    cluster.network().cut(&namespace, &address)?;
                    std::thread::sleep(hold);
                    cluster.network().heal(&namespace, &address)?;
                    format!("{node} cut off from coordinator {leader} (the leader)")
                }
                3 => {
                    isolate_coordinator(cluster, coordinator, false)?;
                    std::thread::sleep(hold);
                    isolate_coordinator(cluster, coordinator, true)?;
                    format!("coordinator {coordinator} cut off from the others")
                }
                _ => {
                    cluster.kill(coordinator);
                    std::thread::sleep(hold);
                    cluster.start(coordinator)?;
                    format!("coordinator {coordinator} killed and restarted")
                }
            };
            eprintln!("{fault}, for {:?}", started.elapsed());
            std::thread::sleep(Duration::from_secs(1));
        }
        Ok((began, Instant::now()))
    })?;
    writes.ensure_acknowledged_during_the_cut()?;
    writes.ensure_acknowledged_after_the_heal()?;
    let acknowledged: Vec<&str> = writes
        .attempts
        .iter()
        .filter(|a| a.acknowledged)
        .map(|a| a.remote.as_str())
        .collect();
    // Asking for every file's replicas takes a while: the time includes those checks.
    let took = wait_repaired(&cluster, &acknowledged, 2, Duration::from_secs(90))?;
    eprintln!(
        "every chunk of the {} acknowledged files has two replicas (checked in {took:?})",
        acknowledged.len()
    );
    Ok(())
}
