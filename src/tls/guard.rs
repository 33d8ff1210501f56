//! A per-request check of the caller's certificate against the trust store, for connections
//! that were established before a revocation or a member CA removal.
//!
//! The handshake check refuses new connections; HTTP/2 connections already open would otherwise
//! keep working until they close. Installed as a tonic interceptor layer on every listener, this
//! refuses each later request on such a connection with `UNAUTHENTICATED` and the reason.

use rustls::pki_types::CertificateDer;

use super::TrustStore;
use super::policy::check_presented_chain_with_issuer;

/// The interceptor: `Server::builder().layer(tonic::service::InterceptorLayer::new(guard))`.
#[derive(Debug, Clone)]
pub struct RevocationGuard {
    trust: TrustStore,
}

impl RevocationGuard {
    pub fn new(trust: TrustStore) -> RevocationGuard {
        RevocationGuard { trust }
    }
}

impl tonic::service::Interceptor for RevocationGuard {
    fn call(&mut self, request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        // A request without certificates did not come through our TLS acceptor (the services
        // refuse it themselves); the handshake already checked every chain it admitted.
        let Some(certs) = request.peer_certs() else {
            return Ok(request);
        };
        let Some((leaf, intermediates)) = certs.split_first() else {
            return Ok(request);
        };
        let intermediates: Vec<CertificateDer<'_>> = intermediates.to_vec();
        let (peer, issuing_ca) =
            check_presented_chain_with_issuer(leaf, &intermediates, self.trust.federation_domain())
                .map_err(|violation| tonic::Status::unauthenticated(violation.to_string()))?;
        self.trust
            .check(&peer, issuing_ca)
            .map_err(|violation| tonic::Status::unauthenticated(violation.to_string()))?;
        Ok(request)
    }
}
