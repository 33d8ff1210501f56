//! The data path from the command line against real processes (one coordinator, one node):
//! stdin to stdout, ranges, kept versions, deduplication, garbage collection of what no version
//! references, clear refusals of bad input, outputs that are links, pipes or directories, a
//! standard output closed by its reader (of `read` and of `ls`), and a node and a command
//! whose stderr reader is gone.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use support::{Cluster, binary, path};

fn cluster() -> anyhow::Result<Cluster> {
    let mut cluster = Cluster::single_with_env(vec![
        ("COLLECTIVE_REPAIR_INTERVAL_MS".into(), "200".into()),
        ("COLLECTIVE_GC_GRACE_MS".into(), "500".into()),
        ("COLLECTIVE_GC_MIN_IDLE_MS".into(), "0".into()),
        ("COLLECTIVE_NODE_HEARTBEAT_MS".into(), "200".into()),
        ("COLLECTIVE_NODE_ORPHAN_SWEEP_MS".into(), "300".into()),
        // Longer than any write here takes from upload to commit, so no sweep races a write.
        ("COLLECTIVE_NODE_ORPHAN_IDLE_MS".into(), "3000".into()),
    ])?;
    cluster.prepare_node("node-01", &[])?;
    cluster.start_node("node-01")?;
    cluster.wait_node_status("node-01", "UP", Duration::from_secs(30))?;
    Ok(cluster)
}

/// Runs the CLI with `input` on stdin; returns (success, stdout bytes, stderr text).
fn with_stdin(cluster: &Cluster, args: &[&str], input: &[u8]) -> anyhow::Result<(bool, Vec<u8>, String)> {
    let mut child = Command::new(binary())
        .args(args)
        .env("COLLECTIVE_HOME", &cluster.home)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child.stdin.take().context("stdin")?.write_all(input)?;
    let output = child.wait_with_output()?;
    Ok((
        output.status.success(),
        output.stdout,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    ))
}

fn content(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0] ^ seed)
        .collect()
}

fn json(text: &str) -> anyhow::Result<serde_json::Value> {
    Ok(serde_json::from_str(text.trim())?)
}

