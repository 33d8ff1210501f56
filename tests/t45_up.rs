//! `collective up`: one command makes a working member (CA, certificates, coordinator, admin
//! profile), and a SIGKILL followed by the same command loses nothing acknowledged.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Kills the `up` process when the test ends, whether it passed or not.
struct Up(Child);

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn up(dir: &std::path::Path, home: &std::path::Path, port: u16) -> anyhow::Result<Up> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("up.log"))?;
    let child = Command::new(support::binary())
        .args([
            "up",
            "--data-dir",
            support::path(&dir.join("data")),
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .env("COLLECTIVE_HOME", home)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    let child = Up(child);
    support::wait_for_port(&format!("127.0.0.1:{port}"), Duration::from_secs(20))?;
    Ok(child)
}

fn cli(home: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(support::binary())
        .args(args)
        .env("COLLECTIVE_HOME", home)
        .output()
        .expect("run collective")
}

fn wait_ready(home: &std::path::Path) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let status = cli(home, &["status", "--json"]);
        if status.status.success() {
            let json: serde_json::Value = serde_json::from_slice(&status.stdout)?;
            // Ready means the embedded storage node has registered too.
            let node_up = json["nodes"]
                .as_array()
                .is_some_and(|nodes| nodes.iter().any(|n| n["status"] == "UP"));
            if json["leader"].is_u64() && json["events"].as_u64().unwrap_or(0) >= 2 && node_up {
                return Ok(());
            }
        }
        anyhow::ensure!(std::time::Instant::now() < deadline, "up did not become ready");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The exported event log without storage-node status changes, which a restart may add (the
/// node's free space is re-reported when it moved).
fn namespace_events(export: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(export)
        .lines()
        .filter(|line| !line.contains("nodeStatusChanged"))
        .map(str::to_string)
        .collect()
}

#[test]
fn up_makes_a_member_and_survives_sigkill() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let home = dir.path().join("home");
    let port = support::free_port_run(3);
    let first = up(dir.path(), &home, port)?;
    wait_ready(&home)?;
    let printed = std::fs::read_to_string(dir.path().join("up.log"))?;
    assert!(printed.contains("collective is up (first start)"), "{printed}");
    assert!(
        printed.contains("collective status"),
        "it says what to type next: {printed}"
    );
    for n in 0..50 {
        let output = cli(&home, &["mkdir", "-p", &format!("/photos/{n}")]);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let status: serde_json::Value = serde_json::from_slice(&cli(&home, &["status", "--json"]).stdout)?;
    assert_eq!(status["member"], "alice.home.collective");
    assert_eq!(status["health"], "healthy");
    let nodes = status["nodes"].as_array().cloned().unwrap_or_default();
    assert_eq!(nodes.len(), 1, "up runs one storage node: {status}");
    assert_eq!(nodes[0]["address"], "node-01@alice.home.collective");
    assert_eq!(nodes[0]["status"], "UP");
    assert_eq!(nodes[0]["endpoint"], format!("127.0.0.1:{}", port + 1).as_str());
    assert!(nodes[0]["capacity_bytes"].as_u64().unwrap_or(0) > 0, "{status}");
    // The coordinator records its own certificate once the member exists, retrying each second
    // until then: wait for it, or the restart would be the one to record it.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let before = loop {
        let events = namespace_events(&cli(&home, &["audit", "export"]).stdout);
        let own = |event: &String| {
            event.contains("certificateIssued") && event.contains("COMPONENT_TYPE_COORDINATOR")
        };
        if events.iter().any(own) {
            break events;
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the coordinator never recorded its own certificate"
        );
        std::thread::sleep(Duration::from_millis(100));
    };

    drop(first); // SIGKILL
    let _second = up(dir.path(), &home, port)?;
    wait_ready(&home)?;
    let listing: serde_json::Value =
        serde_json::from_slice(&cli(&home, &["ls", "--json", "/photos"]).stdout)?;
    assert_eq!(
        listing["entries"].as_array().map(Vec::len),
        Some(50),
        "every acknowledged directory survived"
    );
    let after = namespace_events(&cli(&home, &["audit", "export"]).stdout);
    assert_eq!(before, after, "the event log is unchanged by the restart");
    let printed = std::fs::read_to_string(dir.path().join("up.log"))?;
    assert!(printed.contains("restarted from disk"), "{printed}");
    Ok(())
}
