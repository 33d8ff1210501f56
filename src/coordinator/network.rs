//! The Raft transport, client side: openraft's `RaftNetworkV2` over gRPC with mutual TLS.
//!
//! The `raft` crate owns the bytes (`collective_raft::wire`); this file only moves them. One
//! lazily connected channel per peer, shared by all RPCs to it (HTTP/2 multiplexes them).
//! A peer we cannot connect to is reported as `Unreachable`, so openraft backs off instead of
//! hammering a dead coordinator.

use crate::transport::PeerContext;
use collective_proto::raft::{RaftPayload, ReadIndexRequest, SnapshotChunk, raft_client::RaftClient};
use collective_raft::{CoordinatorNode, NodeId, SnapshotFile, TypeConfig, wire};
use openraft::error::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory, v2::RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::type_config::alias::{SnapshotOf, VoteOf};
use std::future::Future;
use std::io::Read;
use std::sync::Arc;
use tonic::transport::Channel;

/// Snapshot chunks buffered between the file reader and the gRPC stream.
const SNAPSHOT_CHUNKS_IN_FLIGHT_MAX: usize = 4;

/// Builds one `PeerNetwork` per target coordinator.
#[derive(Clone)]
pub struct NetworkFactory {
    context: Arc<PeerContext>,
}

impl NetworkFactory {
    pub fn new(context: Arc<PeerContext>) -> NetworkFactory {
        NetworkFactory { context }
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerNetwork;

    async fn new_client(&mut self, target: NodeId, node: &CoordinatorNode) -> PeerNetwork {
        PeerNetwork {
            target,
            node: node.clone(),
            context: self.context.clone(),
            client: None,
        }
    }
}

/// The connection to one peer coordinator.
pub struct PeerNetwork {
    target: NodeId,
    node: CoordinatorNode,
    context: Arc<PeerContext>,
    client: Option<RaftClient<Channel>>,
}

impl PeerNetwork {
    async fn client(&mut self) -> Result<RaftClient<Channel>, RPCError<TypeConfig>> {
        if let Some(client) = &self.client {
            return Ok(client.clone());
        }
        let channel = self.context.connect_peer(&self.node).await.map_err(|error| {
            tracing::debug!(target_id = self.target, endpoint = %self.node.endpoint, error = %format!("{error:#}"), "raft peer unreachable");
            RPCError::Unreachable(Unreachable::new(&Failure(format!("{error:#}"))))
        })?;
        let client = RaftClient::new(channel)
            .max_decoding_message_size(collective_proto::MESSAGE_BYTES_MAX)
            .max_encoding_message_size(collective_proto::MESSAGE_BYTES_MAX);
        self.client = Some(client.clone());
        Ok(client)
    }

    /// A failed RPC drops the cached channel so the next one reconnects (the peer may have
    /// restarted with a new listener).
    fn failed(&mut self, status: tonic::Status) -> RPCError<TypeConfig> {
        self.client = None;
        status_error(status)
    }
}

impl RaftNetworkV2<TypeConfig> for PeerNetwork {
    type SnapshotData = SnapshotFile;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let mut client = self.client().await?;
        let mut request = tonic::Request::new(RaftPayload {
            payload: wire::encode_append_entries_request(&rpc),
        });
        request.set_timeout(option.soft_ttl());
        let response = client
            .append(request)
            .await
            .map_err(|status| self.failed(status))?;
        wire::decode_append_entries_response(&response.into_inner().payload).map_err(network_error)
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let mut client = self.client().await?;
        let mut request = tonic::Request::new(RaftPayload {
            payload: wire::encode_vote_request(&rpc),
        });
        request.set_timeout(option.soft_ttl());
        let response = client.vote(request).await.map_err(|status| self.failed(status))?;
        wire::decode_vote_response(&response.into_inner().payload).map_err(network_error)
    }

    async fn full_snapshot(
        &mut self,
        vote: VoteOf<TypeConfig>,
        snapshot: SnapshotOf<TypeConfig, SnapshotFile>,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let mut client = self.client().await?;
        let meta = wire::encode_snapshot_request_meta(&vote, &snapshot.meta);
        let (sender, receiver) = tokio::sync::mpsc::channel::<SnapshotChunk>(SNAPSHOT_CHUNKS_IN_FLIGHT_MAX);
        let mut reader = snapshot.snapshot.reader();
        // Reading the file is blocking IO: it runs on the blocking pool and feeds the stream.
        let producer = tokio::task::spawn_blocking(move || -> std::io::Result<u64> {
            if sender
                .blocking_send(SnapshotChunk {
                    meta,
                    data: Vec::new(),
                })
                .is_err()
            {
                return Ok(0);
            }
            let mut sent = 0u64;
            loop {
                let mut buffer = vec![0u8; collective_proto::SNAPSHOT_CHUNK_BYTES];
                let n = read_full(&mut reader, &mut buffer)?;
                if n == 0 {
                    return Ok(sent);
                }
                buffer.truncate(n);
                sent += n as u64;
                if sender
                    .blocking_send(SnapshotChunk {
                        meta: Vec::new(),
                        data: buffer,
                    })
                    .is_err()
                {
                    return Ok(sent);
                }
            }
        });
        let stream = tokio_stream::wrappers::ReceiverStream::new(receiver);
        let call = client.snapshot(tonic::Request::new(stream));
        let response = tokio::select! {
            closed = cancel => {
                producer.abort();
                return Err(StreamingError::Closed(closed));
            }
            response = call => response,
        };
        let sent = match producer.await {
            Ok(Ok(sent)) => sent,
            Ok(Err(error)) => return Err(StreamingError::Network(NetworkError::new(&error))),
            Err(error) => {
                return Err(StreamingError::Network(NetworkError::new(&Failure(
                    error.to_string(),
                ))));
            }
        };
        let response = response.map_err(|status| StreamingError::from(self.failed(status)))?;
        tracing::info!(target_id = self.target, bytes = sent, "snapshot sent");
        wire::decode_snapshot_response(&response.into_inner().payload)
            .map_err(|error| StreamingError::Network(NetworkError::new(&error)))
    }
}

impl PeerNetwork {
    /// Asks this peer (the leader) for a linearizable read index.
    pub async fn read_index(&mut self) -> Result<u64, RPCError<TypeConfig>> {
        let mut client = self.client().await?;
        let response = client
            .read_index(ReadIndexRequest {})
            .await
            .map_err(|status| self.failed(status))?;
        Ok(response.into_inner().index)
    }
}

/// Creates a one-off connection to `node`, for RPCs outside replication (read index).
pub fn peer(context: Arc<PeerContext>, target: NodeId, node: CoordinatorNode) -> PeerNetwork {
    PeerNetwork {
        target,
        node,
        context,
        client: None,
    }
}

fn read_full(reader: &mut impl Read, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

fn status_error(status: tonic::Status) -> RPCError<TypeConfig> {
    let failure = Failure(format!("{}: {}", status.code(), status.message()));
    match status.code() {
        tonic::Code::Unavailable
        | tonic::Code::Unknown
        | tonic::Code::PermissionDenied
        | tonic::Code::Unauthenticated => RPCError::Unreachable(Unreachable::new(&failure)),
        _ => RPCError::Network(NetworkError::new(&failure)),
    }
}

fn network_error(error: wire::WireError) -> RPCError<TypeConfig> {
    RPCError::Network(NetworkError::new(&error))
}

/// An error message as a `std::error::Error`, for openraft's error wrappers.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Failure(String);
