//! `status`: the member, its coordinators, the leader, term, commit index and health.

use super::args::StatusArgs;
use crate::client::{self, Consistency};
use std::path::PathBuf;

pub async fn run(args: StatusArgs, home: PathBuf) -> anyhow::Result<()> {
    let mut client = client::connect(&home)?;
    let status = client
        .status(Consistency::from_stale_ms(args.read.stale_ms))
        .await?;
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
        let json = serde_json::json!({
            "member": status.member_domain,
            "federation": status.federation_domain,
            "you": status.caller,
            "leader": status.leader_raft_id,
            "leader_endpoint": status.leader_endpoint,
            "term": status.term,
            "commit_index": status.commit_index,
            "last_applied": status.last_applied,
            "events": status.event_count,
            "health": status.health,
            "health_detail": status.health_detail,
            "answered_by": { "raft_id": status.answering_raft_id, "state": status.answering_state },
            "coordinators": coordinators,
        });
        println!("{json}");
        return Ok(());
    }
    println!(
        "member:       {} (federation {})",
        status.member_domain, status.federation_domain
    );
    println!("you:          {}", status.caller);
    println!("health:       {} {}", status.health, status.health_detail);
    match status.leader_raft_id {
        Some(leader) => println!("leader:       coordinator {leader} at {}", status.leader_endpoint),
        None => println!("leader:       none (election in progress or no quorum)"),
    }
    println!("term:         {}", status.term);
    println!("commit index: {}", status.commit_index);
    println!("applied:      {}", status.last_applied);
    println!("events:       {}", status.event_count);
    println!("coordinators:");
    for c in &status.coordinators {
        let role = if c.voter { "voter" } else { "learner" };
        let reach = if c.reachable { "reachable" } else { "unreachable" };
        println!(
            "  {:>3}  {:<36} {:<22} {role:<8} {reach} (matched {})",
            c.raft_id, c.address, c.endpoint, c.matched_index
        );
    }
    Ok(())
}
