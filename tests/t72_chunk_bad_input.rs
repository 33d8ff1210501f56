//! Bad input at a storage node, over real mutual TLS: forged and misused tickets, content that
//! does not match its name, truncated and oversized streams, a full disk. Each gets a clear
//! error, and nothing is stored or left behind.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any unexpected error")]

mod node_support;

use std::path::Path;
use std::time::Duration;

use collective::chunk_hash::ChunkHash;
use collective::node;
use collective::pki::Component;
use collective::ticket::{self, Ticket, TicketBody, TicketGrant, TicketOp};
use collective::wire;
use collective_proto::chunk::put_request::Part;
use collective_proto::chunk::{HasRequest, PutRequest};
use collective_proto::chunk_limits::{CHUNK_BYTES_MAX, CHUNK_FRAME_BYTES_MAX, CHUNK_MESSAGE_BYTES_MAX};
use collective_proto::chunk_wire::{PUT_PATH, PUT_REQUEST_DATA};
use node_support::*;
use prost::Message;
use prost::bytes::Bytes;
use tonic::Code;

const MIB: usize = 1024 * 1024;
/// How long the node may take to remove a temporary file after a cancelled stream.
const CLEANUP_WAIT: Duration = Duration::from_secs(10);

/// Nothing but the empty layout: no chunk, no temporary file, no quarantined file.
/// `refused` has `code` and a message that says `needle`.
fn assert_refused(refused: &tonic::Status, code: Code, needle: &str) {
    assert_eq!(refused.code(), code, "{refused:?}");
    assert!(refused.message().contains(needle), "{}", refused.message());
}

fn assert_empty(dir: &Path) {
    let files = files_under(dir);
    assert!(files.is_empty(), "files left behind: {files:?}");
}

fn grant<'a>(op: TicketOp, hashes: &'a [ChunkHash]) -> TicketGrant<'a> {
    TicketGrant {
        op,
        hashes,
        holder: CLIENT,
        node: NODE,
        issued_at_unix_ms: node::unix_ms_now(),
        lifetime: ticket::TICKET_LIFETIME_DEFAULT,
    }
}

fn altered(ticket: &Ticket, change: impl FnOnce(&mut TicketBody)) -> Ticket {
    let mut body = TicketBody::decode(ticket.body.as_slice()).unwrap();
    change(&mut body);
    Ticket {
        body: body.encode_to_vec(),
        ..ticket.clone()
    }
}

