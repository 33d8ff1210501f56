//! `status`: the member, its coordinators, the leader, term, commit index and health.

use super::args::StatusArgs;
use crate::client::{self, Consistency};
use crate::ticket::CLOCK_SKEW_DEFAULT;
use collective_events::pb;
use std::path::PathBuf;

pub async fn run(args: StatusArgs, home: PathBuf) -> anyhow::Result<()> {
    let mut client = client::connect(&home)?;
    let status = client
        .status(Consistency::from_stale_ms(args.read.stale_ms))
        .await?;
    // Who the caller is and what it may do; a coordinator without the `Access` service (an
    // older binary) leaves it out rather than failing the whole status.
    let access = super::invite::who_am_i_for(client.profile()).await.ok();
    if args.json {
        let coordinators: Vec<_> = status
            .coordinators
            .iter()
            .map(|c| {
                serde_json::json!({
                    "raft_id": c.raft_id, "address": c.address, "endpoint": c.endpoint,
                    "voter": c.voter, "reachable": c.reachable, "matched_index": c.matched_index,
                })
            })
            .collect();
        let nodes: Vec<_> = status
            .nodes
            .iter()
            .map(|n| {
                let labels: serde_json::Map<String, serde_json::Value> = n
                    .labels
                    .iter()
                    .map(|l| (l.key.clone(), serde_json::Value::from(l.value.clone())))
                    .collect();
                serde_json::json!({
                    "address": n.address, "endpoint": n.endpoint, "status": node_status(n.status),
                    "free_bytes": n.free_bytes, "capacity_bytes": n.capacity_bytes,
                    "labels": labels, "status_changed_at_unix_ms": n.status_changed_at_unix_ms,
                    "heartbeat_age_ms": n.heartbeat_age_ms, "load": f64::from(n.load_milli) / 1000.0,
                    "chunk_count": n.chunk_count, "clock_offset_ms": n.clock_offset_ms,
                    "failed_data_dirs": n.failed_data_dirs,
                })
            })
            .collect();
        let json = serde_json::json!({
            "member": status.member_domain,
            "federation": status.federation_domain,
            "you": status.caller,
            "access": access.as_ref().map(|who| serde_json::json!({
                "role": who.role,
                "grants": super::identity::grants_json(who),
            })),
            "leader": status.leader_raft_id,
            "leader_endpoint": status.leader_endpoint,
            "term": status.term,
            "commit_index": status.commit_index,
            "last_applied": status.last_applied,
            "snapshot_index": status.snapshot_index,
            "purged_index": status.purged_index,
            "events": status.event_count,
            "health": status.health,
            "health_detail": status.health_detail,
            "answered_by": { "raft_id": status.answering_raft_id, "state": status.answering_state },
            "coordinators": coordinators,
            "nodes": nodes,
            "members": status.federation.iter().map(|m| serde_json::json!({
                "member": m.member_domain,
                "coordinators": m.coordinators,
                "revoked": m.revoked,
                "last_exchange_unix_ms": m.last_exchange_unix_ms,
                "removed": m.removed,
            })).collect::<Vec<_>>(),
            "chunks": status.chunk_health.map(|h| serde_json::json!({
                "referenced": h.chunks,
                "under_replicated": h.under_replicated,
                "lost": h.lost,
                "repaired": h.repaired,
                "collected": h.collected,
                "pass_at_unix_ms": h.pass_at_unix_ms,
            })),
        });
        outln!("{json}");
        return Ok(());
    }
    outln!(
        "member:       {} (federation {})",
        status.member_domain,
        status.federation_domain
    );
    outln!("you:          {}", status.caller);
    if let Some(who) = &access {
        outln!("role:         {}", who.role);
        if who.role == "user" {
            let grants: Vec<String> = who
                .grants
                .iter()
                .filter_map(|g| g.grant.as_ref())
                .map(super::invite::grant_text)
                .collect();
            outln!(
                "you may:      {}",
                if grants.is_empty() {
                    "nothing yet (no grants)".to_string()
                } else {
                    grants.join(", ")
                }
            );
        } else if who.role == "admin" {
            outln!("you may:      everything (the member's admin)");
        }
    }
    outln!("health:       {} {}", status.health, status.health_detail);
    match status.leader_raft_id {
        Some(leader) => outln!("leader:       coordinator {leader} at {}", status.leader_endpoint),
        None => outln!("leader:       none (election in progress or no quorum)"),
    }
    outln!("term:         {}", status.term);
    outln!("commit index: {}", status.commit_index);
    outln!("applied:      {}", status.last_applied);
    match (status.snapshot_index, status.purged_index) {
        (None, _) => outln!("snapshot:     none yet"),
        (Some(snapshot), None) => outln!("snapshot:     at index {snapshot}, whole log kept"),
        (Some(snapshot), Some(purged)) => {
            outln!("snapshot:     at index {snapshot}, log purged up to {purged}")
        }
    }
    outln!("events:       {}", status.event_count);
    outln!("coordinators:");
    for c in &status.coordinators {
        let role = if c.voter { "voter" } else { "learner" };
        let reach = if c.reachable { "reachable" } else { "unreachable" };
        outln!(
            "  {:>3}  {:<36} {:<22} {role:<8} {reach} (matched {})",
            c.raft_id,
            c.address,
            c.endpoint,
            c.matched_index
        );
    }
    outln!("nodes:");
    if status.nodes.is_empty() {
        outln!("  none (prepare one with `collective node prepare`)");
    }
    for n in &status.nodes {
        outln!(
            "  {:<36} {:<22} {:<8} {} free of {}{}",
            n.address,
            n.endpoint,
            node_status(n.status),
            bytes(n.free_bytes),
            bytes(n.capacity_bytes),
            match n.heartbeat_age_ms {
                Some(age) => format!(
                    ", load {:.2}, {} chunks, heard {age} ms ago",
                    f64::from(n.load_milli) / 1000.0,
                    n.chunk_count
                ),
                None => String::new(),
            }
        );
        for failed in &n.failed_data_dirs {
            outln!(
                "    data directory FAILED, out of service until the node restarts (its chunks are \
                 copied again from other replicas): {failed}"
            );
        }
        if let Some(offset) = n
            .clock_offset_ms
            .filter(|o| crate::ticket::clock_offset_refuses_tickets(*o))
        {
            outln!(
                "    clock {:.1} s {} the leader's, beyond the {} s tickets tolerate: the node refuses \
                 every ticket and gets no new chunk; correct its clock (NTP)",
                offset.unsigned_abs() as f64 / 1000.0,
                if offset > 0 { "ahead of" } else { "behind" },
                CLOCK_SKEW_DEFAULT.as_secs()
            );
        }
    }
    match status.chunk_health {
        Some(h) => outln!(
            "chunks:       {} referenced, {} under-replicated, {} lost; {} replicas repaired and {} collected by this leader",
            h.chunks,
            h.under_replicated,
            h.lost,
            h.repaired,
            h.collected
        ),
        None => {
            outln!("chunks:       no repair pass reported (ask the leader, or wait for its first pass)")
        }
    }
    if !status.federation.is_empty() {
        outln!("members:");
    }
    let now_ms = crate::coordinator::now_unix_ms();
    for m in &status.federation {
        let seen = match (m.removed, m.last_exchange_unix_ms) {
            (true, _) => "REMOVED from the federation".to_string(),
            (false, Some(at)) => format!(
                "exchanged {} ms ago, {} revoked",
                now_ms.saturating_sub(at).max(0),
                m.revoked.unwrap_or(0)
            ),
            (false, None) => "not reached yet".to_string(),
        };
        outln!(
            "  {:<36} {:<22} {seen}",
            m.member_domain,
            m.coordinators.join(",")
        );
    }
    Ok(())
}

fn node_status(status: i32) -> &'static str {
    match pb::NodeStatus::try_from(status) {
        Ok(pb::NodeStatus::Up) => "UP",
        Ok(pb::NodeStatus::Down) => "DOWN",
        Ok(pb::NodeStatus::Draining) => "DRAINING",
        _ => "UNKNOWN",
    }
}

/// Bytes in binary units with one decimal, e.g. `12.5 GiB`.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
