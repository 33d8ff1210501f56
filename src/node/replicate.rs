//! `Replicate`: the member's repair asks this node to copy one chunk from other nodes. The node
//! fetches it with its own certificate and the GET tickets the coordinator gave it, from the
//! first source that delivers, through the same put path as a client upload: the bytes land in
//! a temporary file, must hash to the chunk's name, and are synced and renamed into place. A
//! source that sends bad bytes (or has none) is skipped; nothing wrong ever becomes visible.

use std::time::Duration;

use collective_proto::chunk::chunks_client::ChunksClient;
use collective_proto::chunk::{GetRequest, GetResponse, ReplicaSource, ReplicateRequest, ReplicateResponse};
use collective_proto::chunk_limits::{CHUNK_BYTES_MAX, CHUNK_MESSAGE_BYTES_MAX};
use rustls::pki_types::CertificateDer;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Status};

use super::chunk_store::{PutStart, StoreError};
use super::errors::store_status;
use super::service::{ChunkService, PendingGuard, parse_hash};
use crate::chunk_hash::ChunkHash;
use crate::datapath::transfer_limit;
use crate::pki::{CertBundle, Component};
use crate::ticket::TicketOp;
use crate::tls::{self, ServerExpectation};

/// Sources one Replicate may name: repair offers a few replicas, not the whole member.
pub const REPLICA_SOURCES_MAX: usize = 8;
/// Replications this node runs at once; each holds a connection and a temporary file.
pub const REPLICATIONS_CONCURRENT_MAX: usize = 4;
/// How long connecting to one source may take before the next is tried: any dial to a node.
const SOURCE_CONNECT_TIMEOUT: Duration = crate::datapath::NODE_CONNECT_TIMEOUT;

/// What a node presents when it calls other nodes.
#[derive(Debug, Clone)]
pub struct NodeIdentity {
    /// The node's own certificate (a node certificate).
    pub bundle: CertBundle,
    /// The federation root, to verify the nodes it calls.
    pub root_der: CertificateDer<'static>,
    /// How long a source may stay silent before it is given up for the next.
    pub stall: Duration,
}

/// Why one source could not provide the chunk.
#[derive(Debug, thiserror::Error)]
enum SourceError {
    #[error("malformed source: {0}")]
    Malformed(String),
    #[error("connecting: {0}")]
    Connect(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("silent for {0:?} while {1}")]
    Stalled(Duration, &'static str),
    #[error("{code:?}: {message}")]
    Refused { code: tonic::Code, message: String },
    #[error("announced a chunk of {announced} bytes, {expected} expected")]
    WrongLength { announced: u64, expected: u64 },
    #[error("sent bytes refused here: {0}")]
    Rejected(String),
    /// This node's own failure (disk full, IO) while storing: no other source would help.
    #[error("{0}")]
    Local(Status),
}

impl From<Status> for SourceError {
    fn from(status: Status) -> SourceError {
        SourceError::Refused {
            code: status.code(),
            message: status.message().to_string(),
        }
    }
}

/// Where one attempt left the chunk.
enum Fetched {
    Stored,
    /// A good copy appeared meanwhile (another put or replication).
    AlreadyPresent,
}

impl ChunkService {
    pub(super) async fn replicate_chunk(
        &self,
        request: Request<ReplicateRequest>,
    ) -> Result<ReplicateResponse, Status> {
        let hash = parse_hash(&request.get_ref().hash)?;
        self.authorize(
            &request,
            request.get_ref().ticket.as_ref(),
            TicketOp::Put,
            &[hash],
        )?;
        let ReplicateRequest {
            length_bytes,
            sources,
            ..
        } = request.into_inner();
        if length_bytes > CHUNK_BYTES_MAX {
            return Err(store_status(&StoreError::TooLarge {
                length: length_bytes,
                max: CHUNK_BYTES_MAX,
            }));
        }
        if sources.is_empty() {
            return Err(Status::invalid_argument("a replicate names no source"));
        }
        if sources.len() > REPLICA_SOURCES_MAX {
            return Err(Status::invalid_argument(format!(
                "{} sources in one replicate, at most {REPLICA_SOURCES_MAX} allowed",
                sources.len()
            )));
        }
        let _slot = self
            .replications
            .acquire()
            .await
            .map_err(|_| Status::unavailable("node is shutting down"))?;
        let mut failures = Vec::with_capacity(sources.len());
        for source in &sources {
            match self.fetch_from(source, hash, length_bytes).await {
                Ok(Ok(Fetched::Stored)) => {
                    tracing::info!(chunk = %hash, length_bytes, source = %source.node, "chunk replicated");
                    return Ok(ReplicateResponse {
                        already_present: false,
                        source: source.node.clone(),
                    });
                }
                Ok(Ok(Fetched::AlreadyPresent)) => {
                    return Ok(ReplicateResponse {
                        already_present: true,
                        source: String::new(),
                    });
                }
                Ok(Err(error)) => {
                    tracing::warn!(chunk = %hash, source = %source.node, endpoint = %source.endpoint, %error, "replication source failed");
                    failures.push(format!("{} at {}: {error}", source.node, source.endpoint));
                }
                // This node's own trouble (disk full, IO): no other source would help.
                Err(status) => return Err(status),
            }
        }
        Err(Status::unavailable(format!(
            "could not replicate chunk {hash} from any of {} sources: {}",
            sources.len(),
            failures.join("; ")
        )))
    }

