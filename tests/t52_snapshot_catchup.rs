//! A coordinator added after the log was purged catches up through a snapshot (which carries the
//! event log), and then serves linearizable reads with projections identical to the leader's.

mod support;

use collective::client::Client;
use collective_events::pb::{self, command_envelope::Command};
use support::Cluster;

const DIRECTORIES: usize = 400;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn new_coordinator_catches_up_from_a_snapshot() -> anyhow::Result<()> {
    // Snapshot every 100 entries and keep no log behind a snapshot, so the log is purged.
    let env = vec![
        ("COLLECTIVE_SNAPSHOT_EVERY_ENTRIES".to_string(), "100".to_string()),
        (
            "COLLECTIVE_LOGS_KEPT_BEHIND_SNAPSHOT".to_string(),
            "0".to_string(),
        ),
    ];
    let mut cluster = Cluster::single_with_env(env)?;
    let mut client = Client::new(cluster.profile()?);
    client
        .submit(Command::CreateDirectory(pb::CreateDirectory {
            path: "/s/a/b".into(),
            parents: true,
        }))
        .await?;
    for n in 0..DIRECTORIES {
        let path = format!("/s/a/b/d{n:03}");
        client
            .submit(Command::CreateDirectory(pb::CreateDirectory {
                path,
                parents: false,
            }))
            .await?;
    }
    client
        .submit(Command::MoveEntry(pb::MoveEntry {
            from: "/s/a/b/d000".into(),
            to: "/s/moved".into(),
        }))
        .await?;
    client
        .submit(Command::RemoveEntry(pb::RemoveEntry {
            path: "/s/a/b/d001".into(),
            recursive: false,
        }))
        .await?;

    // The leader purges its log a moment after it writes a snapshot file; a coordinator added
    // before that could replay the log instead, so wait for the purge `status` reports.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let purged = loop {
        let status = cluster.status_json()?;
        if let Some(purged) = status["purged_index"].as_u64() {
            break purged;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the leader never purged its log: {status}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let snapshots = cluster.coordinator(1).data_dir.join("snapshots");
    let snapshot_files = std::fs::read_dir(&snapshots)?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".snap"))
        .count();
    assert!(
        snapshot_files >= 1 && purged >= 100,
        "the leader built a snapshot in {} and purged its log up to {purged}",
        snapshots.display()
    );

    cluster.add_coordinator(2, false)?;
    // Linearizable reads served by the new coordinator itself (a profile listing only it).
    let only_new = cluster.home_for(2)?;
    // The new coordinator records its own certificate when it starts, so the log may grow
    // between exports: the follower's log must contain the leader's earlier export and be
    // contained in its later one.
    let leader_before = cluster.cli_ok(&["audit", "export"])?;
    let follower = cluster.cli_with_home(&only_new, &["audit", "export"]);
    assert!(
        follower.status.success(),
        "{}",
        String::from_utf8_lossy(&follower.stderr)
    );
    let leader_after = cluster.cli_ok(&["audit", "export"])?;
    let follower = String::from_utf8_lossy(&follower.stdout).into_owned();
    assert!(
        follower.starts_with(&leader_before) && leader_after.starts_with(&follower),
        "identical event logs:\nleader before: {} lines\nfollower: {} lines\nleader after: {} lines",
        leader_before.lines().count(),
        follower.lines().count(),
        leader_after.lines().count()
    );
    // The linearizable read above waited until the new coordinator applied everything; its
    // state came from a snapshot, since the log it would need was purged.
    let received = std::fs::read_dir(cluster.coordinator(2).data_dir.join("snapshots"))?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".snap"))
        .count();
    assert!(
        received >= 1,
        "the new coordinator installed a snapshot rather than replaying the purged log"
    );

    for path in ["/s/a/b", "/s", "/"] {
        let leader = cluster.cli_ok(&["ls", "-l", "--json", path])?;
        let follower = cluster.cli_with_home(&only_new, &["ls", "-l", "--json", path]);
        assert!(
            follower.status.success(),
            "{}",
            String::from_utf8_lossy(&follower.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&follower.stdout),
            leader,
            "identical listing of {path}"
        );
    }
    // A bounded-stale read is answered by the new coordinator from its own projections.
    let stale = cluster.cli_with_home(&only_new, &["stat", "--json", "--stale-ms", "5000", "/s/moved"]);
    assert!(
        stale.status.success(),
        "{}",
        String::from_utf8_lossy(&stale.stderr)
    );
    cluster.kill(1);
    std::thread::sleep(std::time::Duration::from_millis(600));
    let too_stale = cluster.cli_with_home(&only_new, &["stat", "--stale-ms", "200", "/s/moved"]);
    assert!(
        !too_stale.status.success(),
        "with the leader gone, a 200 ms bound cannot be met"
    );
    assert!(
        String::from_utf8_lossy(&too_stale.stderr).contains("ms ago"),
        "{}",
        String::from_utf8_lossy(&too_stale.stderr)
    );
    cluster.start(1)?;
    cluster.wait_for_leader(std::time::Duration::from_secs(30))?;

    // A write after the catch-up is visible through the new coordinator at once (linearizable).
    client
        .submit(Command::CreateDirectory(pb::CreateDirectory {
            path: "/s/after".into(),
            parents: false,
        }))
        .await?;
    let stat = cluster.cli_with_home(&only_new, &["stat", "--json", "/s/after"]);
    assert!(
        stat.status.success(),
        "read-your-writes through the new coordinator: {}",
        String::from_utf8_lossy(&stat.stderr)
    );
    Ok(())
}
