//! The handshake of a [`BulkStream`]: rustls's unbuffered connection driven over a socket until
//! the handshake is done, then turned into its kernel connection (the traffic secrets, and
//! what key updates and session tickets need), the way kTLS is set up.

use std::io;
use std::sync::Arc;

use rustls::client::{ClientConnectionData, UnbufferedClientConnection};
use rustls::pki_types::ServerName;
use rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use rustls::unbuffered::{ConnectionState, EncodeError, UnbufferedConnectionCommon, UnbufferedStatus};
use rustls::{ClientConfig, Error, ExtractedSecrets, ServerConfig, SupportedCipherSuite};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::record::Protection;
use super::stream::{BulkStream, Established, Kernel};

/// Most handshake bytes buffered from the peer at once (rustls's own limit for a handshake
/// message is 64 KiB; a certificate chain of the federation is a few KiB).
const HANDSHAKE_INCOMING_BYTES_MAX: usize = 80 * 1024;
/// The first read's size; the buffer grows up to the limit when a flight is larger.
const HANDSHAKE_READ_BYTES: usize = 16 * 1024;

/// Dials the TLS handshake as a client over `io` (a connected socket).
pub async fn connect<IO>(
    io: IO,
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
) -> io::Result<BulkStream<IO>>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let conn = UnbufferedClientConnection::new(config, server_name).map_err(invalid_data)?;
    handshake(io, conn).await
}

/// Answers the TLS handshake of a client over `io` (an accepted socket).
pub async fn accept<IO>(io: IO, config: Arc<ServerConfig>) -> io::Result<BulkStream<IO>>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let conn = UnbufferedServerConnection::new(config).map_err(invalid_data)?;
    handshake(io, conn).await
}

/// Runs the handshake of `conn` over `io`, then takes its secrets over.
async fn handshake<C, IO>(mut io: IO, mut conn: C) -> io::Result<BulkStream<IO>>
where
    C: Unbuffered,
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let driven = drive(&mut io, &mut conn).await?;
    let peer_certificates = conn.peer_certificates().map(|chain| Arc::new(chain.to_vec()));
    let Some(SupportedCipherSuite::Tls13(suite)) = conn.negotiated_cipher_suite() else {
        return Err(invalid_data(Error::General(
            "bulk connections speak TLS 1.3 only".into(),
        )));
    };
    let (secrets, kernel) = conn.into_kernel().map_err(invalid_data)?;
    let (rx_seq, rx) = secrets.rx;
    let (tx_seq, tx) = secrets.tx;
    BulkStream::new(
        io,
        Established {
            kernel,
            rx: Protection::new(rx_seq, &rx).map_err(invalid_data)?,
            tx: Protection::new(tx_seq, &tx).map_err(invalid_data)?,
            confidentiality_limit: suite.common.confidentiality_limit,
            early_plaintext: driven.early_plaintext,
            leftover: driven.leftover,
            peer_certificates,
        },
    )
    .map_err(invalid_data)
}

/// What the handshake left: bytes read past it, and application data rustls opened.
struct Driven {
    leftover: Vec<u8>,
    early_plaintext: Vec<u8>,
}

/// The two sides of rustls's unbuffered connection, as the handshake drives them.
trait Unbuffered: std::ops::Deref<Target = UnbufferedConnectionCommon<Self::Data>> {
    type Data;
    fn process<'c, 'i>(&'c mut self, incoming: &'i mut [u8]) -> UnbufferedStatus<'c, 'i, Self::Data>;
    fn into_kernel(self) -> Result<(ExtractedSecrets, Kernel), Error>;
}

impl Unbuffered for UnbufferedClientConnection {
    type Data = ClientConnectionData;
    fn process<'c, 'i>(&'c mut self, incoming: &'i mut [u8]) -> UnbufferedStatus<'c, 'i, Self::Data> {
        self.process_tls_records(incoming)
    }
    fn into_kernel(self) -> Result<(ExtractedSecrets, Kernel), Error> {
        let (secrets, kernel) = self.dangerous_into_kernel_connection()?;
        Ok((secrets, Kernel::Client(kernel)))
    }
}

impl Unbuffered for UnbufferedServerConnection {
    type Data = ServerConnectionData;
    fn process<'c, 'i>(&'c mut self, incoming: &'i mut [u8]) -> UnbufferedStatus<'c, 'i, Self::Data> {
        self.process_tls_records(incoming)
    }
    fn into_kernel(self) -> Result<(ExtractedSecrets, Kernel), Error> {
        let (secrets, kernel) = self.dangerous_into_kernel_connection()?;
        Ok((secrets, Kernel::Server(kernel)))
    }
}

