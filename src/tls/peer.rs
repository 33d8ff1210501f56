//! The verified identity of the caller of a gRPC handler.

use std::sync::Arc;

use rustls::pki_types::CertificateDer;

use crate::pki::PeerIdentity;

/// The certificate chain the caller presented in the handshake, over rustls's own stream or a
/// bulk connection (`tls::bulk`); `None` for a request that came in without TLS.
pub fn peer_certificates<T>(req: &tonic::Request<T>) -> Option<Arc<Vec<CertificateDer<'static>>>> {
    req.peer_certs().or_else(|| {
        req.extensions()
            .get::<super::bulk::BulkConnectInfo>()
            .and_then(|info| info.peer_certificates.clone())
    })
}

/// The identity of the client whose certificate the handshake verified.
///
/// Works for connections from [`super::tls_incoming`] (tonic exposes the peer certificates of a
/// `tokio_rustls::server::TlsStream<TcpStream>` through `Request::peer_certs`) and from
/// [`super::tls_incoming_bulk`] (their [`super::bulk::BulkConnectInfo`]).
pub fn peer_identity<T>(req: &tonic::Request<T>) -> Result<PeerIdentity, tonic::Status> {
    // Listeners behind the revocation guard: parsed once per chain, not once per request.
    if let Some(verified) = req.extensions().get::<super::guard::VerifiedPeer>() {
        return Ok(PeerIdentity::clone(&verified.0));
    }
    let certs =
        peer_certificates(req).ok_or_else(|| tonic::Status::unauthenticated("no tls client certificate"))?;
    let leaf = certs
        .first()
        .ok_or_else(|| tonic::Status::unauthenticated("no tls client certificate"))?;
    PeerIdentity::from_der(leaf)
        .map_err(|e| tonic::Status::unauthenticated(format!("client certificate: {e}")))
}
