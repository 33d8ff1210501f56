//! Placement decisions: which node holds a replica of which chunk.

use super::{Context, Rejection, checks};
use crate::pb::{self, event_envelope::Event};
use crate::view::View;

/// Placing a replica that is already recorded succeeds with no event, so a client retrying after
/// a lost reply cannot fail or duplicate the record.
pub fn place_chunk<V: View + ?Sized>(
    ctx: &Context<'_, V>,
    cmd: &pb::PlaceChunk,
) -> Result<Vec<Event>, Rejection> {
    checks::exact_len(&cmd.hash, checks::HASH_BYTES, "chunk hash")?;
    let node = checks::principal(&cmd.node, "node address")?.to_string();
    if cmd.size == 0 {
        return Err(Rejection::invalid(format!(
            "chunk {} placed on {node} is empty",
            checks::hex(&cmd.hash)
        )));
    }
    if ctx.view.node(&node).is_none() {
        return Err(Rejection::not_found(format!("node {node} has not joined")));
    }
    if ctx.view.replica_exists(&cmd.hash, &node) {
        return Ok(Vec::new());
    }
    Ok(vec![Event::ChunkPlaced(pb::ChunkPlaced {
        hash: cmd.hash.clone(),
        node,
        size: cmd.size,
    })])
}

/// The node need not still be a member: replicas recorded on a node that left are exactly the
/// ones repair removes.
pub fn remove_replica<V: View + ?Sized>(
    ctx: &Context<'_, V>,
    cmd: &pb::RemoveReplica,
) -> Result<Vec<Event>, Rejection> {
    checks::exact_len(&cmd.hash, checks::HASH_BYTES, "chunk hash")?;
    let node = checks::principal(&cmd.node, "node address")?.to_string();
    checks::text_max(&cmd.reason, checks::REASON_BYTES_MAX, "removal reason")?;
    if !ctx.view.replica_exists(&cmd.hash, &node) {
        return Err(Rejection::not_found(format!(
            "no replica of chunk {} on {node}",
            checks::hex(&cmd.hash)
        )));
    }
    Ok(vec![Event::ReplicaRemoved(pb::ReplicaRemoved {
        hash: cmd.hash.clone(),
        node,
        reason: cmd.reason.clone(),
    })])
}
