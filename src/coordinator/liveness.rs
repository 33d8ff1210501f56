//! Storage-node liveness, kept by the leader: when each node last sent a heartbeat, and the
//! watchdog that declares a silent node DOWN through Raft.
//!
//! Heartbeats are a dedicated `Heartbeat` RPC rather than a `ReportNodeStatus` submitted every
//! few seconds: a Submit is a Raft entry (an fsync on a quorum) plus a dedupe record kept
//! forever, for every node, every interval. A heartbeat only touches this in-memory table; it
//! is turned into a `ReportNodeStatus` proposal when what the log records changes (the node
//! comes back UP, or its free space moved by a step worth recording). The table is not
//! replicated: a new leader starts counting silence from the moment it took over, so a leader
//! change delays a DOWN verdict by at most one timeout and never causes a false one.

use super::meta_service::{now_unix_ms, propose};
use super::state::Coordinator;
use crate::ticket::CLOCK_SKEW_DEFAULT;
use collective_events::pb::{self, command_envelope::Command};
use collective_projections::NodeRecord;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A node silent for this long is declared DOWN (default; `COLLECTIVE_NODE_DOWN_AFTER_MS`).
pub const NODE_DOWN_AFTER_DEFAULT: Duration = Duration::from_secs(10);
/// The watchdog's period is a quarter of the timeout, within these bounds.
const WATCH_PERIOD_MIN: Duration = Duration::from_millis(50);
const WATCH_PERIOD_MAX: Duration = Duration::from_secs(1);
/// Free-space changes smaller than this many bytes (or than 1% of the recorded figure, if
/// larger) are not worth a Raft entry: any write on the node's file system moves the number.
pub const FREE_BYTES_REPORT_STEP_MIN: u64 = 64 * 1024 * 1024;

/// A node's last heartbeat as this coordinator heard it.
#[derive(Debug, Clone)]
pub struct Heard {
    pub at: Instant,
    pub load_milli: u32,
    pub chunk_count: u64,
    /// The node process's start time, as it reports it (a change means a restart).
    pub started_at_unix_ms: u64,
    /// The node's wall clock minus this coordinator's when the heartbeat arrived, if the node
    /// reported its clock.
    pub clock_offset_ms: Option<i64>,
    /// The node's data directories out of service, each as "PATH: why".
    pub failed_data_dirs: Vec<String>,
}

impl Heard {
    /// Whether the node's clock is further from this coordinator's than nodes tolerate when
    /// they check a ticket's times: every ticket this member issues would be refused there.
    pub fn clock_out_of_bounds(&self) -> bool {
        self.clock_offset_ms
            .is_some_and(crate::ticket::clock_offset_refuses_tickets)
    }
}

/// When each node (by federated address) was last heard, on this coordinator.
pub struct Liveness {
    last_seen: Mutex<HashMap<String, Heard>>,
    pub down_after: Duration,
}

impl Liveness {
    pub fn new(down_after: Duration) -> Liveness {
        Liveness {
            last_seen: Mutex::new(HashMap::new()),
            down_after,
        }
    }

    /// Reads `COLLECTIVE_NODE_DOWN_AFTER_MS` (for tests and impatient operators).
    pub fn from_env() -> anyhow::Result<Liveness> {
        let down_after = crate::env::millis("COLLECTIVE_NODE_DOWN_AFTER_MS", NODE_DOWN_AFTER_DEFAULT)?;
        anyhow::ensure!(
            !down_after.is_zero(),
            "COLLECTIVE_NODE_DOWN_AFTER_MS must be positive"
        );
        Ok(Liveness::new(down_after))
    }

