//! Connections to storage nodes, one HTTP/2 channel per node (streams multiplex over it), and
//! the two chunk calls the client makes: a streaming put and a whole-chunk get, framed by
//! [`crate::wire`] so chunk bytes are not copied.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use collective_proto::chunk::chunks_client::ChunksClient;
use collective_proto::chunk::put_request::Part;
use collective_proto::chunk::{
    DeleteRequest, DeleteResponse, GetRequest, HasRequest, HasResponse, PutHeader, PutRequest, PutResponse,
    ReplicateRequest, ReplicateResponse,
};
use collective_proto::chunk_limits::{CHUNK_BYTES_MAX, CHUNK_FRAME_BYTES_MAX, CHUNK_MESSAGE_BYTES_MAX};
use collective_proto::chunk_wire::{GET_PATH, GET_RESPONSE_DATA, PUT_PATH, PUT_REQUEST_DATA};
use collective_proto::ticket::Ticket;
use prost::bytes::Bytes;
use rustls::pki_types::CertificateDer;
use tonic::transport::Channel;

use super::nearest::Nearest;
use crate::chunk_hash::ChunkHash;
use crate::pki::{CertBundle, Component};
use crate::tls::{self, ServerExpectation};
use crate::wire;

/// How long a node may go without answering a call before the caller gives it up (a client
/// for the next replica, the leader's repair and collection for the next node): a paused or
/// wedged node keeps its connection open and sends nothing. A get waits this long for each next
/// message (at most 1 MiB); a put, which cannot watch its progress, this long plus half of it
/// per MiB it sends (30 s for a 4 MiB chunk: a link of 140 KiB/s still makes it).
/// `COLLECTIVE_REPLICA_STALL_MS` overrides it for the CLI and the coordinators.
pub const REPLICA_STALL_DEFAULT: Duration = Duration::from_secs(10);

/// [`REPLICA_STALL_DEFAULT`], or `COLLECTIVE_REPLICA_STALL_MS` when set (tests shorten it).
pub fn replica_stall_from_env() -> anyhow::Result<Duration> {
    crate::env::millis("COLLECTIVE_REPLICA_STALL_MS", REPLICA_STALL_DEFAULT)
}

/// Longest a dial to a node (TCP connect and TLS handshake) may take before the caller tries
/// the next replica. Nodes sit on their member's network, where a connection takes a
/// millisecond; 3 s still covers one lost SYN (the kernel resends it after 1 s). A node the
/// member hears but the caller cannot reach (a partition between them) costs a read or a
/// write this long, not the 5 s a client gives its member's coordinators (`client::DIAL_MAX`)
/// or the 10 s of other coordinator dials.
pub const NODE_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The time a call that sends or makes a node copy `bytes` may take: the stall limit, plus half
/// of it per MiB.
pub(crate) fn transfer_limit(stall: Duration, bytes: u64) -> Duration {
    let mib = u32::try_from(bytes.div_ceil(1024 * 1024)).unwrap_or(u32::MAX);
    stall.saturating_add((stall / 2).saturating_mul(mib))
}

/// Channels to the nodes of one member, made on first use and kept.
#[derive(Clone)]
pub struct NodePool {
    identity: Arc<CertBundle>,
    root: CertificateDer<'static>,
    channels: Arc<Mutex<HashMap<String, Channel>>>,
    stall: Duration,
    /// How near each node has been lately: which replica reads ask first.
    nearest: Arc<Nearest>,
}

impl NodePool {
    pub fn new(identity: CertBundle, root: CertificateDer<'static>) -> NodePool {
        NodePool {
            identity: Arc::new(identity),
            root,
            channels: Arc::new(Mutex::new(HashMap::new())),
            stall: REPLICA_STALL_DEFAULT,
            nearest: Arc::new(Nearest::default()),
        }
    }

    /// What reads through this pool saw of each node (see [`Nearest`]).
    pub(super) fn nearest(&self) -> &Nearest {
        &self.nearest
    }

    /// How long a replica may stay silent (see [`REPLICA_STALL_DEFAULT`]).
    pub(super) fn stall(&self) -> Duration {
        self.stall
    }

    /// Replaces how long a replica may stay silent (see [`REPLICA_STALL_DEFAULT`]).
    pub fn with_stall(mut self, stall: Duration) -> NodePool {
        self.stall = stall;
        self
    }

