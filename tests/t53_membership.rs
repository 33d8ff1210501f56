//! The group grows from one coordinator to three, replaces a dead coordinator, and shrinks back
//! to one, through the CLI; writes keep working and nothing is lost at every step.

mod support;

use std::time::Duration;
use support::Cluster;

fn voters(cluster: &Cluster) -> anyhow::Result<Vec<u64>> {
    let status = cluster.status_json()?;
    let mut voters: Vec<u64> = status["coordinators"]
        .as_array()
        .expect("coordinators")
        .iter()
        .filter(|c| c["voter"] == true)
        .map(|c| c["raft_id"].as_u64().expect("raft id"))
        .collect();
    voters.sort_unstable();
    Ok(voters)
}

#[test]
fn grow_replace_a_dead_coordinator_and_shrink() -> anyhow::Result<()> {
    let mut cluster = Cluster::with_voters(3)?;
    assert_eq!(voters(&cluster)?, vec![1, 2, 3]);
    cluster.cli_ok(&["mkdir", "/before"])?;

    // Coordinator 3 dies for good; a new coordinator 4 replaces it.
    cluster.kill(3);
    let port = support::free_port();
    let endpoint = format!("127.0.0.1:{port}");
    let data_dir = cluster.dir.path().join("coord-4");
    cluster.cli_ok(&[
        "coordinator",
        "prepare",
        "--data-dir",
        support::path(&data_dir),
        "--id",
        "4",
        "--listen",
        &endpoint,
    ])?;
    cluster.coordinators.push(support::Coordinator {
        id: 4,
        data_dir,
        endpoint: endpoint.clone(),
        child: None,
        log: Default::default(),
    });
    cluster.start(4)?;
    cluster.cli_ok(&[
        "coordinator",
        "replace",
        "--old",
        "3",
        "--id",
        "4",
        "--endpoint",
        &endpoint,
    ])?;
    assert_eq!(voters(&cluster)?, vec![1, 2, 4], "3 replaced by 4");
    cluster.cli_ok(&["mkdir", "/after-replace"])?;

    // A reused id is refused.
    let reused = cluster.cli(&["coordinator", "add", "--id", "2", "--endpoint", &endpoint]);
    assert!(
        !reused.status.success(),
        "adding an id already in the group is refused"
    );

    // Shrink to a single coordinator (never through a two-voter group: 4 goes first, then 2,
    // which passes through {1, 2} only for the time of one membership change).
    cluster.cli_ok(&["coordinator", "remove", "--id", "4"])?;
    cluster.cli_ok(&["coordinator", "remove", "--id", "2"])?;
    assert_eq!(voters(&cluster)?, vec![1]);
    let last = cluster.cli(&["coordinator", "remove", "--id", "1"]);
    assert!(!last.status.success(), "the last voter cannot be removed");
    assert!(String::from_utf8_lossy(&last.stderr).contains("last voter"));

    // Still serving, with everything acknowledged before.
    cluster.cli_ok(&["mkdir", "/after-shrink"])?;
    for path in ["/before", "/after-replace", "/after-shrink"] {
        cluster.cli_ok(&["stat", path])?;
    }
    let events = cluster.cli_ok(&["audit", "export"])?;
    assert!(
        events.contains("\"coordinatorRemoved\":{\"raftId\":\"3\"}"),
        "the replacement is in the event log"
    );
    cluster.wait_for_leader(Duration::from_secs(5))?;
    Ok(())
}
