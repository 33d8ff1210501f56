//! A stream of authenticated TLS connections for `tonic::transport::Server::serve_with_incoming`.
//!
//! Handshakes run concurrently, each in its own task under a timeout, so one slow or silent
//! peer cannot hold up the others; a refused handshake is logged and never ends the stream.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::Stream;

use super::ServerConfigHandle;
use super::bulk::BulkStream;
use super::policy::describe_handshake_error;

/// Longest a peer may take to complete its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most handshakes in progress at once; further connections wait in the kernel's backlog.
pub const HANDSHAKES_IN_FLIGHT_MAX: usize = 256;
/// Established connections waiting for the server to take them.
const ACCEPTED_QUEUE_LEN_MAX: usize = 64;
/// Pause after a failed `accept` (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// A refused handshake: who, and why (the rustls error, e.g. the policy violation).
#[derive(Debug, Clone)]
pub struct HandshakeRefused {
    pub peer: SocketAddr,
    pub reason: String,
}

/// Tuning and observation of [`tls_incoming_with`].
#[derive(Debug, Clone)]
pub struct IncomingOptions {
    pub handshake_timeout: Duration,
    pub handshakes_in_flight_max: usize,
    /// Receives every refused handshake, best effort: dropped when the channel is full.
    pub refusals: Option<mpsc::Sender<HandshakeRefused>>,
}

impl Default for IncomingOptions {
    fn default() -> Self {
        IncomingOptions {
            handshake_timeout: HANDSHAKE_TIMEOUT,
            handshakes_in_flight_max: HANDSHAKES_IN_FLIGHT_MAX,
            refusals: None,
        }
    }
}

/// Established, verified TLS connections; ends only when dropped. Dropping it stops accepting.
/// `S` is the connection's type: rustls's own stream, or a [`BulkStream`] for the chunk
/// service ([`tls_incoming_bulk`]).
#[derive(Debug)]
pub struct TlsIncoming<S = TlsStream<TcpStream>> {
    accepted: mpsc::Receiver<S>,
    accept_loop: JoinHandle<()>,
    local_addr: Option<SocketAddr>,
}

/// A TLS handshake on an accepted socket, with the configuration current at accept time.
type Handshake<S> =
    fn(Arc<ServerConfig>, TcpStream) -> Pin<Box<dyn Future<Output = std::io::Result<S>> + Send>>;

impl<S> TlsIncoming<S> {
    /// The address the listener is bound to.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }
}

impl<S> Stream for TlsIncoming<S> {
    type Item = Result<S, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.accepted.poll_recv(cx).map(|next| next.map(Ok))
    }
}

impl<S> Drop for TlsIncoming<S> {
    fn drop(&mut self) {
        self.accept_loop.abort();
    }
}

/// Accepts on `listener`, handshaking each connection with the configuration current in
/// `config` at accept time, with the default options.
pub fn tls_incoming(listener: TcpListener, config: ServerConfigHandle) -> TlsIncoming {
    tls_incoming_with(listener, config, IncomingOptions::default())
}

/// Like [`tls_incoming`] with explicit options.
pub fn tls_incoming_with(
    listener: TcpListener,
    config: ServerConfigHandle,
    options: IncomingOptions,
) -> TlsIncoming {
    incoming(listener, config, options, |config, tcp| {
        Box::pin(TlsAcceptor::from(config).accept(tcp))
    })
}

/// Like [`tls_incoming`], for the chunk service: each connection is a [`BulkStream`], whose
/// records are protected by `tls::bulk` once rustls's handshake is done.
pub fn tls_incoming_bulk(
    listener: TcpListener,
    config: ServerConfigHandle,
) -> TlsIncoming<BulkStream<TcpStream>> {
    incoming(listener, config, IncomingOptions::default(), |config, tcp| {
        Box::pin(super::bulk::accept(tcp, config))
    })
}

fn incoming<S: Send + 'static>(
    listener: TcpListener,
    config: ServerConfigHandle,
    options: IncomingOptions,
    handshake: Handshake<S>,
) -> TlsIncoming<S> {
    let (tx, accepted) = mpsc::channel(ACCEPTED_QUEUE_LEN_MAX);
    let local_addr = listener.local_addr().ok();
    let accept_loop = tokio::spawn(accept_loop(listener, config, options, handshake, tx));
    TlsIncoming {
        accepted,
        accept_loop,
        local_addr,
    }
}

async fn accept_loop<S: Send + 'static>(
    listener: TcpListener,
    config: ServerConfigHandle,
    options: IncomingOptions,
    handshake: Handshake<S>,
    tx: mpsc::Sender<S>,
) {
    let in_flight = Arc::new(Semaphore::new(options.handshakes_in_flight_max.max(1)));
    loop {
        let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
            return; // the semaphore is never closed; unreachable in practice
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    tracing::warn!(%error, "tcp accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                    continue;
                }
            },
            () = tx.closed() => return,
        };
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%peer, %error, "set_nodelay failed");
        }
        let accepting = handshake(config.current(), tcp);
        let tx = tx.clone();
        let refusals = options.refusals.clone();
        let timeout = options.handshake_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            let reason = match tokio::time::timeout(timeout, accepting).await {
                Ok(Ok(tls)) => {
                    // The receiver is gone only when the server stopped; drop the connection.
                    let _ = tx.send(tls).await;
                    return;
                }
                Ok(Err(error)) => describe_handshake_error(&error),
                Err(_) => format!("handshake not completed within {} ms", timeout.as_millis()),
            };
            tracing::warn!(%peer, %reason, "tls handshake refused");
            if let Some(refusals) = refusals {
                let _ = refusals.try_send(HandshakeRefused { peer, reason });
            }
        });
    }
}
