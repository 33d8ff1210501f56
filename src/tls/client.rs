//! Client side: a tonic `Channel` over our own TCP + rustls connector.
//!
//! tonic's `ClientTlsConfig` cannot take a full rustls `ClientConfig`, so the channel dials
//! through `Endpoint::connect_with_connector`. The endpoint is given an `http://` URI because,
//! with tonic's TLS feature on, an `https://` URI without tonic's own TLS config is refused; the
//! connection is nevertheless TLS, done by the connector.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tonic::transport::{Channel, Endpoint, Uri};

use super::bulk::BulkStream;
use super::policy::describe_handshake_error;
use super::server_verifier::FederationServerVerifier;
use super::verdict::{Rewound, await_verdict};
use super::{ALPN_H2, IdentityHandle, PROTOCOL_VERSIONS, ServerExpectation, TlsError, TrustStore, provider};
use crate::pki::CertBundle;

/// Longest a TCP connect plus TLS handshake may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A client configuration presenting `identity` and verifying the server against `root_der`
/// and `expect`. If `identity`'s holder registered a live identity in this process
/// ([`IdentityHandle::register_live`]), the configuration presents that one's current leaf.
pub fn client_config(
    identity: &CertBundle,
    root_der: &CertificateDer<'_>,
    expect: ServerExpectation,
) -> Result<Arc<ClientConfig>, TlsError> {
    // A bundle whose holder renews itself in this process follows the renewals.
    if let Some(live) = IdentityHandle::live_for(identity) {
        return client_config_with_identity(&live, root_der, expect, None);
    }
    let verifier = FederationServerVerifier::builder(root_der, expect).build()?;
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(PROTOCOL_VERSIONS)?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(identity.presented_chain_der()?, identity.private_key_der()?)?;
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    // Bulk connections (`tls::bulk`) take the traffic secrets over once the handshake is done.
    config.enable_secret_extraction = true;
    Ok(Arc::new(config))
}

/// A client configuration presenting whatever `identity` holds at each handshake (so redials
/// of long-lived channels present a renewed leaf), verifying the server against `root_der`,
/// `expect` and, if given, the trust store.
pub fn client_config_with_identity(
    identity: &IdentityHandle,
    root_der: &CertificateDer<'_>,
    expect: ServerExpectation,
    trust: Option<&TrustStore>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let mut builder = FederationServerVerifier::builder(root_der, expect);
    if let Some(trust) = trust {
        builder = builder.with_trust_store(trust.clone());
    }
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(PROTOCOL_VERSIONS)?
        .dangerous()
        .with_custom_certificate_verifier(builder.build()?)
        .with_client_cert_resolver(Arc::new(identity.clone()));
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    // Bulk connections (`tls::bulk`) take the traffic secrets over once the handshake is done.
    config.enable_secret_extraction = true;
    Ok(Arc::new(config))
}

/// The server name a client sends for `expect`.
pub fn expected_server_name(expect: &ServerExpectation) -> Result<ServerName<'static>, TlsError> {
    server_name(&expect.server_name)
}

/// Connects to `endpoint` (`127.0.0.1:7001`) now, failing if the server cannot be reached.
pub async fn connect(
    endpoint: &str,
    identity: &CertBundle,
    root_der: &CertificateDer<'_>,
    expect: ServerExpectation,
) -> Result<Channel, TlsError> {
    let server_name = server_name(&expect.server_name)?;
    let config = client_config(identity, root_der, expect)?;
    connect_with_config(endpoint, config, server_name).await
}

/// Like [`connect`], but dials on first use and redials after failures: for long-lived peers.
/// Each dial (TCP connect and TLS handshake) is given up after `connect_timeout`.
pub fn connect_lazy(
    endpoint: &str,
    identity: &CertBundle,
    root_der: &CertificateDer<'_>,
    expect: ServerExpectation,
    connect_timeout: Duration,
) -> Result<Channel, TlsError> {
    let server_name = server_name(&expect.server_name)?;
    let config = client_config(identity, root_der, expect)?;
    let (uri_endpoint, connector) = parts(endpoint, config, server_name)?;
    Ok(uri_endpoint
        .connect_timeout(connect_timeout)
        .connect_with_connector_lazy(connector))
}

/// Like [`connect_lazy`], for the chunk service of a storage node: the connection is a
/// [`BulkStream`], whose records `tls::bulk` protects once rustls's handshake is done.
pub fn connect_lazy_bulk(
    endpoint: &str,
    identity: &CertBundle,
    root_der: &CertificateDer<'_>,
    expect: ServerExpectation,
    connect_timeout: Duration,
) -> Result<Channel, TlsError> {
    let (uri_endpoint, connector) = bulk_parts(endpoint, identity, root_der, expect)?;
    Ok(uri_endpoint
        .connect_timeout(connect_timeout)
        .connect_with_connector_lazy(connector))
}

/// Like [`connect`], for the chunk service of a storage node (see [`connect_lazy_bulk`]).
pub async fn connect_bulk(
    endpoint: &str,
    identity: &CertBundle,
    root_der: &CertificateDer<'_>,
    expect: ServerExpectation,
) -> Result<Channel, TlsError> {
    let (uri_endpoint, connector) = bulk_parts(endpoint, identity, root_der, expect)?;
    Ok(uri_endpoint.connect_with_connector(connector).await?)
}

