//! `decide`: the pure function from (state, command) to the events that become true, or to a
//! rejection. All business rules live here; `apply` in the projections only records facts.
//!
//! Determinism is the whole contract: every replica runs `decide` on the same entry against the
//! same state and must reach the same answer, so nothing here reads a clock, draws a random number
//! or looks at the environment. Times come from `proposed_at_unix_ms`, ids from the command or from
//! `View::next_inode`. A rejection writes nothing to the log.
//!
//! Events carry canonical values only: addresses as [`FederatedAddress`](crate::FederatedAddress)
//! prints them (lowercase), domains lowercase, paths validated. So the projections may key nodes,
//! replicas and certificates by those strings, and `decide` looks them up by the same spelling.
//!
//! Decisions recorded here once: a repeat that changes nothing succeeds with no events
//! (`mkdir -p` of a directory, placing a recorded replica, a node report with the same status and
//! free space); a removal or revocation of something unknown is `NotFound`, of something already
//! revoked is `Revoked`; moves never overwrite.

mod access;
mod certificates;
mod checks;
mod cluster;
mod invites;
mod namespace;
mod placement;
mod rejection;
mod resolve;

pub use access::{REPLICAS_MAX, RIGHT_DELETE, RIGHT_READ, RIGHT_SHARE, RIGHT_WRITE, RIGHTS_ALL};
pub use checks::{
    ENDPOINT_BYTES_MAX, FINGERPRINT_BYTES, HASH_BYTES, ID_BYTES, REASON_BYTES_MAX, SERIAL_BYTES_MAX,
};
pub use cluster::{COORDINATORS_MAX, NODE_LABEL_BYTES_MAX, NODE_LABELS_MAX};
pub use invites::{GRANTS_PER_INVITE_MAX, INVITE_USES_MAX};
pub use namespace::{
    CHUNKS_PER_VERSION_MAX, INLINE_BYTES_MAX, PLAN_AGE_MS_MAX, VERSIONS_KEPT_DEFAULT, VERSIONS_KEPT_MAX,
};
pub use rejection::{Rejection, RejectionCode};

use crate::SCHEMA_VERSION;
use crate::pb::{self, command_envelope::Command, event_envelope::Event};
use crate::view::View;

/// Length of a command's request id, in bytes.
pub const REQUEST_ID_BYTES: usize = 16;

/// Decides what `cmd` makes true given the state seen through `view`.
///
/// Returns the events to append in order (possibly none, for an idempotent repeat such as
/// `mkdir -p` of an existing directory), or why the command is refused. The caller wraps each
/// event in an `EventEnvelope` with the command's actor, request id and time.
pub fn decide<V: View + ?Sized>(view: &V, cmd: &pb::CommandEnvelope) -> Result<Vec<Event>, Rejection> {
    if cmd.schema_version != SCHEMA_VERSION {
        return Err(Rejection::new(
            RejectionCode::UnsupportedSchema,
            format!(
                "schema version {} is not supported (this binary speaks {SCHEMA_VERSION})",
                cmd.schema_version
            ),
        ));
    }
    // An unset oneof is also what an arm added by a newer binary decodes to here.
    let Some(command) = &cmd.command else {
        return Err(Rejection::new(
            RejectionCode::MissingCommand,
            "the envelope carries no command this binary knows",
        ));
    };
    checks::exact_len(&cmd.request_id, REQUEST_ID_BYTES, "request id")?;
    let member = match (command, view.member()) {
        (Command::InitializeMember(initialize), _) => return cluster::initialize_member(view, initialize),
        (_, Some(member)) => member,
        (_, None) => {
            return Err(Rejection::failed_precondition(format!(
                "the member is not initialized yet; {} must wait for InitializeMember",
                command_name(command)
            )));
        }
    };
    let ctx = Context {
        view,
        member,
        now_unix_ms: cmd.proposed_at_unix_ms,
    };
    match command {
        Command::InitializeMember(c) => cluster::initialize_member(view, c),
        Command::AddCoordinator(c) => cluster::add_coordinator(&ctx, c),
        Command::RemoveCoordinator(c) => cluster::remove_coordinator(&ctx, c),
        Command::JoinNode(c) => cluster::join_node(&ctx, c),
        Command::ReportNodeStatus(c) => cluster::report_node_status(&ctx, c),
        Command::RemoveNode(c) => cluster::remove_node(&ctx, c),
        Command::CreateDirectory(c) => namespace::create_directory(&ctx, c),
        Command::CommitFileVersion(c) => namespace::commit_file_version(&ctx, c),
        Command::RemoveEntry(c) => namespace::remove_entry(&ctx, c),
        Command::MoveEntry(c) => namespace::move_entry(&ctx, c),
        Command::PlaceChunk(c) => placement::place_chunk(&ctx, c),
        Command::RemoveReplica(c) => placement::remove_replica(&ctx, c),
        Command::CreateDatastore(c) => access::create_datastore(&ctx, c),
        Command::IssueGrant(c) => access::issue_grant(&ctx, c),
        Command::RevokeGrant(c) => access::revoke_grant(&ctx, c),
        Command::IssueInvite(c) => invites::issue_invite(&ctx, c),
        Command::RedeemInvite(c) => invites::redeem_invite(&ctx, c),
        Command::RevokeInvite(c) => invites::revoke_invite(&ctx, c),
        Command::IssueCertificate(c) => certificates::issue_certificate(&ctx, c),
        Command::RevokeCertificate(c) => certificates::revoke_certificate(&ctx, c),
    }
}

