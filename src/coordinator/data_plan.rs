//! Planning the data path: where a writer uploads chunks (`PlanWrite`, on the leader) and where
//! a reader fetches them (`PlanRead`, any coordinator at the requested consistency), each answer
//! carrying the tickets the nodes will ask for.
//!
//! Placement is rendezvous hashing over the nodes that are up and have room: every (chunk, node)
//! pair gets a pseudo-random score from blake3, and a chunk goes to the highest-scoring nodes.
//! Chunks spread evenly without any shared counter, the same chunk lands on the same nodes when
//! written twice, and a node joining or leaving moves only the chunks it wins or held.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use collective_events::decide::REPLICAS_MAX;
use collective_events::pb::{self, NodeStatus};
use collective_projections::{NodeRecord, Store};
use collective_proto::api;
use collective_proto::chunk_limits::{CHUNK_BYTES_MAX, HASH_BYTES, HASHES_PER_REQUEST_MAX};
use tonic::Status;

use super::errors::{not_leader, storage};
use super::meta_service::now_unix_ms;
use super::state::Coordinator;
use crate::chunk_hash::ChunkHash;
use crate::ticket::{self, CLOCK_SKEW_DEFAULT, TICKET_LIFETIME_DEFAULT, TicketGrant, TicketOp};
use crate::transport::Caller;

pub use collective_proto::PLAN_CHUNKS_MAX;
/// Replicas of a chunk when the writer does not say: two, or one on a member with one node.
pub const REPLICAS_DEFAULT: u32 = 2;
/// Most nodes a writer may exclude (those that failed it).
const EXCLUDED_NODES_MAX: usize = 64;
/// Room a node keeps beyond the chunks planned onto it, so a plan does not fill a disk to the
/// last byte its heartbeat reported (the report can be a little old).
const NODE_HEADROOM_BYTES: u64 = 64 * 1024 * 1024;
/// How long the tickets of a plan stay valid.
const PLAN_TICKET_LIFETIME: Duration = TICKET_LIFETIME_DEFAULT;

const _: () = assert!(PLAN_CHUNKS_MAX <= HASHES_PER_REQUEST_MAX);

/// A joined node as planning sees it.
pub(crate) struct Candidate<'a> {
    pub address: &'a str,
    pub endpoint: &'a str,
    pub status: NodeStatus,
    pub free_bytes: u64,
}

pub(crate) fn candidates(nodes: &[NodeRecord]) -> Vec<Candidate<'_>> {
    nodes
        .iter()
        .filter_map(|record| {
            let joined = record.joined.as_ref()?;
            Some(Candidate {
                address: &joined.address,
                endpoint: &joined.endpoint,
                status: NodeStatus::try_from(record.status).unwrap_or(NodeStatus::Unspecified),
                free_bytes: record.free_bytes,
            })
        })
        .collect()
}

/// The rendezvous score of `node` for `hash`.
pub(crate) fn score(hash: &[u8], node: &str) -> u64 {
    let mut hasher = blake3::Hasher::new();
    hasher.update(hash);
    hasher.update(node.as_bytes());
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_bytes()[..8]);
    u64::from_be_bytes(first)
}

/// Nodes that could take one more replica of `hash` (up, not among `holders`, with room), best
/// first by rendezvous score.
pub(crate) fn rank_targets<'c, 'a>(
    candidates: &'c [Candidate<'a>],
    hash: &[u8],
    size: u64,
    holders: &[String],
) -> Vec<&'c Candidate<'a>> {
    let mut ranked: Vec<&Candidate<'a>> = candidates
        .iter()
        .filter(|c| c.status == NodeStatus::Up)
        .filter(|c| !holders.iter().any(|h| h == c.address))
        .filter(|c| c.free_bytes >= size.saturating_add(NODE_HEADROOM_BYTES))
        .collect();
    ranked.sort_by_key(|c| std::cmp::Reverse(score(hash, c.address)));
    ranked
}