fn bulk_parts(
    endpoint: &str,
    identity: &CertBundle,
    root_der: &CertificateDer<'_>,
    expect: ServerExpectation,
) -> Result<(Endpoint, FederationConnector<BulkStream<TcpStream>>), TlsError> {
    let server_name = server_name(&expect.server_name)?;
    let config = client_config(identity, root_der, expect)?;
    let connector = FederationConnector {
        address: Arc::from(endpoint),
        config,
        server_name,
        handshake: |config, server_name, tcp| Box::pin(super::bulk::connect(tcp, config, server_name)),
    };
    Ok((uri_endpoint(endpoint)?, connector))
}

/// [`connect`] with a caller-built rustls configuration (which must offer ALPN `h2`).
pub async fn connect_with_config(
    endpoint: &str,
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
) -> Result<Channel, TlsError> {
    let (uri_endpoint, connector) = parts(endpoint, config, server_name)?;
    Ok(uri_endpoint.connect_with_connector(connector).await?)
}

/// [`connect_lazy`] with a caller-built rustls configuration.
pub fn connect_lazy_with_config(
    endpoint: &str,
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
) -> Result<Channel, TlsError> {
    let (uri_endpoint, connector) = parts(endpoint, config, server_name)?;
    Ok(uri_endpoint.connect_with_connector_lazy(connector))
}

fn server_name(name: &str) -> Result<ServerName<'static>, TlsError> {
    ServerName::try_from(name.to_owned()).map_err(|_| TlsError::InvalidServerName(name.to_owned()))
}

fn parts(
    endpoint: &str,
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
) -> Result<(Endpoint, FederationConnector<TlsStream<TcpStream>>), TlsError> {
    let connector = FederationConnector {
        address: Arc::from(endpoint),
        config,
        server_name,
        handshake: |config, server_name, tcp| Box::pin(TlsConnector::from(config).connect(server_name, tcp)),
    };
    Ok((uri_endpoint(endpoint)?, connector))
}

/// The channel's endpoint for `endpoint` (`host:port`): HTTP/2 windows, frame size, keepalive.
fn uri_endpoint(endpoint: &str) -> Result<Endpoint, TlsError> {
    let invalid = |reason: String| TlsError::InvalidEndpoint {
        endpoint: endpoint.to_owned(),
        reason,
    };
    if endpoint.contains("://") || endpoint.contains('/') {
        return Err(invalid("expected host:port without scheme or path".into()));
    }
    let uri_endpoint = Endpoint::from_shared(format!("http://{endpoint}"))
        .map_err(|e| invalid(e.to_string()))?
        .connect_timeout(CONNECT_TIMEOUT)
        .initial_stream_window_size(super::H2_STREAM_WINDOW_BYTES)
        .initial_connection_window_size(super::H2_CONNECTION_WINDOW_BYTES)
        .max_frame_size(super::H2_FRAME_BYTES)
        .http2_keep_alive_interval(super::H2_KEEPALIVE_INTERVAL)
        .keep_alive_timeout(super::H2_KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true);
    Ok(uri_endpoint)
}

/// A TLS handshake as a client over a connected socket: rustls's own stream, or a
/// [`BulkStream`] for the chunk service.
type Handshake<S> = fn(
    Arc<ClientConfig>,
    ServerName<'static>,
    TcpStream,
) -> Pin<Box<dyn Future<Output = std::io::Result<S>> + Send>>;

/// A tower service dialing one fixed address over TCP, then TLS with our client config.
struct FederationConnector<S> {
    address: Arc<str>,
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
    handshake: Handshake<S>,
}

impl<S> Clone for FederationConnector<S> {
    fn clone(&self) -> Self {
        FederationConnector {
            address: Arc::clone(&self.address),
            config: Arc::clone(&self.config),
            server_name: self.server_name.clone(),
            handshake: self.handshake,
        }
    }
}

/// TCP to `address`, then `handshake` over it, then the server's verdict on our certificate.
async fn dial<S, F>(
    address: &str,
    handshake: impl FnOnce(TcpStream) -> F,
) -> std::io::Result<TokioIo<Rewound<S>>>
where
    F: Future<Output = std::io::Result<S>>,
    S: tokio::io::AsyncRead + Unpin,
{
    let tcp = TcpStream::connect(address).await?;
    tcp.set_nodelay(true)?;
    let tls = handshake(tcp).await.map_err(|e| {
        // Keep the kind, replace rustls' Debug-formatted reason with a readable one.
        std::io::Error::new(e.kind(), describe_handshake_error(&e))
    })?;
    // The server's verdict on our certificate comes with its first bytes.
    let tls = await_verdict(tls).await.map_err(|e| {
        let reason = describe_handshake_error(&e);
        std::io::Error::new(e.kind(), format!("the server refused this connection: {reason}"))
    })?;
    Ok(TokioIo::new(tls))
}

type ConnectFuture<S> = Pin<Box<dyn Future<Output = Result<TokioIo<Rewound<S>>, std::io::Error>> + Send>>;

impl<S> tonic::codegen::Service<Uri> for FederationConnector<S>
where
    S: tokio::io::AsyncRead + Send + Unpin + 'static,
{
    type Response = TokioIo<Rewound<S>>;
    type Error = std::io::Error;
    type Future = ConnectFuture<S>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            dial(&this.address, |tcp| {
                (this.handshake)(this.config, this.server_name, tcp)
            })
            .await
        })
    }
}
