//! An in-memory `View` and a builder that states the "given" of a given/when/then test.
//!
//! The fake stores exactly what `decide` may read, keyed the way the projections key it, and
//! allocates inodes from 2 upward in the order the builder creates entries.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the support module"
)]

use std::collections::BTreeMap;

use collective_events::pb::{self, command_envelope::Command, event_envelope::Event};
use collective_events::{CertificateView, EntryView, InviteView, NodeView, ROOT_INODE, Rejection, View};

pub const FEDERATION: &str = "home.collective";
pub const MEMBER: &str = "alice.home.collective";
/// The proposal time every `when` command carries.
pub const NOW_MS: i64 = 1_700_000_000_000;
pub const REQUEST_ID: [u8; 16] = [7; 16];
/// The node [`FakeView::chunks_stored`] puts replicas on.
pub const STORE_NODE: &str = "node-1@alice.home.collective";

#[derive(Clone, Debug, Default)]
pub struct FakeView {
    member: Option<pb::MemberInitialized>,
    next_inode: u64,
    entries: BTreeMap<u64, EntryView>,
    versions: BTreeMap<u64, Vec<u64>>,
    coordinators: Vec<pb::CoordinatorAdded>,
    nodes: BTreeMap<String, NodeView>,
    replicas: Vec<(Vec<u8>, String)>,
    datastores: BTreeMap<String, pb::DatastoreCreated>,
    grants: BTreeMap<Vec<u8>, pb::GrantIssued>,
    invites: BTreeMap<Vec<u8>, InviteView>,
    certificates: BTreeMap<Vec<u8>, CertificateView>,
}

/// Starts a "given": an empty, uninitialized member.
pub fn given() -> FakeView {
    FakeView {
        next_inode: ROOT_INODE + 1,
        ..FakeView::default()
    }
}

impl FakeView {
    /// The member `alice.home.collective` of federation `home.collective`, with one coordinator.
    pub fn initialized(mut self) -> Self {
        self.member = Some(pb::MemberInitialized {
            federation_domain: FEDERATION.into(),
            member_domain: MEMBER.into(),
            root_ca_der: vec![1],
            member_ca_der: vec![2],
        });
        self.coordinator(1, "coord-1@alice.home.collective")
    }

    pub fn coordinator(mut self, raft_id: u64, address: &str) -> Self {
        self.coordinators.push(pb::CoordinatorAdded {
            raft_id,
            address: address.into(),
            endpoint: format!("127.0.0.1:{}", 7000 + raft_id),
        });
        self
    }

    /// A directory, creating missing parents as directories.
    pub fn dir(mut self, path: &str) -> Self {
        self.ensure(path, pb::EntryKind::Directory, 0);
        self
    }

    /// A file at `version`, keeping the default number of versions (the last three).
    pub fn file(self, path: &str, version: u64) -> Self {
        let kept: Vec<u64> = (version.saturating_sub(2).max(1)..=version).collect();
        self.file_keeping(path, version, &kept)
    }

    /// A file at `version` whose kept versions are exactly `kept`, oldest first.
    pub fn file_keeping(mut self, path: &str, version: u64, kept: &[u64]) -> Self {
        let inode = self.ensure(path, pb::EntryKind::File, version);
        self.versions.insert(inode, kept.to_vec());
        self
    }

    pub fn node(self, address: &str) -> Self {
        self.node_with(address, pb::NodeStatus::Up, 1_000)
    }

    pub fn node_with(mut self, address: &str, status: pb::NodeStatus, free_bytes: u64) -> Self {
        let joined = pb::NodeJoined {
            address: address.into(),
            endpoint: "127.0.0.1:9000".into(),
            capacity_bytes: 10_000,
            labels: vec![],
        };
        self.nodes.insert(
            address.into(),
            NodeView {
                joined,
                status,
                free_bytes,
            },
        );
        self
    }

    /// Replicas of the chunks `hash(0)` to `hash(15)` on `node-1`, so commits of up to 16 chunks
    /// name stored content.
    pub fn chunks_stored(self) -> Self {
        (0..16u8).fold(self.node(STORE_NODE), |state, i| {
            state.replica(hash(i), STORE_NODE)
        })
    }

    pub fn replica(mut self, hash: [u8; 32], node: &str) -> Self {
        self.replicas.push((hash.to_vec(), node.into()));
        self
    }

    pub fn datastore(mut self, path: &str) -> Self {
        self.datastores.insert(
            path.into(),
            pb::DatastoreCreated {
                path: path.into(),
                owner: "alice@alice.home.collective".into(),
                strategy: pb::PlacementStrategy::Media as i32,
                replicas: 2,
            },
        );
        self
    }

    pub fn grant(mut self, grant_id: [u8; 16], grant: pb::GrantSpec) -> Self {
        self.grants.insert(
            grant_id.to_vec(),
            pb::GrantIssued {
                grant_id: grant_id.to_vec(),
                grant: Some(grant),
            },
        );
        self
    }

