//! Replicate between real in-process nodes over mutual TLS: node B copies a chunk from node A
//! with its own certificate and a GET ticket naming it; a source without the chunk is skipped for
//! the next; when every source fails the error names each and B holds nothing; a corrupt source
//! copy never reaches B; a source that goes silent part-way is given up for the next within
//! the stall limit; tickets for the wrong holder or operation are refused.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any unexpected error")]

mod node_support;

use collective::chunk_hash::ChunkHash;
use collective::node::REPLICA_SOURCES_MAX;
use collective::ticket::{Ticket, TicketOp};
use collective_proto::chunk::chunks_client::ChunksClient;
use collective_proto::chunk::{ReplicaSource, ReplicateRequest, ReplicateResponse};
use collective_proto::chunk_limits::CHUNK_BYTES_MAX;
use node_support::*;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tonic::Code;
use tonic::transport::Channel;

const NODE_A: &str = "node-a@alice.home.collective";
const NODE_B: &str = "node-b@alice.home.collective";
const NODE_C: &str = "node-c@alice.home.collective";
/// How long a source may stay silent before B gives it up.
const STALL: Duration = Duration::from_secs(2);

struct Trio {
    fed: Federation,
    _dirs: tempfile::TempDir,
    a: TestNode,
    b: TestNode,
    c: TestNode,
}

/// Nodes A, B and C, each with one data directory, scrubbing off (so only reads find rot), and
/// a stall limit of [`STALL`].
async fn trio() -> Trio {
    let fed = Federation::new();
    let dirs = tempfile::tempdir().unwrap();
    let mut nodes = Vec::new();
    for (name, address) in [("a", NODE_A), ("b", NODE_B), ("c", NODE_C)] {
        let dir = dirs.path().join(name);
        nodes.push(
            start_node_as(&fed, address, &[&dir], None, |config| {
                config.scrub.bytes_per_sec = 0;
                config.replica_stall = STALL;
            })
            .await,
        );
    }
    let c = nodes.pop().unwrap();
    let b = nodes.pop().unwrap();
    let a = nodes.pop().unwrap();
    Trio {
        fed,
        _dirs: dirs,
        a,
        b,
        c,
    }
}

impl Trio {
    /// Puts `content` on `node` as `CLIENT`.
    async fn put_on(&self, node: &TestNode, content: &[u8]) -> ChunkHash {
        let hash = ChunkHash::of(content);
        let mut client = client(&self.fed, node).await;
        let ticket = self
            .fed
            .ticket_for(TicketOp::Put, &[hash], CLIENT, &node.running.address);
        put_raw(
            &mut client,
            put_messages(ticket, hash, content.len() as u64, content, 1024 * 1024),
        )
        .await
        .unwrap();
        hash
    }

    /// `node` as a source for B: its endpoint and a GET ticket held by B.
    fn source(&self, node: &TestNode, hash: ChunkHash) -> ReplicaSource {
        ReplicaSource {
            node: node.running.address.clone(),
            endpoint: node.running.local_addr.to_string(),
            ticket: Some(
                self.fed
                    .ticket_for(TicketOp::Get, &[hash], NODE_B, &node.running.address),
            ),
        }
    }

    /// A PUT ticket at B for the coordinator (the caller of Replicate).
    fn put_ticket_at_b(&self, hash: ChunkHash) -> Ticket {
        self.fed.ticket_for(TicketOp::Put, &[hash], COORDINATOR, NODE_B)
    }

    /// B's chunk client, connected with the coordinator's certificate.
    async fn b_as_coordinator(&self) -> ChunksClient<Channel> {
        client_as(&self.fed, &self.b, &self.fed.coordinator).await
    }

    async fn replicate(
        &self,
        ticket: Ticket,
        hash: ChunkHash,
        length_bytes: u64,
        sources: Vec<ReplicaSource>,
    ) -> Result<ReplicateResponse, tonic::Status> {
        let mut b = self.b_as_coordinator().await;
        b.replicate(ReplicateRequest {
            ticket: Some(ticket),
            hash: hash.as_bytes().to_vec(),
            length_bytes,
            sources,
        })
        .await
        .map(tonic::Response::into_inner)
    }

    /// Reads `hash` from B as `CLIENT`.
    async fn get_from_b(&self, hash: ChunkHash) -> Result<Vec<u8>, tonic::Status> {
        let mut b = client(&self.fed, &self.b).await;
        let ticket = self.fed.ticket_for(TicketOp::Get, &[hash], CLIENT, NODE_B);
        get(&mut b, ticket, hash, 0, None).await
    }

    /// Every file in B's data directory but the empty layout: chunks, temporary files and
    /// quarantined copies.
    fn files_on_b(&self) -> Vec<String> {
        files_under(&self.b.data_dirs[0])
    }
}

