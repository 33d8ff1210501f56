//! The Raft transport, server side: decodes peers' RPCs and hands them to openraft. Only
//! coordinators of this same member may call it (checked on every RPC from the verified TLS
//! certificate, on top of the chain check of the listener).

use super::state::Coordinator;
use crate::transport::caller;
use collective_events::pb::ComponentType;
use collective_proto::raft::{
    RaftPayload, ReadIndexRequest, ReadIndexResponse, SnapshotChunk, raft_server::Raft as RaftRpc,
};
use collective_raft::{Snapshot, SnapshotDir, wire};
use openraft::ReadPolicy;
use std::io::Write;
use std::sync::Arc;
use tonic::{Request, Response, Status, Streaming};

pub struct RaftService {
    coordinator: Arc<Coordinator>,
    snapshots: SnapshotDir,
}

impl RaftService {
    pub fn new(coordinator: Arc<Coordinator>, snapshots: SnapshotDir) -> RaftService {
        RaftService {
            coordinator,
            snapshots,
        }
    }

    fn authorize<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let peer = caller(request)?;
        let member = &self.coordinator.config.member_domain;
        if peer.component != ComponentType::Coordinator || !peer.member_domain.eq_ignore_ascii_case(member) {
            tracing::warn!(peer = %peer.address, "refused a raft rpc from a non-coordinator or another member");
            return Err(Status::permission_denied(format!(
                "only coordinators of {member} may speak Raft here; {} is not one",
                peer.address
            )));
        }
        Ok(())
    }
}

fn malformed(error: wire::WireError) -> Status {
    Status::invalid_argument(format!("malformed raft message: {error}"))
}

fn raft_failed(error: impl std::fmt::Display) -> Status {
    Status::unavailable(format!("raft is not running here: {error}"))
}

#[tonic::async_trait]
impl RaftRpc for RaftService {
    async fn append(&self, request: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        self.authorize(&request)?;
        let rpc = wire::decode_append_entries_request(&request.into_inner().payload).map_err(malformed)?;
        let response = self
            .coordinator
            .raft
            .append_entries(rpc)
            .await
            .map_err(raft_failed)?;
        if response.is_success() {
            self.coordinator.note_leader_contact();
        }
        Ok(Response::new(RaftPayload {
            payload: wire::encode_append_entries_response(&response),
        }))
    }

    async fn vote(&self, request: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        self.authorize(&request)?;
        let rpc = wire::decode_vote_request(&request.into_inner().payload).map_err(malformed)?;
        let response = self.coordinator.raft.vote(rpc).await.map_err(raft_failed)?;
        Ok(Response::new(RaftPayload {
            payload: wire::encode_vote_response(&response),
        }))
    }

    async fn snapshot(
        &self,
        request: Request<Streaming<SnapshotChunk>>,
    ) -> Result<Response<RaftPayload>, Status> {
        self.authorize(&request)?;
        let mut stream = request.into_inner();
        let first = stream
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("empty snapshot stream"))?;
        let (vote, meta) = wire::decode_snapshot_request_meta(&first.meta).map_err(malformed)?;
        let mut incoming = self
            .snapshots
            .incoming()
            .map_err(|e| Status::internal(format!("snapshot file: {e}")))?;
        let mut received = 0u64;
        while let Some(chunk) = stream.message().await? {
            received += chunk.data.len() as u64;
            // Chunks are 1 MiB; writing one through the buffered file is brief blocking work.
            tokio::task::block_in_place(|| incoming.write_all(&chunk.data))
                .map_err(|e| Status::resource_exhausted(format!("cannot store the snapshot: {e}")))?;
        }
        let file = tokio::task::block_in_place(|| incoming.finish())
            .map_err(|e| Status::internal(format!("cannot store the snapshot: {e}")))?;
        tracing::info!(bytes = received, last_log = ?meta.last_log_id, "snapshot received; installing");
        let response = self
            .coordinator
            .raft
            .install_full_snapshot(vote, Snapshot { meta, snapshot: file })
            .await
            .map_err(raft_failed)?;
        self.coordinator.note_leader_contact();
        Ok(Response::new(RaftPayload {
            payload: wire::encode_snapshot_response(&response),
        }))
    }

    async fn read_index(
        &self,
        request: Request<ReadIndexRequest>,
    ) -> Result<Response<ReadIndexResponse>, Status> {
        self.authorize(&request)?;
        let linearizer = self
            .coordinator
            .raft
            .get_read_linearizer(ReadPolicy::ReadIndex)
            .await
            .map_err(|error| Status::unavailable(format!("no read index here: {error}")))?;
        Ok(Response::new(ReadIndexResponse {
            index: linearizer.read_log_id().index(),
        }))
    }
}
