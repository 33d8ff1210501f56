//! The in-memory network: `RaftNetworkV2` over a map of nodes, encoding every message.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::sync::{Arc, Mutex};

use collective_raft::wire;
use collective_raft::{CoordinatorNode, NodeId, Raft, Snapshot, SnapshotDir, SnapshotFile, TypeConfig, Vote};
use openraft::RaftNetworkFactory;
use openraft::error::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::RPCOption;
use openraft::network::v2::RaftNetworkV2;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};

/// Which nodes are reachable, by id.
#[derive(Clone, Default)]
pub struct Router {
    nodes: Arc<Mutex<BTreeMap<NodeId, (Raft, SnapshotDir)>>>,
}

impl Router {
    pub fn add(&self, id: NodeId, raft: Raft, snapshots: SnapshotDir) {
        self.lock().insert(id, (raft, snapshots));
    }

    pub fn remove(&self, id: NodeId) {
        self.lock().remove(&id);
    }

    pub fn factory(&self) -> Factory {
        Factory { router: self.clone() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<NodeId, (Raft, SnapshotDir)>> {
        self.nodes.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, id: NodeId) -> Result<(Raft, SnapshotDir), Unreachable<TypeConfig>> {
        self.lock()
            .get(&id)
            .cloned()
            .ok_or_else(|| Unreachable::new(&io::Error::other(format!("node {id} is down"))))
    }
}

pub struct Factory {
    router: Router,
}

impl RaftNetworkFactory<TypeConfig> for Factory {
    type Network = Connection;

    async fn new_client(&mut self, target: NodeId, _node: &CoordinatorNode) -> Connection {
        Connection {
            target,
            router: self.router.clone(),
        }
    }
}

pub struct Connection {
    target: NodeId,
    router: Router,
}

fn net<E: std::error::Error + 'static>(e: E) -> NetworkError<TypeConfig> {
    NetworkError::new(&e)
}

impl RaftNetworkV2<TypeConfig> for Connection {
    type SnapshotData = SnapshotFile;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let (raft, _) = self.router.get(self.target)?;
        let req =
            wire::decode_append_entries_request(&wire::encode_append_entries_request(&rpc)).map_err(net)?;
        let resp = raft.append_entries(req).await.map_err(|e| Unreachable::new(&e))?;
        Ok(
            wire::decode_append_entries_response(&wire::encode_append_entries_response(&resp))
                .map_err(net)?,
        )
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let (raft, _) = self.router.get(self.target)?;
        let req = wire::decode_vote_request(&wire::encode_vote_request(&rpc)).map_err(net)?;
        let resp = raft.vote(req).await.map_err(|e| Unreachable::new(&e))?;
        Ok(wire::decode_vote_response(&wire::encode_vote_response(&resp)).map_err(net)?)
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let (raft, _) = self.router.get(self.target)?;
        let req = wire::decode_vote_request(&wire::encode_vote_request(&rpc)).map_err(net)?;
        let resp = raft.pre_vote(req).await.map_err(|e| Unreachable::new(&e))?;
        Ok(wire::decode_vote_response(&wire::encode_vote_response(&resp)).map_err(net)?)
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        _cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let (raft, dir) = self.router.get(self.target)?;
        let header = wire::encode_snapshot_request_meta(&vote, &snapshot.meta);
        let (vote, meta) = wire::decode_snapshot_request_meta(&header).map_err(net)?;
        // The sender streams the file's bytes; the receiver writes them to an incoming file.
        let source = snapshot.snapshot;
        let file = tokio::task::spawn_blocking(move || -> io::Result<SnapshotFile> {
            let mut incoming = dir.incoming()?;
            io::copy(&mut source.reader(), &mut incoming)?;
            incoming.finish()
        })
        .await
        .map_err(net)?
        .map_err(net)?;
        let resp = raft
            .install_full_snapshot(vote, Snapshot { meta, snapshot: file })
            .await
            .map_err(|e| Unreachable::new(&e))?;
        Ok(wire::decode_snapshot_response(&wire::encode_snapshot_response(&resp)).map_err(net)?)
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        let (raft, _) = self.router.get(self.target)?;
        let req =
            wire::decode_transfer_leader_request(&wire::encode_transfer_leader_request(&req)).map_err(net)?;
        let resp = raft
            .handle_transfer_leader(req)
            .await
            .map_err(|e| Unreachable::new(&e))?;
        Ok(
            wire::decode_transfer_leader_response(&wire::encode_transfer_leader_response(&resp))
                .map_err(net)?,
        )
    }
}