/// `PlanWrite`: on the leader, for a caller of this member.
pub fn plan_write(
    coordinator: &Coordinator,
    caller: &Caller,
    request: &api::PlanWriteRequest,
) -> Result<api::PlanWriteResponse, Status> {
    if !coordinator.leads_with_quorum() {
        return Err(not_leader(coordinator.leader_elsewhere().as_deref()));
    }
    collective_events::path::validate(&request.path)
        .map_err(|error| Status::invalid_argument(format!("{:?}: {error}", request.path)))?;
    if request.chunks.len() > PLAN_CHUNKS_MAX {
        return Err(Status::invalid_argument(format!(
            "a plan covers at most {PLAN_CHUNKS_MAX} chunks, {} were asked for",
            request.chunks.len()
        )));
    }
    if request.exclude_nodes.len() > EXCLUDED_NODES_MAX {
        return Err(Status::invalid_argument(format!(
            "at most {EXCLUDED_NODES_MAX} nodes may be excluded, {} were",
            request.exclude_nodes.len()
        )));
    }
    for (index, chunk) in request.chunks.iter().enumerate() {
        if chunk.hash.len() != HASH_BYTES {
            return Err(Status::invalid_argument(format!(
                "chunk {index}: a hash is {HASH_BYTES} bytes, not {}",
                chunk.hash.len()
            )));
        }
        if chunk.size == 0 || chunk.size > CHUNK_BYTES_MAX {
            return Err(Status::invalid_argument(format!(
                "chunk {index}: size {} is outside 1 to {CHUNK_BYTES_MAX} bytes",
                chunk.size
            )));
        }
    }
    let store = &coordinator.store;
    let nodes = store.nodes().map_err(storage)?;
    let all = candidates(&nodes);
    let excluded: HashSet<String> = request
        .exclude_nodes
        .iter()
        .map(|n| n.to_ascii_lowercase())
        .collect();
    let replicas = match request.replicas {
        0 => REPLICAS_DEFAULT
            .min(u32::try_from(all.len()).unwrap_or(u32::MAX))
            .max(1),
        n if n > REPLICAS_MAX => {
            return Err(Status::invalid_argument(format!(
                "{n} replicas asked for; allowed are 1 to {REPLICAS_MAX}"
            )));
        }
        n => n,
    };
    // A node whose clock is off by more than tickets tolerate would refuse every upload.
    let clock_off = coordinator.liveness.clock_off_nodes();
    let up = all.iter().filter(|c| c.status == NodeStatus::Up).count();
    let skewed = all
        .iter()
        .filter(|c| c.status == NodeStatus::Up && clock_off.contains(c.address))
        .count();
    let usable: Vec<&Candidate<'_>> = all
        .iter()
        .filter(|c| {
            c.status == NodeStatus::Up && !excluded.contains(c.address) && !clock_off.contains(c.address)
        })
        .collect();
    let status_of: HashMap<&str, NodeStatus> = all.iter().map(|c| (c.address, c.status)).collect();
    let mut planned_bytes: HashMap<&str, u64> = HashMap::new();
    let mut per_node: BTreeMap<&str, Vec<ChunkHash>> = BTreeMap::new();
    let mut plans = Vec::with_capacity(request.chunks.len());
    for (index, chunk) in request.chunks.iter().enumerate() {
        let holders: Vec<String> = store
            .replicas(&chunk.hash)
            .map_err(storage)?
            .into_iter()
            .map(|r| r.node)
            .collect();
        let referenced = store
            .chunk(&chunk.hash)
            .map_err(storage)?
            .is_some_and(|c| c.refs > 0);
        let healthy: Vec<String> = holders
            .iter()
            .filter(|n| {
                status_of.get(n.as_str()) == Some(&NodeStatus::Up)
                    && !excluded.contains(n.as_str())
                    && !clock_off.contains(n.as_str())
            })
            .cloned()
            .collect();
        // A referenced chunk's healthy replicas count; an unreferenced one's may be collected at
        // any time, so it is put again (cheap on a node that still has it: the put is answered
        // "already present" and refreshes the copy's age, which protects it from collection).
        let (stored_on, need) = if referenced {
            let need = (replicas as usize).saturating_sub(healthy.len());
            (healthy, need)
        } else {
            (Vec::new(), replicas as usize)
        };
        let mut ranked: Vec<&&Candidate<'_>> = usable
            .iter()
            .filter(|c| !stored_on.iter().any(|s| s == c.address))
            .filter(|c| {
                let planned = planned_bytes.get(c.address).copied().unwrap_or(0);
                c.free_bytes
                    >= planned
                        .saturating_add(chunk.size)
                        .saturating_add(NODE_HEADROOM_BYTES)
            })
            .collect();
        ranked.sort_by_key(|c| {
            let holds = holders.iter().any(|h| h == c.address);
            (
                std::cmp::Reverse(holds),
                std::cmp::Reverse(score(&chunk.hash, c.address)),
            )
        });
        if ranked.len() < need {
            // Nodes whose clocks all disagree with the leader's point at the leader's clock.
            let clocks = match skewed {
                0 => String::new(),
                n if n == up && n > 1 => format!(
                    "; every node's clock is more than {} s from this leader's: check the leader's clock",
                    CLOCK_SKEW_DEFAULT.as_secs()
                ),
                n => format!(
                    "; {n} node(s) up but with a clock more than {} s from this leader's: check their \
                     clocks and the leader's",
                    CLOCK_SKEW_DEFAULT.as_secs()
                ),
            };
            return Err(Status::failed_precondition(format!(
                "chunk {index} needs {need} more replica(s) but only {} node(s) can take it with \
                 room for {} bytes (usable nodes: {}; excluded by the writer: {}{clocks})",
                ranked.len(),
                chunk.size,
                usable.len(),
                excluded.len(),
            )));
        }
        let targets: Vec<String> = ranked[..need].iter().map(|c| c.address.to_string()).collect();
        let hash = ChunkHash::from_slice(&chunk.hash).map_err(|e| Status::invalid_argument(e.to_string()))?;
        for target in &ranked[..need] {
            *planned_bytes.entry(target.address).or_default() += chunk.size;
            per_node.entry(target.address).or_default().push(hash);
        }
        plans.push(api::ChunkPlan {
            hash: chunk.hash.clone(),
            stored_on,
            targets,
        });
    }
    let planned_at = now_unix_ms();
    let access = tickets(coordinator, caller, TicketOp::Put, &all, &per_node, planned_at)?;
    Ok(api::PlanWriteResponse {
        chunks: plans,
        nodes: access,
        replicas,
        planned_at_unix_ms: planned_at,
    })
}

