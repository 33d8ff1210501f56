//! In-process storage nodes over real mutual TLS on loopback, with a federation made in memory:
//! a member `alice` with a coordinator (the ticket signer), nodes and clients.

#![allow(dead_code)] // each test binary uses a different part of the harness
#![allow(clippy::unwrap_used, reason = "a test fails loudly on any unexpected error")]

use std::path::{Path, PathBuf};
use std::time::Duration;

use collective::chunk_hash::ChunkHash;
use collective::node::{self, DataDirConfig, NodeConfig, RunningNode, StoreConfig};
use collective::pki::{CertBundle, Component, FederationCa, MemberCa};
use collective::ticket::{self, Ticket, TicketGrant, TicketOp};
use collective::tls::{self, ServerExpectation};
use collective_proto::chunk::chunks_client::ChunksClient;
use collective_proto::chunk::put_request::Part;
use collective_proto::chunk::{GetRequest, GetResponse, HasRequest, PutHeader, PutRequest, PutResponse};
use collective_proto::chunk_limits::{CHUNK_FRAME_BYTES_MAX, CHUNK_MESSAGE_BYTES_MAX};
use prost::bytes::Bytes;
use rustls::pki_types::CertificateDer;
use tonic::transport::Channel;

pub const DAY: Duration = Duration::from_secs(24 * 3600);
pub const NODE: &str = "node-1@alice.home.collective";
pub const CLIENT: &str = "carol@alice.home.collective";
pub const COORDINATOR: &str = "coord-1@alice.home.collective";

pub struct Federation {
    pub root: FederationCa,
    pub alice: MemberCa,
    pub coordinator: CertBundle,
}

impl Federation {
    pub fn new() -> Federation {
        let root = FederationCa::init("home.collective").unwrap();
        let alice = root.sign_member("alice.home.collective").unwrap();
        let coordinator = alice
            .issue_leaf("coord-1@alice.home.collective", Component::Coordinator, DAY)
            .unwrap();
        Federation {
            root,
            alice,
            coordinator,
        }
    }

    pub fn root_der(&self) -> CertificateDer<'static> {
        self.root.cert_der().clone()
    }

    pub fn leaf(&self, address: &str, component: Component) -> CertBundle {
        self.alice.issue_leaf(address, component, DAY).unwrap()
    }

    /// A ticket from the coordinator for `CLIENT` at `NODE`, valid from now.
    pub fn ticket(&self, op: TicketOp, hashes: &[ChunkHash]) -> Ticket {
        self.ticket_for(op, hashes, CLIENT, NODE)
    }

    /// A ticket from the coordinator for `holder` at `node`, valid from now.
    pub fn ticket_for(&self, op: TicketOp, hashes: &[ChunkHash], holder: &str, node: &str) -> Ticket {
        ticket::issue(
            &self.coordinator,
            &TicketGrant {
                op,
                hashes,
                holder,
                node,
                issued_at_unix_ms: node::unix_ms_now(),
                lifetime: ticket::TICKET_LIFETIME_DEFAULT,
            },
        )
        .unwrap()
    }
}