/// What the loop does once a state is handled.
enum Next {
    Process,
    Read,
    /// Application data may be sent: done, unless the handshake still waits for the peer (a
    /// server may send once its own Finished is out, before the client's arrives).
    Writable,
}

/// Runs the handshake of `conn` over `io` until it is complete and nothing is left to send.
async fn drive<C, IO>(io: &mut IO, conn: &mut C) -> io::Result<Driven>
where
    C: Unbuffered,
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let mut incoming = vec![0u8; HANDSHAKE_READ_BYTES];
    let mut filled = 0usize;
    let mut outgoing: Vec<u8> = Vec::new();
    let mut early_plaintext = Vec::new();
    loop {
        let UnbufferedStatus { mut discard, state } = conn.process(&mut incoming[..filled]);
        let state = match state {
            Ok(state) => state,
            Err(error) => {
                // rustls queued an alert saying why (a refused certificate): send it, so the
                // peer learns the reason rather than seeing the connection drop.
                incoming.copy_within(discard..filled, 0);
                filled -= discard;
                send_alert(io, conn, &mut incoming[..filled]).await;
                return Err(invalid_data(error));
            }
        };
        let next = match state {
            ConnectionState::EncodeTlsData(mut data) => {
                let at = outgoing.len();
                outgoing.resize(at + HANDSHAKE_READ_BYTES, 0);
                let written = match data.encode(&mut outgoing[at..]) {
                    Ok(written) => written,
                    Err(EncodeError::InsufficientSize(needed)) => {
                        outgoing.resize(at + needed.required_size, 0);
                        data.encode(&mut outgoing[at..])
                            .map_err(|e| io::Error::other(e.to_string()))?
                    }
                    Err(e) => return Err(io::Error::other(e.to_string())),
                };
                outgoing.truncate(at + written);
                Next::Process
            }
            ConnectionState::TransmitTlsData(data) => {
                io.write_all(&outgoing).await?;
                io.flush().await?;
                outgoing.clear();
                data.done();
                Next::Process
            }
            ConnectionState::BlockedHandshake => Next::Read,
            ConnectionState::ReadTraffic(mut traffic) => {
                // The peer's first data, opened by rustls along with the last handshake record.
                while let Some(record) = traffic.next_record() {
                    let record = record.map_err(invalid_data)?;
                    discard += record.discard;
                    early_plaintext.extend_from_slice(record.payload);
                }
                Next::Process
            }
            ConnectionState::WriteTraffic(_) => Next::Writable,
            ConnectionState::PeerClosed | ConnectionState::Closed => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the peer closed the connection during the TLS handshake",
                ));
            }
            other => {
                return Err(invalid_data(Error::General(format!(
                    "unexpected state in the TLS handshake: {other:?}"
                ))));
            }
        };
        incoming.copy_within(discard..filled, 0);
        filled -= discard;
        match next {
            Next::Process => {}
            Next::Writable if !conn.is_handshaking() => {
                incoming.truncate(filled);
                return Ok(Driven {
                    leftover: incoming,
                    early_plaintext,
                });
            }
            Next::Writable | Next::Read => {
                if filled == incoming.len() {
                    if incoming.len() >= HANDSHAKE_INCOMING_BYTES_MAX {
                        return Err(invalid_data(Error::InvalidMessage(
                            rustls::InvalidMessage::HandshakePayloadTooLarge,
                        )));
                    }
                    incoming.resize((incoming.len() * 2).min(HANDSHAKE_INCOMING_BYTES_MAX), 0);
                }
                let n = io.read(&mut incoming[filled..]).await?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the peer closed the connection during the TLS handshake",
                    ));
                }
                filled += n;
            }
        }
    }
}

/// Sends what rustls queued after a failed handshake step (its alert), best effort. Once a
/// step failed, rustls hands out what it queued but no longer asks for it to be transmitted.
async fn send_alert<C, IO>(io: &mut IO, conn: &mut C, incoming: &mut [u8])
where
    C: Unbuffered,
    IO: AsyncWrite + Unpin,
{
    let mut outgoing = vec![0u8; HANDSHAKE_READ_BYTES];
    let mut filled = 0usize;
    // An alert is one record: a few rounds at most.
    for _ in 0..4 {
        match conn.process(incoming).state {
            Ok(ConnectionState::EncodeTlsData(mut data)) => match data.encode(&mut outgoing[filled..]) {
                Ok(written) => filled += written,
                Err(_) => break,
            },
            Ok(ConnectionState::TransmitTlsData(data)) => data.done(),
            _ => break,
        }
    }
    if filled > 0 && io.write_all(&outgoing[..filled]).await.is_ok() {
        let _ = io.flush().await;
    }
}

pub(super) fn invalid_data(error: Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error)
}
