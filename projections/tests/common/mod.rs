//! Shared fixtures for the integration tests: a store in a temporary directory and builders
//! for command envelopes.
#![allow(dead_code)]

use collective_events::pb::{self, command_envelope::Command};
use collective_projections::{MemTables, Rows, Store, Table};

pub const ADMIN: &str = "admin@alice.home.collective";
pub const T0_UNIX_MS: i64 = 1_700_000_000_000;

pub fn open_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path().join("db")).expect("open store");
    (dir, store)
}

/// A 16-byte id derived from `n`, distinct per `(salt, n)`.
pub fn id16(salt: u8, n: u64) -> Vec<u8> {
    let mut id = vec![salt; 8];
    id.extend_from_slice(&n.to_be_bytes());
    id
}

/// A 32-byte chunk hash derived from `n`.
pub fn hash32(n: u64) -> Vec<u8> {
    blake3_like(n)
}

fn blake3_like(n: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(32);
    for i in 0..4u64 {
        out.extend_from_slice(&(n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ i).to_be_bytes());
    }
    out
}

/// An envelope for request number `n`.
pub fn envelope(n: u64, command: Command) -> pb::CommandEnvelope {
    pb::CommandEnvelope {
        schema_version: 1,
        actor: ADMIN.to_string(),
        request_id: id16(0xAA, n),
        proposed_at_unix_ms: T0_UNIX_MS + i64::try_from(n).expect("small n"),
        command: Some(command),
    }
}

pub fn initialize() -> Command {
    Command::InitializeMember(pb::InitializeMember {
        federation_domain: "home.collective".into(),
        member_domain: "alice.home.collective".into(),
        root_ca_der: vec![1, 2, 3],
        member_ca_der: vec![4, 5, 6],
    })
}

pub fn mkdir(path: &str, parents: bool) -> Command {
    Command::CreateDirectory(pb::CreateDirectory {
        path: path.into(),
        parents,
    })
}

/// A file version of `chunks` chunks of 1 MiB each, chunk ids starting at `first_chunk`, each
/// uploaded to node 1 (which must have joined).
pub fn commit(path: &str, first_chunk: u64, chunks: u64, keep_versions: u32) -> Command {
    let size_bytes = 1 << 20;
    Command::CommitFileVersion(pb::CommitFileVersion {
        placements: (0..chunks)
            .map(|i| pb::ChunkPlacement {
                hash: hash32(first_chunk + i),
                node: node_name(1),
            })
            .collect(),
        replicas: 2,
        planned_at_unix_ms: T0_UNIX_MS,
        path: path.into(),
        size: chunks * size_bytes,
        chunks: (0..chunks)
            .map(|i| pb::ChunkRef {
                hash: hash32(first_chunk + i),
                offset: i * size_bytes,
                size: size_bytes,
            })
            .collect(),
        expected_version: None,
        keep_versions,
        inline_data: Vec::new(),
    })
}

pub fn remove(path: &str, recursive: bool) -> Command {
    Command::RemoveEntry(pb::RemoveEntry {
        path: path.into(),
        recursive,
    })
}

pub fn mv(from: &str, to: &str) -> Command {
    Command::MoveEntry(pb::MoveEntry {
        from: from.into(),
        to: to.into(),
    })
}

pub fn join_node(n: u64) -> Command {
    Command::JoinNode(pb::JoinNode {
        address: node_name(n),
        endpoint: format!("127.0.0.1:{}", 9000 + n),
        capacity_bytes: 1 << 40,
        labels: vec![pb::Label {
            key: "disk".into(),
            value: "hdd".into(),
        }],
    })
}

pub fn node_name(n: u64) -> String {
    format!("node-{n:02}@alice.home.collective")
}

pub fn node_status(n: u64, status: pb::NodeStatus, free_bytes: u64) -> Command {
    Command::ReportNodeStatus(pb::ReportNodeStatus {
        address: node_name(n),
        status: status as i32,
        free_bytes,
    })
}

pub fn place(chunk: u64, node: u64) -> Command {
    Command::PlaceChunk(pb::PlaceChunk {
        hash: hash32(chunk),
        node: node_name(node),
        size: 1 << 20,
    })
}