/// One ticket for `op` per node of `per_node` (covering its chunks), with the node's endpoint.
fn tickets<K: AsRef<str>>(
    coordinator: &Coordinator,
    caller: &Caller,
    op: TicketOp,
    nodes: &[Candidate<'_>],
    per_node: &BTreeMap<K, Vec<ChunkHash>>,
    now_unix_ms: i64,
) -> Result<Vec<api::NodeAccess>, Status> {
    let issued_at = u64::try_from(now_unix_ms).unwrap_or(0);
    per_node
        .iter()
        .map(|(node, hashes)| {
            let node = node.as_ref();
            let endpoint = nodes
                .iter()
                .find(|c| c.address == node)
                .map_or("", |c| c.endpoint);
            node_access(coordinator, caller, op, node, endpoint, hashes, issued_at)
        })
        .collect()
}

fn node_access(
    coordinator: &Coordinator,
    caller: &Caller,
    op: TicketOp,
    node: &str,
    endpoint: &str,
    hashes: &[ChunkHash],
    issued_at_unix_ms: u64,
) -> Result<api::NodeAccess, Status> {
    let ticket = ticket::issue(
        &coordinator.peers.identity(),
        &TicketGrant {
            op,
            hashes,
            holder: &caller.address,
            node,
            issued_at_unix_ms,
            lifetime: PLAN_TICKET_LIFETIME,
        },
    )
    .map_err(|error| Status::internal(format!("could not sign a ticket for {node}: {error}")))?;
    Ok(api::NodeAccess {
        address: node.to_string(),
        endpoint: endpoint.to_string(),
        ticket: Some(ticket),
    })
}

/// The order a reader tries replicas in: up nodes first, rotated by the chunk's index so that
/// consecutive chunks are read from different nodes in parallel; then up nodes whose clock is
/// off (`clock_off`: they refuse tickets their clock calls expired or not yet valid); then
/// draining, then down ones (they may be back before the member noticed).
fn order_replicas(
    index: usize,
    mut replicas: Vec<api::ReplicaInfo>,
    clock_off: &HashSet<String>,
) -> Vec<api::ReplicaInfo> {
    let rank = |replica: &api::ReplicaInfo| match NodeStatus::try_from(replica.status) {
        Ok(NodeStatus::Up) if clock_off.contains(&replica.node) => 1,
        Ok(NodeStatus::Up) => 0,
        Ok(NodeStatus::Draining) => 2,
        Ok(NodeStatus::Down) => 3,
        _ => 4,
    };
    replicas.sort_by(|a, b| rank(a).cmp(&rank(b)).then_with(|| a.node.cmp(&b.node)));
    let up = replicas.iter().take_while(|r| rank(r) == 0).count();
    if up > 1 {
        replicas[..up].rotate_left(index % up);
    }
    replicas
}

/// The replicas of `hash` with their nodes' recorded status (a node that left is not listed).
fn replica_infos(
    store: &Store,
    hash: &[u8],
    nodes: &[Candidate<'_>],
) -> Result<Vec<api::ReplicaInfo>, Status> {
    Ok(store
        .replicas(hash)
        .map_err(storage)?
        .into_iter()
        .filter_map(|replica| {
            let node = nodes.iter().find(|c| c.address == replica.node)?;
            Some(api::ReplicaInfo {
                node: replica.node,
                status: node.status as i32,
            })
        })
        .collect())
}

/// `PlanRead`, once the read was prepared at the requested consistency.
pub fn plan_read(
    coordinator: &Coordinator,
    caller: &Caller,
    request: &api::PlanReadRequest,
    entry: &collective_projections::EntryRecord,
    read_index: u64,
) -> Result<api::PlanReadResponse, Status> {
    if entry.kind != pb::EntryKind::File as i32 {
        return Err(Status::failed_precondition(format!(
            "{} is a directory, not a file",
            request.path
        )));
    }
    let store = &coordinator.store;
    let (version, size, chunks, replicas_wanted, inline_data) = match request.version {
        None => {
            let current = store
                .versions(entry.inode)
                .map_err(storage)?
                .into_iter()
                .find(|v| v.version == entry.version);
            let wanted = current.as_ref().map_or(1, |v| v.replicas.max(1));
            let inline = current.map(|v| v.inline_data).unwrap_or_default();
            (entry.version, entry.size, entry.chunks.clone(), wanted, inline)
        }
        Some(wanted) => {
            let versions = store.versions(entry.inode).map_err(storage)?;
            let Some(found) = versions.into_iter().find(|v| v.version == wanted) else {
                return Err(Status::not_found(format!(
                    "{} has no version {wanted} (it was never written or is no longer kept; \
                     the current version is {})",
                    request.path, entry.version
                )));
            };
            (
                found.version,
                found.size,
                found.chunks,
                found.replicas.max(1),
                found.inline_data,
            )
        }
    };
    let total = chunks.len();
    let first = (request.first_chunk as usize).min(total);
    let limit = match request.chunk_limit {
        0 => PLAN_CHUNKS_MAX,
        n => (n as usize).min(PLAN_CHUNKS_MAX),
    };
    let page = &chunks[first..(first + limit).min(total)];
    let nodes = store.nodes().map_err(storage)?;
    let all = candidates(&nodes);
    // Heard by this coordinator: empty on a follower serving a stale read.
    let clock_off = coordinator.liveness.clock_off_nodes();
    let mut per_node: BTreeMap<String, Vec<ChunkHash>> = BTreeMap::new();
    let mut locations = Vec::with_capacity(page.len());
    for (offset, chunk) in page.iter().enumerate() {
        let replicas = order_replicas(
            first + offset,
            replica_infos(store, &chunk.hash, &all)?,
            &clock_off,
        );
        if request.tickets {
            let hash = ChunkHash::from_slice(&chunk.hash).map_err(|e| Status::internal(e.to_string()))?;
            for replica in &replicas {
                per_node.entry(replica.node.clone()).or_default().push(hash);
            }
        }
        locations.push(api::ChunkLocation {
            chunk: Some(chunk.clone()),
            replicas,
        });
    }
    let access = tickets(coordinator, caller, TicketOp::Get, &all, &per_node, now_unix_ms())?;
    Ok(api::PlanReadResponse {
        entry: None,
        version,
        size,
        chunk_total: u32::try_from(total).unwrap_or(u32::MAX),
        chunks: locations,
        nodes: access,
        replicas_wanted,
        read_index,
        inline_data,
    })
}

/// For `ls -l` and `stat`: the fewest healthy replicas of any chunk of the current version, and
/// the number wanted. Directories and empty files answer (0, 0).
pub fn replica_health(
    store: &Store,
    entry: &collective_projections::EntryRecord,
) -> Result<(u32, u32), Status> {
    if entry.kind != pb::EntryKind::File as i32 || entry.chunks.is_empty() {
        return Ok((0, 0));
    }
    let nodes = store.nodes().map_err(storage)?;
    let up: HashSet<&str> = candidates(&nodes)
        .into_iter()
        .filter(|c| c.status == NodeStatus::Up)
        .map(|c| c.address)
        .collect();
    let mut fewest = u32::MAX;
    let mut seen = HashSet::new();
    let mut wanted = 1;
    for chunk in &entry.chunks {
        if !seen.insert(chunk.hash.as_slice()) {
            continue;
        }
        let healthy = store
            .replicas(&chunk.hash)
            .map_err(storage)?
            .iter()
            .filter(|r| up.contains(r.node.as_str()))
            .count();
        fewest = fewest.min(u32::try_from(healthy).unwrap_or(u32::MAX));
        if let Some(record) = store.chunk(&chunk.hash).map_err(storage)? {
            wanted = wanted.max(record.replicas_wanted);
        }
    }
    Ok((fewest, wanted))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replica(node: &str, status: NodeStatus) -> api::ReplicaInfo {
        api::ReplicaInfo {
            node: node.into(),
            status: status as i32,
        }
    }

    #[test]
    fn readers_try_up_replicas_first_and_rotate_among_them() {
        let replicas = vec![
            replica("c", NodeStatus::Down),
            replica("b", NodeStatus::Up),
            replica("a", NodeStatus::Up),
        ];
        let names = |ordered: Vec<api::ReplicaInfo>| ordered.into_iter().map(|r| r.node).collect::<Vec<_>>();
        let none = HashSet::new();
        assert_eq!(names(order_replicas(0, replicas.clone(), &none)), ["a", "b", "c"]);
        assert_eq!(names(order_replicas(1, replicas, &none)), ["b", "a", "c"]);
    }

    #[test]
    fn readers_try_a_node_whose_clock_is_off_after_the_other_up_ones() {
        let replicas = vec![
            replica("d", NodeStatus::Draining),
            replica("c", NodeStatus::Up),
            replica("b", NodeStatus::Up),
            replica("a", NodeStatus::Up),
        ];
        let names = |ordered: Vec<api::ReplicaInfo>| ordered.into_iter().map(|r| r.node).collect::<Vec<_>>();
        let clock_off = HashSet::from(["a".to_string()]);
        for index in 0..4 {
            let ordered = names(order_replicas(index, replicas.clone(), &clock_off));
            assert_eq!(ordered[2..], ["a", "d"], "chunk {index}: {ordered:?}");
        }
    }

    #[test]
    fn rendezvous_scores_spread_chunks_over_nodes() {
        let nodes = ["n1@a.b.c", "n2@a.b.c", "n3@a.b.c"];
        let mut wins = [0usize; 3];
        for i in 0u32..3000 {
            let hash = blake3::hash(&i.to_be_bytes());
            let best = (0..3)
                .max_by_key(|&n| score(hash.as_bytes(), nodes[n]))
                .unwrap_or(0);
            wins[best] += 1;
        }
        assert!(wins.iter().all(|&w| (800..1200).contains(&w)), "{wins:?}");
    }
}