    /// The error for `node` silent for `limit` while `doing`; its channel is dropped, so the
    /// next call dials afresh instead of queueing behind a wedged connection.
    fn stalled(&self, node: &str, limit: Duration, doing: &str) -> String {
        self.forget(node);
        format!("{node}: no answer for {limit:?} while {doing}; giving up on this replica")
    }

    /// The error for a call to `node` that ended with `status`; a node that is unreachable has
    /// its channel dropped, so the next call dials afresh.
    fn failed(&self, node: &str, status: &tonic::Status) -> String {
        if status.code() == tonic::Code::Unavailable {
            self.forget(node);
        }
        describe(node, status)
    }

    /// `call` to `node`, given up after `limit` (see [`NodePool::stalled`]).
    async fn within<T>(
        &self,
        node: &str,
        limit: Duration,
        doing: &str,
        call: impl Future<Output = Result<T, String>>,
    ) -> Result<T, String> {
        match tokio::time::timeout(limit, call).await {
            Ok(result) => result,
            Err(_) => Err(self.stalled(node, limit, doing)),
        }
    }

    /// A channel to `node` at `endpoint`; the node must present exactly that address.
    fn channel(&self, node: &str, endpoint: &str) -> Result<Channel, String> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(channel) = channels.get(node) {
            return Ok(channel.clone());
        }
        let expect = ServerExpectation::address(node, Component::Node).map_err(|e| e.to_string())?;
        let channel =
            tls::connect_lazy_bulk(endpoint, &self.identity, &self.root, expect, NODE_CONNECT_TIMEOUT)
                .map_err(|e| e.to_string())?;
        channels.insert(node.to_string(), channel.clone());
        Ok(channel)
    }

    /// Forgets the channel to `node`, so the next call dials again (after a failure).
    pub fn forget(&self, node: &str) {
        self.channels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(node);
    }

    fn client(&self, node: &str, endpoint: &str) -> Result<ChunksClient<Channel>, String> {
        Ok(ChunksClient::new(self.channel(node, endpoint)?)
            .max_decoding_message_size(CHUNK_MESSAGE_BYTES_MAX)
            .max_encoding_message_size(CHUNK_MESSAGE_BYTES_MAX))
    }

    /// Stores `data`, named `hash`, on `node`. Returns whether the node already had it.
    pub async fn put(
        &self,
        node: &str,
        endpoint: &str,
        ticket: &Ticket,
        hash: &ChunkHash,
        data: Bytes,
    ) -> Result<bool, String> {
        let channel = self.channel(node, endpoint)?;
        let header = PutRequest {
            part: Some(Part::Header(PutHeader {
                ticket: Some(ticket.clone()),
                hash: hash.as_bytes().to_vec(),
                length_bytes: data.len() as u64,
            })),
        };
        // Each data message goes out as its head and a slice of the one buffer: no copies on
        // the way to the socket.
        let mut frames = vec![wire::message(&header)];
        for start in (0..data.len()).step_by(CHUNK_FRAME_BYTES_MAX) {
            let slice = data.slice(start..(start + CHUNK_FRAME_BYTES_MAX).min(data.len()));
            frames.push(wire::bytes_message_head(&[], PUT_REQUEST_DATA, slice.len()));
            frames.push(slice);
        }
        let body = wire::FramesBody::new(frames, None, ());
        let call = async {
            let messages = wire::call(&channel, PUT_PATH, body, CHUNK_MESSAGE_BYTES_MAX)
                .await
                .map_err(|status| self.failed(node, &status))?;
            only_message::<PutResponse>(messages, "PutResponse")
                .await
                .map(|reply| reply.already_present)
                .map_err(|status| describe(node, &status))
        };
        let limit = transfer_limit(self.stall, data.len() as u64);
        self.within(node, limit, "storing a chunk", call).await
    }

    /// The whole chunk `hash` from `node` as the frames it arrived in, verified against its
    /// name here as well: the node verified it before sending, and this catches anything that
    /// changed it on the way. Frames are kept as slices of what HTTP/2 received (no copies).
    /// `received_so_far` counts the bytes as they arrive.
    pub async fn get(
        &self,
        node: &str,
        endpoint: &str,
        ticket: &Ticket,
        hash: &ChunkHash,
        expected_len: u64,
        received_so_far: &AtomicU64,
    ) -> Result<Vec<Bytes>, String> {
        if expected_len > CHUNK_BYTES_MAX {
            return Err(format!(
                "{node}: a chunk of {expected_len} bytes is above the limit"
            ));
        }
        let channel = self.channel(node, endpoint)?;
        let request = GetRequest {
            ticket: Some(ticket.clone()),
            hash: hash.as_bytes().to_vec(),
            offset_bytes: 0,
            length_bytes: None,
        };
        let body = wire::FramesBody::new([wire::message(&request)], None, ());
        let call = async {
            wire::call(&channel, GET_PATH, body, CHUNK_MESSAGE_BYTES_MAX)
                .await
                .map_err(|status| self.failed(node, &status))
        };
        let mut messages = self.within(node, self.stall, "asked for a chunk", call).await?;
        let mut frames = Vec::new();
        let mut received = 0u64;
        // Hashed as each message arrives, while its bytes are still in the cache: hashing the
        // whole chunk once it is complete read it back from memory (docs/benchmarks.md).
        let mut hasher = blake3::Hasher::new();
        loop {
            let next = match tokio::time::timeout(self.stall, messages.next()).await {
                Ok(next) => next.map_err(|status| describe(node, &status))?,
                Err(_) => return Err(self.stalled(node, self.stall, "sending a chunk")),
            };
            let Some(message) = next else { break };
            let data = wire::take_bytes_field(
                message,
                GET_RESPONSE_DATA,
                "GetResponse",
                |field, wire_type, rest| wire::skip(field, wire_type, rest, "GetResponse"),
            )
            .map_err(|status| describe(node, &status))?
            .unwrap_or_default();
            received += data.len() as u64;
            received_so_far.store(received, Ordering::Relaxed);
            if received > expected_len {
                return Err(format!("{node} sent more than the chunk's {expected_len} bytes"));
            }
            for part in data.into_parts() {
                hasher.update(&part);
                frames.push(part);
            }
        }
        let actual = ChunkHash::from_blake3(hasher.finalize());
        if actual != *hash || received != expected_len {
            return Err(format!(
                "{node} sent {received} bytes that do not match the chunk's hash"
            ));
        }
        Ok(frames)
    }
}

