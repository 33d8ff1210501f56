//! An in-process three-node metadata group on real RocksDB: formation, replication, a learner
//! catching up through a snapshot after the leader purged its log, restart, linearizable reads.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use collective_raft::{LogStore, NodeId};
use common::{Router, TestNode, WAIT, dump, event_count, initialize_member, mkdir, node, start, write};
use openraft::RaftLogReader;
use openraft::ServerState;
use openraft::async_runtime::watch::WatchReceiver;
use openraft::raft::ReadPolicy;
use openraft::storage::RaftLogStorage;

async fn wait_applied(n: &TestNode, index: u64) -> anyhow::Result<()> {
    n.raft
        .wait(Some(WAIT))
        .applied_index_at_least(Some(index), format!("node {} applied {index}", n.id))
        .await?;
    Ok(())
}

/// Checks that every node holds exactly the leader's state-machine tables.
fn assert_same_state(leader: &TestNode, others: &[&TestNode]) -> anyhow::Result<()> {
    let want = dump(&leader.store)?;
    for n in others {
        let got = dump(&n.store)?;
        let differing: Vec<_> = want.keys().filter(|t| got.get(*t) != want.get(*t)).collect();
        assert!(
            differing.is_empty(),
            "node {} differs from node {} in {differing:?}",
            n.id,
            leader.id
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_replicate_snapshot_a_new_learner_and_survive_restart() -> anyhow::Result<()> {
    let router = Router::default();
    let dirs: BTreeMap<NodeId, tempfile::TempDir> = (1..=4)
        .map(|id| Ok((id, tempfile::tempdir()?)))
        .collect::<anyhow::Result<_>>()?;
    let n1 = start(&router, 1, dirs[&1].path()).await?;
    let n2 = start(&router, 2, dirs[&2].path()).await?;
    let n3 = start(&router, 3, dirs[&3].path()).await?;

    // Given a single-node group whose first membership has committed.
    n1.raft.initialize(BTreeMap::from([(1, node(1))])).await?;
    n1.raft
        .wait(Some(WAIT))
        .state(ServerState::Leader, "node 1 leads")
        .await?;
    n1.raft
        .wait(Some(WAIT))
        .metrics(
            |m| m.committed_membership_config.log_id() == m.membership_config.log_id(),
            "initial membership committed",
        )
        .await?;

    // When the member is initialized and directories are created.
    write(&n1.raft, initialize_member()).await?;
    for p in ["/photos", "/photos/2024", "/docs"] {
        write(&n1.raft, mkdir(p)).await?;
    }

    // And nodes 2 and 3 join as learners, then become voters.
    n1.raft.add_learner(2, node(2), true).await?;
    n1.raft.add_learner(3, node(3), true).await?;
    n1.raft
        .change_membership(BTreeSet::from([1, 2, 3]), false)
        .await?;
    let voters: BTreeSet<NodeId> = n1
        .raft
        .metrics()
        .borrow_watched()
        .membership_config
        .voter_ids()
        .collect();
    assert_eq!(voters, BTreeSet::from([1, 2, 3]));

    let mut last = 0;
    for p in ["/music", "/music/jazz", "/docs/taxes"] {
        last = write(&n1.raft, mkdir(p)).await?;
    }

    // Then all three hold the same events and projections.
    for n in [&n1, &n2, &n3] {
        wait_applied(n, last).await?;
    }
    assert_same_state(&n1, &[&n2, &n3])?;
    assert!(
        event_count(&n1.store)? >= 7,
        "events: {}",
        event_count(&n1.store)?
    );

    // A linearizable read on the leader succeeds and covers the last write.
    let read = n1.raft.ensure_linearizable(ReadPolicy::ReadIndex).await?;
    assert!(read.index() >= last, "read index {read} < {last}");

    // When the leader snapshots and purges its whole log.
    n1.raft.trigger().snapshot().await?;
    n1.raft
        .wait(Some(WAIT))
        .metrics(
            |m| m.snapshot.as_ref().map(|s| s.index) >= Some(last),
            "leader snapshot",
        )
        .await?;
    n1.raft.trigger().purge_log(last).await?;
    n1.raft
        .wait(Some(WAIT))
        .metrics(
            |m| m.purged.as_ref().map(|p| p.index) >= Some(last),
            "leader log purged",
        )
        .await?;

    // And node 4 joins: the leader has no log to send, only the snapshot.
    let n4 = start(&router, 4, dirs[&4].path()).await?;
    let joined = n1.raft.add_learner(4, node(4), true).await?.log_id.index;
    // Wait on node 4's own metrics: add_learner returns on a leader-side condition.
    n4.raft
        .wait(Some(WAIT))
        .metrics(
            |m| m.snapshot.as_ref().map(|s| s.index) >= Some(last),
            "node 4 installed snapshot",
        )
        .await?;
    // The learner's own membership entry follows the snapshot, through the log.
    wait_applied(&n4, joined).await?;
    assert_same_state(&n1, &[&n4])?;

    // Writes after the snapshot reach the learner through the log.
    let after = write(&n1.raft, mkdir("/after-snapshot")).await?;
    for n in [&n1, &n2, &n3, &n4] {
        wait_applied(n, after).await?;
    }
    assert_same_state(&n1, &[&n2, &n3, &n4])?;

    // When node 2 restarts from its RocksDB directory, nothing is lost.
    let before_restart = dump(&n2.store)?;
    router.remove(2);
    n2.raft.shutdown().await?;
    drop(n2);
    let more = write(&n1.raft, mkdir("/while-2-was-down")).await?;
    {
        // Its disk alone, before Raft runs again: the same state, the log and the vote.
        let store = common::open_store(dirs[&2].path()).await?;
        assert_eq!(
            dump(&store)?,
            before_restart,
            "node 2 state changed across restart"
        );
        let mut log = LogStore::new(store.db().clone())?;
        let state = log.get_log_state().await?;
        assert!(
            state.last_log_id.map(|l| l.index) >= Some(after),
            "node 2 log: {state:?}"
        );
        assert!(
            log.get_log_reader().await.read_vote().await?.is_some(),
            "node 2 lost its vote"
        );
    }
    let n2 = start(&router, 2, dirs[&2].path()).await?;
    wait_applied(&n2, more).await?;
    for n in [&n1, &n3, &n4] {
        wait_applied(n, more).await?;
    }
    assert_same_state(&n1, &[&n2, &n3, &n4])?;
    assert_ne!(dump(&n2.store)?, before_restart, "node 2 caught up after restart");

    for n in [&n1, &n2, &n3, &n4] {
        n.raft.shutdown().await?;
    }
    Ok(())
}