/// The past-tense name of an event, for logs and the audit export.
pub fn event_name(event: &Event) -> &'static str {
    match event {
        Event::MemberInitialized(_) => "MemberInitialized",
        Event::CoordinatorAdded(_) => "CoordinatorAdded",
        Event::CoordinatorRemoved(_) => "CoordinatorRemoved",
        Event::NodeJoined(_) => "NodeJoined",
        Event::NodeStatusChanged(_) => "NodeStatusChanged",
        Event::NodeLeft(_) => "NodeLeft",
        Event::DirectoryCreated(_) => "DirectoryCreated",
        Event::FileVersionCommitted(_) => "FileVersionCommitted",
        Event::EntryRemoved(_) => "EntryRemoved",
        Event::EntryMoved(_) => "EntryMoved",
        Event::ChunkPlaced(_) => "ChunkPlaced",
        Event::ReplicaRemoved(_) => "ReplicaRemoved",
        Event::DatastoreCreated(_) => "DatastoreCreated",
        Event::GrantIssued(_) => "GrantIssued",
        Event::GrantRevoked(_) => "GrantRevoked",
        Event::InviteIssued(_) => "InviteIssued",
        Event::InviteRedeemed(_) => "InviteRedeemed",
        Event::InviteRevoked(_) => "InviteRevoked",
        Event::CertificateIssued(_) => "CertificateIssued",
        Event::CertificateRevoked(_) => "CertificateRevoked",
        Event::FileVersionPruned(_) => "FileVersionPruned",
    }
}

/// The name of a command, for messages and logs.
pub fn command_name(command: &Command) -> &'static str {
    match command {
        Command::InitializeMember(_) => "InitializeMember",
        Command::AddCoordinator(_) => "AddCoordinator",
        Command::RemoveCoordinator(_) => "RemoveCoordinator",
        Command::JoinNode(_) => "JoinNode",
        Command::ReportNodeStatus(_) => "ReportNodeStatus",
        Command::RemoveNode(_) => "RemoveNode",
        Command::CreateDirectory(_) => "CreateDirectory",
        Command::CommitFileVersion(_) => "CommitFileVersion",
        Command::RemoveEntry(_) => "RemoveEntry",
        Command::MoveEntry(_) => "MoveEntry",
        Command::PlaceChunk(_) => "PlaceChunk",
        Command::RemoveReplica(_) => "RemoveReplica",
        Command::CreateDatastore(_) => "CreateDatastore",
        Command::IssueGrant(_) => "IssueGrant",
        Command::RevokeGrant(_) => "RevokeGrant",
        Command::IssueInvite(_) => "IssueInvite",
        Command::RedeemInvite(_) => "RedeemInvite",
        Command::RevokeInvite(_) => "RevokeInvite",
        Command::IssueCertificate(_) => "IssueCertificate",
        Command::RevokeCertificate(_) => "RevokeCertificate",
    }
}

/// What every decision after initialization sees: the view, the member, and the proposal time.
struct Context<'a, V: View + ?Sized> {
    view: &'a V,
    member: pb::MemberInitialized,
    now_unix_ms: i64,
}

impl<V: View + ?Sized> Context<'_, V> {
    fn member(&self) -> &pb::MemberInitialized {
        &self.member
    }

    fn member_domain(&self) -> &str {
        &self.member.member_domain
    }
}
