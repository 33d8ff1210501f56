//! Repair, on the leader: a periodic pass over every referenced chunk that counts its healthy
//! replicas (on nodes that are up), reports under-replicated and lost chunks in `status`, and
//! brings each under-replicated chunk back to the count its file versions want.
//!
//! A repair asks a target node to copy the chunk from a healthy replica (`Replicate`: the node
//! fetches, verifies against the hash, stores durably), then records the new replica through
//! Raft (`PlaceChunk`). The record follows the copy, so the log never names a replica that is
//! not there. When the target fails (unreachable, or unable to reach any source across a
//! partition between nodes) the next ranked target is asked, up to three. A replica on a node
//! that is down is not removed: when the node returns it counts again, and the chunk, now
//! over-replicated, is trimmed back to the count wanted.
//!
//! A replica on a node whose clock is off by more than tickets tolerate does not count either
//! (the node refuses every ticket, so no one can read or copy it), and such a node takes no
//! new replica; once its clock is corrected its replicas count again and the extras are
//! trimmed. When every node that is up is off, the leader's clock is the one to blame (see
//! `scan`).
//!
//! A corrupt replica needs nothing special: the node that finds it quarantines it and gives it
//! up (`RemoveReplica`), which makes the chunk under-replicated, which this pass repairs.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use collective_events::pb::{self, NodeStatus, command_envelope::Command as PbCommand};
use collective_projections::ChunkRecord;
use collective_proto::api;
use collective_proto::chunk::{ReplicaSource, ReplicateRequest, ReplicateResponse};
use futures::stream::{self, StreamExt};

use super::data_plan::{self, Candidate};
use super::gc::{self, GcConfig};
use super::meta_service::{now_unix_ms, propose_own};
use super::reconcile;
use super::state::Coordinator;
use crate::chunk_hash::ChunkHash;
use crate::datapath::NodePool;
use crate::ticket::{self, TICKET_LIFETIME_DEFAULT, TicketGrant, TicketOp};

/// The reason recorded when an extra replica is dropped.
pub const OVER_REPLICATED_REASON: &str = "over-replicated: more healthy replicas than wanted";
/// Pause between repair passes unless `COLLECTIVE_REPAIR_INTERVAL_MS` says otherwise.
pub const REPAIR_INTERVAL_DEFAULT: Duration = Duration::from_secs(10);
/// Chunk records read per page of a pass.
const PASS_PAGE_CHUNKS: usize = 1024;
/// Chunks repaired per pass at most; the rest wait for the next pass, so one pass stays short
/// and the counts in `status` stay fresh.
const REPAIRS_PER_PASS_MAX: usize = 512;
/// Repairs running at once (each is one chunk copied node to node).
const REPAIRS_IN_FLIGHT: usize = 4;
/// Healthy sources offered to a target node.
const SOURCES_PER_REPAIR_MAX: usize = 3;
/// Target nodes asked in turn to make one copy. A target that fails (it is unreachable, or
/// cannot reach any source: a partition between nodes) is not the last word, or the same
/// ranking would pick it again every pass.
const TARGETS_PER_REPAIR_MAX: usize = 3;

/// One chunk to repair.
struct Repair {
    hash: Vec<u8>,
    size: u64,
    healthy: Vec<String>,
    holders: Vec<String>,
}

/// One replica too many (a node came back after repair copied its chunks elsewhere).
struct Trim {
    hash: Vec<u8>,
    node: String,
}

