//! The openraft type configuration of a member's metadata group, and the app data/response types.

use std::fmt;

use collective_events::pb::CommandEnvelope;
use collective_projections::Outcome;

use crate::snapshot::SnapshotFile;

/// Raft node id of a coordinator. Never reused (openraft docs "Node IDs Must Not Be Reused").
pub type NodeId = u64;

openraft::declare_raft_types!(
    /// Type configuration of a member's metadata Raft group (1 to 3 coordinators).
    pub TypeConfig:
        D = Command,
        R = Response,
        NodeId = NodeId,
        Node = CoordinatorNode,
);

/// The Raft handle of a coordinator, typed with our state machine.
pub type Raft = openraft::Raft<TypeConfig, crate::StateMachine>;
/// A Raft log entry.
pub type Entry = openraft::type_config::alias::EntryOf<TypeConfig>;
/// A Raft log id (leader term, leader node, index).
pub type LogId = openraft::type_config::alias::LogIdOf<TypeConfig>;
/// A Raft vote.
pub type Vote = openraft::type_config::alias::VoteOf<TypeConfig>;
/// The leader id inside votes and log ids.
pub type LeaderId = openraft::type_config::alias::LeaderIdOf<TypeConfig>;
/// A membership config: joint voter sets plus every node (voters and learners).
pub type Membership = openraft::Membership<NodeId, CoordinatorNode>;
/// A membership config and the log id that carried it.
pub type StoredMembership = openraft::type_config::alias::StoredMembershipOf<TypeConfig>;
/// Snapshot metadata: last included log id and membership.
pub type SnapshotMeta = openraft::type_config::alias::SnapshotMetaOf<TypeConfig>;
/// A snapshot as openraft hands it around: metadata plus our file-backed data.
pub type Snapshot = openraft::type_config::alias::SnapshotOf<TypeConfig, SnapshotFile>;

/// Where a coordinator is: its federated address (its identity, checked against the peer's mTLS
/// certificate by the transport) and the `host:port` of its gRPC listener.
///
/// `Default` is required by openraft's storage conformance suite, which builds memberships with
/// default nodes; an empty node is never valid in production memberships.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct CoordinatorNode {
    /// Federated address, e.g. `coord-1@alice.home.collective`.
    pub address: String,
    /// `host:port` of the coordinator's gRPC listener.
    pub endpoint: String,
}

impl CoordinatorNode {
    /// A node at `address`, reachable on `endpoint`.
    pub fn new(address: impl Into<String>, endpoint: impl Into<String>) -> Self {
        Self {
            address: address.into(),
            endpoint: endpoint.into(),
        }
    }
}

impl fmt::Display for CoordinatorNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.address, self.endpoint)
    }
}

/// The app data of a Raft entry: one client command.
///
/// A newtype rather than `CommandEnvelope` itself because openraft's `AppData` requires `Display`,
/// which the prost-generated type (defined in `collective-events`) does not implement and which
/// the orphan rule forbids us to add.
#[derive(Clone, Debug, PartialEq)]
pub struct Command(pub CommandEnvelope);

impl From<CommandEnvelope> for Command {
    fn from(envelope: CommandEnvelope) -> Self {
        Self(envelope)
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Only the routing facts: a command may carry certificates or invite hashes.
        let kind = self.0.command.as_ref().map_or("none", command_kind);
        write!(f, "command({kind} by {})", self.0.actor)
    }
}

/// What applying one entry produced, returned to the proposer by `client_write`.
#[derive(Clone, Debug)]
pub struct Response {
    /// Index of the log entry this answers.
    pub log_index: u64,
    /// The outcome of a command entry; `None` for blank and membership entries.
    pub outcome: Option<Outcome>,
}

fn command_kind(c: &collective_events::pb::command_envelope::Command) -> &'static str {
    use collective_events::pb::command_envelope::Command as C;
    match c {
        C::InitializeMember(_) => "initialize_member",
        C::AddCoordinator(_) => "add_coordinator",
        C::RemoveCoordinator(_) => "remove_coordinator",
        C::JoinNode(_) => "join_node",
        C::ReportNodeStatus(_) => "report_node_status",
        C::RemoveNode(_) => "remove_node",
        C::CreateDirectory(_) => "create_directory",
        C::CommitFileVersion(_) => "commit_file_version",
        C::RemoveEntry(_) => "remove_entry",
        C::MoveEntry(_) => "move_entry",
        C::PlaceChunk(_) => "place_chunk",
        C::RemoveReplica(_) => "remove_replica",
        C::CreateDatastore(_) => "create_datastore",
        C::IssueGrant(_) => "issue_grant",
        C::RevokeGrant(_) => "revoke_grant",
        C::IssueInvite(_) => "issue_invite",
        C::RedeemInvite(_) => "redeem_invite",
        C::RevokeInvite(_) => "revoke_invite",
        C::IssueCertificate(_) => "issue_certificate",
        C::RevokeCertificate(_) => "revoke_certificate",
    }
}
