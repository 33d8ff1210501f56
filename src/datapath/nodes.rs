//! Connections to storage nodes, one HTTP/2 channel per node (streams multiplex over it), and
//! the two chunk calls the client makes: a streaming put and a whole-chunk get.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use collective_proto::chunk::chunks_client::ChunksClient;
use collective_proto::chunk::put_request::Part;
use collective_proto::chunk::{GetRequest, PutHeader, PutRequest};
use collective_proto::chunk_limits::{CHUNK_BYTES_MAX, CHUNK_FRAME_BYTES_MAX, CHUNK_MESSAGE_BYTES_MAX};
use collective_proto::ticket::Ticket;
use prost::bytes::{Bytes, BytesMut};
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

    /// The whole chunk `hash` from `node`, verified against its name here as well: the node
    /// verified it before sending, and this catches anything that changed it on the way.
    pub async fn get(
        &self,
        node: &str,
        endpoint: &str,
        ticket: &Ticket,
        hash: &ChunkHash,
        expected_len: u64,
    ) -> Result<Bytes, String> {
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
        if expected_len > CHUNK_BYTES_MAX {
            return Err(format!(
                "{node}: a chunk of {expected_len} bytes is above the limit"
            ));
        }
        let mut buffer = BytesMut::with_capacity(expected_len as usize);
        loop {
            match stream.message().await {
                Ok(Some(frame)) => {
                    if buffer.len() + frame.data.len() > expected_len as usize {
                        return Err(format!("{node} sent more than the chunk's {expected_len} bytes"));
                    }
                    buffer.extend_from_slice(&frame.data);
                }
                Ok(None) => break,
                Err(status) => return Err(describe(node, &status)),
            }
        }
        let data = buffer.freeze();
        let hash_check = hash.to_owned();
        let content = data.clone();
        let actual = tokio::task::spawn_blocking(move || ChunkHash::of(&content))
            .await
            .map_err(|e| format!("hashing failed: {e}"))?;
        if actual != hash_check {
            return Err(format!(
                "{node} sent {} bytes that do not match the chunk's hash",
                data.len()
            ));
        }
        Ok(data)
    }
}

fn describe(node: &str, status: &tonic::Status) -> String {
    format!("{node}: {:?}: {}", status.code(), status.message())
}
