//! Bulk connections against rustls's own record layer (tokio-rustls) on the other end, over
//! real sockets (one test over an in-memory pipe): data both ways, key updates either side
//! starts, closes, and damage.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any unexpected error")]

use std::sync::Arc;
use std::time::Duration;

use rand::RngCore;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::BulkStream;

use crate::pki::{Component, FederationCa};
use crate::tls::{self, Policy, ServerExpectation};

const DAY: Duration = Duration::from_secs(24 * 3600);
const NODE: &str = "node-01@alice.home.collective";

struct Configs {
    client: Arc<rustls::ClientConfig>,
    server: Arc<rustls::ServerConfig>,
    root: FederationCa,
}

fn configs() -> Configs {
    let root = FederationCa::init("home.collective").unwrap();
    let alice = root.sign_member("alice.home.collective").unwrap();
    let node = alice.issue_leaf(NODE, Component::Node, DAY).unwrap();
    let client = alice
        .issue_leaf("laptop@alice.home.collective", Component::Client, DAY)
        .unwrap();
    Configs {
        client: tls::client_config(&client, root.cert_der(), expect()).unwrap(),
        server: tls::server_config(&node, root.cert_der(), Policy::any_component()).unwrap(),
        root,
    }
}

fn expect() -> ServerExpectation {
    ServerExpectation::address(NODE, Component::Node).unwrap()
}

fn server_name() -> ServerName<'static> {
    tls::expected_server_name(&expect()).unwrap()
}

async fn socket_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dial = TcpStream::connect(listener.local_addr().unwrap());
    let (dialed, accepted) = tokio::join!(dial, listener.accept());
    (dialed.unwrap(), accepted.unwrap().0)
}

/// A bulk client connected to a server on rustls's own record layer.
async fn bulk_client_rustls_server(
    configs: &Configs,
) -> (BulkStream<TcpStream>, tokio_rustls::server::TlsStream<TcpStream>) {
    let (dialed, accepted) = socket_pair().await;
    let acceptor = tokio_rustls::TlsAcceptor::from(configs.server.clone());
    let (client, server) = tokio::join!(
        super::connect(dialed, configs.client.clone(), server_name()),
        acceptor.accept(accepted)
    );
    (client.unwrap(), server.unwrap())
}

/// Both ends write their data in pieces and read the other's to the end, at once; returns
/// what each read: (the server's, the client's).
async fn exchange<C, S>(client: C, server: S, up: &[u8], down: &[u8]) -> (Vec<u8>, Vec<u8>)
where
    C: AsyncRead + AsyncWrite + Unpin,
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (client_read, client_write) = tokio::io::split(client);
    let (server_read, server_write) = tokio::io::split(server);
    let (got_up, got_down, (), ()) = tokio::join!(
        read_all(server_read),
        read_all(client_read),
        write_in_pieces(client_write, up),
        write_in_pieces(server_write, down),
    );
    (got_up.unwrap(), got_down.unwrap())
}

fn random(len: usize) -> Vec<u8> {
    let mut data = vec![0u8; len];
    rand::rng().fill_bytes(&mut data);
    data
}

/// Writes `data` in pieces of varied sizes (a byte, part of a record, several records) and
/// shuts the writing side down.
async fn write_in_pieces(mut writer: impl AsyncWrite + Unpin, data: &[u8]) {
    let sizes = [1usize, 100, 16 * 1024, 16 * 1024 + 1, 70_000, 300_000, 5];
    let (mut at, mut i) = (0, 0);
    while at < data.len() {
        let n = sizes[i % sizes.len()].min(data.len() - at);
        writer.write_all(&data[at..at + n]).await.unwrap();
        at += n;
        i += 1;
    }
    writer.flush().await.unwrap();
    writer.shutdown().await.unwrap();
}