/// The one message of a unary response, after which the call must end with an OK status.
async fn only_message<M: prost::Message + Default>(
    mut messages: wire::Messages,
    what: &str,
) -> Result<M, tonic::Status> {
    let message = messages
        .next()
        .await?
        .ok_or_else(|| tonic::Status::internal(format!("the call ended without its {what}")))?;
    if messages.next().await?.is_some() {
        return Err(tonic::Status::internal(format!("more than one {what} came back")));
    }
    wire::decode(message, what)
}

impl NodePool {
    /// Which of the request's chunks `node` holds (reconciliation).
    pub async fn has(&self, node: &str, endpoint: &str, request: HasRequest) -> Result<HasResponse, String> {
        let mut client = self.client(node, endpoint)?;
        self.unary(node, "saying which chunks it holds", client.has(request))
            .await
    }

    /// Deletes chunks on `node` (garbage collection).
    pub async fn delete(
        &self,
        node: &str,
        endpoint: &str,
        request: DeleteRequest,
    ) -> Result<DeleteResponse, String> {
        let mut client = self.client(node, endpoint)?;
        self.unary(node, "deleting chunks", client.delete(request)).await
    }

    /// A unary call of the generated client to `node`, given up after the stall limit.
    async fn unary<T>(
        &self,
        node: &str,
        doing: &str,
        call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, String> {
        let call = async {
            call.await
                .map(tonic::Response::into_inner)
                .map_err(|status| describe(node, &status))
        };
        self.within(node, self.stall, doing, call).await
    }

    /// Asks `node` to copy a chunk from one of the request's sources (repair). It may take the
    /// transfer limit of the chunk for each source it might try.
    pub async fn replicate(
        &self,
        node: &str,
        endpoint: &str,
        request: ReplicateRequest,
    ) -> Result<ReplicateResponse, String> {
        let mut client = self.client(node, endpoint)?;
        let sources = u32::try_from(request.sources.len().max(1)).unwrap_or(u32::MAX);
        let limit = transfer_limit(self.stall, request.length_bytes).saturating_mul(sources);
        let call = async {
            client
                .replicate(request)
                .await
                .map(tonic::Response::into_inner)
                .map_err(|status| self.failed(node, &status))
        };
        self.within(node, limit, "copying a chunk", call).await
    }
}

fn describe(node: &str, status: &tonic::Status) -> String {
    format!("{node}: {:?}: {}", status.code(), status.message())
}