/// Runs repair passes while the process lives; only the leader acts. A node silent for `stall`
/// fails the call at hand (see `datapath::REPLICA_STALL_DEFAULT`), so a paused node that still
/// counts as up cannot hold the passes.
pub async fn run(coordinator: Arc<Coordinator>, interval: Duration, gc: GcConfig, stall: Duration) {
    let pool = NodePool::new(
        coordinator.peers.identity().clone(),
        coordinator.peers.root().clone(),
    )
    .with_stall(stall);
    let mut repaired_total = 0u64;
    let mut collected_total = 0u64;
    let mut led = false;
    // Node processes (address, start time, failed data directories) reconciled in this term: a
    // node declared down drops out, a restarted one reports a new start time, and one whose
    // disk failed reports one more failed directory, so each is reconciled again.
    let mut reconciled: HashSet<(String, u64, usize)> = HashSet::new();
    loop {
        tokio::time::sleep(interval).await;
        // A stale leader (cut off from its quorum) neither copies nor deletes: its view may be
        // behind the new leader's.
        if !coordinator.leads_with_quorum() {
            led = false;
            continue;
        }
        if !led {
            // A new term: the count in `status` is "since this coordinator took office".
            repaired_total = 0;
            collected_total = 0;
            reconciled.clear();
            led = true;
        }
        reconcile_returned(&coordinator, &pool, &mut reconciled).await;
        let started = Instant::now();
        match gc::pass(&coordinator, &pool, gc).await {
            Ok(0) => {}
            Ok(collected) => {
                collected_total += collected;
                tracing::info!(collected, "garbage collection pass");
            }
            Err(error) => tracing::warn!(%error, "garbage collection pass failed"),
        }
        match pass(&coordinator, &pool, gc.min_idle).await {
            Ok((mut health, repaired)) => {
                repaired_total += repaired;
                health.repaired = repaired_total;
                health.collected = collected_total;
                if repaired > 0 || health.under_replicated > 0 || health.lost > 0 {
                    tracing::info!(
                        chunks = health.chunks,
                        under_replicated = health.under_replicated,
                        lost = health.lost,
                        repaired,
                        took_ms = started.elapsed().as_millis() as u64,
                        "repair pass"
                    );
                }
                coordinator.set_chunk_health(Some(health));
            }
            Err(error) => tracing::warn!(%error, "repair pass failed"),
        }
    }
}

/// Reconciles every node that is up and was not (or not yet in this term), before repair counts
/// its replicas.
async fn reconcile_returned(
    coordinator: &Coordinator,
    pool: &NodePool,
    reconciled: &mut HashSet<(String, u64, usize)>,
) {
    let nodes = match coordinator.store.nodes() {
        Ok(nodes) => nodes,
        Err(error) => {
            tracing::warn!(%error, "reading the nodes for reconciliation failed");
            return;
        }
    };
    for record in nodes {
        let Some(joined) = record.joined else { continue };
        if record.status != NodeStatus::Up as i32 {
            reconciled.retain(|(address, _, _)| *address != joined.address);
            continue;
        }
        // Reconciled once the leader heard the process (its start time is in the heartbeat).
        let Some(heard) = coordinator.liveness.last_heard(&joined.address) else {
            continue;
        };
        let process = (
            joined.address.clone(),
            heard.started_at_unix_ms,
            heard.failed_data_dirs.len(),
        );
        if reconciled.contains(&process) {
            continue;
        }
        match reconcile::reconcile(coordinator, pool, &joined.address, &joined.endpoint).await {
            Ok(missing) => {
                if missing > 0 {
                    tracing::warn!(node = %joined.address, missing, "replicas missing on a node; repair will copy them again");
                }
                reconciled.insert(process);
            }
            Err(error) => {
                tracing::warn!(node = %joined.address, %error, "reconciliation failed; retrying next pass")
            }
        }
    }
}

/// The repair interval from the environment, or the default.
pub fn interval_from_env() -> anyhow::Result<Duration> {
    crate::env::millis("COLLECTIVE_REPAIR_INTERVAL_MS", REPAIR_INTERVAL_DEFAULT)
}

/// One pass: counts, then repairs up to `REPAIRS_PER_PASS_MAX` chunks. Returns the health
/// counted before repairing and the number of replicas added.
async fn pass(
    coordinator: &Arc<Coordinator>,
    pool: &NodePool,
    min_idle: Duration,
) -> anyhow::Result<(api::ChunkHealth, u64)> {
    let store = coordinator.store.clone();
    let clock_off = coordinator.liveness.clock_off_nodes();
    let unusable = clock_off.clone();
    let (health, queue, trims, nodes) =
        tokio::task::spawn_blocking(move || scan(&store, &unusable)).await??;
    let mut candidates = data_plan::candidates(&nodes);
    candidates.retain(|c| !clock_off.contains(c.address));
    let failed_targets = FailedTargets::default();
    let repaired = stream::iter(queue)
        .map(|job| repair_one(coordinator, pool, &candidates, &failed_targets, job))
        .buffer_unordered(REPAIRS_IN_FLIGHT)
        .fold(0u64, |done, result| async move {
            match result {
                Ok(()) => done + 1,
                Err(error) => {
                    tracing::warn!(%error, "repair failed; the next pass tries again");
                    done
                }
            }
        })
        .await;
    for trim in trims {
        if let Err(error) = trim_one(coordinator, pool, &candidates, &trim, min_idle).await {
            tracing::warn!(%error, "trimming an extra replica failed; the next pass tries again");
        }
    }
    Ok((health, repaired))
}