async fn read_all(mut reader: impl AsyncRead + Unpin) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    reader.read_to_end(&mut out).await?;
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_client_and_a_rustls_server_carry_data_both_ways() {
    let (client, server) = bulk_client_rustls_server(&configs()).await;
    assert!(client.peer_certificates().is_some_and(|chain| chain.len() == 2));
    let (up, down) = (random(3 * 1024 * 1024 + 17), random(2 * 1024 * 1024 + 3));
    let (got_up, got_down) = exchange(client, server, &up, &down).await;
    assert!(got_up == up, "the server read what the client wrote");
    assert!(got_down == down, "the client read what the server wrote");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rustls_client_and_a_bulk_server_carry_data_both_ways() {
    let configs = configs();
    let (dialed, accepted) = socket_pair().await;
    let connector = tokio_rustls::TlsConnector::from(configs.client.clone());
    let (client, server) = tokio::join!(
        connector.connect(server_name(), dialed),
        super::accept(accepted, configs.server)
    );
    let (client, server) = (client.unwrap(), server.unwrap());
    let chain = server.peer_certificates().expect("the client's chain");
    assert_eq!(chain.len(), 2, "the client's leaf and its member CA");
    let (up, down) = (random(2 * 1024 * 1024 + 1), random(1024 * 1024 + 999));
    let (got_up, got_down) = exchange(client, server, &up, &down).await;
    assert!(got_up == up, "the server read what the client wrote");
    assert!(got_down == down, "the client read what the server wrote");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_updates_a_rustls_peer_asks_for_are_followed_and_answered() {
    let (mut client, mut server) = bulk_client_rustls_server(&configs()).await;
    for round in 0..3u8 {
        // rustls sends a KeyUpdate that requests ours, then data under its new key.
        server.get_mut().1.refresh_traffic_keys().unwrap();
        let down = random(40_000 + usize::from(round));
        server.write_all(&down).await.unwrap();
        server.flush().await.unwrap();
        let mut got = vec![0u8; down.len()];
        client.read_exact(&mut got).await.unwrap();
        assert!(got == down, "round {round}: read under the server's new key");
        // Our answer went out before our data: rustls reads it under our new key.
        let up = random(30_000);
        client.write_all(&up).await.unwrap();
        client.flush().await.unwrap();
        let mut got = vec![0u8; up.len()];
        server.read_exact(&mut got).await.unwrap();
        assert!(got == up, "round {round}: the server read under our new key");
    }
    assert!(
        client.opened_in_reader() > 0,
        "the key updates came in reads opened in the reader's buffer"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_side_updates_its_key_after_its_share_of_records() {
    let (mut client, server) = bulk_client_rustls_server(&configs()).await;
    // Every 3 records a new key: a 200 KiB write (13 records) makes four key updates.
    client.set_key_update_after(3);
    let up = random(200 * 1024);
    let (got, ()) = tokio::join!(read_all(server), write_in_pieces(&mut client, &up));
    assert!(got.unwrap() == up, "rustls followed every key update");
    assert!(client.tx_records() <= 3, "the last key sealed at most its share");
}

/// Reads `len` bytes in reads of at most `piece` bytes.
async fn read_in_pieces(reader: &mut (impl AsyncRead + Unpin), len: usize, piece: usize) -> Vec<u8> {
    let mut got = vec![0u8; len];
    let mut at = 0;
    while at < len {
        let end = (at + piece).min(len);
        let n = reader.read(&mut got[at..end]).await.unwrap();
        assert!(n > 0, "the stream ended at {at} of {len} bytes");
        at += n;
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_receive_buffer_grows_only_on_a_connection_that_carries_bulk() {
    let configs = configs();
    let (mut quiet, mut server) = bulk_client_rustls_server(&configs).await;
    server.write_all(b"a few bytes").await.unwrap();
    server.flush().await.unwrap();
    quiet.read_exact(&mut [0u8; 11]).await.unwrap();
    assert_eq!(
        quiet.incoming_bytes(),
        32 * 1024,
        "a quiet connection keeps the small buffer"
    );
    let (mut busy, server) = bulk_client_rustls_server(&configs).await;
    let down = random(8 * 1024 * 1024);
    let sent = down.clone();
    let writer = tokio::spawn(async move { write_in_pieces(server, &sent).await });
    // The socket's buffers fill before the first read, so reads find more than they can take.
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Reads too small to take records whole go through the receive buffer.
    let got = read_in_pieces(&mut busy, down.len(), 8 * 1024).await;
    writer.await.unwrap();
    assert!(got == down);
    assert_eq!(busy.opened_in_reader(), 0, "no read had room for records");
    assert_eq!(
        busy.incoming_bytes(),
        256 * 1024,
        "a busy one reads up to 256 KiB at a time"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_are_opened_in_a_reader_buffer_with_room_for_them() {
    let configs = configs();
    for piece in [40 * 1024, 300 * 1024, 4 * 1024 * 1024] {
        let (mut client, server) = bulk_client_rustls_server(&configs).await;
        let down = random(6 * 1024 * 1024 + 77);
        let sent = down.clone();
        // Pieces of every size, so records end anywhere in a read.
        let writer = tokio::spawn(async move { write_in_pieces(server, &sent).await });
        let got = read_in_pieces(&mut client, down.len(), piece).await;
        writer.await.unwrap();
        assert!(
            got == down,
            "reads of {piece} bytes: the data arrived whole and in order"
        );
        assert!(
            client.opened_in_reader() > 0,
            "reads of {piece} bytes went straight into the reader's buffer"
        );
        assert_eq!(
            client.incoming_bytes(),
            32 * 1024,
            "reads of {piece} bytes: the receive buffer only finished records cut off"
        );
        let mut end = [0u8; 64 * 1024];
        assert_eq!(
            client.read(&mut end).await.unwrap(),
            0,
            "close_notify ends the stream"
        );
    }
}

/// HTTP/2 reads a frame into a buffer with room for the rest of that frame only, so each
/// frame's last reads have little room; the reads after them must go straight into the next
/// frame's buffer again, not through the receive buffer. Before this was so, each frame's end
/// filled the receive buffer (up to 256 KiB) and every byte of it was copied to the reader.
/// Over an in-memory pipe that holds all the data before the first read, so that every read
/// finds all it has room for and the bytes copied do not depend on timing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_end_of_a_large_read_does_not_send_the_next_ones_through_the_receive_buffer() {
    const FRAME: usize = 1024 * 1024;
    const FRAMES: usize = 8;
    let configs = configs();
    let (dialed, accepted) = tokio::io::duplex(2 * FRAMES * FRAME);
    let acceptor = tokio_rustls::TlsAcceptor::from(configs.server.clone());
    let (client, server) = tokio::join!(
        super::connect(dialed, configs.client.clone(), server_name()),
        acceptor.accept(accepted)
    );
    let (mut client, server) = (client.unwrap(), server.unwrap());
    let down = random(FRAMES * FRAME);
    write_in_pieces(server, &down).await;
    let mut got = vec![0u8; down.len()];
    let mut at = 0;
    while at < got.len() {
        let frame_end = (at / FRAME + 1) * FRAME;
        let n = client.read(&mut got[at..frame_end]).await.unwrap();
        assert!(n > 0, "the stream ended at {at} bytes");
        at += n;
    }
    assert!(got == down, "the data arrived whole and in order");
    assert!(
        client.opened_in_reader() > 0,
        "reads went straight into the reader's buffer"
    );
    // A frame's end goes through the receive buffer: its last records, and the rest of the
    // records read with them (about two records, 33 KiB).
    let copied = client.copied_to_reader();
    assert!(
        copied <= (FRAMES * 64 * 1024) as u64,
        "{copied} bytes of {} were copied to the reader",
        down.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_notify_ends_the_stream_and_a_bare_close_is_an_error() {
    let configs = configs();
    for clean in [true, false] {
        let (client, mut server) = bulk_client_rustls_server(&configs).await;
        server.write_all(b"last words").await.unwrap();
        if clean {
            server.shutdown().await.unwrap();
        } else {
            server.flush().await.unwrap();
            drop(server);
        }
        let read = read_all(client).await;
        if clean {
            assert_eq!(read.unwrap(), b"last words");
        } else {
            let error = read.unwrap_err();
            assert_eq!(error.kind(), std::io::ErrorKind::UnexpectedEof, "{error}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_or_forged_record_fails_the_stream_for_good() {
    let configs = configs();
    // Each case: raw bytes put on the wire after a good record.
    let cases: [(&str, Vec<u8>, &str); 3] = [
        (
            "a record that does not open",
            [vec![23, 3, 3, 0, 40], vec![0xAB; 40]].concat(),
            "decrypt",
        ),
        (
            "a record above the size limit",
            vec![23, 3, 3, 0x48, 0x01],
            "excess record size",
        ),
        (
            "a plaintext handshake record",
            [vec![22, 3, 3, 0, 4], vec![1, 0, 0, 0]].concat(),
            "InvalidContentType",
        ),
    ];
    // Reads of 16 bytes go through the receive buffer; reads of 64 KiB open records in place.
    for read_size in [16, 64 * 1024] {
        for (what, forged, expected) in &cases {
            let (mut client, mut server) = bulk_client_rustls_server(&configs).await;
            server.write_all(b"good").await.unwrap();
            server.flush().await.unwrap();
            let mut good = [0u8; 4];
            client.read_exact(&mut good).await.unwrap();
            assert_eq!(&good, b"good");
            server.get_mut().0.write_all(forged).await.unwrap();
            let mut rest = vec![0u8; read_size];
            let error = client.read(&mut rest).await.unwrap_err();
            assert_eq!(error.kind(), std::io::ErrorKind::InvalidData, "{what}: {error}");
            assert!(error.to_string().contains(expected), "{what}: {error}");
            let again = client.read(&mut rest).await.unwrap_err();
            assert_eq!(again.to_string(), error.to_string(), "{what}: failed for good");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_read_before_a_bad_one_are_delivered_then_the_stream_fails() {
    let configs = configs();
    let (mut client, mut server) = bulk_client_rustls_server(&configs).await;
    let good = random(50_000);
    server.write_all(&good).await.unwrap();
    server.flush().await.unwrap();
    let forged = [vec![23, 3, 3, 0, 40], vec![0xAB; 40]].concat();
    server.get_mut().0.write_all(&forged).await.unwrap();
    // Both are in the socket before the first read, which takes them in one go.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    let error = loop {
        match client.read(&mut buf).await {
            Ok(n) => {
                assert!(n > 0, "the stream fails, it does not end");
                got.extend_from_slice(&buf[..n]);
            }
            Err(error) => break error,
        }
    };
    assert!(got == good, "every good record was read before the error");
    assert!(client.opened_in_reader() > 0, "in the reader's buffer");
    assert!(error.to_string().contains("decrypt"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_the_server_refuses_learns_why() {
    let configs = configs();
    // A client certified by another federation's root, which the node does not trust.
    let other = FederationCa::init("home.collective").unwrap();
    let stranger = other
        .sign_member("alice.home.collective")
        .unwrap()
        .issue_leaf("laptop@alice.home.collective", Component::Client, DAY)
        .unwrap();
    let client_config = tls::client_config(&stranger, configs.root.cert_der(), expect()).unwrap();
    let (dialed, accepted) = socket_pair().await;
    let (client, server) = tokio::join!(
        super::connect(dialed, client_config, server_name()),
        super::accept(accepted, configs.server)
    );
    let refused = server.err().expect("the node refuses a stranger").to_string();
    assert!(refused.contains("invalid peer certificate"), "{refused}");
    // Under TLS 1.3 the client's handshake may end before the server's verdict, which then
    // arrives as an alert on its first read.
    let error = match client {
        Err(error) => error,
        Ok(mut client) => client.read(&mut [0u8; 1]).await.unwrap_err(),
    };
    assert!(error.to_string().contains("received fatal alert"), "{error}");
}