pub fn remove_replica(chunk: u64, node: u64) -> Command {
    Command::RemoveReplica(pb::RemoveReplica {
        hash: hash32(chunk),
        node: node_name(node),
        reason: "test".into(),
    })
}

pub fn datastore(path: &str) -> Command {
    Command::CreateDatastore(pb::CreateDatastore {
        path: path.into(),
        owner: ADMIN.into(),
        strategy: pb::PlacementStrategy::Backup as i32,
        replicas: 2,
    })
}

pub fn grant_spec(path: &str, subject: &str) -> pb::GrantSpec {
    pb::GrantSpec {
        path: path.into(),
        subject: subject.into(),
        rights: 1 | 2,
        expires_at_unix_ms: None,
    }
}

pub fn issue_grant(n: u64, path: &str) -> Command {
    Command::IssueGrant(pb::IssueGrant {
        grant_id: id16(0x6A, n),
        grant: Some(grant_spec(path, &format!("user{n}@alice.home.collective"))),
    })
}

pub fn revoke_grant(n: u64) -> Command {
    Command::RevokeGrant(pb::RevokeGrant {
        grant_id: id16(0x6A, n),
    })
}

pub fn issue_invite(n: u64, path: &str) -> Command {
    Command::IssueInvite(pb::IssueInvite {
        invite_id: id16(0x17, n),
        code_hash: hash32(1_000_000 + n),
        kind: pb::InviteKind::User as i32,
        grants: vec![grant_spec(path, "*@alice.home.collective")],
        max_uses: 2,
        expires_at_unix_ms: T0_UNIX_MS + 86_400_000,
        member: String::new(),
    })
}

pub fn redeem_invite(n: u64, redeemer: u64) -> Command {
    Command::RedeemInvite(pb::RedeemInvite {
        code_hash: hash32(1_000_000 + n),
        redeemer: format!("guest{redeemer}@alice.home.collective"),
        certificate_serial: id16(0xCE, 10_000 + redeemer),
    })
}

pub fn revoke_invite(n: u64) -> Command {
    Command::RevokeInvite(pb::RevokeInvite {
        invite_id: id16(0x17, n),
    })
}

pub fn issue_certificate(n: u64) -> Command {
    Command::IssueCertificate(pb::IssueCertificate {
        serial: id16(0xCE, n),
        subject: format!("user{n}@alice.home.collective"),
        component: pb::ComponentType::Client as i32,
        not_after_unix_ms: T0_UNIX_MS + 365 * 86_400_000,
        fingerprint: hash32(2_000_000 + n),
    })
}

pub fn revoke_certificate(n: u64) -> Command {
    Command::RevokeCertificate(pb::RevokeCertificate {
        serial: id16(0xCE, n),
        reason: "key compromise".into(),
    })
}

pub fn add_coordinator(raft_id: u64) -> Command {
    Command::AddCoordinator(pb::AddCoordinator {
        raft_id,
        address: format!("coord-{raft_id}@alice.home.collective"),
        endpoint: format!("127.0.0.1:{}", 7000 + raft_id),
    })
}

pub fn remove_coordinator(raft_id: u64) -> Command {
    Command::RemoveCoordinator(pb::RemoveCoordinator { raft_id })
}

/// Runs `cmds` as entries `first_index..`, one committed transaction, asserting none failed
/// in storage; returns the outcomes.
pub fn run(
    store: &Store,
    first_index: u64,
    cmds: &[pb::CommandEnvelope],
) -> Vec<collective_projections::Outcome> {
    let mut txn = store.begin();
    let outcomes = cmds
        .iter()
        .enumerate()
        .map(|(i, c)| txn.execute(first_index + i as u64, c).expect("execute"))
        .collect();
    txn.commit().expect("commit");
    outcomes
}

/// Every row of every state-machine table.
pub fn all_rows(store: &Store) -> Vec<(Table, Rows)> {
    Table::ALL
        .into_iter()
        .map(|t| (t, store.rows(t).expect("rows")))
        .collect()
}

pub fn mem_rows(mem: &MemTables, table: Table) -> Rows {
    mem.rows(table)
}