#[tokio::test]
async fn every_bad_ticket_is_refused_and_stores_nothing() {
    let fed = Federation::new();
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(&fed, &[dir.path()], None).await;
    let mut carol = client(&fed, &node).await;
    let content = random_bytes(100_000);
    let hash = ChunkHash::of(&content);
    let other_hash = ChunkHash::of(b"something else");
    let good = fed.ticket(TicketOp::Put, &[hash]);
    let now = node::unix_ms_now();

    let mut forged = good.clone();
    forged.signature[10] ^= 0x80;
    let node_cert = fed.leaf(NODE, Component::Node);
    let body = TicketBody::decode(good.body.as_slice()).unwrap();
    let other_root = collective::pki::FederationCa::init("home.collective").unwrap();
    let other_alice = other_root.sign_member("alice.home.collective").unwrap();
    let impostor = other_alice
        .issue_leaf("coord-1@alice.home.collective", Component::Coordinator, DAY)
        .unwrap();
    let cases: Vec<(&str, Ticket, Code, &str)> = vec![
        ("forged signature", forged, Code::Unauthenticated, "signature"),
        (
            "altered body",
            altered(&good, |b| b.hashes.push(other_hash.as_bytes().to_vec())),
            Code::Unauthenticated,
            "signature",
        ),
        (
            "expired",
            ticket::issue(
                &fed.coordinator,
                &TicketGrant {
                    issued_at_unix_ms: now - 3_600_000,
                    lifetime: Duration::from_secs(600),
                    ..grant(TicketOp::Put, &[hash])
                },
            )
            .unwrap(),
            Code::PermissionDenied,
            "expired",
        ),
        (
            "not yet valid",
            ticket::issue(
                &fed.coordinator,
                &TicketGrant {
                    issued_at_unix_ms: now + 600_000,
                    ..grant(TicketOp::Put, &[hash])
                },
            )
            .unwrap(),
            Code::PermissionDenied,
            "not valid before",
        ),
        (
            "misdirected",
            ticket::issue(
                &fed.coordinator,
                &TicketGrant {
                    node: "node-2@alice.home.collective",
                    ..grant(TicketOp::Put, &[hash])
                },
            )
            .unwrap(),
            Code::PermissionDenied,
            "is for node",
        ),
        (
            "wrong holder",
            ticket::issue(
                &fed.coordinator,
                &TicketGrant {
                    holder: "mallory@alice.home.collective",
                    ..grant(TicketOp::Put, &[hash])
                },
            )
            .unwrap(),
            Code::PermissionDenied,
            "is held by",
        ),
        (
            "wrong op",
            fed.ticket(TicketOp::Get, &[hash]),
            Code::PermissionDenied,
            "allows TICKET_OP_GET",
        ),
        (
            "hash not covered",
            fed.ticket(TicketOp::Put, &[other_hash]),
            Code::PermissionDenied,
            "does not cover",
        ),
        (
            "signed by a node",
            ticket::sign_body(&node_cert, &body).unwrap(),
            Code::Unauthenticated,
            "coordinator",
        ),
        (
            "signer outside the federation root",
            ticket::sign_body(&impostor, &body).unwrap(),
            Code::Unauthenticated,
            "signer certificate refused",
        ),
    ];
    for (name, ticket, code, needle) in cases {
        let messages = put_messages(
            ticket,
            hash,
            content.len() as u64,
            &content,
            CHUNK_FRAME_BYTES_MAX,
        );
        let refused = put_raw(&mut carol, messages).await.unwrap_err();
        assert_eq!(refused.code(), code, "{name}: {refused:?}");
        assert!(
            refused.message().contains(needle),
            "{name}: {}",
            refused.message()
        );
        assert_empty(dir.path());
    }
    let no_ticket = carol
        .has(HasRequest {
            ticket: None,
            hashes: vec![hash.as_bytes().to_vec()],
        })
        .await
        .unwrap_err();
    assert_eq!(no_ticket.code(), Code::Unauthenticated);

    // A ticket stolen by another certified caller of the member is useless to it.
    let mut mallory = client_as(
        &fed,
        &node,
        &fed.leaf("mallory@alice.home.collective", Component::Client),
    )
    .await;
    let messages = put_messages(
        good.clone(),
        hash,
        content.len() as u64,
        &content,
        CHUNK_FRAME_BYTES_MAX,
    );
    let stolen = put_raw(&mut mallory, messages).await.unwrap_err();
    assert_eq!(stolen.code(), Code::PermissionDenied, "{stolen:?}");
    assert_eq!(
        stolen.metadata().get("rejection-code").unwrap(),
        "ticket_wrong_holder"
    );
    assert_empty(dir.path());

    // And the genuine ticket, by its holder, works.
    let messages = put_messages(good, hash, content.len() as u64, &content, CHUNK_FRAME_BYTES_MAX);
    put_raw(&mut carol, messages).await.unwrap();
    assert!(chunk_file(dir.path(), &hash).is_file());
}

#[tokio::test]
async fn content_that_does_not_match_its_name_is_refused() {
    let fed = Federation::new();
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(&fed, &[dir.path()], None).await;
    let mut client = client(&fed, &node).await;
    let claimed = random_bytes(2 * MIB);
    let sent = random_bytes(2 * MIB);
    let hash = ChunkHash::of(&claimed);
    let ticket = fed.ticket(TicketOp::Put, &[hash]);
    let refused = put_raw(
        &mut client,
        put_messages(ticket, hash, sent.len() as u64, &sent, MIB),
    )
    .await
    .unwrap_err();
    assert_refused(&refused, Code::InvalidArgument, "not to its name");
    assert_empty(dir.path());
}