/// Drops one extra replica: the record first (readers stop being sent there), then the copy,
/// with the guarded delete (a copy a writer just re-put is kept; if it is committed again it is
/// recorded again, and if not the node's orphan sweep removes it later).
async fn trim_one(
    coordinator: &Coordinator,
    pool: &NodePool,
    candidates: &[Candidate<'_>],
    trim: &Trim,
    min_idle: Duration,
) -> anyhow::Result<()> {
    let hash = ChunkHash::from_slice(&trim.hash)?;
    let identity = coordinator.peers.identity();
    let me = identity.identity()?.address.to_string();
    let command = PbCommand::RemoveReplica(pb::RemoveReplica {
        hash: trim.hash.clone(),
        node: trim.node.clone(),
        reason: OVER_REPLICATED_REASON.into(),
    });
    propose_own(coordinator, command).await.map_err(|status| {
        anyhow::anyhow!(
            "recording the removal of chunk {hash} on {}: {}",
            trim.node,
            status.message()
        )
    })?;
    let Some(node) = candidates.iter().find(|c| c.address == trim.node) else {
        return Ok(());
    };
    let ticket = ticket::issue(
        &identity,
        &TicketGrant {
            op: TicketOp::Delete,
            hashes: std::slice::from_ref(&hash),
            holder: &me,
            node: &trim.node,
            issued_at_unix_ms: u64::try_from(now_unix_ms()).unwrap_or(0),
            lifetime: TICKET_LIFETIME_DEFAULT,
        },
    )?;
    pool.delete(
        &trim.node,
        node.endpoint,
        collective_proto::chunk::DeleteRequest {
            ticket: Some(ticket),
            hashes: vec![trim.hash.clone()],
            min_idle_ms: u64::try_from(min_idle.as_millis()).unwrap_or(u64::MAX),
        },
    )
    .await
    .map_err(|error| anyhow::anyhow!("deleting the extra copy of {hash} on {}: {error}", trim.node))?;
    tracing::info!(chunk = %hash, node = %trim.node, "extra replica trimmed");
    Ok(())
}

type Scan = (
    api::ChunkHealth,
    Vec<Repair>,
    Vec<Trim>,
    Vec<collective_projections::NodeRecord>,
);

/// Counts and queues the pass's work; replicas on `clock_off` nodes count as unhealthy, unless
/// every node that is up (more than one) is off: then the leader's own clock is the likely
/// culprit, the replicas are as good as ever, and they keep counting (`status` shows the
/// offsets, and writes are refused until the clocks agree).
fn scan(store: &collective_projections::Store, clock_off: &HashSet<String>) -> anyhow::Result<Scan> {
    let nodes = store.nodes()?;
    let up_addresses: Vec<&str> = nodes
        .iter()
        .filter(|n| n.status == NodeStatus::Up as i32)
        .filter_map(|n| n.joined.as_ref().map(|j| j.address.as_str()))
        .collect();
    let leader_off = up_addresses.len() > 1 && up_addresses.iter().all(|a| clock_off.contains(*a));
    let up: HashMap<String, bool> = nodes
        .iter()
        .filter_map(|n| {
            let address = n.joined.as_ref()?.address.clone();
            let usable = n.status == NodeStatus::Up as i32 && (leader_off || !clock_off.contains(&address));
            Some((address, usable))
        })
        .collect();
    let mut health = api::ChunkHealth {
        pass_at_unix_ms: now_unix_ms(),
        ..Default::default()
    };
    let mut queue = Vec::new();
    let mut trims = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = store.chunks_after(after.as_deref(), PASS_PAGE_CHUNKS)?;
        let full = page.len() == PASS_PAGE_CHUNKS;
        for (hash, record) in &page {
            let ChunkRecord {
                refs,
                replicas_wanted,
                size,
                ..
            } = *record;
            if refs == 0 {
                continue;
            }
            health.chunks += 1;
            let holders: Vec<String> = store.replicas(hash)?.into_iter().map(|r| r.node).collect();
            let healthy: Vec<String> = holders
                .iter()
                .filter(|n| up.get(n.as_str()).copied().unwrap_or(false))
                .cloned()
                .collect();
            let wanted = replicas_wanted.max(1) as usize;
            if healthy.len() > wanted && trims.len() < REPAIRS_PER_PASS_MAX {
                // Keep the replicas rendezvous placement would choose; drop the rest.
                let mut ranked = healthy.clone();
                ranked.sort_by_key(|node| std::cmp::Reverse(data_plan::score(hash, node)));
                trims.extend(ranked.into_iter().skip(wanted).map(|node| Trim {
                    hash: hash.clone(),
                    node,
                }));
            }
            if healthy.is_empty() {
                health.lost += 1;
            } else if healthy.len() < wanted {
                health.under_replicated += 1;
                if queue.len() < REPAIRS_PER_PASS_MAX {
                    queue.push(Repair {
                        hash: hash.clone(),
                        size,
                        healthy,
                        holders,
                    });
                }
            }
        }
        match page.last() {
            Some((last, _)) if full => after = Some(last.clone()),
            _ => break,
        }
    }
    Ok((health, queue, trims, nodes))
}

