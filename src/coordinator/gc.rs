//! Garbage collection, on the leader: replicas of chunks that no kept file version has
//! referenced for a grace period are deleted from their nodes, then recorded as removed.
//!
//! Why it cannot remove a chunk a writer is about to commit:
//! - a writer deduplicates only against chunks that are referenced when it plans, and its commit
//!   is refused if the plan is older than `PLAN_AGE_MS_MAX`; the grace period is longer, so a
//!   chunk it deduplicated against is still referenced, or its commit fails and it writes again;
//! - a writer uploads every other chunk, and a node refreshes a copy's time even when it already
//!   has it; the delete is guarded (`min_idle_ms` longer than the plan age), so a node keeps any
//!   copy put since the writer planned;
//! - the reference count is read again just before each delete.
//!
//! The delete comes first and the `RemoveReplica` record after: a crash in between leaves a
//! record of a replica that is gone, which readers skip and the next pass records properly
//! (deleting an absent chunk succeeds).

use std::collections::HashMap;
use std::time::Duration;

use collective_events::decide::PLAN_AGE_MS_MAX;
use collective_events::pb::{self, NodeStatus, command_envelope::Command as PbCommand};
use collective_proto::chunk::DeleteRequest;

use super::meta_service::{now_unix_ms, propose_own};
use super::state::Coordinator;
use crate::chunk_hash::ChunkHash;
use crate::datapath::NodePool;
use crate::ticket::{self, TICKET_LIFETIME_DEFAULT, TicketGrant, TicketOp};

/// How long a chunk stays unreferenced before collection, unless `COLLECTIVE_GC_GRACE_MS`
/// says otherwise: twice the plan age, so the argument above holds with room to spare.
pub const GRACE_DEFAULT: Duration = Duration::from_millis(2 * PLAN_AGE_MS_MAX as u64);
/// Copies put this recently are kept by the node (unless `COLLECTIVE_GC_MIN_IDLE_MS`): the plan
/// age plus five minutes for the slowest pass.
pub const MIN_IDLE_DEFAULT: Duration = Duration::from_millis(PLAN_AGE_MS_MAX as u64 + 5 * 60 * 1000);
/// Chunks collected per pass at most.
const COLLECTS_PER_PASS_MAX: usize = 1024;
/// Chunk records read per page.
const PAGE_CHUNKS: usize = 1024;

#[derive(Debug, Clone, Copy)]
pub struct GcConfig {
    pub grace: Duration,
    pub min_idle: Duration,
}

impl GcConfig {
    /// The defaults, shortened by the environment (tests do; the safety argument above then
    /// holds only for writes shorter than the values given).
    pub fn from_env() -> anyhow::Result<GcConfig> {
        Ok(GcConfig {
            grace: crate::env::millis("COLLECTIVE_GC_GRACE_MS", GRACE_DEFAULT)?,
            min_idle: crate::env::millis("COLLECTIVE_GC_MIN_IDLE_MS", MIN_IDLE_DEFAULT)?,
        })
    }
}

/// One pass; returns the replicas removed.
pub async fn pass(coordinator: &Coordinator, pool: &NodePool, config: GcConfig) -> anyhow::Result<u64> {
    let store = coordinator.store.clone();
    let grace_ms = i64::try_from(config.grace.as_millis()).unwrap_or(i64::MAX);
    let now = now_unix_ms();
    let due = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<(Vec<u8>, Vec<String>)>> {
        let mut due = Vec::new();
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = store.chunks_after(after.as_deref(), PAGE_CHUNKS)?;
            for (hash, record) in &page {
                if record.refs == 0
                    && now.saturating_sub(record.unreferenced_at_unix_ms) >= grace_ms
                    && due.len() < COLLECTS_PER_PASS_MAX
                {
                    let holders = store.replicas(hash)?.into_iter().map(|r| r.node).collect();
                    due.push((hash.clone(), holders));
                }
            }
            match page.last() {
                Some((last, _)) if page.len() == PAGE_CHUNKS => after = Some(last.clone()),
                _ => return Ok(due),
            }
        }
    })
    .await??;
    if due.is_empty() {
        return Ok(0);
    }
    let nodes: HashMap<String, (String, bool)> = coordinator
        .store
        .nodes()?
        .into_iter()
        .filter_map(|n| {
            let joined = n.joined?;
            Some((
                joined.address,
                (joined.endpoint, n.status == NodeStatus::Up as i32),
            ))
        })
        .collect();
    let identity = &coordinator.peers.identity();
    let me = identity.identity()?.address.to_string();
    let mut removed = 0;
    for (hash_bytes, holders) in due {
        let hash = ChunkHash::from_slice(&hash_bytes)?;
        for node in holders {
            // Checked again right before each delete: a commit may have referenced it since.
            if coordinator.store.chunk(&hash_bytes)?.is_none_or(|c| c.refs > 0) {
                break;
            }
            let Some((endpoint, up)) = nodes.get(&node) else {
                // The node left the member: only the record is left to remove.
                record_removed(coordinator, &hash_bytes, &node).await?;
                removed += 1;
                continue;
            };
            if !*up {
                continue; // collected when it is back
            }
            let ticket = ticket::issue(
                identity,
                &TicketGrant {
                    op: TicketOp::Delete,
                    hashes: std::slice::from_ref(&hash),
                    holder: &me,
                    node: &node,
                    issued_at_unix_ms: u64::try_from(now_unix_ms()).unwrap_or(0),
                    lifetime: TICKET_LIFETIME_DEFAULT,
                },
            )?;
            let request = DeleteRequest {
                ticket: Some(ticket),
                hashes: vec![hash_bytes.clone()],
                min_idle_ms: u64::try_from(config.min_idle.as_millis()).unwrap_or(u64::MAX),
            };
            match pool.delete(&node, endpoint, request).await {
                Ok(response) if response.kept_recent.first().copied().unwrap_or(false) => {
                    tracing::info!(chunk = %hash, %node, "not collected: a writer put it again recently");
                }
                Ok(_) => {
                    record_removed(coordinator, &hash_bytes, &node).await?;
                    removed += 1;
                }
                Err(error) => {
                    tracing::warn!(chunk = %hash, %node, %error, "delete failed; the next pass retries")
                }
            }
        }
    }
    Ok(removed)
}

async fn record_removed(coordinator: &Coordinator, hash: &[u8], node: &str) -> anyhow::Result<()> {
    let command = PbCommand::RemoveReplica(pb::RemoveReplica {
        hash: hash.to_vec(),
        node: node.to_string(),
        reason: "garbage collected: no kept version references it".into(),
    });
    match propose_own(coordinator, command).await {
        Ok(_) => Ok(()),
        // Already removed (a node gave it up, or an earlier pass recorded it): nothing to do.
        Err(status) if status.code() == tonic::Code::NotFound => Ok(()),
        Err(status) => Err(anyhow::anyhow!(
            "recording the removal of a replica on {node}: {}",
            status.message()
        )),
    }
}
