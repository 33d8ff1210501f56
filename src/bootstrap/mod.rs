//! Onboarding by invite: the invite code, the bootstrap endpoint that redeems it (a second
//! listener of each coordinator, server-authenticated TLS, one RPC), the joiner's client, and
//! the `Access` service that tells a caller who it is and what it may do.
//!
//! Why a separate listener: the coordinator's main listener demands a client certificate in the
//! handshake, which a joiner does not have yet. The bootstrap listener asks for none, serves
//! only `Bootstrap.RedeemInvite`, limits attempts per source address, and is authenticated to
//! the joiner by the federation root fingerprint inside the code.

pub mod access;
pub mod client;
pub mod code;
pub mod limiter;
pub mod server;
pub mod sign;

pub use code::{CODE_PREFIX, CodeError, InviteCodeBody};

use crate::coordinator::Coordinator;
use crate::pki::CertBundle;
use crate::tls::ServerConfigHandle;
use anyhow::Context;
use collective_proto::bootstrap::bootstrap_server::BootstrapServer;
use rustls::ServerConfig;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

/// A running bootstrap listener.
pub struct BootstrapListener {
    pub local_addr: SocketAddr,
    pub task: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
}

/// Binds `listen` and serves invite redemption until the task is aborted.
pub async fn start(
    coordinator: Arc<Coordinator>,
    listen: SocketAddr,
    pki: &Path,
    identity: &CertBundle,
    root_pem: &str,
) -> anyhow::Result<BootstrapListener> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding the bootstrap listener {listen}"))?;
    let local_addr = listener.local_addr()?;
    let config = server_config(identity, root_pem)?;
    let incoming = crate::tls::tls_incoming(listener, ServerConfigHandle::new(config));
    let limiter = limiter::LimiterConfig::from_env()?;
    let service = server::BootstrapService::new(coordinator, limiter, server::Signers::load(pki, root_pem));
    let bootstrap = BootstrapServer::new(service)
        .max_decoding_message_size(server::BOOTSTRAP_MESSAGE_BYTES_MAX)
        .max_encoding_message_size(collective_proto::MESSAGE_BYTES_MAX);
    let task = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(bootstrap)
            .serve_with_incoming(incoming),
    );
    tracing::info!(%local_addr, "bootstrap endpoint serving invite redemption (server-authenticated tls)");
    Ok(BootstrapListener { local_addr, task })
}

/// TLS 1.3 without client certificates, presenting the coordinator's leaf, its member CA and
/// the federation root (so a joiner can match the root against the code's fingerprint).
fn server_config(identity: &CertBundle, root_pem: &str) -> anyhow::Result<Arc<ServerConfig>> {
    let mut chain = identity.presented_chain_der()?;
    chain.push(crate::transport::root_der(root_pem)?);
    let mut config = ServerConfig::builder_with_provider(crate::tls::provider())
        .with_protocol_versions(crate::tls::PROTOCOL_VERSIONS)?
        .with_no_client_auth()
        .with_single_cert(chain, identity.private_key_der()?)?;
    config.alpn_protocols = vec![crate::tls::ALPN_H2.to_vec()];
    Ok(Arc::new(config))
}