/// Targets that failed a copy during one pass. They go to the back of the line for the rest of
/// the pass, so that one unreachable node costs a dial per chunk in flight, not per chunk.
type FailedTargets = std::sync::Mutex<HashSet<String>>;

/// Copies one chunk to one more node and records it.
async fn repair_one(
    coordinator: &Arc<Coordinator>,
    pool: &NodePool,
    candidates: &[Candidate<'_>],
    failed_targets: &FailedTargets,
    job: Repair,
) -> anyhow::Result<()> {
    let hash = ChunkHash::from_slice(&job.hash)?;
    let mut targets = data_plan::rank_targets(candidates, &job.hash, job.size, &job.holders);
    if targets.is_empty() {
        anyhow::bail!("chunk {hash}: no node is up with room for another replica");
    }
    let failed = |address: &str| {
        failed_targets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(address)
    };
    targets.sort_by_key(|target| failed(target.address)); // stable: rank order within each group
    let mut failures = Vec::new();
    let mut copy = None;
    for target in targets.into_iter().take(TARGETS_PER_REPAIR_MAX) {
        match copy_to(coordinator, pool, candidates, &job, &hash, target).await {
            Ok(copied) => {
                copy = Some((target, copied));
                break;
            }
            Err(error) => {
                failed_targets
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(target.address.to_owned());
                failures.push(error.to_string());
            }
        }
    }
    let Some((target, copied)) = copy else {
        anyhow::bail!("{}", failures.join("; "));
    };
    // Recorded once, whatever happens: a copy that cannot be recorded (a lost leadership) is
    // not made again elsewhere; the next pass, or the next leader, decides afresh.
    let command = PbCommand::PlaceChunk(pb::PlaceChunk {
        hash: job.hash,
        node: target.address.to_string(),
        size: job.size,
    });
    propose_own(coordinator, command).await.map_err(|status| {
        anyhow::anyhow!(
            "recording chunk {hash} on {}: {}",
            target.address,
            status.message()
        )
    })?;
    tracing::info!(chunk = %hash, to = target.address, from = %copied.source, "replica repaired");
    Ok(())
}

/// Has `target` copy the chunk of `job` from its healthy replicas.
async fn copy_to(
    coordinator: &Arc<Coordinator>,
    pool: &NodePool,
    candidates: &[Candidate<'_>],
    job: &Repair,
    hash: &ChunkHash,
    target: &Candidate<'_>,
) -> anyhow::Result<ReplicateResponse> {
    let identity = &coordinator.peers.identity();
    let me = identity.identity()?.address.to_string();
    let issued_at = u64::try_from(now_unix_ms()).unwrap_or(0);
    let grant = |op, holder: &str, node: &str| {
        ticket::issue(
            identity,
            &TicketGrant {
                op,
                hashes: std::slice::from_ref(hash),
                holder,
                node,
                issued_at_unix_ms: issued_at,
                lifetime: TICKET_LIFETIME_DEFAULT,
            },
        )
    };
    let mut sources = Vec::new();
    for source in job.healthy.iter().take(SOURCES_PER_REPAIR_MAX) {
        let Some(node) = candidates.iter().find(|c| c.address == source) else {
            continue;
        };
        sources.push(ReplicaSource {
            node: source.clone(),
            endpoint: node.endpoint.to_string(),
            ticket: Some(grant(TicketOp::Get, target.address, source)?),
        });
    }
    let request = ReplicateRequest {
        ticket: Some(grant(TicketOp::Put, &me, target.address)?),
        hash: job.hash.clone(),
        length_bytes: job.size,
        sources,
    };
    pool.replicate(target.address, target.endpoint, request)
        .await
        .map_err(|error| anyhow::anyhow!("chunk {hash} to {}: {error}", target.address))
}
