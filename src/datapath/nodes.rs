//! Connections to storage nodes, one HTTP/2 channel per node (streams multiplex over it), and
//! the two chunk calls the client makes: a streaming put and a whole-chunk get.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use collective_proto::chunk::chunks_client::ChunksClient;
use collective_proto::chunk::put_request::Part;
use collective_proto::chunk::{
    DeleteRequest, DeleteResponse, GetRequest, HasRequest, HasResponse, PutHeader, PutRequest,
    ReplicateRequest, ReplicateResponse,
};
use collective_proto::chunk_limits::{CHUNK_BYTES_MAX, CHUNK_FRAME_BYTES_MAX, CHUNK_MESSAGE_BYTES_MAX};
use collective_proto::ticket::Ticket;
use prost::bytes::Bytes;
use rustls::pki_types::CertificateDer;
use tonic::transport::Channel;

use crate::chunk_hash::ChunkHash;
use crate::pki::{CertBundle, Component};
use crate::tls::{self, ServerExpectation};

/// Channels to the nodes of one member, made on first use and kept.
#[derive(Clone)]
pub struct NodePool {
    identity: Arc<CertBundle>,
    root: CertificateDer<'static>,
    channels: Arc<Mutex<HashMap<String, Channel>>>,
}

impl NodePool {
    pub fn new(identity: CertBundle, root: CertificateDer<'static>) -> NodePool {
        NodePool {
            identity: Arc::new(identity),
            root,
            channels: Arc::new(Mutex::new(HashMap::new())),
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
            tls::connect_lazy(endpoint, &self.identity, &self.root, expect).map_err(|e| e.to_string())?;
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
        let mut client = self.client(node, endpoint)?;
        let header = PutRequest {
            part: Some(Part::Header(PutHeader {
                ticket: Some(ticket.clone()),
                hash: hash.as_bytes().to_vec(),
                length_bytes: data.len() as u64,
            })),
        };
        // Frames are slices of the one buffer: no copies on the way to the socket.
        let frames: Vec<PutRequest> = std::iter::once(header)
            .chain((0..data.len()).step_by(CHUNK_FRAME_BYTES_MAX).map(|start| {
                let end = (start + CHUNK_FRAME_BYTES_MAX).min(data.len());
                PutRequest {
                    part: Some(Part::Data(data.slice(start..end))),
                }
            }))
            .collect();
        match client.put(tokio_stream::iter(frames)).await {
            Ok(response) => Ok(response.into_inner().already_present),
            Err(status) => {
                if status.code() == tonic::Code::Unavailable {
                    self.forget(node);
                }
                Err(describe(node, &status))
            }
        }
    }

    /// The whole chunk `hash` from `node` as the frames it arrived in, verified against its
    /// name here as well: the node verified it before sending, and this catches anything that
    /// changed it on the way. Frames are kept as received (no copy into one buffer).
    pub async fn get(
        &self,
        node: &str,
        endpoint: &str,
        ticket: &Ticket,
        hash: &ChunkHash,
        expected_len: u64,
    ) -> Result<Vec<Bytes>, String> {
        if expected_len > CHUNK_BYTES_MAX {
            return Err(format!(
                "{node}: a chunk of {expected_len} bytes is above the limit"
            ));
        }
        let mut client = self.client(node, endpoint)?;
        let request = GetRequest {
            ticket: Some(ticket.clone()),
            hash: hash.as_bytes().to_vec(),
            offset_bytes: 0,
            length_bytes: None,
        };
        let mut stream = match client.get(request).await {
            Ok(response) => response.into_inner(),
            Err(status) => {
                if status.code() == tonic::Code::Unavailable {
                    self.forget(node);
                }
                return Err(describe(node, &status));
            }
        };
        let mut frames = Vec::new();
        let mut received = 0u64;
        loop {
            match stream.message().await {
                Ok(Some(frame)) => {
                    received += frame.data.len() as u64;
                    if received > expected_len {
                        return Err(format!("{node} sent more than the chunk's {expected_len} bytes"));
                    }
                    frames.push(frame.data);
                }
                Ok(None) => break,
                Err(status) => return Err(describe(node, &status)),
            }
        }
        let check = frames.clone();
        let actual = tokio::task::spawn_blocking(move || {
            let mut hasher = blake3::Hasher::new();
            for frame in &check {
                hasher.update(frame);
            }
            ChunkHash::from_blake3(hasher.finalize())
        })
        .await
        .map_err(|e| format!("hashing failed: {e}"))?;
        if actual != *hash || received != expected_len {
            return Err(format!(
                "{node} sent {received} bytes that do not match the chunk's hash"
            ));
        }
        Ok(frames)
    }
}

impl NodePool {
    /// Which of the request's chunks `node` holds (reconciliation).
    pub async fn has(&self, node: &str, endpoint: &str, request: HasRequest) -> Result<HasResponse, String> {
        let mut client = self.client(node, endpoint)?;
        client
            .has(request)
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| describe(node, &status))
    }

    /// Deletes chunks on `node` (garbage collection).
    pub async fn delete(
        &self,
        node: &str,
        endpoint: &str,
        request: DeleteRequest,
    ) -> Result<DeleteResponse, String> {
        let mut client = self.client(node, endpoint)?;
        client
            .delete(request)
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| describe(node, &status))
    }

    /// Asks `node` to copy a chunk from one of the request's sources (repair).
    pub async fn replicate(
        &self,
        node: &str,
        endpoint: &str,
        request: ReplicateRequest,
    ) -> Result<ReplicateResponse, String> {
        let mut client = self.client(node, endpoint)?;
        match client.replicate(request).await {
            Ok(response) => Ok(response.into_inner()),
            Err(status) => {
                if status.code() == tonic::Code::Unavailable {
                    self.forget(node);
                }
                Err(describe(node, &status))
            }
        }
    }
}

fn describe(node: &str, status: &tonic::Status) -> String {
    format!("{node}: {:?}: {}", status.code(), status.message())
}
