//! The `Status` answer: member, coordinators, leader, term, commit index and health, as this
//! coordinator sees them (the leader sees replication; a follower only what it was told).

use super::errors::storage;
use super::state::Coordinator;
use crate::transport::Caller;
use collective_proto::api;
use openraft::{Instant as _, ServerState};
use std::collections::BTreeSet;
use std::time::Duration;
use tonic::Status;

/// A voter the leader has not heard from for this long is reported unreachable.
const PEER_SILENCE_MAX: Duration = Duration::from_secs(3);

pub fn build(coordinator: &Coordinator, caller: &Caller) -> Result<api::StatusResponse, Status> {
    let metrics = coordinator.metrics();
    let membership = metrics.membership_config.membership();
    let voters: BTreeSet<u64> = membership.voter_ids().collect();
    let is_leader = metrics.state == ServerState::Leader;
    let mut coordinators = Vec::new();
    let mut unreachable_voters = 0;
    for (id, node) in membership.nodes() {
        let matched_index = metrics
            .replication
            .as_ref()
            .and_then(|r| r.get(id).cloned().flatten())
            .map(|log_id| log_id.index)
            .unwrap_or(0);
        let reachable = if *id == coordinator.id() {
            true
        } else if is_leader {
            metrics
                .heartbeat
                .as_ref()
                .and_then(|h| h.get(id).cloned().flatten())
                .is_some_and(|acked| acked.elapsed() <= PEER_SILENCE_MAX)
        } else {
            // A follower cannot observe its peers; it vouches only for the leader it hears.
            Some(*id) == metrics.current_leader
                && coordinator
                    .since_leader_contact_ms()
                    .is_some_and(|ms| ms <= PEER_SILENCE_MAX.as_millis() as u64)
        };
        let voter = voters.contains(id);
        if voter && !reachable {
            unreachable_voters += 1;
        }
        coordinators.push(api::CoordinatorInfo {
            raft_id: *id,
            address: node.address.clone(),
            endpoint: node.endpoint.clone(),
            voter,
            reachable,
            matched_index,
        });
    }
    let leader = metrics
        .current_leader
        .and_then(|id| membership.get_node(&id).map(|n| (id, n.endpoint.clone())));
    // A leader cut off from its quorum still names itself (see `leads_with_quorum`).
    let stale = coordinator.is_stale_leader();
    let (health, health_detail) = match (&leader, unreachable_voters) {
        (None, _) => (
            "unavailable",
            "no leader: an election is in progress or a quorum is lost".to_string(),
        ),
        (Some(_), _) if stale => (
            "unavailable",
            "this coordinator is cut off from a quorum of voters: it still believes it leads, \
             but the others may have elected another leader; ask another coordinator"
                .to_string(),
        ),
        (Some(_), 0) => (
            "healthy",
            format!("{} of {} voters reachable", voters.len(), voters.len()),
        ),
        (Some(_), n) => (
            "degraded",
            format!("{} of {} voters reachable", voters.len() - n, voters.len()),
        ),
    };
    Ok(api::StatusResponse {
        member_domain: coordinator.config.member_domain.clone(),
        federation_domain: coordinator.config.federation_domain.clone(),
        answering_raft_id: coordinator.id(),
        leader_raft_id: leader.as_ref().map(|(id, _)| *id),
        leader_endpoint: leader.map(|(_, endpoint)| endpoint).unwrap_or_default(),
        term: metrics.current_term,
        commit_index: metrics.cluster_committed.map(|l| l.index).unwrap_or(0),
        last_applied: metrics.last_applied.map(|l| l.index).unwrap_or(0),
        snapshot_index: metrics.snapshot.map(|l| l.index),
        purged_index: metrics.purged.map(|l| l.index),
        coordinators,
        health: health.to_string(),
        health_detail,
        event_count: coordinator.store.event_count().map_err(storage)?,
        answering_state: format!("{:?}", metrics.state),
        caller: caller.address.clone(),
        nodes: nodes(coordinator)?,
        chunk_health: coordinator.chunk_health(),
        federation: coordinator.pki.federation.status_view(),
    })
}

/// The member's storage nodes as the projections record them.
fn nodes(coordinator: &Coordinator) -> Result<Vec<api::NodeInfo>, Status> {
    let records = coordinator.store.nodes().map_err(storage)?;
    // Only the leader hears heartbeats; a follower's table is empty or left from an old term.
    let leading = coordinator.is_leader();
    Ok(records
        .into_iter()
        .filter_map(|record| {
            let joined = record.joined?;
            let heard = leading
                .then(|| coordinator.liveness.last_heard(&joined.address))
                .flatten();
            Some(api::NodeInfo {
                heartbeat_age_ms: heard.as_ref().map(|h| h.at.elapsed().as_millis() as u64),
                load_milli: heard.as_ref().map_or(0, |h| h.load_milli),
                chunk_count: heard.as_ref().map_or(0, |h| h.chunk_count),
                clock_offset_ms: heard.as_ref().and_then(|h| h.clock_offset_ms),
                failed_data_dirs: heard.map(|h| h.failed_data_dirs).unwrap_or_default(),
                address: joined.address,
                endpoint: joined.endpoint,
                status: record.status,
                free_bytes: record.free_bytes,
                capacity_bytes: joined.capacity_bytes,
                labels: joined.labels,
                status_changed_at_unix_ms: record.status_changed_at_unix_ms,
            })
        })
        .collect())
}
