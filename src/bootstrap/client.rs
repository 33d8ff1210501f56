//! The joiner's side of the bootstrap endpoint: TLS that authenticates the server by the root
//! fingerprint in the invite code (the joiner has no certificate and no trust store yet), then
//! the one RPC.
//!
//! The server sends its chain with the root at the end. The client accepts it only if one of the
//! presented certificates has exactly the pinned SHA-256 fingerprint and the chain verifies to
//! that root with the federation's own server verifier (name `coordinators.<member>`, a
//! coordinator leaf of the inviting member). Nothing is trusted on first use.

use super::code::{InviteCodeBody, fingerprint};
use crate::tls::FederationServerVerifier;
use crate::transport::{any_coordinator_of, coordinators_dns_name};
use collective_proto::bootstrap::{
    RedeemInviteRequest, RedeemInviteResponse, bootstrap_client::BootstrapClient,
};
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpSocket;
use tokio_rustls::TlsConnector;
use tonic::transport::{Endpoint, Uri};

/// Longest a redemption may take, connection included.
pub const REDEEM_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest a connection to one bootstrap endpoint may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Redeems at the first endpoint of the code that answers. `source` binds the local address
/// (tests use it to appear as another host on loopback).
pub async fn redeem(
    code: &InviteCodeBody,
    csr_der: Vec<u8>,
    name: &str,
    source: Option<IpAddr>,
) -> Result<RedeemInviteResponse, RedeemError> {
    let mut last = None;
    for endpoint in &code.endpoints {
        match redeem_at(endpoint, code, csr_der.clone(), name, source).await {
            Err(RedeemError::Connect { endpoint, detail }) => {
                tracing::warn!(%endpoint, %detail, "bootstrap endpoint unreachable; trying the next");
                last = Some(RedeemError::Connect { endpoint, detail });
            }
            other => return other,
        }
    }
    Err(last.unwrap_or(RedeemError::Connect {
        endpoint: String::new(),
        detail: "the invite code names no endpoint".into(),
    }))
}

/// Why a redemption failed.
#[derive(Debug, thiserror::Error)]
pub enum RedeemError {
    #[error("cannot reach the bootstrap endpoint {endpoint}: {detail}")]
    Connect { endpoint: String, detail: String },
    #[error("{}: {}", crate::error::describe_code(.0.code()), .0.message())]
    Refused(tonic::Status),
}

impl RedeemError {
    pub fn code(&self) -> Option<tonic::Code> {
        match self {
            RedeemError::Refused(status) => Some(status.code()),
            RedeemError::Connect { .. } => None,
        }
    }
}

/// One attempt at one endpoint.
pub async fn redeem_at(
    endpoint: &str,
    code: &InviteCodeBody,
    csr_der: Vec<u8>,
    name: &str,
    source: Option<IpAddr>,
) -> Result<RedeemInviteResponse, RedeemError> {
    let connect_error = |detail: String| RedeemError::Connect {
        endpoint: endpoint.to_string(),
        detail,
    };
    let address: SocketAddr = tokio::net::lookup_host(endpoint)
        .await
        .map_err(|e| connect_error(e.to_string()))?
        .next()
        .ok_or_else(|| connect_error("the name resolves to no address".into()))?;
    let server_name = coordinators_dns_name(&code.member_domain);
    let config = client_config(code).map_err(|e| connect_error(e.to_string()))?;
    let connector = PinnedConnector {
        address,
        source,
        tls: TlsConnector::from(config),
        server_name: ServerName::try_from(server_name.clone()).map_err(|e| connect_error(e.to_string()))?,
    };
    let channel = Endpoint::from_shared(format!("http://{endpoint}"))
        .map_err(|e| connect_error(e.to_string()))?
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REDEEM_TIMEOUT)
        .connect_with_connector(connector)
        .await
        .map_err(|e| connect_error(error_chain(&e)))?;
    let request = RedeemInviteRequest {
        secret: code.secret.clone(),
        csr_der,
        name: name.to_string(),
    };
    BootstrapClient::new(channel)
        .redeem_invite(request)
        .await
        .map(tonic::Response::into_inner)
        .map_err(RedeemError::Refused)
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}

fn client_config(code: &InviteCodeBody) -> Result<Arc<ClientConfig>, rustls::Error> {
    let mut pinned = [0u8; 32];
    if code.root_fingerprint.len() == pinned.len() {
        pinned.copy_from_slice(&code.root_fingerprint);
    }
    let verifier = Arc::new(PinnedRootVerifier {
        pinned,
        member_domain: code.member_domain.clone(),
        provider: crate::tls::provider(),
    });
    let mut config = ClientConfig::builder_with_provider(crate::tls::provider())
        .with_protocol_versions(crate::tls::PROTOCOL_VERSIONS)?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![crate::tls::ALPN_H2.to_vec()];
    Ok(Arc::new(config))
}

/// Accepts a server whose chain ends in the root with the pinned fingerprint and verifies to it.
#[derive(Debug)]
struct PinnedRootVerifier {
    pinned: [u8; 32],
    member_domain: String,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for PinnedRootVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(root) = intermediates.iter().find(|c| fingerprint(c) == self.pinned) else {
            return Err(rustls::Error::General(
                "the server did not present the federation root named by the invite code \
                 (fingerprint mismatch): refusing to trust it"
                    .into(),
            ));
        };
        let rest: Vec<CertificateDer<'_>> = intermediates
            .iter()
            .filter(|c| fingerprint(c) != self.pinned)
            .cloned()
            .collect();
        let verifier = FederationServerVerifier::builder(root, any_coordinator_of(&self.member_domain))
            .build()
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        verifier.verify_server_cert(end_entity, &rest, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // Only TLS 1.3 is offered (PROTOCOL_VERSIONS), so this is never reached.
        Err(rustls::Error::General("tls 1.2 is not used".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Dials one address over TCP (from `source` if given), then TLS with the pinned verifier.
#[derive(Clone)]
struct PinnedConnector {
    address: SocketAddr,
    source: Option<IpAddr>,
    tls: TlsConnector,
    server_name: ServerName<'static>,
}

type ConnectFuture = Pin<
    Box<
        dyn Future<
                Output = Result<
                    TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>,
                    std::io::Error,
                >,
            > + Send,
    >,
>;

impl tonic::codegen::Service<Uri> for PinnedConnector {
    type Response = TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;
    type Error = std::io::Error;
    type Future = ConnectFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let socket = if this.address.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            if let Some(source) = this.source {
                socket.bind(SocketAddr::new(source, 0))?;
            }
            let tcp = socket.connect(this.address).await?;
            tcp.set_nodelay(true)?;
            let tls = this.tls.connect(this.server_name, tcp).await?;
            Ok(TokioIo::new(tls))
        })
    }
}