    /// One attempt: the outer error is this node's (stop), the inner the source's (next one).
    async fn fetch_from(
        &self,
        source: &ReplicaSource,
        hash: ChunkHash,
        length_bytes: u64,
    ) -> Result<Result<Fetched, SourceError>, Status> {
        let start = self
            .blocking(move |store| store.begin_put(hash, length_bytes))
            .await?;
        let pending = match start {
            PutStart::AlreadyPresent => return Ok(Ok(Fetched::AlreadyPresent)),
            PutStart::Receiving(pending) => pending,
        };
        let mut pending = PendingGuard(Some(pending));
        // A source silent for the stall limit is given up (`download`); one that trickles is
        // given up after the time the member's repair allows the whole copy.
        let limit = transfer_limit(self.identity.stall, length_bytes);
        let fetched = tokio::time::timeout(limit, self.download(source, hash, length_bytes, &mut pending))
            .await
            .unwrap_or(Err(SourceError::Timeout(limit)));
        match fetched {
            Ok(()) => {}
            Err(SourceError::Local(status)) => {
                pending.discard().await;
                return Err(status);
            }
            Err(error) => {
                pending.discard().await;
                return Ok(Err(error));
            }
        }
        let chunk = pending.take()?;
        match self.blocking(move |_| chunk.commit()).await {
            Ok(()) => Ok(Ok(Fetched::Stored)),
            Err(status) if status.code() == tonic::Code::InvalidArgument => {
                // Hash mismatch or truncation: the source's bytes were wrong; nothing was stored.
                Ok(Err(SourceError::Rejected(status.message().to_string())))
            }
            Err(status) => Err(status),
        }
    }

