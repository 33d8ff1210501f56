//! Growing, shrinking and repairing the group: a new coordinator joins as a learner, catches up
//! (through a snapshot if the log was purged), and is then promoted to voter; removal demotes
//! and forgets it. Each change is also recorded as an event in the member's log.

use super::errors::{not_leader, storage};
use super::meta_service::propose;
use super::state::Coordinator;
use crate::coordinator::config::coordinator_address;
use crate::transport::Caller;
use collective_events::pb::{self, command_envelope::Command};
use collective_proto::api;
use collective_raft::CoordinatorNode;
use openraft::ChangeMembers;
use openraft::error::{ClientWriteError, RaftError};
use std::collections::BTreeSet;
use tonic::Status;

pub async fn add(
    coordinator: &Coordinator,
    caller: &Caller,
    request: api::AddCoordinatorRequest,
) -> Result<api::MembershipResponse, Status> {
    if request.raft_id == 0 {
        return Err(Status::invalid_argument(
            "raft id 0 is reserved; use a positive id never used before",
        ));
    }
    let membership = coordinator.metrics().membership_config.clone();
    if membership.membership().get_node(&request.raft_id).is_some() {
        return Err(Status::already_exists(format!(
            "coordinator {} is already in the group",
            request.raft_id
        )));
    }
    // Ids are never reused (a wiped coordinator rejoining under its old id could replay an old
    // membership): a removed coordinator's id stays in the event log, which is searched here.
    // Membership changes are rare, so a scan of the log is an acceptable price.
    if id_used_before(coordinator, request.raft_id)? {
        return Err(Status::already_exists(format!(
            "raft id {} was used before in this member; ids are never reused",
            request.raft_id
        )));
    }
    let address = if request.address.is_empty() {
        coordinator_address(request.raft_id, &coordinator.config.member_domain)
    } else {
        request.address.clone()
    };
    let node = CoordinatorNode::new(address.clone(), request.endpoint.clone());
    tracing::info!(raft_id = request.raft_id, endpoint = %request.endpoint, "adding a learner");
    coordinator
        .raft
        .add_learner(request.raft_id, node, true)
        .await
        .map_err(write_error)?;
    if request.voter {
        let metrics = coordinator.metrics();
        let mut voters: BTreeSet<u64> = metrics.membership_config.membership().voter_ids().collect();
        voters.insert(request.raft_id);
        tracing::info!(raft_id = request.raft_id, ?voters, "promoting to voter");
        coordinator
            .raft
            .change_membership(voters, true)
            .await
            .map_err(write_error)?;
    }
    let command = Command::AddCoordinator(pb::AddCoordinator {
        raft_id: request.raft_id,
        address,
        endpoint: request.endpoint,
    });
    let log_index = record(coordinator, caller, command).await?;
    Ok(response(coordinator, log_index))
}

pub async fn remove(
    coordinator: &Coordinator,
    caller: &Caller,
    raft_id: u64,
) -> Result<api::MembershipResponse, Status> {
    let metrics = coordinator.metrics();
    let membership = metrics.membership_config.membership();
    if membership.get_node(&raft_id).is_none() {
        return Err(Status::not_found(format!(
            "coordinator {raft_id} is not in the group"
        )));
    }
    let voters: BTreeSet<u64> = membership.voter_ids().collect();
    if voters.contains(&raft_id) {
        if voters.len() == 1 {
            return Err(Status::failed_precondition(
                "cannot remove the last voter of the group",
            ));
        }
        coordinator
            .raft
            .change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([raft_id])), false)
            .await
            .map_err(write_error)?;
    } else {
        coordinator
            .raft
            .change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([raft_id])), false)
            .await
            .map_err(write_error)?;
    }
    let log_index = record(
        coordinator,
        caller,
        Command::RemoveCoordinator(pb::RemoveCoordinator { raft_id }),
    )
    .await?;
    Ok(response(coordinator, log_index))
}

/// Events read per page while searching the log for a raft id.
const ID_SEARCH_EVENTS_PER_PAGE: usize = 4096;

fn id_used_before(coordinator: &Coordinator, raft_id: u64) -> Result<bool, Status> {
    use collective_events::pb::event_envelope::Event;
    let mut from = 0;
    loop {
        let events = coordinator
            .store
            .events(from, ID_SEARCH_EVENTS_PER_PAGE)
            .map_err(storage)?;
        if events
            .iter()
            .any(|e| matches!(&e.event, Some(Event::CoordinatorAdded(added)) if added.raft_id == raft_id))
        {
            return Ok(true);
        }
        match events.last() {
            // Pages start at an entry's first event, so resuming at the next entry skips none
            // that matter: a CoordinatorAdded entry carries exactly one event.
            Some(last) if events.len() == ID_SEARCH_EVENTS_PER_PAGE => from = last.log_index + 1,
            _ => return Ok(false),
        }
    }
}

async fn record(coordinator: &Coordinator, caller: &Caller, command: Command) -> Result<u64, Status> {
    let envelope = pb::CommandEnvelope {
        schema_version: collective_events::SCHEMA_VERSION,
        actor: caller.address.clone(),
        request_id: crate::client::new_request_id(),
        proposed_at_unix_ms: super::meta_service::now_unix_ms(),
        command: Some(command),
    };
    Ok(propose(coordinator, envelope).await?.0)
}

fn response(coordinator: &Coordinator, log_index: u64) -> api::MembershipResponse {
    let metrics = coordinator.metrics();
    let membership = metrics.membership_config.membership();
    api::MembershipResponse {
        voters: membership.voter_ids().collect(),
        learners: membership.learner_ids().collect(),
        log_index,
    }
}

fn write_error(
    error: RaftError<collective_raft::TypeConfig, ClientWriteError<collective_raft::TypeConfig>>,
) -> Status {
    match error {
        RaftError::APIError(ClientWriteError::ForwardToLeader(forward)) => {
            not_leader(forward.leader_node.as_ref().map(|n| n.endpoint.as_str()))
        }
        RaftError::APIError(ClientWriteError::ChangeMembershipError(error)) => {
            Status::failed_precondition(format!("membership change refused: {error}"))
        }
        other => Status::unavailable(format!("membership change failed: {other}")),
    }
}