#[test]
fn stdin_to_stdout_ranges_versions_and_dedup() -> anyhow::Result<()> {
    let cluster = cluster()?;
    let data = content(9 * 1024 * 1024 + 17, 1);
    let (ok, out, err) = with_stdin(
        &cluster,
        &["write", "/f.bin", "--json", "--chunk-bytes", "1048576"],
        &data,
    )?;
    ensure!(ok, "write from stdin: {err}");
    let summary = json(&String::from_utf8_lossy(&out))?;
    assert_eq!(summary["size"], data.len());
    assert_eq!(summary["chunks"], 10);
    assert_eq!(summary["replicas"], 1, "one node: one replica by default");
    assert_eq!(summary["version"], 1);

    let (ok, out, err) = with_stdin(&cluster, &["read", "/f.bin"], b"")?;
    ensure!(ok, "read to stdout: {err}");
    ensure!(out == data, "stdout carries the file byte for byte");
    // A range across a chunk boundary, and one at the very end.
    for (offset, length) in [(1_048_000usize, 5_000usize), (data.len() - 10, 10), (0, 1)] {
        let (ok, out, err) = with_stdin(
            &cluster,
            &[
                "read",
                "/f.bin",
                "--offset",
                &offset.to_string(),
                "--length",
                &length.to_string(),
            ],
            b"",
        )?;
        ensure!(ok, "ranged read: {err}");
        ensure!(out == data[offset..offset + length], "range {offset}+{length}");
    }

    // The same content again: nothing uploaded, a new version.
    let (ok, out, err) = with_stdin(
        &cluster,
        &["write", "/g.bin", "--json", "--chunk-bytes", "1048576"],
        &data,
    )?;
    ensure!(ok, "{err}");
    let summary = json(&String::from_utf8_lossy(&out))?;
    assert_eq!(summary["deduplicated"], 10, "{summary}");
    assert_eq!(summary["uploaded"], 0, "{summary}");

    // Versions: keep the last two; older ones are refused clearly.
    for seed in 2..=4u8 {
        let (ok, _, err) = with_stdin(
            &cluster,
            &["write", "/f.bin", "--keep-versions", "2"],
            &content(1000, seed),
        )?;
        ensure!(ok, "{err}");
    }
    let (ok, out, err) = with_stdin(&cluster, &["read", "/f.bin", "--at-version", "3"], b"")?;
    ensure!(ok && out == content(1000, 3), "version 3 is kept: {err}");
    let (ok, _, err) = with_stdin(&cluster, &["read", "/f.bin", "--at-version", "1"], b"")?;
    ensure!(!ok && err.contains("no longer kept"), "{err}");

    // Small files are kept inline in the log: no chunk, read back whole or in part.
    let small = content(3000, 5);
    let (ok, out, err) = with_stdin(&cluster, &["write", "/small", "--json"], &small)?;
    ensure!(ok, "{err}");
    let summary = json(&String::from_utf8_lossy(&out))?;
    assert_eq!(
        (summary["chunks"].as_u64(), summary["uploaded"].as_u64()),
        (Some(0), Some(0)),
        "{summary}"
    );
    let (ok, out, err) = with_stdin(&cluster, &["read", "/small"], b"")?;
    ensure!(ok && out == small, "{err}");
    let (ok, out, _) = with_stdin(
        &cluster,
        &["read", "/small", "--offset", "100", "--length", "50"],
        b"",
    )?;
    ensure!(ok && out == small[100..150]);

    // Empty files.
    let (ok, _, err) = with_stdin(&cluster, &["write", "/empty"], b"")?;
    ensure!(ok, "{err}");
    let (ok, out, _) = with_stdin(&cluster, &["read", "/empty"], b"")?;
    ensure!(ok && out.is_empty());

    // ls -l shows sizes and replica health; debug chunks shows where chunks are.
    let listing = cluster.cli_ok(&["ls", "-l", "/"])?;
    ensure!(listing.contains("g.bin") && listing.contains("1/1"), "{listing}");
    let chunks = json(&cluster.cli_ok(&["debug", "chunks", "--file", "/g.bin", "--json"])?)?;
    let first = &chunks["chunks"][0];
    assert_eq!(first["offset"], 0);
    assert_eq!(first["replicas"][0]["node"], "node-01@alice.home.collective");
    assert_eq!(first["replicas"][0]["status"], "up");
    Ok(())
}