    pub fn invite(mut self, issued: pb::InviteIssued, uses: u32, revoked: bool) -> Self {
        self.invites.insert(
            issued.invite_id.clone(),
            InviteView {
                issued,
                uses,
                revoked,
            },
        );
        self
    }

    pub fn certificate(mut self, issued: pb::CertificateIssued, revoked: bool) -> Self {
        self.certificates
            .insert(issued.serial.clone(), CertificateView { issued, revoked });
        self
    }

    /// Overrides the inode counter, to state a corrupt projection.
    pub fn with_next_inode(mut self, next_inode: u64) -> Self {
        self.next_inode = next_inode;
        self
    }

    /// The inode the builder gave `path`, to write the expected events with.
    pub fn inode(&self, path: &str) -> u64 {
        let mut inode = ROOT_INODE;
        for name in path.split('/').filter(|n| !n.is_empty()) {
            inode = self
                .lookup(inode, name)
                .unwrap_or_else(|| panic!("given has no {path}"))
                .inode;
        }
        inode
    }

    /// Runs `decide` on `command` wrapped in a valid envelope proposed at [`NOW_MS`].
    pub fn when(&self, command: Command) -> Result<Vec<Event>, Rejection> {
        collective_events::decide(self, &envelope(command))
    }

    fn ensure(&mut self, path: &str, kind: pb::EntryKind, version: u64) -> u64 {
        let names: Vec<&str> = path.split('/').filter(|n| !n.is_empty()).collect();
        let mut parent = ROOT_INODE;
        for (index, name) in names.iter().enumerate() {
            let last = index + 1 == names.len();
            parent = match self.lookup(parent, name) {
                Some(existing) => existing.inode,
                None => {
                    let inode = self.next_inode;
                    self.next_inode += 1;
                    let (kind, version) = if last {
                        (kind, version)
                    } else {
                        (pb::EntryKind::Directory, 0)
                    };
                    self.entries.insert(
                        inode,
                        EntryView {
                            inode,
                            parent,
                            name: (*name).into(),
                            kind,
                            version,
                        },
                    );
                    inode
                }
            };
        }
        parent
    }
}

/// Wraps a command the way a well-behaved proposer does.
pub fn envelope(command: Command) -> pb::CommandEnvelope {
    pb::CommandEnvelope {
        schema_version: collective_events::SCHEMA_VERSION,
        actor: "admin@alice.home.collective".into(),
        request_id: REQUEST_ID.to_vec(),
        proposed_at_unix_ms: NOW_MS,
        command: Some(command),
    }
}

/// The rejection code of a result that must be a rejection.
pub fn code(result: Result<Vec<Event>, Rejection>) -> collective_events::RejectionCode {
    match result {
        Ok(events) => panic!("expected a rejection, got events {events:?}"),
        Err(rejection) => {
            assert!(!rejection.message.is_empty(), "rejection without a message");
            rejection.code
        }
    }
}

/// A 32-byte hash made of one repeated byte.
pub fn hash(byte: u8) -> [u8; 32] {
    [byte; 32]
}

impl View for FakeView {
    fn member(&self) -> Option<pb::MemberInitialized> {
        self.member.clone()
    }
    fn next_inode(&self) -> u64 {
        self.next_inode
    }
    fn entry(&self, inode: u64) -> Option<EntryView> {
        self.entries.get(&inode).cloned()
    }
    fn lookup(&self, parent: u64, name: &str) -> Option<EntryView> {
        self.entries
            .values()
            .find(|e| e.parent == parent && e.name == name)
            .cloned()
    }
    fn has_children(&self, inode: u64) -> bool {
        self.entries
            .values()
            .any(|e| e.parent == inode && e.inode != inode)
    }
    fn versions(&self, inode: u64) -> Vec<u64> {
        self.versions.get(&inode).cloned().unwrap_or_default()
    }
    fn coordinators(&self) -> Vec<pb::CoordinatorAdded> {
        self.coordinators.clone()
    }
    fn node(&self, address: &str) -> Option<NodeView> {
        self.nodes.get(address).cloned()
    }
    fn replica_exists(&self, hash: &[u8], node: &str) -> bool {
        self.replicas.iter().any(|(h, n)| h == hash && n == node)
    }
    fn has_replica(&self, hash: &[u8]) -> bool {
        self.replicas.iter().any(|(h, _)| h == hash)
    }
    fn datastore(&self, path: &str) -> Option<pb::DatastoreCreated> {
        self.datastores.get(path).cloned()
    }
    fn grant(&self, grant_id: &[u8]) -> Option<pb::GrantIssued> {
        self.grants.get(grant_id).cloned()
    }
    fn invite(&self, invite_id: &[u8]) -> Option<InviteView> {
        self.invites.get(invite_id).cloned()
    }
    fn invite_by_code_hash(&self, code_hash: &[u8]) -> Option<InviteView> {
        self.invites
            .values()
            .find(|i| i.issued.code_hash == code_hash)
            .cloned()
    }
    fn certificate(&self, serial: &[u8]) -> Option<CertificateView> {
        self.certificates.get(serial).cloned()
    }
}
