//! Storage nodes as real processes: `node prepare` + `node run` registers a node (UP in
//! `status`), a SIGKILLed node is declared DOWN after the configured silence, a restarted one
//! is UP again, and a node's certificate cannot speak for another node.

mod support;

use collective::client::{Client, ClientError, RetryPolicy};
use collective::pki::CertBundle;
use collective::profile::ProfileConfig;
use collective_events::pb::{self, command_envelope::Command};
use collective_proto::api;
use std::time::Duration;
use support::{Cluster, FEDERATION, MEMBER};

/// Coordinators declare a node down after this much silence, in these tests.
const DOWN_AFTER_MS: u64 = 1500;
/// Nodes heartbeat this often, in these tests.
const HEARTBEAT_MS: u64 = 200;
/// Slack for process start, leader discovery and the watchdog's period on a loaded machine.
const SLACK: Duration = Duration::from_secs(8);

fn env() -> Vec<(String, String)> {
    vec![
        ("COLLECTIVE_NODE_DOWN_AFTER_MS".into(), DOWN_AFTER_MS.to_string()),
        ("COLLECTIVE_NODE_HEARTBEAT_MS".into(), HEARTBEAT_MS.to_string()),
    ]
}

fn cluster() -> anyhow::Result<Cluster> {
    Cluster::single_with_env(env())
}

/// Lines of the exported event log (read from coordinator `id`) that declare some node DOWN.
fn down_events(cluster: &Cluster, id: u64) -> anyhow::Result<Vec<String>> {
    let output = cluster.cli_with_home(&cluster.home_for(id)?, &["audit", "export"]);
    anyhow::ensure!(
        output.status.success(),
        "audit export: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| line.contains("nodeStatusChanged") && line.contains("NODE_STATUS_DOWN"))
        .map(str::to_string)
        .collect())
}

#[test]
fn a_node_registers_is_declared_down_when_killed_and_comes_back() -> anyhow::Result<()> {
    let mut cluster = cluster()?;
    cluster.prepare_node(
        "node-01",
        &[
            "--label",
            "disk=ssd",
            "--label",
            "room=attic",
            "--capacity",
            "1073741824",
        ],
    )?;
    cluster.start_node("node-01")?;
    cluster.wait_node_status("node-01", "UP", Duration::from_secs(30))?;
    let node = cluster.node_json("node-01")?.expect("the node is listed");
    assert_eq!(node["endpoint"], cluster.node("node-01").endpoint.as_str());
    assert_eq!(node["labels"]["disk"], "ssd");
    assert_eq!(node["labels"]["room"], "attic");
    let capacity = node["capacity_bytes"].as_u64().expect("capacity");
    assert!(
        capacity > 0 && capacity <= 1 << 30,
        "capacity is the configured limit at most: {node}"
    );
    assert!(node["free_bytes"].as_u64().expect("free") <= capacity, "{node}");
    assert!(
        node["heartbeat_age_ms"].as_u64().expect("the leader heard it") < 5_000,
        "{node}"
    );
    assert_eq!(node["chunk_count"], 0, "{node}");
    assert!(node["load"].is_number(), "{node}");

    // Alive and heartbeating: never declared down, however long we wait.
    std::thread::sleep(Duration::from_millis(3 * DOWN_AFTER_MS));
    assert_eq!(
        cluster.node_json("node-01")?.expect("listed")["status"],
        "UP",
        "a heartbeating node stays up"
    );
    let text = cluster.cli_ok(&["status"])?;
    assert!(text.contains("node-01@") && text.contains("UP"), "{text}");

    cluster.kill_node("node-01");
    let took = cluster.wait_node_status("node-01", "DOWN", Duration::from_millis(DOWN_AFTER_MS) + SLACK)?;
    eprintln!("node declared down {took:?} after SIGKILL (timeout {DOWN_AFTER_MS} ms)");
    assert!(
        took >= Duration::from_millis(DOWN_AFTER_MS / 2),
        "declared down after {took:?}, sooner than the timeout allows"
    );

    cluster.start_node("node-01")?;
    let took = cluster.wait_node_status("node-01", "UP", SLACK)?;
    eprintln!("node back up {took:?} after restart");
    let nodes = cluster.status_json()?["nodes"].as_array().map(Vec::len);
    assert_eq!(nodes, Some(1), "a restarted node joins once");

    let exit = cluster.terminate_node("node-01", Duration::from_secs(10))?;
    assert!(exit.success(), "SIGTERM is a clean shutdown: {exit}");
    Ok(())
}

