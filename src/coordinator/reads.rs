//! Read consistency: a linearizable read is served after a read-index round (on the leader
//! directly, on a follower by asking the leader for its read index and waiting to apply it); a
//! stale read is served from local projections if a leader was heard from recently enough.

use super::errors::not_leader;
use super::network;
use super::state::Coordinator;
use collective_proto::api::ReadOptions;
use openraft::ReadPolicy;
use std::time::Duration;
use tonic::Status;

/// How long a follower waits to apply up to a read index before giving up.
const APPLY_WAIT_MAX: Duration = Duration::from_secs(5);

/// Makes the local projections fit to answer a read with the requested consistency. Returns the
/// log index the answer reflects at least.
pub async fn prepare_read(coordinator: &Coordinator, read: Option<&ReadOptions>) -> Result<u64, Status> {
    let applied = || coordinator.metrics().last_applied.map(|l| l.index).unwrap_or(0);
    if let Some(read) = read.filter(|r| r.allow_stale) {
        if coordinator.is_leader() {
            return Ok(applied());
        }
        return match coordinator.since_leader_contact_ms() {
            Some(ms) if ms <= u64::from(read.max_staleness_ms) => Ok(applied()),
            // Final, not retryable: waiting will not make this coordinator fresher while it is
            // cut off from the leader.
            Some(ms) => Err(Status::failed_precondition(format!(
                "this coordinator last heard from a leader {ms} ms ago, more than the {} ms allowed",
                read.max_staleness_ms
            ))),
            None => Err(Status::failed_precondition(
                "this coordinator has not heard from a leader since it started",
            )),
        };
    }
    if coordinator.is_leader() {
        match coordinator.raft.ensure_linearizable(ReadPolicy::ReadIndex).await {
            Ok(read_log_id) => return Ok(read_log_id.index()),
            Err(error) => {
                tracing::debug!(%error, "leader read index failed; trying the current leader");
            }
        }
    }
    let Some((leader_id, leader)) = coordinator.leader() else {
        return Err(not_leader(None));
    };
    if leader_id == coordinator.id() {
        return Err(Status::unavailable("leadership is changing; retry"));
    }
    let mut peer = network::peer(coordinator.peers.clone(), leader_id, leader.clone());
    let index = peer.read_index().await.map_err(|error| {
        Status::unavailable(format!(
            "the leader at {} gave no read index: {error}",
            leader.endpoint
        ))
    })?;
    coordinator
        .raft
        .wait(Some(APPLY_WAIT_MAX))
        .applied_index_at_least(Some(index), "linearizable read")
        .await
        .map_err(|error| {
            Status::unavailable(format!("could not apply up to the read index {index}: {error}"))
        })?;
    Ok(index)
}