    /// Records a heartbeat; `sent_at_unix_ms` is the node's clock when it sent it (0: unknown).
    pub fn seen(
        &self,
        address: &str,
        load_milli: u32,
        chunk_count: u64,
        started_at_unix_ms: u64,
        sent_at_unix_ms: u64,
        failed_data_dirs: Vec<String>,
    ) {
        let clock_offset_ms =
            (sent_at_unix_ms > 0).then(|| i64::try_from(sent_at_unix_ms).unwrap_or(i64::MAX) - now_unix_ms());
        let previous = self.last_heard(address);
        let heard = Heard {
            at: Instant::now(),
            load_milli,
            chunk_count,
            started_at_unix_ms,
            clock_offset_ms,
            failed_data_dirs,
        };
        if heard.clock_out_of_bounds() && !previous.as_ref().is_some_and(|p| p.clock_out_of_bounds()) {
            tracing::warn!(
                node = address,
                clock_offset_ms,
                tolerated_ms = CLOCK_SKEW_DEFAULT.as_millis() as u64,
                "the node's clock is off by more than tickets tolerate; no chunk is placed on it until it is corrected"
            );
        }
        let failed_before = previous.as_ref().map_or(0, |p| p.failed_data_dirs.len());
        if heard.failed_data_dirs.len() > failed_before {
            tracing::warn!(
                node = address,
                failed = ?heard.failed_data_dirs,
                "a data directory of the node failed; its chunks are checked and copied again"
            );
        }
        self.table().insert(address.to_string(), heard);
    }

    pub fn last_heard(&self, address: &str) -> Option<Heard> {
        self.table().get(address).cloned()
    }

    /// The nodes last heard with a clock off by more than tickets tolerate
    /// ([`Heard::clock_out_of_bounds`]): they refuse every ticket, so their replicas can be
    /// neither read nor copied, and a chunk placed there would be refused.
    pub fn clock_off_nodes(&self) -> HashSet<String> {
        self.table()
            .iter()
            .filter(|(_, heard)| heard.clock_out_of_bounds())
            .map(|(address, _)| address.clone())
            .collect()
    }