#[tokio::test]
async fn b_copies_a_chunk_from_a_and_serves_it() {
    let trio = trio().await;
    // Several frames, and not a multiple of the frame size.
    let content = random_bytes(2 * 1024 * 1024 + 12_345);
    let hash = trio.put_on(&trio.a, &content).await;

    let answer = trio
        .replicate(
            trio.put_ticket_at_b(hash),
            hash,
            content.len() as u64,
            vec![trio.source(&trio.a, hash)],
        )
        .await
        .unwrap();
    assert!(!answer.already_present);
    assert_eq!(answer.source, NODE_A);
    assert_eq!(trio.get_from_b(hash).await.unwrap(), content, "B serves the copy");
    let on_disk = std::fs::read(chunk_file(&trio.b.data_dirs[0], &hash)).unwrap();
    assert_eq!(ChunkHash::of(&on_disk), hash, "B's file is the chunk itself");
    assert_eq!(trio.files_on_b().len(), 1, "one chunk file, no leftovers");

    let again = trio
        .replicate(
            trio.put_ticket_at_b(hash),
            hash,
            content.len() as u64,
            vec![trio.source(&trio.a, hash)],
        )
        .await
        .unwrap();
    assert!(again.already_present, "a second replicate finds the copy");
    assert_eq!(again.source, "");
}

#[tokio::test]
async fn a_source_without_the_chunk_is_skipped_for_the_next() {
    let trio = trio().await;
    let content = random_bytes(70_000);
    let hash = trio.put_on(&trio.a, &content).await;
    let answer = trio
        .replicate(
            trio.put_ticket_at_b(hash),
            hash,
            content.len() as u64,
            vec![trio.source(&trio.c, hash), trio.source(&trio.a, hash)],
        )
        .await
        .unwrap();
    assert_eq!(answer.source, NODE_A, "C lacks it; A delivered");
    assert_eq!(trio.get_from_b(hash).await.unwrap(), content);
}

#[tokio::test]
async fn when_every_source_fails_the_error_names_each_and_b_holds_nothing() {
    let trio = trio().await;
    let content = random_bytes(10_000);
    let hash = trio.put_on(&trio.a, &content).await;
    let dead = ReplicaSource {
        node: "node-gone@alice.home.collective".into(),
        endpoint: "127.0.0.1:1".into(),
        ticket: Some(
            trio.fed
                .ticket_for(TicketOp::Get, &[hash], NODE_B, "node-gone@alice.home.collective"),
        ),
    };
    // A holds the chunk, but the ticket names C as holder: A refuses B.
    let mut misheld = trio.source(&trio.a, hash);
    misheld.ticket = Some(trio.fed.ticket_for(TicketOp::Get, &[hash], NODE_C, NODE_A));
    let status = trio
        .replicate(
            trio.put_ticket_at_b(hash),
            hash,
            content.len() as u64,
            vec![trio.source(&trio.c, hash), dead, misheld],
        )
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    let message = status.message();
    assert!(message.contains("any of 3 sources"), "{message}");
    assert!(
        message.contains(NODE_C) && message.contains("NotFound"),
        "{message}"
    );
    assert!(
        message.contains("node-gone@") && message.contains("127.0.0.1:1"),
        "{message}"
    );
    assert!(
        message.contains(NODE_A) && message.contains("PermissionDenied"),
        "{message}"
    );
    assert_eq!(
        trio.files_on_b(),
        Vec::<String>::new(),
        "B holds nothing, not even a temporary file"
    );
    assert_eq!(trio.get_from_b(hash).await.unwrap_err().code(), Code::NotFound);
}

#[tokio::test]
async fn a_corrupt_source_copy_never_reaches_b() {
    let trio = trio().await;
    let content = random_bytes(300_000);
    let hash = trio.put_on(&trio.a, &content).await;
    let path = chunk_file(&trio.a.data_dirs[0], &hash);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[123_456] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();

    let status = trio
        .replicate(
            trio.put_ticket_at_b(hash),
            hash,
            content.len() as u64,
            vec![trio.source(&trio.a, hash)],
        )
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("DataLoss"), "{}", status.message());
    assert_eq!(trio.files_on_b(), Vec::<String>::new(), "B stored nothing");
    // A found the rot while serving B, quarantined its copy and queued a report for its member.
    assert!(!path.exists());
    assert_eq!(
        trio.a.running.corruption.pending(),
        vec![(hash, collective::node::FoundBy::Read)]
    );
}

/// A TCP relay to a node that passes the first `pass` bytes the node sends and then stops
/// reading from it, holding both connections open: to the caller, a source that went silent
/// part-way through a copy, as a paused or wedged node does.
struct FreezingRelay {
    addr: SocketAddr,
    froze: Arc<AtomicBool>,
}

