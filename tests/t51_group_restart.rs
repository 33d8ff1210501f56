//! The whole group stopped with SIGKILL and restarted from disk loses nothing acknowledged: every
//! directory acknowledged before the kill is there afterwards, and the event log is unchanged.

mod support;

use collective::client::Client;
use collective_events::pb::{self, command_envelope::Command};
use std::time::Duration;
use support::Cluster;

const DIRECTORIES: usize = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn whole_group_killed_and_restarted_loses_nothing() -> anyhow::Result<()> {
    let mut cluster = Cluster::with_voters(3)?;
    let mut client = Client::new(cluster.profile()?);
    client
        .submit(Command::CreateDirectory(pb::CreateDirectory {
            path: "/keep".into(),
            parents: false,
        }))
        .await?;
    for n in 0..DIRECTORIES {
        let path = format!("/keep/d{n:03}");
        client
            .submit(Command::CreateDirectory(pb::CreateDirectory {
                path,
                parents: false,
            }))
            .await?;
    }
    let before = cluster.cli_ok(&["audit", "export"])?;

    cluster.kill_all();
    for id in [1, 2, 3] {
        cluster.start(id)?;
    }
    cluster
        .wait_for_leader(Duration::from_secs(30))
        .inspect_err(|_| cluster.dump_logs())?;

    let listing: serde_json::Value = serde_json::from_str(&cluster.cli_ok(&["ls", "--json", "/keep"])?)?;
    let entries = listing["entries"].as_array().expect("entries");
    assert_eq!(
        entries.len(),
        DIRECTORIES,
        "every acknowledged directory survived"
    );
    for n in 0..DIRECTORIES {
        let path = format!("/keep/d{n:03}");
        assert!(
            entries.iter().any(|e| e["path"] == path.as_str()),
            "{path} survived"
        );
    }
    // The export fails over: the profile lists coordinator 1 first, and it is down.
    cluster.kill(1);
    cluster.wait_for_leader(Duration::from_secs(30))?;
    let after = cluster.cli_ok(&["audit", "export"])?;
    assert!(
        after.starts_with(&before),
        "the event log after the restart extends the one before"
    );
    assert_eq!(
        before.lines().count(),
        after.lines().count(),
        "no event was added or lost by the restart"
    );
    Ok(())
}