#[test]
fn a_leader_change_does_not_declare_a_live_node_down() -> anyhow::Result<()> {
    let mut cluster = Cluster::with_voters_env(3, env())?;
    cluster.prepare_node("node-01", &[])?;
    cluster.start_node("node-01")?;
    cluster.wait_node_status("node-01", "UP", Duration::from_secs(30))?;
    let old_leader = cluster.wait_for_leader(Duration::from_secs(10))?;
    cluster.kill(old_leader);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let new_leader = loop {
        let leader = cluster.wait_for_leader(Duration::from_secs(30))?;
        if leader != old_leader {
            break leader;
        }
        anyhow::ensure!(std::time::Instant::now() < deadline, "no new leader");
        std::thread::sleep(Duration::from_millis(100));
    };
    // The new leader counts silence from its election: the node, which found it through the
    // redirects, is never declared down.
    std::thread::sleep(Duration::from_millis(3 * DOWN_AFTER_MS));
    assert_eq!(cluster.node_json("node-01")?.expect("listed")["status"], "UP");
    assert_eq!(
        down_events(&cluster, new_leader)?,
        Vec::<String>::new(),
        "no DOWN verdict"
    );

    // The new leader does watch it.
    cluster.kill_node("node-01");
    cluster.wait_node_status("node-01", "DOWN", Duration::from_millis(DOWN_AFTER_MS) + SLACK)?;
    let downs = down_events(&cluster, new_leader)?;
    assert_eq!(downs.len(), 1, "{downs:?}");
    assert!(
        downs[0].contains(&format!("coord-{new_leader}@")),
        "the new leader declared it: {downs:?}"
    );
    Ok(())
}

/// A client acting with node `name`'s own certificate.
fn node_client(cluster: &Cluster, name: &str) -> anyhow::Result<Client> {
    let pki = cluster.node(name).data_dir.join("pki");
    let identity = CertBundle::read_from(&pki, "node")?;
    let root = std::fs::read_to_string(pki.join("root-ca.crt"))?;
    let member_domain = format!("{MEMBER}.{FEDERATION}");
    let config = ProfileConfig {
        address: format!("{name}@{member_domain}"),
        member_domain,
        federation_domain: FEDERATION.into(),
        coordinators: cluster.coordinators.iter().map(|c| c.endpoint.clone()).collect(),
    };
    Ok(
        Client::with_identity(config, identity, root).with_retry(RetryPolicy {
            deadline: Duration::from_secs(10),
            ..RetryPolicy::default()
        }),
    )
}

