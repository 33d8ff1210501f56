//! The verified identity of the caller of a gRPC handler.

use crate::pki::PeerIdentity;

/// The identity of the client whose certificate the handshake verified.
///
/// Works for connections from [`super::tls_incoming`]: tonic exposes the peer certificates of a
/// `tokio_rustls::server::TlsStream<TcpStream>` through `Request::peer_certs`.
pub fn peer_identity<T>(req: &tonic::Request<T>) -> Result<PeerIdentity, tonic::Status> {
    // Listeners behind the revocation guard: parsed once per chain, not once per request.
    if let Some(verified) = req.extensions().get::<super::guard::VerifiedPeer>() {
        return Ok(PeerIdentity::clone(&verified.0));
    }
    let certs = req
        .peer_certs()
        .ok_or_else(|| tonic::Status::unauthenticated("no tls client certificate"))?;
    let leaf = certs
        .first()
        .ok_or_else(|| tonic::Status::unauthenticated("no tls client certificate"))?;
    PeerIdentity::from_der(leaf)
        .map_err(|e| tonic::Status::unauthenticated(format!("client certificate: {e}")))
}
