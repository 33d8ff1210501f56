//! Snapshot files on real RocksDB: they survive restarts, corrupt ones are refused without
//! touching the state, and only the newest two are kept.

mod common;

use std::path::Path;

use collective_projections::Store;
use collective_raft::{Command, Entry, LogId, SnapshotDir, StateMachine};
use common::{dump, initialize_member, mkdir};
use openraft::EntryPayload;
use openraft::RaftSnapshotBuilder;
use openraft::storage::RaftStateMachine;
use openraft::vote::RaftLeaderId;

fn open(dir: &Path) -> anyhow::Result<StateMachine> {
    let store = Store::open(dir.join("db"))?;
    Ok(StateMachine::new(store, SnapshotDir::open(dir)?))
}

fn log_id(index: u64) -> LogId {
    LogId {
        leader_id: openraft::impls::leader_id_adv::LeaderId::new(1, 1),
        index,
    }
}

async fn apply(sm: &mut StateMachine, entries: Vec<Entry>) -> anyhow::Result<()> {
    let stream = futures::stream::iter(entries.into_iter().map(|e| Ok((e, None))));
    sm.apply(stream).await?;
    Ok(())
}

fn command(index: u64, cmd: collective_events::pb::CommandEnvelope) -> Entry {
    Entry {
        log_id: log_id(index),
        payload: EntryPayload::Normal(Command(cmd)),
    }
}

fn snap_files(dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("snapshots"))?
        .map(|e| Ok(e?.file_name().to_string_lossy().into_owned()))
        .collect::<anyhow::Result<_>>()?;
    names.sort();
    Ok(names)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_survives_restart_and_only_two_are_kept() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut sm = open(dir.path())?;
    apply(
        &mut sm,
        vec![
            Entry {
                log_id: log_id(1),
                payload: EntryPayload::Blank,
            },
            command(2, initialize_member()),
        ],
    )
    .await?;
    let mut index = 2;
    let mut built = None;
    for p in ["/a", "/b", "/c"] {
        index += 1;
        apply(&mut sm, vec![command(index, mkdir(p))]).await?;
        built = Some(sm.get_snapshot_builder().await.build_snapshot().await?.meta);
    }
    let built = built.ok_or_else(|| anyhow::anyhow!("no snapshot"))?;
    assert_eq!(built.last_log_id, Some(log_id(5)));
    assert_eq!(
        snap_files(dir.path())?,
        vec![format!("{:020}-1.snap", 4), format!("{:020}-1.snap", 5)],
        "only the newest two snapshots are kept"
    );

    let before = dump(sm.store())?;
    drop(sm);
    let mut sm = open(dir.path())?;
    let current = sm
        .get_current_snapshot()
        .await?
        .ok_or_else(|| anyhow::anyhow!("lost"))?;
    assert_eq!(current.meta, built);
    assert_eq!(sm.applied_state().await?.0, Some(log_id(5)));
    assert_eq!(dump(sm.store())?, before);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_installs_on_another_node_and_corrupt_copy_is_refused() -> anyhow::Result<()> {
    let src_dir = tempfile::tempdir()?;
    let mut src = open(src_dir.path())?;
    apply(
        &mut src,
        vec![command(1, initialize_member()), command(2, mkdir("/x/y"))],
    )
    .await?;
    let snap = src.get_snapshot_builder().await.build_snapshot().await?;

    let dst_dir = tempfile::tempdir()?;
    let mut dst = open(dst_dir.path())?;
    let incoming_dir = SnapshotDir::open(dst_dir.path())?;

    // A copy with one flipped byte in the middle is refused and changes nothing.
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut snap.snapshot.reader(), &mut bytes)?;
    let mut bad = bytes.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x40;
    let mut incoming = incoming_dir.incoming()?;
    std::io::Write::write_all(&mut incoming, &bad)?;
    let refused = dst.install_snapshot(&snap.meta, incoming.finish()?).await;
    assert!(refused.is_err(), "corrupt snapshot was installed");
    assert_eq!(dst.applied_state().await?.0, None);
    assert!(dst.get_current_snapshot().await?.is_none());

    // The intact copy installs, with the source's state and meta.
    let mut incoming = incoming_dir.incoming()?;
    std::io::Write::write_all(&mut incoming, &bytes)?;
    dst.install_snapshot(&snap.meta, incoming.finish()?).await?;
    assert_eq!(
        dst.applied_state().await?,
        (snap.meta.last_log_id, snap.meta.last_membership.clone())
    );
    assert_eq!(dump(dst.store())?, dump(src.store())?);
    let current = dst
        .get_current_snapshot()
        .await?
        .ok_or_else(|| anyhow::anyhow!("not kept"))?;
    assert_eq!(current.meta, snap.meta);
    Ok(())
}