fn permission_denied<T: std::fmt::Debug>(result: Result<T, ClientError>) -> bool {
    matches!(
        result,
        Err(ClientError::Refused {
            code: tonic::Code::PermissionDenied,
            ..
        })
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_certificate_reports_only_for_itself() -> anyhow::Result<()> {
    let mut cluster = cluster()?;
    cluster.prepare_node("node-01", &[])?;
    cluster.prepare_node("node-02", &[])?;
    cluster.start_node("node-02")?;
    let other = format!("node-02@{MEMBER}.{FEDERATION}");
    tokio::task::block_in_place(|| cluster.wait_node_status("node-02", "UP", Duration::from_secs(30)))?;

    let mut client = node_client(&cluster, "node-01")?;
    let down = Command::ReportNodeStatus(pb::ReportNodeStatus {
        address: other.clone(),
        status: pb::NodeStatus::Down as i32,
        free_bytes: 0,
    });
    assert!(
        permission_denied(client.submit(down).await),
        "a report for another node"
    );
    let join = Command::JoinNode(pb::JoinNode {
        address: other.clone(),
        endpoint: "127.0.0.1:1".into(),
        capacity_bytes: 1,
        labels: Vec::new(),
    });
    assert!(
        permission_denied(client.submit(join).await),
        "a join as another node"
    );
    let heartbeat = api::HeartbeatRequest {
        address: other.clone(),
        ..Default::default()
    };
    assert!(
        permission_denied(client.heartbeat(heartbeat).await),
        "a heartbeat for another node"
    );
    let mkdir = Command::CreateDirectory(pb::CreateDirectory {
        path: "/from-a-node".into(),
        parents: false,
    });
    assert!(
        permission_denied(client.submit(mkdir).await),
        "a node submits only its own join and status"
    );
    // A node's key, if stolen, cannot reshape the coordinator group.
    let add = api::AddCoordinatorRequest {
        raft_id: 9,
        address: String::new(),
        endpoint: "127.0.0.1:1".into(),
        voter: true,
    };
    assert!(
        permission_denied(client.add_coordinator(add).await),
        "a node certificate cannot add a coordinator"
    );
    assert!(
        permission_denied(client.remove_coordinator(1).await),
        "a node certificate cannot remove a coordinator"
    );
    // The admin may not heartbeat for a node either: liveness comes from the node alone.
    let mut admin = Client::new(cluster.profile()?);
    let heartbeat = api::HeartbeatRequest {
        address: other.clone(),
        ..Default::default()
    };
    assert!(permission_denied(admin.heartbeat(heartbeat).await));

    // Its own heartbeat is accepted; before it joined, the answer says so.
    let own = format!("node-01@{MEMBER}.{FEDERATION}");
    let answer = client
        .heartbeat(api::HeartbeatRequest {
            address: own,
            ..Default::default()
        })
        .await?;
    assert!(!answer.joined, "node-01 has not joined yet");

    let node = tokio::task::block_in_place(|| cluster.node_json("node-02"))?.expect("listed");
    assert_eq!(node["status"], "UP", "node-02 is untouched: {node}");
    Ok(())
}

#[test]
fn node_commands_refuse_bad_input_clearly() -> anyhow::Result<()> {
    let mut cluster = cluster()?;
    let empty = cluster.dir.path().join("not-a-node");
    std::fs::create_dir_all(&empty)?;
    let run = cluster.cli(&["node", "run", "--data-dir", support::path(&empty)]);
    assert_eq!(run.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&run.stderr).contains("not a node data directory"),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let data_dir = cluster.dir.path().join("n");
    let bad_label = cluster.cli(&[
        "node",
        "prepare",
        "--data-dir",
        support::path(&data_dir),
        "--name",
        "node-09",
        "--listen",
        "127.0.0.1:1",
        "--label",
        "no-equals-sign",
    ]);
    assert_eq!(bad_label.status.code(), Some(1));
    assert!(!data_dir.join("node.toml").exists(), "nothing prepared");
    let no_admin = cluster.cli_with_home(
        &cluster.dir.path().join("no-profile"),
        &[
            "node",
            "prepare",
            "--data-dir",
            support::path(&data_dir),
            "--name",
            "node-09",
            "--listen",
            "127.0.0.1:1",
        ],
    );
    assert_eq!(no_admin.status.code(), Some(1));
    cluster.prepare_node("node-03", &[])?;
    let again = cluster.cli(&[
        "node",
        "prepare",
        "--data-dir",
        support::path(&cluster.node("node-03").data_dir),
        "--name",
        "node-03",
        "--listen",
        "127.0.0.1:1",
    ]);
    assert_eq!(again.status.code(), Some(1), "a prepared node is not overwritten");
    Ok(())
}