#[test]
fn chunks_no_version_references_are_collected_after_the_grace_period() -> anyhow::Result<()> {
    let cluster = cluster()?;
    let node_dir = cluster.node("node-01").data_dir.clone();
    let chunk_files = || -> usize {
        walk(&node_dir)
            .into_iter()
            .filter(|p| !p.to_string_lossy().contains("quarantine"))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.len() == 64)
            })
            .count()
    };
    let keep = content(2 * 1024 * 1024, 7);
    let gone = content(3 * 1024 * 1024, 8);
    for (name, data) in [("/keep", &keep), ("/gone", &gone)] {
        let (ok, _, err) = with_stdin(&cluster, &["write", name, "--chunk-bytes", "1048576"], data)?;
        ensure!(ok, "{err}");
    }
    assert_eq!(chunk_files(), 5);
    cluster.cli_ok(&["rm", "/gone"])?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while chunk_files() != 2 {
        ensure!(
            Instant::now() < deadline,
            "unreferenced chunks were not collected ({} left)",
            chunk_files()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let events = cluster.cli_ok(&["audit", "export"])?;
    assert_eq!(
        events.matches("garbage collected").count(),
        3,
        "each removal is recorded"
    );
    let (ok, out, err) = with_stdin(&cluster, &["read", "/keep"], b"")?;
    ensure!(ok && out == keep, "a referenced file is untouched: {err}");
    let status = cluster.status_json()?;
    assert_eq!(status["chunks"]["collected"], 3, "{status}");
    Ok(())
}

/// A write that uploads and then dies before its commit leaves a copy no version references and
/// the log never recorded; the node removes it after the grace period, and keeps recorded ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_of_a_write_that_never_committed_are_swept_from_the_node() -> anyhow::Result<()> {
    use collective::chunk_hash::ChunkHash;
    use collective::client::Client;
    use collective::datapath::NodePool;
    use collective_proto::api;

    let cluster = cluster()?;
    let (ok, _, err) = with_stdin(
        &cluster,
        &["write", "/kept", "--chunk-bytes", "1048576"],
        &content(2 << 20, 3),
    )?;
    ensure!(ok, "{err}");
    let profile = cluster.profile()?;
    let mut client = Client::new(profile.clone());
    let data = content(100_000, 4);
    let hash = ChunkHash::of(&data);
    let plan = client
        .plan_write(api::PlanWriteRequest {
            path: "/never".into(),
            chunks: vec![api::ChunkSpec {
                hash: hash.as_bytes().to_vec(),
                size: data.len() as u64,
            }],
            replicas: 1,
            exclude_nodes: vec![],
        })
        .await?;
    let access = plan.nodes.first().context("a target node")?;
    let pool = NodePool::new(
        profile.identity.clone(),
        collective::transport::root_der(&profile.root_ca_pem)?,
    );
    pool.put(
        &access.address,
        &access.endpoint,
        access.ticket.as_ref().context("a ticket")?,
        &hash,
        data.into(),
    )
    .await
    .map_err(anyhow::Error::msg)?;
    // ... and the writer dies here: no commit.
    let node_dir = cluster.node("node-01").data_dir.clone();
    let on_node = |name: &str| {
        walk(&node_dir)
            .iter()
            .any(|p| p.file_name().and_then(|n| n.to_str()) == Some(name))
    };
    ensure!(on_node(&hash.to_hex()), "the upload reached the node");
    let deadline = Instant::now() + Duration::from_secs(30);
    while on_node(&hash.to_hex()) {
        ensure!(Instant::now() < deadline, "the orphan copy was not swept");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let chunk_files = walk(&node_dir)
        .into_iter()
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.len() == 64)
        })
        .count();
    assert_eq!(chunk_files, 2, "the committed file's two chunks stay");
    let (ok, out, err) = with_stdin(&cluster, &["read", "/kept"], b"")?;
    ensure!(ok && out == content(2 << 20, 3), "{err}");
    Ok(())
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in std::fs::read_dir(&current).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files
}

