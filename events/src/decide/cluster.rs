//! Cluster decisions: initializing the member, its coordinators, and its storage nodes.

use super::{Context, Rejection, checks};
use crate::address::{is_strict_subdomain, parse_domain};
use crate::pb::{self, event_envelope::Event};
use crate::view::View;

/// Most coordinators in one member's Raft group: beyond seven voters, every commit waits on more
/// round trips for no gain in what a homelab can survive.
pub const COORDINATORS_MAX: usize = 7;
/// Most labels on one node.
pub const NODE_LABELS_MAX: usize = 64;
/// Longest label key or value, in bytes.
pub const NODE_LABEL_BYTES_MAX: usize = 256;

/// Runs before the member exists, so it takes the view rather than a [`Context`].
pub fn initialize_member<V: View + ?Sized>(
    view: &V,
    cmd: &pb::InitializeMember,
) -> Result<Vec<Event>, Rejection> {
    if let Some(member) = view.member() {
        return Err(Rejection::already_exists(format!(
            "member {} is already initialized",
            member.member_domain
        )));
    }
    let federation = parse_domain(&cmd.federation_domain)
        .map_err(|e| Rejection::invalid(format!("federation domain: {e}")))?;
    let member =
        parse_domain(&cmd.member_domain).map_err(|e| Rejection::invalid(format!("member domain: {e}")))?;
    if !is_strict_subdomain(&member, &federation) {
        return Err(Rejection::invalid(format!(
            "member domain {member} is not a subdomain of the federation domain {federation}"
        )));
    }
    // The CA certificates are recorded as given: parsing DER needs crypto crates, which `events`
    // keeps out; the service validated them before proposing.
    Ok(vec![Event::MemberInitialized(pb::MemberInitialized {
        federation_domain: federation,
        member_domain: member,
        root_ca_der: cmd.root_ca_der.clone(),
        member_ca_der: cmd.member_ca_der.clone(),
    })])
}

pub fn add_coordinator<V: View + ?Sized>(
    ctx: &Context<'_, V>,
    cmd: &pb::AddCoordinator,
) -> Result<Vec<Event>, Rejection> {
    if cmd.raft_id == 0 {
        return Err(Rejection::invalid("coordinator raft id must not be 0"));
    }
    let address = checks::principal_in(&cmd.address, ctx.member_domain(), "coordinator address")?;
    checks::endpoint(&cmd.endpoint, "coordinator")?;
    let coordinators = ctx.view.coordinators();
    if coordinators.iter().any(|c| c.raft_id == cmd.raft_id) {
        return Err(Rejection::already_exists(format!(
            "coordinator raft id {} is already in use",
            cmd.raft_id
        )));
    }
    let address = address.to_string();
    if coordinators.iter().any(|c| c.address == address) {
        return Err(Rejection::already_exists(format!(
            "coordinator {address} is already a coordinator"
        )));
    }
    if coordinators.len() >= COORDINATORS_MAX {
        return Err(Rejection::failed_precondition(format!(
            "the member already has {COORDINATORS_MAX} coordinators, the limit"
        )));
    }
    Ok(vec![Event::CoordinatorAdded(pb::CoordinatorAdded {
        raft_id: cmd.raft_id,
        address,
        endpoint: cmd.endpoint.clone(),
    })])
}

pub fn remove_coordinator<V: View + ?Sized>(
    ctx: &Context<'_, V>,
    cmd: &pb::RemoveCoordinator,
) -> Result<Vec<Event>, Rejection> {
    let coordinators = ctx.view.coordinators();
    if !coordinators.iter().any(|c| c.raft_id == cmd.raft_id) {
        return Err(Rejection::not_found(format!(
            "no coordinator has raft id {}",
            cmd.raft_id
        )));
    }
    // A group without voters can never commit again, not even a command re-adding one.
    if coordinators.len() == 1 {
        return Err(Rejection::failed_precondition(format!(
            "coordinator {} is the last one and cannot be removed",
            cmd.raft_id
        )));
    }
    Ok(vec![Event::CoordinatorRemoved(pb::CoordinatorRemoved {
        raft_id: cmd.raft_id,
    })])
}

pub fn join_node<V: View + ?Sized>(
    ctx: &Context<'_, V>,
    cmd: &pb::JoinNode,
) -> Result<Vec<Event>, Rejection> {
    let address = checks::principal_in(&cmd.address, ctx.member_domain(), "node address")?.to_string();
    checks::endpoint(&cmd.endpoint, &format!("node {address}"))?;
    check_labels(&address, &cmd.labels)?;
    if ctx.view.node(&address).is_some() {
        return Err(Rejection::already_exists(format!(
            "node {address} has already joined"
        )));
    }
    Ok(vec![Event::NodeJoined(pb::NodeJoined {
        address,
        endpoint: cmd.endpoint.clone(),
        capacity_bytes: cmd.capacity_bytes,
        labels: cmd.labels.clone(),
    })])
}

/// Emits `NodeStatusChanged` only when the status or the free space differ from what is
/// recorded: nodes report on every heartbeat, and the event log is kept forever, so unchanged
/// reports would fill it with noise. The projection's view of a node is therefore always the last
/// *change*; liveness timing belongs to gossip, not to the log.
pub fn report_node_status<V: View + ?Sized>(
    ctx: &Context<'_, V>,
    cmd: &pb::ReportNodeStatus,
) -> Result<Vec<Event>, Rejection> {
    let address = checks::principal(&cmd.address, "node address")?.to_string();
    let status = checks::known_enum(
        cmd.status,
        pb::NodeStatus::Unspecified,
        &format!("status of node {address}"),
    )?;
    let Some(node) = ctx.view.node(&address) else {
        return Err(Rejection::not_found(format!("node {address} has not joined")));
    };
    if node.status == status && node.free_bytes == cmd.free_bytes {
        return Ok(Vec::new());
    }
    Ok(vec![Event::NodeStatusChanged(pb::NodeStatusChanged {
        address,
        status: status as i32,
        free_bytes: cmd.free_bytes,
    })])
}

pub fn remove_node<V: View + ?Sized>(
    ctx: &Context<'_, V>,
    cmd: &pb::RemoveNode,
) -> Result<Vec<Event>, Rejection> {
    let address = checks::principal(&cmd.address, "node address")?.to_string();
    if ctx.view.node(&address).is_none() {
        return Err(Rejection::not_found(format!("node {address} has not joined")));
    }
    Ok(vec![Event::NodeLeft(pb::NodeLeft { address })])
}

fn check_labels(address: &str, labels: &[pb::Label]) -> Result<(), Rejection> {
    if labels.len() > NODE_LABELS_MAX {
        return Err(Rejection::invalid(format!(
            "node {address} has {} labels, more than the limit of {NODE_LABELS_MAX}",
            labels.len()
        )));
    }
    for (index, label) in labels.iter().enumerate() {
        if label.key.is_empty() {
            return Err(Rejection::invalid(format!(
                "label {index} of node {address} has an empty key"
            )));
        }
        checks::text_max(
            &label.key,
            NODE_LABEL_BYTES_MAX,
            &format!("label key of node {address}"),
        )?;
        checks::text_max(
            &label.value,
            NODE_LABEL_BYTES_MAX,
            &format!("label {} of node {address}", label.key),
        )?;
        if labels[..index].iter().any(|earlier| earlier.key == label.key) {
            return Err(Rejection::invalid(format!(
                "node {address} has label {} twice",
                label.key
            )));
        }
    }
    Ok(())
}