pub struct TestNode {
    pub running: RunningNode,
    pub data_dirs: Vec<PathBuf>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Starts `NODE` on loopback over `data_dirs`, each limited to `capacity_bytes_max`.
pub async fn start_node(fed: &Federation, data_dirs: &[&Path], capacity_bytes_max: Option<u64>) -> TestNode {
    start_node_as(fed, NODE, data_dirs, capacity_bytes_max, |_| {}).await
}

/// Starts node `address` on loopback over `data_dirs`, with `configure` applied to its
/// configuration (e.g. the scrub rate).
pub async fn start_node_as(
    fed: &Federation,
    address: &str,
    data_dirs: &[&Path],
    capacity_bytes_max: Option<u64>,
    configure: impl FnOnce(&mut NodeConfig),
) -> TestNode {
    let identity = fed.leaf(address, Component::Node);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let mut config = NodeConfig::new(StoreConfig {
        data_dirs: data_dirs
            .iter()
            .map(|path| DataDirConfig {
                path: path.to_path_buf(),
                capacity_bytes_max,
                marker: None,
            })
            .collect(),
        free_bytes_reserved: 0,
        direct_io: true,
    });
    configure(&mut config);
    let running = node::start(config, &identity, &fed.root_der(), listener, async {
        let _ = rx.await;
    })
    .await
    .unwrap();
    TestNode {
        running,
        data_dirs: data_dirs.iter().map(|p| p.to_path_buf()).collect(),
        shutdown: Some(tx),
    }
}

/// A channel to `node` connected as `identity`.
pub async fn channel_as(fed: &Federation, node: &TestNode, identity: &CertBundle) -> Channel {
    let expect = ServerExpectation::address(&node.running.address, Component::Node).unwrap();
    tls::connect(
        &node.running.local_addr.to_string(),
        identity,
        &fed.root_der(),
        expect,
    )
    .await
    .unwrap()
}

/// A chunk client connected as `identity` (a client certificate, by default `CLIENT`).
pub async fn client_as(fed: &Federation, node: &TestNode, identity: &CertBundle) -> ChunksClient<Channel> {
    ChunksClient::new(channel_as(fed, node, identity).await)
        .max_decoding_message_size(CHUNK_MESSAGE_BYTES_MAX)
        .max_encoding_message_size(CHUNK_MESSAGE_BYTES_MAX)
}

pub async fn client(fed: &Federation, node: &TestNode) -> ChunksClient<Channel> {
    client_as(fed, node, &fed.leaf(CLIENT, Component::Client)).await
}

/// The messages of a put: header, then `content` in frames of `frame_bytes`.
pub fn put_messages(
    ticket: Ticket,
    hash: ChunkHash,
    length_bytes: u64,
    content: &[u8],
    frame_bytes: usize,
) -> Vec<PutRequest> {
    let mut messages = vec![PutRequest {
        part: Some(Part::Header(PutHeader {
            ticket: Some(ticket),
            hash: hash.as_bytes().to_vec(),
            length_bytes,
        })),
    }];
    for frame in content.chunks(frame_bytes) {
        messages.push(PutRequest {
            part: Some(Part::Data(Bytes::copy_from_slice(frame))),
        });
    }
    messages
}

pub async fn put_raw(
    client: &mut ChunksClient<Channel>,
    messages: Vec<PutRequest>,
) -> Result<PutResponse, tonic::Status> {
    Ok(client.put(tokio_stream::iter(messages)).await?.into_inner())
}

/// Puts `content` under its own hash with a fresh PUT ticket.
pub async fn put(
    fed: &Federation,
    client: &mut ChunksClient<Channel>,
    content: &[u8],
) -> Result<PutResponse, tonic::Status> {
    let hash = ChunkHash::of(content);
    let ticket = fed.ticket(TicketOp::Put, &[hash]);
    put_raw(
        client,
        put_messages(ticket, hash, content.len() as u64, content, CHUNK_FRAME_BYTES_MAX),
    )
    .await
}

/// Asks for a range; its messages are left to the caller to read.
pub async fn get_stream(
    client: &mut ChunksClient<Channel>,
    ticket: Ticket,
    hash: ChunkHash,
    offset_bytes: u64,
    length_bytes: Option<u64>,
) -> Result<tonic::Streaming<GetResponse>, tonic::Status> {
    Ok(client
        .get(GetRequest {
            ticket: Some(ticket),
            hash: hash.as_bytes().to_vec(),
            offset_bytes,
            length_bytes,
        })
        .await?
        .into_inner())
}

/// Reads a range; `Err` on any status, including one in the middle of the stream.
pub async fn get(
    client: &mut ChunksClient<Channel>,
    ticket: Ticket,
    hash: ChunkHash,
    offset_bytes: u64,
    length_bytes: Option<u64>,
) -> Result<Vec<u8>, tonic::Status> {
    let mut stream = get_stream(client, ticket, hash, offset_bytes, length_bytes).await?;
    let mut out = Vec::new();
    while let Some(frame) = stream.message().await? {
        assert!(frame.data.len() <= CHUNK_FRAME_BYTES_MAX);
        out.extend_from_slice(&frame.data);
    }
    Ok(out)
}

/// Whether each of `hashes` is stored on the node, by `Has` with a HAS ticket for any chunk.
pub async fn present(
    fed: &Federation,
    client: &mut ChunksClient<Channel>,
    hashes: &[ChunkHash],
) -> Vec<bool> {
    client
        .has(HasRequest {
            ticket: Some(fed.ticket(TicketOp::Has, &[])),
            hashes: hashes.iter().map(|h| h.as_bytes().to_vec()).collect(),
        })
        .await
        .unwrap()
        .into_inner()
        .present
}

pub fn random_bytes(len: usize) -> Vec<u8> {
    use rand::RngCore;
    let mut out = vec![0u8; len];
    rand::rng().fill_bytes(&mut out);
    out
}

/// Every regular file under `dir`, relative to it, sorted; but a data directory's marker.
pub fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p != dir.join(node::MARKER_FILE) {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// The stored file of `hash` in data directory `dir`.
pub fn chunk_file(dir: &Path, hash: &ChunkHash) -> PathBuf {
    let hex = hash.to_hex();
    dir.join("chunks").join(&hex[..2]).join(&hex[2..4]).join(hex)
}