    /// Connects to `source` and streams its copy into `pending`.
    async fn download(
        &self,
        source: &ReplicaSource,
        hash: ChunkHash,
        length_bytes: u64,
        pending: &mut PendingGuard,
    ) -> Result<(), SourceError> {
        let ticket = source
            .ticket
            .clone()
            .ok_or_else(|| SourceError::Malformed("no GET ticket".into()))?;
        if source.endpoint.is_empty() {
            return Err(SourceError::Malformed("no endpoint".into()));
        }
        let expect = ServerExpectation::address(&source.node, Component::Node)
            .map_err(|e| SourceError::Malformed(format!("node address {:?}: {e}", source.node)))?;
        let channel = tokio::time::timeout(
            SOURCE_CONNECT_TIMEOUT,
            tls::connect_bulk(
                &source.endpoint,
                &self.identity.bundle,
                &self.identity.root_der,
                expect,
            ),
        )
        .await
        .map_err(|_| SourceError::Timeout(SOURCE_CONNECT_TIMEOUT))?
        .map_err(|e| SourceError::Connect(e.to_string()))?;
        let mut client = ChunksClient::new(channel)
            .max_decoding_message_size(CHUNK_MESSAGE_BYTES_MAX)
            .max_encoding_message_size(CHUNK_MESSAGE_BYTES_MAX);
        let stall = self.identity.stall;
        let request = client.get(GetRequest {
            ticket: Some(ticket),
            hash: hash.as_bytes().to_vec(),
            offset_bytes: 0,
            length_bytes: None,
        });
        let mut frames = tokio::time::timeout(stall, request)
            .await
            .map_err(|_| SourceError::Stalled(stall, "asked for the chunk"))??
            .into_inner();
        receive_frames(&mut frames, pending, length_bytes, stall).await
    }
}

/// Writes the frames of a Get into `pending`, checking the announced length against the
/// expected one, and giving up on a source silent for `stall`. The hash is checked at commit.
async fn receive_frames(
    frames: &mut (impl Stream<Item = Result<GetResponse, Status>> + Unpin),
    pending: &mut PendingGuard,
    length_bytes: u64,
    stall: Duration,
) -> Result<(), SourceError> {
    let mut first = true;
    loop {
        let next = tokio::time::timeout(stall, frames.next())
            .await
            .map_err(|_| SourceError::Stalled(stall, "sending the chunk"))?;
        let Some(frame) = next else { break };
        let frame = frame?;
        if first
            && let Some(announced) = frame.chunk_length_bytes
            && announced != length_bytes
        {
            return Err(SourceError::WrongLength {
                announced,
                expected: length_bytes,
            });
        }
        first = false;
        pending.write_frame(frame.data.into()).await.map_err(|status| {
            if status.code() == tonic::Code::InvalidArgument {
                SourceError::Rejected(status.message().to_string())
            } else {
                SourceError::Local(status)
            }
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::{ChunkStore, DataDirConfig, StoreConfig};
    use prost::bytes::Bytes;

    const STALL: Duration = Duration::from_secs(10);

    fn store(dir: &std::path::Path) -> ChunkStore {
        ChunkStore::open(&StoreConfig {
            data_dirs: vec![DataDirConfig {
                path: dir.to_path_buf(),
                capacity_bytes_max: None,
                marker: None,
            }],
            free_bytes_reserved: 0,
            direct_io: true,
        })
        .expect("open store")
    }

    fn frames(content: &[u8], announced: u64) -> Vec<Result<GetResponse, Status>> {
        content
            .chunks(1000)
            .enumerate()
            .map(|(i, data)| {
                Ok(GetResponse {
                    data: Bytes::copy_from_slice(data),
                    chunk_length_bytes: (i == 0).then_some(announced),
                })
            })
            .collect()
    }

    async fn pending_for(store: &ChunkStore, hash: ChunkHash, length: u64) -> PendingGuard {
        match store.begin_put(hash, length).expect("begin put") {
            PutStart::Receiving(pending) => PendingGuard(Some(pending)),
            PutStart::AlreadyPresent => panic!("nothing stored yet"),
        }
    }

    #[tokio::test]
    async fn bytes_that_do_not_hash_to_the_name_are_never_stored() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = store(tmp.path());
        let good = vec![5u8; 4500];
        let hash = ChunkHash::of(&good);
        let mut bad = good.clone();
        bad[4000] ^= 1;
        let mut pending = pending_for(&store, hash, good.len() as u64).await;
        let mut stream = tokio_stream::iter(frames(&bad, bad.len() as u64));
        receive_frames(&mut stream, &mut pending, good.len() as u64, STALL)
            .await
            .expect("frames are written; the hash is checked at commit");
        let chunk = pending.take().expect("pending");
        assert!(matches!(chunk.commit(), Err(StoreError::HashMismatch { .. })));
        assert!(!store.contains(&hash));
        assert_eq!(store.list().count(), 0, "nothing visible");
        assert_eq!(
            std::fs::read_dir(tmp.path().join("tmp")).expect("tmp").count(),
            0,
            "the temporary file is gone"
        );
    }

    #[tokio::test]
    async fn a_source_announcing_another_length_or_sending_more_is_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = store(tmp.path());
        let content = vec![6u8; 3000];
        let hash = ChunkHash::of(&content);
        let mut pending = pending_for(&store, hash, 3000).await;
        let mut stream = tokio_stream::iter(frames(&content, 2999));
        let error = receive_frames(&mut stream, &mut pending, 3000, STALL)
            .await
            .expect_err("wrong length");
        assert!(
            matches!(error, SourceError::WrongLength { announced: 2999, .. }),
            "{error}"
        );
        pending.discard().await;

        let mut pending = pending_for(&store, hash, 2999).await;
        let mut stream = tokio_stream::iter(frames(&content, 2999));
        let error = receive_frames(&mut stream, &mut pending, 2999, STALL)
            .await
            .expect_err("overrun");
        assert!(error.to_string().contains("more than the announced"), "{error}");
    }
}