#[test]
fn bad_input_is_refused_clearly_and_changes_nothing() -> anyhow::Result<()> {
    let cluster = cluster()?;
    let file = cluster.dir.path().join("x.bin");
    // Larger than a page, so it is stored in chunks, not inline.
    std::fs::write(&file, content(8192, 9))?;
    let cases: &[(&[&str], &str)] = &[
        (&["write", "/no/such/dir/x", path(&file)], "does not exist"),
        (&["write", "/x", path(&file), "--replicas", "2"], "only 1 node"),
        (
            &["write", "/x", path(&file), "--replicas", "17"],
            "allowed are 1 to 16",
        ),
        (&["write", "/x", path(&file), "--chunk-bytes", "0"], "chunk size"),
        (&["write", "/x", "/no/such/local/file"], "opening"),
        (&["write", "/x", path(cluster.dir.path())], "is a directory"),
        (&["write", "relative", path(&file)], "absolute"),
        (&["read", "/missing"], "does not exist"),
        (&["read", "/"], "directory"),
        (&["debug", "chunks", "--file", "/missing"], "does not exist"),
    ];
    for (args, expected) in cases {
        let output = cluster.cli(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        ensure!(!output.status.success(), "{args:?} must fail");
        ensure!(
            stderr.contains(expected),
            "{args:?}: {stderr:?} should mention {expected:?}"
        );
    }
    let listing = cluster.cli_ok(&["ls", "/"])?;
    ensure!(listing.trim().is_empty(), "nothing was created: {listing}");
    // A read past the end, of a file that exists.
    cluster.cli_ok(&["write", "/x", path(&file)])?;
    let output = cluster.cli(&["read", "/x", "--offset", "9000"]);
    ensure!(!output.status.success());
    ensure!(String::from_utf8_lossy(&output.stderr).contains("past the end"));
    Ok(())
}

#[test]
fn a_read_into_a_file_link_or_pipe_leaves_each_what_it_was() -> anyhow::Result<()> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let cluster = cluster()?;
    let dir = cluster.dir.path();
    let source = dir.join("source.bin");
    let bytes = content(3 * 1024 * 1024 + 17, 5);
    std::fs::write(&source, &bytes)?;
    cluster.cli_ok(&["write", "/f", path(&source)])?;

    // A regular file is replaced whole and keeps its permission bits.
    let existing = dir.join("existing.bin");
    std::fs::write(&existing, b"old")?;
    std::fs::set_permissions(&existing, std::fs::Permissions::from_mode(0o4750))?;
    cluster.cli_ok(&["read", "/f", path(&existing)])?;
    ensure!(std::fs::read(&existing)? == bytes, "the file holds what was read");
    let mode = std::fs::metadata(&existing)?.permissions().mode() & 0o7777;
    ensure!(
        mode == 0o750,
        "the file keeps its permission bits, without set-user-ID: {mode:o}"
    );

    // Through a symbolic link, the file it points to is replaced and the link kept.
    let target = dir.join("target.bin");
    std::fs::write(&target, b"old")?;
    let link = dir.join("link.bin");
    std::os::unix::fs::symlink(&target, &link)?;
    cluster.cli_ok(&["read", "/f", path(&link)])?;
    ensure!(
        std::fs::symlink_metadata(&link)?.file_type().is_symlink(),
        "the link is still a link"
    );
    ensure!(
        std::fs::read(&target)? == bytes,
        "the link's target holds what was read"
    );

    // A FIFO (as a device such as /dev/null) is written where it is, not replaced by a file.
    let fifo = dir.join("pipe");
    ensure!(Command::new("mkfifo").arg(&fifo).status()?.success(), "mkfifo");
    let received = dir.join("received.bin");
    let mut cat = Command::new("cat")
        .arg(&fifo)
        .stdout(std::fs::File::create(&received)?)
        .spawn()?;
    let output = cluster.cli(&["read", "/f", path(&fifo)]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while cat.try_wait()?.is_none() {
        if Instant::now() > deadline {
            cat.kill()?;
            cat.wait()?;
            anyhow::bail!("nothing wrote to the FIFO and closed it");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    ensure!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    ensure!(
        std::fs::symlink_metadata(&fifo)?.file_type().is_fifo(),
        "the FIFO is still a FIFO"
    );
    ensure!(
        std::fs::read(&received)? == bytes,
        "the FIFO's reader got what was read"
    );

    let left: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(|entry| entry.ok())
        .filter(|entry| {
            entry
                .file_name()
                .to_string_lossy()
                .ends_with(".collective-partial")
        })
        .collect();
    ensure!(left.is_empty(), "no temporary file is left: {left:?}");

    // A directory is refused, and left alone.
    let output = cluster.cli(&["read", "/f", path(dir)]);
    ensure!(!output.status.success(), "a read into a directory must fail");
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(
        stderr.contains("is a directory"),
        "{stderr:?} should say it is a directory"
    );
    ensure!(
        std::fs::metadata(dir)?.is_dir(),
        "the directory is still a directory"
    );
    Ok(())
}

#[test]
fn a_read_or_listing_whose_standard_output_is_closed_stops_quietly() -> anyhow::Result<()> {
    let cluster = cluster()?;
    let source = cluster.dir.path().join("source.bin");
    // Larger than a pipe's buffer, so the read is still writing when its reader goes.
    let bytes = content(3 * 1024 * 1024, 6);
    std::fs::write(&source, &bytes)?;
    cluster.cli_ok(&["write", "/f", path(&source)])?;
    // As `collective read /f - | head -c 10`.
    stops_quietly_when_closed(&cluster, &["read", "/f", "-"], |stdout| {
        let mut first = [0u8; 10];
        std::io::Read::read_exact(stdout, &mut first)?;
        ensure!(
            first == bytes[..10],
            "the first bytes arrive before the reader goes"
        );
        Ok(())
    })?;

    // As `collective ls -l /many | head -1`: a listing longer than a pipe's buffer.
    let names: Vec<String> = (0..400)
        .map(|i| format!("/many/{i:03}-{}", "n".repeat(200)))
        .collect();
    let mut mkdir = vec!["mkdir", "-p"];
    mkdir.extend(names.iter().map(String::as_str));
    cluster.cli_ok(&mkdir)?;
    stops_quietly_when_closed(&cluster, &["ls", "-l", "/many"], |stdout| {
        let mut first = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut first)?;
        ensure!(
            first.contains("000-nnn"),
            "the first entry arrives before the reader goes: {first:?}"
        );
        Ok(())
    })
}

/// Runs the CLI with `args`, lets `first` read the start of its output, then closes the pipe:
/// the command must end with status 141 (as SIGPIPE ends a program) and print nothing on
/// stderr, neither an error nor a panic.
fn stops_quietly_when_closed(
    cluster: &Cluster,
    args: &[&str],
    first: impl FnOnce(&mut std::process::ChildStdout) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut child = Command::new(binary())
        .args(args)
        .env("COLLECTIVE_HOME", &cluster.home)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    first(&mut child.stdout.take().context("stdout")?)?;
    let output = child.wait_with_output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(
        output.status.code() == Some(141),
        "{args:?}: exit status {:?}: {stderr}",
        output.status
    );
    ensure!(stderr.is_empty(), "{args:?} prints nothing on stderr: {stderr:?}");
    Ok(())
}

#[test]
fn a_node_and_a_read_whose_stderr_reader_is_gone_still_work() -> anyhow::Result<()> {
    let mut cluster = Cluster::single_with_env(vec![
        ("COLLECTIVE_NODE_HEARTBEAT_MS".into(), "200".into()),
        ("COLLECTIVE_NODE_DOWN_AFTER_MS".into(), "1500".into()),
    ])?;
    cluster.prepare_node("node-01", &[])?;
    let node = cluster.node("node-01");
    let endpoint = node.endpoint.clone();
    // As `collective node run ... 2>&1 | logger` whose logger died: every write to stderr fails
    // with EPIPE, from the start-up line on. Debug logging writes on every chunk call.
    let mut child = Command::new(binary())
        .args(["node", "run", "--data-dir", path(&node.data_dir)])
        .envs(cluster.env.clone())
        .env("RUST_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    drop(child.stderr.take());
    let started = support::wait_for_port(&endpoint, Duration::from_secs(20));
    let alive = child.try_wait()?.is_none();
    // The cluster ends the node when it is dropped.
    cluster.nodes[0].child = Some(child);
    started?;
    ensure!(alive, "the node runs with its stderr closed");
    cluster.wait_node_status("node-01", "UP", Duration::from_secs(30))?;

    let source = cluster.dir.path().join("source.bin");
    let bytes = content(3 * 1024 * 1024 + 5, 9);
    std::fs::write(&source, &bytes)?;
    for round in 0..3 {
        let name = format!("/logless-{round}");
        cluster.cli_ok(&["write", &name, path(&source), "--chunk-bytes", "1048576"])?;
        let (ok, out, err) = with_stdin(&cluster, &["read", &name], b"")?;
        ensure!(
            ok && out == bytes,
            "round {round}: the read returns the file: {err}"
        );
    }
    // `read --json` prints its summary on stderr; a closed stderr costs the summary only.
    let mut read = Command::new(binary())
        .args(["read", "--json", "/logless-0", "-"])
        .env("COLLECTIVE_HOME", &cluster.home)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    drop(read.stderr.take());
    let output = read.wait_with_output()?;
    ensure!(
        output.status.success() && output.stdout == bytes,
        "a read whose stderr is closed succeeds: {:?}",
        output.status
    );
    let child = cluster.nodes[0].child.as_mut().context("node child")?;
    ensure!(
        child.try_wait()?.is_none(),
        "the node still runs after logging into a closed pipe"
    );
    // Heartbeats (each logged) go on: the node stays up past twice its liveness timeout.
    std::thread::sleep(Duration::from_secs(3));
    cluster.wait_node_status("node-01", "UP", Duration::from_secs(5))?;
    Ok(())
}
