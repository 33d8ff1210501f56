//! Reconciling a node with the log, on the leader: when a node comes (back) up, or reports a
//! data directory newly out of service (its disk failed), the leader asks it which of the chunks
//! the log records on it it really holds (`Has`), and records every missing one as removed
//! (`RemoveReplica`), so repair copies it again. A node that lost a disk, or lost files while it
//! was down, is thereby counted for what it has, not for what it had.
//!
//! The other direction, copies on a node that the log does not record (uploads of writes that
//! never committed), the node sweeps itself (`node/orphans.rs`).

use collective_events::pb::{self, command_envelope::Command as PbCommand};
use collective_proto::chunk::HasRequest;
use collective_proto::chunk_limits::HASHES_PER_REQUEST_MAX;

use super::meta_service::{now_unix_ms, propose_own};
use super::state::Coordinator;
use crate::chunk_hash::ChunkHash;
use crate::datapath::NodePool;
use crate::ticket::{self, TICKET_LIFETIME_DEFAULT, TicketGrant, TicketOp};

/// The reason recorded for a replica the node no longer has.
pub const MISSING_REASON: &str = "missing on the node at reconciliation";

/// Checks every replica the log records on `node` against the node; returns how many were
/// missing (and are now recorded as removed).
pub async fn reconcile(
    coordinator: &Coordinator,
    pool: &NodePool,
    node: &str,
    endpoint: &str,
) -> anyhow::Result<u64> {
    let identity = coordinator.peers.identity();
    let me = identity.identity()?.address.to_string();
    let mut after: Option<Vec<u8>> = None;
    let mut missing = 0u64;
    loop {
        let page = coordinator
            .store
            .node_chunks_after(node, after.as_deref(), HASHES_PER_REQUEST_MAX)?;
        let Some(last) = page.last().cloned() else { break };
        let hashes: Vec<ChunkHash> = page
            .iter()
            .map(|h| ChunkHash::from_slice(h))
            .collect::<Result<_, _>>()?;
        let ticket = ticket::issue(
            &identity,
            &TicketGrant {
                op: TicketOp::Has,
                hashes: &hashes,
                holder: &me,
                node,
                issued_at_unix_ms: u64::try_from(now_unix_ms()).unwrap_or(0),
                lifetime: TICKET_LIFETIME_DEFAULT,
            },
        )?;
        let present = pool
            .has(
                node,
                endpoint,
                HasRequest {
                    ticket: Some(ticket),
                    hashes: page.clone(),
                },
            )
            .await
            .map_err(|error| anyhow::anyhow!("asking {node} which chunks it holds: {error}"))?;
        if present.present.len() != page.len() {
            anyhow::bail!(
                "{node} answered {} presence flags for {} chunks",
                present.present.len(),
                page.len()
            );
        }
        for (hash, here) in page.iter().zip(&present.present) {
            if *here {
                continue;
            }
            let command = PbCommand::RemoveReplica(pb::RemoveReplica {
                hash: hash.clone(),
                node: node.to_string(),
                reason: MISSING_REASON.into(),
            });
            match propose_own(coordinator, command).await {
                Ok(_) => missing += 1,
                Err(status) if status.code() == tonic::Code::NotFound => {}
                Err(status) => anyhow::bail!("recording a missing replica on {node}: {}", status.message()),
            }
        }
        if page.len() < HASHES_PER_REQUEST_MAX {
            break;
        }
        after = Some(last);
    }
    Ok(missing)
}