#[tokio::test]
async fn truncated_and_oversized_streams_are_refused_and_leave_nothing() {
    let fed = Federation::new();
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(&fed, &[dir.path()], None).await;
    let mut client = client(&fed, &node).await;
    let content = random_bytes(2 * MIB);
    let hash = ChunkHash::of(&content);
    let ticket = fed.ticket(TicketOp::Put, &[hash]);

    // The stream ends after half the announced bytes.
    let truncated = put_messages(ticket.clone(), hash, content.len() as u64, &content[..MIB], MIB);
    let refused = put_raw(&mut client, truncated).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert!(
        refused
            .message()
            .contains("ended after 1048576 of the announced 2097152"),
        "{}",
        refused.message()
    );
    assert_empty(dir.path());

    // More bytes than announced.
    let mut longer = content.clone();
    longer.push(0);
    let overrun = put_messages(ticket.clone(), hash, content.len() as u64, &longer, MIB);
    let refused = put_raw(&mut client, overrun).await.unwrap_err();
    assert_refused(&refused, Code::InvalidArgument, "more than the announced");
    assert_empty(dir.path());

    // An announced length over the chunk limit.
    let huge = put_messages(ticket.clone(), hash, CHUNK_BYTES_MAX + 1, &[], MIB);
    let refused = put_raw(&mut client, huge).await.unwrap_err();
    assert_refused(&refused, Code::InvalidArgument, "chunk limit");

    // A frame over the frame limit.
    let big_frames = put_messages(
        ticket.clone(),
        hash,
        content.len() as u64,
        &content,
        CHUNK_FRAME_BYTES_MAX + 1,
    );
    let refused = put_raw(&mut client, big_frames).await.unwrap_err();
    assert_refused(&refused, Code::InvalidArgument, "exceeds");
    assert_empty(dir.path());

    // Data before the header, and a second header.
    let headless = vec![PutRequest {
        part: Some(Part::Data(Bytes::from_static(b"x"))),
    }];
    let refused = put_raw(&mut client, headless).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    let mut twice = put_messages(ticket.clone(), hash, content.len() as u64, &content[..MIB], MIB);
    twice.push(twice[0].clone());
    let refused = put_raw(&mut client, twice).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert_empty(dir.path());

    // A client that goes away midway: the node discards what it received.
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    for message in put_messages(ticket.clone(), hash, content.len() as u64, &content[..MIB], MIB) {
        tx.send(message).await.unwrap();
    }
    let mut abandoning = client.clone();
    let call = tokio::spawn(async move {
        abandoning
            .put(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
    });
    // Wait until the node holds the partial chunk, then drop the call.
    let deadline = tokio::time::Instant::now() + CLEANUP_WAIT;
    while files_under(&dir.path().join("tmp")).is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "the put never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    call.abort();
    drop(tx);
    while !files_under(dir.path()).is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "left behind: {:?}",
            files_under(dir.path())
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // After all that, the chunk still goes in whole.
    put_raw(
        &mut client,
        put_messages(ticket, hash, content.len() as u64, &content, MIB),
    )
    .await
    .unwrap();
    let back = get(&mut client, fed.ticket(TicketOp::Get, &[hash]), hash, 0, None)
        .await
        .unwrap();
    assert!(back == content);
}

/// Polls until `dir` holds `count` files, or panics after `CLEANUP_WAIT`.
async fn wait_for_files(dir: &Path, count: usize, what: &str) {
    let deadline = tokio::time::Instant::now() + CLEANUP_WAIT;
    while files_under(dir).len() != count {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: {} files, expected {count}",
            files_under(dir).len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn puts_beyond_the_staging_cap_wait_for_room() {
    let fed = Federation::new();
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(&fed, &[dir.path()], None).await;
    let client = client(&fed, &node).await;
    let chunk = 4 * MIB;
    let fit = (collective::node::PUT_STAGING_BYTES_MAX / chunk as u64) as usize;
    // One put more than the cap holds, each announcing a 4 MiB chunk and sending only its
    // header, its stream left open.
    let mut puts = Vec::new();
    for _ in 0..=fit {
        let content = random_bytes(chunk);
        let hash = ChunkHash::of(&content);
        let ticket = fed.ticket(TicketOp::Put, &[hash]);
        let mut messages = put_messages(ticket, hash, chunk as u64, &content, MIB).into_iter();
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        tx.send(messages.next().unwrap()).await.unwrap();
        let mut caller = client.clone();
        let call =
            tokio::spawn(async move { caller.put(tokio_stream::wrappers::ReceiverStream::new(rx)).await });
        puts.push((tx, messages, call));
    }
    // As many puts begin as their stages fit in the cap; the last one waits.
    let tmp = dir.path().join("tmp");
    wait_for_files(&tmp, fit, "puts begun").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(files_under(&tmp).len(), fit, "the put past the cap waits");

    // The first put completes: its room goes to the waiting one.
    let (tx, rest, call) = puts.remove(0);
    for message in rest {
        tx.send(message).await.unwrap();
    }
    drop(tx);
    assert!(!call.await.unwrap().unwrap().into_inner().already_present);
    wait_for_files(&dir.path().join("chunks"), 1, "chunks stored").await;
    wait_for_files(&tmp, fit, "puts in progress after the first commits").await;

    // The rest are abandoned: everything they received goes.
    for (tx, _, call) in puts {
        drop(tx);
        assert!(call.await.unwrap().is_err(), "a put cut short is refused");
    }
    wait_for_files(&tmp, 0, "temporary files left").await;
}

/// Sends `frames` as the body of a `Put`, as they are, and reads the call to its end.
async fn put_frames(channel: &tonic::transport::Channel, frames: Vec<Bytes>) -> Result<(), tonic::Status> {
    let body = wire::FramesBody::new(frames, None, ());
    let mut messages = wire::call(channel, PUT_PATH, body, CHUNK_MESSAGE_BYTES_MAX).await?;
    while messages.next().await?.is_some() {}
    Ok(())
}

#[tokio::test]
async fn malformed_grpc_framing_is_refused_and_leaves_nothing() {
    let fed = Federation::new();
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(&fed, &[dir.path()], None).await;
    let channel = channel_as(&fed, &node, &fed.leaf(CLIENT, Component::Client)).await;
    let content = random_bytes(MIB);
    let hash = ChunkHash::of(&content);
    let ticket = fed.ticket(TicketOp::Put, &[hash]);
    let header = wire::message(&put_messages(ticket.clone(), hash, MIB as u64, &[], MIB)[0]);
    let data_head = wire::bytes_message_head(&[], PUT_REQUEST_DATA, MIB);

    // A compressed message, though no compression was agreed.
    let mut compressed = header.to_vec();
    compressed[0] = 1;
    let refused = put_frames(&channel, vec![compressed.into()]).await.unwrap_err();
    assert_refused(&refused, Code::Unimplemented, "compressed");

    // A message announced above the limit: refused from its prefix alone.
    let mut prefix = vec![0u8];
    prefix.extend_from_slice(&(3 * MIB as u32).to_be_bytes());
    let refused = put_frames(&channel, vec![header.clone(), prefix.into()])
        .await
        .unwrap_err();
    assert_refused(&refused, Code::OutOfRange, "above the limit");
    assert_empty(dir.path());

    // The body ends inside a data message.
    let cut = Bytes::copy_from_slice(&content[..1000]);
    let refused = put_frames(&channel, vec![header.clone(), data_head.clone(), cut])
        .await
        .unwrap_err();
    assert_refused(&refused, Code::InvalidArgument, "ended inside a message");
    assert_empty(dir.path());

    // A data message that is not protobuf (a key of wire type 7).
    let garbage = Bytes::from_static(&[0, 0, 0, 0, 2, 0x0f, 0x00]);
    let refused = put_frames(&channel, vec![header.clone(), garbage])
        .await
        .unwrap_err();
    assert_refused(&refused, Code::InvalidArgument, "malformed PutRequest");
    assert_empty(dir.path());

    // The same chunk, well framed and with the data split across frames, is stored and reads
    // back whole.
    let content = Bytes::from(content);
    put_frames(
        &channel,
        vec![header, data_head, content.slice(..1000), content.slice(1000..)],
    )
    .await
    .unwrap();
    let mut client = client(&fed, &node).await;
    let back = get(&mut client, fed.ticket(TicketOp::Get, &[hash]), hash, 0, None)
        .await
        .unwrap();
    assert!(back == content, "the chunk reads back as it was sent");
}

#[tokio::test]
async fn a_node_at_its_capacity_limit_refuses_puts_and_keeps_its_chunks() {
    let fed = Federation::new();
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(&fed, &[dir.path()], Some(5 * MIB as u64 / 2)).await;
    let mut client = client(&fed, &node).await;
    fill_and_check(&fed, &mut client, dir.path()).await;
}

/// A real full file system: a 4 MiB tmpfs, mounted when the test runs as root (as in CI here).
/// Without root there is no way to mount one, and the capacity-limit test above covers the
/// node's side; this one adds the kernel's own "no space left" answers.
#[tokio::test]
async fn a_node_on_a_full_file_system_refuses_puts_and_keeps_its_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let Some(_mount) = Tmpfs::mount(dir.path(), "4m") else {
        eprintln!("not root or mount refused: the tmpfs variant of the disk-full test did not run");
        return;
    };
    let fed = Federation::new();
    let node = start_node(&fed, &[dir.path()], None).await;
    let mut client = client(&fed, &node).await;
    fill_and_check(&fed, &mut client, dir.path()).await;
    drop(node);
}

/// Puts 1 MiB chunks until the node refuses; the refusal must be RESOURCE_EXHAUSTED, come
/// after at least one chunk, leave no temporary file, and every chunk stored must read back.
async fn fill_and_check(
    fed: &Federation,
    client: &mut collective_proto::chunk::chunks_client::ChunksClient<tonic::transport::Channel>,
    dir: &Path,
) {
    let mut stored = Vec::new();
    let refused = loop {
        assert!(stored.len() < 16, "the node never filled up");
        let content = random_bytes(MIB);
        match put(fed, client, &content).await {
            Ok(_) => stored.push(content),
            Err(status) => break status,
        }
    };
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(!stored.is_empty(), "not even one chunk fit");
    assert!(
        files_under(&dir.join("tmp")).is_empty(),
        "{:?}",
        files_under(&dir.join("tmp"))
    );
    for content in &stored {
        let hash = ChunkHash::of(content);
        let back = get(client, fed.ticket(TicketOp::Get, &[hash]), hash, 0, None)
            .await
            .unwrap();
        assert!(back == *content, "a stored chunk changed");
    }
}

/// A tmpfs mounted for the length of a test; `None` when mounting is not allowed (not root).
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Option<Tmpfs> {
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .ok()?;
        status.success().then(|| Tmpfs(path.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}
