//! What every RPC handler of a coordinator shares: its identity, the Raft handle, the
//! projections store, and how to reach its peers.

use crate::coordinator::config::CoordinatorConfig;
use crate::coordinator::liveness::Liveness;
use crate::coordinator::rotation::LivePki;
use crate::transport::PeerContext;
use collective_projections::Store;
use collective_proto::api;
use collective_raft::{CoordinatorNode, NodeId, Raft};
use openraft::async_runtime::watch::WatchReceiver;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub struct Coordinator {
    pub config: CoordinatorConfig,
    pub raft: Raft,
    pub store: Store,
    pub peers: Arc<PeerContext>,
    /// Storage nodes' last heartbeats (meaningful on the leader).
    pub liveness: Liveness,
    /// The trust store, the root, and the member CA key where this coordinator holds it.
    pub pki: LivePki,
    /// When this coordinator last accepted an AppendEntries from a leader, in milliseconds since
    /// `started`; bounds how stale its projections may be for follower reads.
    leader_contact_ms: AtomicU64,
    started: Instant,
    /// The leader's last repair pass over the chunks (see `repair`).
    chunk_health: Mutex<Option<api::ChunkHealth>>,
}

impl Coordinator {
    pub fn new(
        config: CoordinatorConfig,
        raft: Raft,
        store: Store,
        peers: Arc<PeerContext>,
        liveness: Liveness,
        pki: LivePki,
    ) -> Coordinator {
        Coordinator {
            config,
            raft,
            store,
            peers,
            liveness,
            pki,
            leader_contact_ms: AtomicU64::new(u64::MAX),
            started: Instant::now(),
            chunk_health: Mutex::new(None),
        }
    }

    pub fn id(&self) -> NodeId {
        self.config.id
    }

    pub fn metrics(&self) -> openraft::RaftMetrics<collective_raft::TypeConfig> {
        self.raft.metrics().borrow_watched().clone()
    }

    /// The current leader and how to reach it, as this coordinator knows them.
    pub fn leader(&self) -> Option<(NodeId, CoordinatorNode)> {
        let metrics = self.metrics();
        let leader = metrics.current_leader?;
        let node = metrics.membership_config.membership().get_node(&leader)?.clone();
        Some((leader, node))
    }

    pub fn is_leader(&self) -> bool {
        self.metrics().current_leader == Some(self.id())
    }

    /// True when this coordinator leads and a quorum of voters acknowledged it within the
    /// longest election timeout. A leader cut off from its followers believes it leads until
    /// it hears of a higher term, while the others may have elected a new leader long since:
    /// state only the leader keeps (node liveness) must not be fed to such a stale leader. A
    /// single voter is its own quorum.
    pub fn leads_with_quorum(&self) -> bool {
        self.quorum_fresh() == Some(true)
    }

    /// True when this coordinator believes it leads but no quorum acknowledged it lately (see
    /// [`Coordinator::leads_with_quorum`]).
    pub fn is_stale_leader(&self) -> bool {
        self.quorum_fresh() == Some(false)
    }

    /// Where to send a caller that needs the leader: the leader this coordinator knows of,
    /// unless that is itself (then it is stale, and naming itself would send the caller
    /// straight back).
    pub fn leader_elsewhere(&self) -> Option<String> {
        self.leader()
            .filter(|(id, _)| *id != self.id())
            .map(|(_, node)| node.endpoint)
    }

    /// None when this coordinator does not lead; otherwise whether a quorum of voters
    /// acknowledged it within the longest election timeout (a single voter always has).
    fn quorum_fresh(&self) -> Option<bool> {
        let metrics = self.metrics();
        if metrics.current_leader != Some(self.id()) {
            return None;
        }
        if metrics.membership_config.membership().voter_ids().count() <= 1 {
            return Some(true);
        }
        let fresh = std::time::Duration::from_millis(collective_raft::config::ELECTION_TIMEOUT_MAX_MS);
        Some(
            metrics
                .last_quorum_acked
                .as_ref()
                .is_some_and(|acked| openraft::Instant::elapsed(&**acked) <= fresh),
        )
    }

    /// Chunk health from the last repair pass, reported only while this coordinator leads.
    pub fn chunk_health(&self) -> Option<api::ChunkHealth> {
        if !self.is_leader() {
            return None;
        }
        *self.chunk_health.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_chunk_health(&self, health: Option<api::ChunkHealth>) {
        *self.chunk_health.lock().unwrap_or_else(|p| p.into_inner()) = health;
    }

    pub fn note_leader_contact(&self) {
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        self.leader_contact_ms.store(now, Ordering::Relaxed);
    }

    /// Milliseconds since a leader last replicated to this coordinator, if ever.
    pub fn since_leader_contact_ms(&self) -> Option<u64> {
        let at = self.leader_contact_ms.load(Ordering::Relaxed);
        (at != u64::MAX).then(|| {
            u64::try_from(self.started.elapsed().as_millis())
                .unwrap_or(u64::MAX)
                .saturating_sub(at)
        })
    }
}
