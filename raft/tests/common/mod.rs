//! Test-only harness: an in-memory Raft network between in-process nodes, each with a real
//! RocksDB in a temporary directory. Every message goes through the `wire` encodings, as it
//! would over gRPC.

#![allow(dead_code)]

pub mod network;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use collective_events::pb;
use collective_projections::{Store, Table, TableRead};
use collective_raft::{CoordinatorNode, NodeId, Raft, SnapshotDir};
use openraft::Config;

pub use network::Router;

/// How long any wait on cluster metrics may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(20);

/// Fast timings so tests do not sleep through elections.
pub fn test_config() -> Config {
    Config {
        heartbeat_interval: 50,
        election_timeout_min: 150,
        election_timeout_max: 300,
        // Snapshots only when a test asks, and purges keep nothing behind the snapshot.
        snapshot_policy: openraft::SnapshotPolicy::Never,
        max_in_snapshot_log_to_keep: 0,
        ..Config::default()
    }
}

pub fn node(id: NodeId) -> CoordinatorNode {
    CoordinatorNode::new(format!("coord-{id}@alice.home.collective"), format!("mem:{id}"))
}

/// A running node and where its state lives.
pub struct TestNode {
    pub id: NodeId,
    pub dir: PathBuf,
    pub raft: Raft,
    pub store: Store,
}

/// Starts node `id` on `dir` (reusing whatever state is there) and registers it in `router`.
pub async fn start(router: &Router, id: NodeId, dir: &Path) -> anyhow::Result<TestNode> {
    let store = open_store(dir).await?;
    let raft = collective_raft::open_raft(id, dir, store.clone(), test_config(), router.factory()).await?;
    router.add(id, raft.clone(), SnapshotDir::open(dir)?);
    Ok(TestNode {
        id,
        dir: dir.to_path_buf(),
        raft,
        store,
    })
}

/// Opens the store, retrying briefly: after a shutdown, openraft's tasks may hold the previous
/// handle (and RocksDB's lock) for a moment.
pub async fn open_store(dir: &Path) -> anyhow::Result<Store> {
    let mut last = None;
    for _ in 0..100 {
        match Store::open(dir.join("db")) {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(anyhow::anyhow!("cannot reopen store: {last:?}"))
}

/// Every table's rows, by table name.
pub type Dump = BTreeMap<&'static str, collective_projections::tables::Rows>;

/// Every row of every state-machine table, for comparing replicas.
pub fn dump(store: &Store) -> anyhow::Result<Dump> {
    let txn = store.begin();
    let mut out = BTreeMap::new();
    for table in Table::ALL {
        out.insert(table.name(), txn.scan_prefix(table, b"", None, usize::MAX)?);
    }
    Ok(out)
}

/// Number of events in a replica's event log.
pub fn event_count(store: &Store) -> anyhow::Result<usize> {
    Ok(store
        .begin()
        .scan_prefix(Table::Events, b"", None, usize::MAX)?
        .len())
}

static REQUEST: Mutex<u64> = Mutex::new(0);

fn envelope(command: pb::command_envelope::Command) -> pb::CommandEnvelope {
    let mut n = REQUEST.lock().unwrap_or_else(|p| p.into_inner());
    *n += 1;
    let mut request_id = vec![0u8; 8];
    request_id.extend_from_slice(&n.to_be_bytes());
    pb::CommandEnvelope {
        schema_version: collective_events::SCHEMA_VERSION,
        actor: "admin@alice.home.collective".into(),
        request_id,
        proposed_at_unix_ms: 1_700_000_000_000 + *n as i64,
        command: Some(command),
    }
}

pub fn initialize_member() -> pb::CommandEnvelope {
    envelope(pb::command_envelope::Command::InitializeMember(
        pb::InitializeMember {
            federation_domain: "home.collective".into(),
            member_domain: "alice.home.collective".into(),
            root_ca_der: vec![1, 2, 3],
            member_ca_der: vec![4, 5, 6],
        },
    ))
}

pub fn mkdir(path: &str) -> pb::CommandEnvelope {
    envelope(pb::command_envelope::Command::CreateDirectory(
        pb::CreateDirectory {
            path: path.into(),
            parents: true,
        },
    ))
}

/// Proposes `cmd` on `raft` and checks it was accepted with at least one event.
pub async fn write(raft: &Raft, cmd: pb::CommandEnvelope) -> anyhow::Result<u64> {
    let resp = raft.client_write(cmd.into()).await?;
    let outcome = resp
        .data
        .outcome
        .ok_or_else(|| anyhow::anyhow!("no outcome for a command"))?;
    anyhow::ensure!(
        outcome.rejection().is_none(),
        "command rejected: {:?}",
        outcome.rejection()
    );
    anyhow::ensure!(!outcome.events().is_empty(), "command produced no events");
    anyhow::ensure!(
        resp.data.log_index == resp.log_id.index,
        "response answers another entry"
    );
    Ok(resp.log_id.index)
}

/// Shared handle so tests can stop and drop a node's Raft.
pub type Nodes = Arc<Mutex<BTreeMap<NodeId, TestNode>>>;
