//! A storage node in process, over real mutual TLS and real files: chunks go in, come back out
//! (whole and by range), are found, deleted, and a corrupt copy is never served; the chunks
//! asked on one connection are sent one after another.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any unexpected error")]

mod node_support;

use collective::chunk_hash::ChunkHash;
use collective::ticket::TicketOp;
use std::time::Duration;

use collective_proto::chunk::{DeleteRequest, HasRequest};
use node_support::*;
use tonic::Code;

const MIB: usize = 1024 * 1024;

#[tokio::test]
async fn chunks_round_trip_whole_and_by_range() {
    let fed = Federation::new();
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(&fed, &[dir.path()], None).await;
    let mut client = client(&fed, &node).await;

    let content = random_bytes(3 * MIB + 17);
    let hash = ChunkHash::of(&content);
    let stored = put(&fed, &mut client, &content).await.unwrap();
    assert!(!stored.already_present);
    assert!(chunk_file(dir.path(), &hash).is_file());

    let ticket = fed.ticket(TicketOp::Get, &[hash]);
    let whole = get(&mut client, ticket.clone(), hash, 0, None).await.unwrap();
    assert!(whole == content, "whole chunk differs");
    let range = get(&mut client, ticket.clone(), hash, MIB as u64 - 10, Some(100))
        .await
        .unwrap();
    assert_eq!(range, content[MIB - 10..MIB + 90]);
    let tail = get(&mut client, ticket.clone(), hash, 3 * MIB as u64, None)
        .await
        .unwrap();
    assert_eq!(tail, content[3 * MIB..]);
    let beyond = get(
        &mut client,
        ticket.clone(),
        hash,
        content.len() as u64 - 5,
        Some(6),
    )
    .await
    .unwrap_err();
    assert_eq!(beyond.code(), Code::OutOfRange, "{beyond:?}");

    // The same content again is a no-op.
    assert!(put(&fed, &mut client, &content).await.unwrap().already_present);

    let missing = ChunkHash::of(b"never stored");
    assert_eq!(
        present(&fed, &mut client, &[hash, missing]).await,
        vec![true, false]
    );

    let removed = client
        .delete(DeleteRequest {
            ticket: Some(fed.ticket(TicketOp::Delete, &[hash, missing])),
            hashes: vec![hash.as_bytes().to_vec(), missing.as_bytes().to_vec()],
            min_idle_ms: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(removed.removed, vec![true, false]);
    let gone = get(&mut client, ticket, hash, 0, None).await.unwrap_err();
    assert_eq!(gone.code(), Code::NotFound, "{gone:?}");
    assert!(
        files_under(dir.path()).is_empty(),
        "{:?}",
        files_under(dir.path())
    );
}

#[tokio::test]
async fn a_connection_sends_one_chunk_at_a_time() {
    // A get's answer sends in its connection's turn (`wire::SendTurns`). The first chunk is
    // larger than a stream's flow-control window (8 MiB): while its stream is left unread, the
    // node cannot hand on the rest of it, keeps the turn, and a second get on the same
    // connection gets nothing; once the first is read, the second comes. Without the turns the
    // second would come at once, its stream having a window of its own.
    let fed = Federation::new();
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(&fed, &[dir.path()], None).await;
    let mut client = client(&fed, &node).await;
    let large = random_bytes(20 * MIB);
    let small = random_bytes(MIB);
    put(&fed, &mut client, &large).await.unwrap();
    put(&fed, &mut client, &small).await.unwrap();
    let (large_hash, small_hash) = (ChunkHash::of(&large), ChunkHash::of(&small));
    let ticket = fed.ticket(TicketOp::Get, &[large_hash, small_hash]);

    let mut first = get_stream(&mut client, ticket.clone(), large_hash, 0, None)
        .await
        .unwrap();
    let mut received = first.message().await.unwrap().unwrap().data.to_vec();
    // A clone shares the channel, and so the connection.
    let mut second_client = client.clone();
    let second = tokio::spawn(async move { get(&mut second_client, ticket, small_hash, 0, None).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !second.is_finished(),
        "the second chunk came while the first held the turn"
    );

    while let Some(message) = first.message().await.unwrap() {
        received.extend_from_slice(&message.data);
    }
    assert!(received == large, "the first chunk differs");
    let second = tokio::time::timeout(Duration::from_secs(10), second)
        .await
        .expect("the second chunk comes once the first was read")
        .unwrap()
        .unwrap();
    assert!(second == small, "the second chunk differs");
}

#[tokio::test]
async fn an_empty_chunk_is_a_chunk() {
    let fed = Federation::new();
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(&fed, &[dir.path()], None).await;
    let mut client = client(&fed, &node).await;
    put(&fed, &mut client, b"").await.unwrap();
    let hash = ChunkHash::of(b"");
    let back = get(&mut client, fed.ticket(TicketOp::Get, &[hash]), hash, 0, None)
        .await
        .unwrap();
    assert!(back.is_empty());
}

#[tokio::test]
async fn a_flipped_byte_on_disk_is_never_served_and_the_chunk_is_quarantined() {
    let fed = Federation::new();
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(&fed, &[dir.path()], None).await;
    let mut client = client(&fed, &node).await;
    let content = random_bytes(2 * MIB);
    let hash = ChunkHash::of(&content);
    put(&fed, &mut client, &content).await.unwrap();

    let path = chunk_file(dir.path(), &hash);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[MIB + 3] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();

    // Even a range far from the flipped byte is refused: the whole chunk is verified.
    let ticket = fed.ticket(TicketOp::Get, &[hash]);
    let refused = get(&mut client, ticket.clone(), hash, 0, Some(10))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::DataLoss, "{refused:?}");
    assert!(refused.message().contains("damaged"), "{}", refused.message());
    assert!(!path.exists());
    let quarantined = files_under(&dir.path().join("quarantine"));
    assert_eq!(quarantined.len(), 1, "{quarantined:?}");
    assert!(quarantined[0].starts_with(&hash.to_hex()));

    let again = get(&mut client, ticket, hash, 0, None).await.unwrap_err();
    assert_eq!(again.code(), Code::NotFound, "{again:?}");
    let has = client
        .has(HasRequest {
            ticket: Some(fed.ticket(TicketOp::Has, &[hash])),
            hashes: vec![hash.as_bytes().to_vec()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(has.present, vec![false]);

    // A good copy put again (what repair will do) is served again.
    assert!(!put(&fed, &mut client, &content).await.unwrap().already_present);
    let back = get(&mut client, fed.ticket(TicketOp::Get, &[hash]), hash, 0, None)
        .await
        .unwrap();
    assert!(back == content);
}

#[tokio::test]
async fn chunks_spread_over_data_directories_and_capacity_is_reported() {
    let fed = Federation::new();
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let node = start_node(&fed, &[a.path(), b.path()], Some(3 * MIB as u64)).await;
    let mut client = client(&fed, &node).await;
    let mut hashes = Vec::new();
    for _ in 0..4 {
        let content = random_bytes(MIB);
        hashes.push(ChunkHash::of(&content));
        put(&fed, &mut client, &content).await.unwrap();
    }
    let capacity = node.running.store.capacity();
    let used: Vec<u64> = capacity.iter().map(|c| c.used_bytes).collect();
    assert_eq!(
        used,
        vec![2 * MIB as u64, 2 * MIB as u64],
        "puts go where there is most room"
    );
    assert!(
        capacity
            .iter()
            .all(|c| c.total_bytes == 3 * MIB as u64 && c.free_bytes == MIB as u64)
    );
    for hash in hashes {
        get(&mut client, fed.ticket(TicketOp::Get, &[hash]), hash, 0, None)
            .await
            .unwrap();
    }
}
