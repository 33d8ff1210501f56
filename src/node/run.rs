//! Starting a node's chunk service on a listener; the CLI daemon (`collective node run`) and
//! `collective up` will wrap this.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rustls::pki_types::CertificateDer;
use tokio::net::TcpListener;

use super::chunk_store::{ChunkStore, StoreConfig};
use super::corruption::CorruptionQueue;
use super::replicate::NodeIdentity;
use super::routes::ChunkRoutes;
use super::scrub::{self, ScrubConfig};
use super::service::ChunkService;
use crate::pki::{CertBundle, Component};
use crate::ticket::{CLOCK_SKEW_DEFAULT, TicketVerifier};
use crate::tls::{self, IdentityHandle, Policy, ServerConfigHandle, TrustStore};

/// What a node needs besides its certificate and listener.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub store: StoreConfig,
    /// Tolerated clock difference with the member's coordinators, for ticket times.
    pub clock_skew: Duration,
    /// The background scrubber's rate and pause.
    pub scrub: ScrubConfig,
    /// How long a source may stay silent while this node copies a chunk from it (`Replicate`)
    /// before the next source is tried; see [`crate::datapath::REPLICA_STALL_DEFAULT`].
    pub replica_stall: Duration,
}

impl NodeConfig {
    pub fn new(store: StoreConfig) -> NodeConfig {
        NodeConfig {
            store,
            clock_skew: CLOCK_SKEW_DEFAULT,
            scrub: ScrubConfig::default(),
            replica_stall: crate::datapath::REPLICA_STALL_DEFAULT,
        }
    }
}

/// A node serving chunks.
pub struct RunningNode {
    pub local_addr: SocketAddr,
    /// The node's federated address, from its certificate.
    pub address: String,
    pub store: Arc<ChunkStore>,
    /// Corrupt copies found (by reads and the scrubber) that the member has not heard of yet;
    /// the daemon drains it (`corruption::submit_loop`).
    pub corruption: Arc<CorruptionQueue>,
    server: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
    scrubber: tokio::task::JoinHandle<()>,
}

impl RunningNode {
    /// Waits for the server to stop, after the shutdown future given to [`start`] resolved.
    pub async fn finish(self) -> anyhow::Result<()> {
        let served = self
            .server
            .await
            .context("the node's server task panicked")
            .and_then(|served| served.context("the node's gRPC server failed"));
        // Stopped by the same shutdown; abort covers a scrubber stuck in a long read.
        self.scrubber.abort();
        served
    }
}

/// Opens the store and serves the chunk service on `listener` with `identity` (a node
/// certificate) until `shutdown` resolves.
///
/// Any certificate of the federation may connect (cross-member backup nodes and clients
/// included); what it may do is decided by its tickets, which name it as holder.
pub async fn start(
    config: NodeConfig,
    identity: &CertBundle,
    root_der: &CertificateDer<'static>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<RunningNode> {
    let handle = IdentityHandle::new(identity.clone())?;
    let trust = TrustStore::new(root_der)?;
    start_with(config, &handle, &trust, listener, shutdown).await
}

/// Like [`start`], presenting whatever `handle` holds at each handshake (renewals) and refusing
/// what `trust` refuses (revocations) at each handshake and each request, both changeable
/// while the node serves.
pub async fn start_with(
    config: NodeConfig,
    handle: &IdentityHandle,
    trust: &TrustStore,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<RunningNode> {
    let identity = &handle.bundle();
    let root_der = trust.root_der();
    let me = identity.identity().context("reading the node certificate")?;
    anyhow::ensure!(
        me.component == Component::Node,
        "{} holds a {} certificate; a node needs a node certificate",
        me.address,
        me.component
    );
    let address = me.address.to_string();
    let tickets = TicketVerifier::with_trust_store(trust, &address)?.with_clock_skew(config.clock_skew);
    let store_config = config.store.clone();
    let store = tokio::task::spawn_blocking(move || ChunkStore::open(&store_config))
        .await
        .context("the store task panicked")?
        .context("opening the chunk store")?;
    let store = Arc::new(store);
    let corruption = Arc::new(CorruptionQueue::new());
    let node_identity = NodeIdentity {
        bundle: identity.clone(),
        root_der: root_der.clone().into_owned(),
        stall: config.replica_stall,
    };
    let (stop_sender, stop) = tokio::sync::watch::channel(false);
    let shutdown = async move {
        shutdown.await;
        let _ = stop_sender.send(true);
    };
    // Revocations are enforced by the request guard below rather than in the handshake: under
    // TLS 1.3 a client refused in the handshake learns no reason, and clients retry transport
    // failures; the guard refuses every request of a revoked certificate with the reason, at once.
    let verifier = tls::FederationClientVerifier::builder(root_der, Policy::any_component()).build()?;
    let server_config = tls::server_config_with_identity(handle, verifier)?;
    let local_addr = listener.local_addr()?;
    // Every chunk byte crosses these connections: `tls::bulk` protects their records.
    let incoming = tls::tls_incoming_bulk(listener, ServerConfigHandle::new(server_config));
    let service = ChunkService::new(
        Arc::clone(&store),
        tickets,
        node_identity,
        Arc::clone(&corruption),
    );
    let chunks = ChunkRoutes::new(service);
    let scrubber = tokio::spawn(scrub::scrub_loop(
        Arc::clone(&store),
        config.scrub,
        Arc::clone(&corruption),
        stop,
    ));
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .initial_stream_window_size(crate::tls::H2_STREAM_WINDOW_BYTES)
            .initial_connection_window_size(crate::tls::H2_CONNECTION_WINDOW_BYTES)
            .max_frame_size(crate::tls::H2_FRAME_BYTES)
            // Every request, on new connections and on those opened before a revocation.
            .layer(tonic::service::InterceptorLayer::new(tls::RevocationGuard::new(
                trust.clone(),
            )))
            .add_service(chunks)
            .serve_with_incoming_shutdown(incoming, shutdown),
    );
    tracing::info!(%address, listen = %local_addr, "node serving chunks");
    Ok(RunningNode {
        local_addr,
        address,
        store,
        corruption,
        server,
        scrubber,
    })
}