impl FreezingRelay {
    async fn start(target: SocketAddr, pass: usize) -> FreezingRelay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let froze = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&froze);
        tokio::spawn(async move {
            while let Ok((caller, _)) = listener.accept().await {
                let flag = Arc::clone(&flag);
                tokio::spawn(async move {
                    let node = TcpStream::connect(target).await.unwrap();
                    let (mut from_caller, mut to_caller) = caller.into_split();
                    let (mut from_node, mut to_node) = node.into_split();
                    tokio::spawn(async move { tokio::io::copy(&mut from_caller, &mut to_node).await });
                    let mut passed = 0;
                    let mut buf = vec![0u8; 64 * 1024];
                    while passed < pass {
                        let n = match from_node.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n.min(pass - passed),
                        };
                        if to_caller.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                        passed += n;
                    }
                    flag.store(true, Ordering::SeqCst);
                    // Silent from here on, with both connections kept open.
                    std::future::pending::<()>().await;
                    drop((from_node, to_caller));
                });
            }
        });
        FreezingRelay { addr, froze }
    }
}

#[tokio::test]
async fn a_source_that_goes_silent_mid_copy_is_given_up_for_the_next() {
    let trio = trio().await;
    // 8 MiB: B's limit on the whole copy (the stall limit plus half of it per MiB, 10 s) is
    // well above the stall limit, so only giving up on silence passes the time check below.
    let content = random_bytes(8 * 1024 * 1024);
    let hash = trio.put_on(&trio.a, &content).await;
    trio.put_on(&trio.c, &content).await;
    // A's answer stops after 512 KiB: past the TLS handshake, inside the chunk's bytes.
    let relay = FreezingRelay::start(trio.a.running.local_addr, 512 * 1024).await;
    let mut silent_a = trio.source(&trio.a, hash);
    silent_a.endpoint = relay.addr.to_string();

    let started = Instant::now();
    let answer = trio
        .replicate(
            trio.put_ticket_at_b(hash),
            hash,
            content.len() as u64,
            vec![silent_a, trio.source(&trio.c, hash)],
        )
        .await
        .unwrap();
    let took = started.elapsed();
    assert!(relay.froze.load(Ordering::SeqCst), "A's copy stopped part-way");
    assert_eq!(answer.source, NODE_C, "B gave A up and copied from C");
    assert!(
        took >= STALL && took < STALL * 2,
        "B waited {took:?} on a source silent for longer than the {STALL:?} stall limit"
    );
    assert_eq!(trio.get_from_b(hash).await.unwrap(), content);
    assert_eq!(
        trio.files_on_b().len(),
        1,
        "one chunk file; the part copied from A is gone: {:?}",
        trio.files_on_b()
    );
}

#[tokio::test]
async fn replicate_refuses_wrong_tickets_and_bad_requests() {
    let trio = trio().await;
    let content = random_bytes(5_000);
    let hash = trio.put_on(&trio.a, &content).await;
    let length = content.len() as u64;
    let sources = || vec![trio.source(&trio.a, hash)];

    // A GET ticket does not allow writing to B.
    let get_ticket = trio.fed.ticket_for(TicketOp::Get, &[hash], COORDINATOR, NODE_B);
    let status = trio
        .replicate(get_ticket, hash, length, sources())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    // A PUT ticket held by someone else (the client) is refused to the coordinator.
    let client_ticket = trio.fed.ticket_for(TicketOp::Put, &[hash], CLIENT, NODE_B);
    let status = trio
        .replicate(client_ticket, hash, length, sources())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    // A PUT ticket for another chunk does not cover this one.
    let other = ChunkHash::of(b"another chunk");
    let status = trio
        .replicate(trio.put_ticket_at_b(other), hash, length, sources())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    // A PUT ticket for node A is misdirected at B.
    let for_a = trio.fed.ticket_for(TicketOp::Put, &[hash], COORDINATOR, NODE_A);
    let status = trio.replicate(for_a, hash, length, sources()).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");

    let status = trio
        .replicate(trio.put_ticket_at_b(hash), hash, length, Vec::new())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "no source: {status:?}");
    let too_many = (0..=REPLICA_SOURCES_MAX)
        .map(|_| trio.source(&trio.a, hash))
        .collect();
    let status = trio
        .replicate(trio.put_ticket_at_b(hash), hash, length, too_many)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("at most 8"), "{}", status.message());
    let status = trio
        .replicate(trio.put_ticket_at_b(hash), hash, CHUNK_BYTES_MAX + 1, sources())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    // The wrong length is the source's fault: A announces the real one, B refuses it.
    let status = trio
        .replicate(trio.put_ticket_at_b(hash), hash, length + 1, sources())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("expected"), "{}", status.message());

    // A B-held GET ticket for A, presented by a client certificate to A, is refused: a source
    // ticket works only for the replicating node.
    let mut a_as_client = client(&trio.fed, &trio.a).await;
    let b_ticket = trio.fed.ticket_for(TicketOp::Get, &[hash], NODE_B, NODE_A);
    let status = get(&mut a_as_client, b_ticket, hash, 0, None).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");

    assert_eq!(trio.files_on_b(), Vec::<String>::new(), "nothing was stored on B");
}