    fn last_seen(&self, address: &str) -> Option<Instant> {
        self.last_heard(address).map(|heard| heard.at)
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<String, Heard>> {
        // The table holds only instants; a panic elsewhere cannot leave it inconsistent.
        self.last_seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Whether a heartbeat reporting `free_bytes` should change what the log records for `node`.
pub fn report_needed(node: &NodeRecord, free_bytes: u64) -> bool {
    if node.status != pb::NodeStatus::Up as i32 {
        return true;
    }
    let step = (node.free_bytes / 100).max(FREE_BYTES_REPORT_STEP_MIN);
    node.free_bytes.abs_diff(free_bytes) >= step
}

/// The node's status change, proposed by this coordinator in its own name.
pub async fn propose_status(
    coordinator: &Coordinator,
    address: &str,
    status: pb::NodeStatus,
    free_bytes: u64,
) -> Result<u64, tonic::Status> {
    let envelope = pb::CommandEnvelope {
        schema_version: collective_events::SCHEMA_VERSION,
        actor: coordinator.config.address.clone(),
        request_id: crate::client::new_request_id(),
        proposed_at_unix_ms: now_unix_ms(),
        command: Some(Command::ReportNodeStatus(pb::ReportNodeStatus {
            address: address.to_string(),
            status: status as i32,
            free_bytes,
        })),
    };
    let (log_index, _) = propose(coordinator, envelope).await?;
    Ok(log_index)
}

/// Declares DOWN every UP node not heard from for `down_after`, while this coordinator leads.
/// Runs until the task is aborted.
pub async fn watch(coordinator: Arc<Coordinator>) {
    let down_after = coordinator.liveness.down_after;
    let period = (down_after / 4).clamp(WATCH_PERIOD_MIN, WATCH_PERIOD_MAX);
    let mut leading_since: Option<Instant> = None;
    loop {
        tokio::time::sleep(period).await;
        // Silence counts from when this coordinator leads with a quorum: while it is cut off
        // from its followers the nodes look for another leader, and are not silent for that.
        if !coordinator.leads_with_quorum() {
            leading_since = None;
            continue;
        }
        let since = *leading_since.get_or_insert_with(Instant::now);
        let nodes = match coordinator.store.nodes() {
            Ok(nodes) => nodes,
            Err(error) => {
                tracing::error!(%error, "reading the nodes table");
                continue;
            }
        };
        for node in nodes {
            let Some(joined) = node.joined.as_ref() else {
                continue;
            };
            if node.status != pb::NodeStatus::Up as i32 {
                continue;
            }
            let heard = coordinator
                .liveness
                .last_seen(&joined.address)
                .map_or(since, |at| at.max(since));
            if heard.elapsed() <= down_after {
                continue;
            }
            match propose_status(
                &coordinator,
                &joined.address,
                pb::NodeStatus::Down,
                node.free_bytes,
            )
            .await
            {
                Ok(_) => tracing::warn!(
                    node = %joined.address,
                    silent_ms = heard.elapsed().as_millis() as u64,
                    "node declared down"
                ),
                Err(status) => tracing::warn!(
                    node = %joined.address,
                    error = %status.message(),
                    "could not declare the node down"
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(status: pb::NodeStatus, free_bytes: u64) -> NodeRecord {
        NodeRecord {
            status: status as i32,
            free_bytes,
            ..Default::default()
        }
    }

    #[test]
    fn only_status_changes_and_large_free_space_moves_are_reported() {
        let gib = 1 << 30;
        let up = record(pb::NodeStatus::Up, 100 * gib);
        assert!(!report_needed(&up, 100 * gib));
        assert!(!report_needed(&up, 100 * gib - 10 * 1024 * 1024));
        assert!(report_needed(&up, 98 * gib));
        assert!(report_needed(&record(pb::NodeStatus::Down, gib), gib));
        let small = record(pb::NodeStatus::Up, 10 * 1024 * 1024);
        assert!(!report_needed(&small, 0));
        assert!(report_needed(&small, 200 * 1024 * 1024));
    }

    #[test]
    fn last_seen_is_recorded_per_node() {
        let liveness = Liveness::new(Duration::from_secs(1));
        assert!(liveness.last_seen("node-01@a.b").is_none());
        liveness.seen("node-01@a.b", 250, 3, 1, 0, Vec::new());
        let heard = liveness.last_heard("node-01@a.b").expect("heard");
        assert_eq!((heard.load_milli, heard.chunk_count), (250, 3));
        assert_eq!(
            heard.clock_offset_ms, None,
            "0: the node did not report its clock"
        );
        assert!(!heard.clock_out_of_bounds());
        assert!(liveness.last_seen("node-02@a.b").is_none());
    }

    #[test]
    fn a_node_clock_beyond_the_ticket_tolerance_is_out_of_bounds() {
        let liveness = Liveness::new(Duration::from_secs(1));
        let now = u64::try_from(now_unix_ms()).expect("after 1970");
        let tolerated = CLOCK_SKEW_DEFAULT.as_millis() as u64;
        for (node, sent_at, out) in [
            ("on-time@a.b", now, false),
            ("ahead-within@a.b", now + tolerated - 5_000, false),
            ("behind-within@a.b", now - tolerated + 5_000, false),
            ("ahead@a.b", now + tolerated + 5_000, true),
            ("behind@a.b", now - tolerated - 5_000, true),
        ] {
            liveness.seen(node, 0, 0, 1, sent_at, Vec::new());
            let heard = liveness.last_heard(node).expect("heard");
            let offset = heard.clock_offset_ms.expect("reported");
            let expected = i64::try_from(sent_at).expect("fits") - i64::try_from(now).expect("fits");
            assert!(
                (offset - expected).abs() < 2_000,
                "{node}: {offset} ms, about {expected}"
            );
            assert_eq!(heard.clock_out_of_bounds(), out, "{node}");
        }
    }
}
