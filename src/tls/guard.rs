//! A per-request check of the caller's certificate against the trust store, for connections
//! that were established before a revocation or a member CA removal.
//!
//! The handshake check refuses new connections; HTTP/2 connections already open would otherwise
//! keep working until they close. Installed as a tonic interceptor layer on every listener, this
//! refuses each later request on such a connection with `UNAUTHENTICATED` and the reason.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rustls::pki_types::CertificateDer;

use super::TrustStore;
use super::policy::check_presented_chain_with_issuer;
use crate::pki::PeerIdentity;

/// Chains whose parse the guard keeps; past this many distinct chains the cache starts over.
const CHAINS_CACHED_MAX: usize = 4_096;

/// The caller's identity, parsed and checked by the guard, handed to the services in the
/// request's extensions so they need not parse the certificate again ([`super::peer_identity`]).
#[derive(Debug, Clone)]
pub struct VerifiedPeer(pub Arc<PeerIdentity>);

/// The interceptor: `Server::builder().layer(tonic::service::InterceptorLayer::new(guard))`.
#[derive(Debug, Clone)]
pub struct RevocationGuard {
    trust: TrustStore,
    /// Parsed chains by their DER bytes. A chain parses the same way every time; only the trust
    /// store's verdict on it changes, and that is asked on every request.
    parsed: Arc<Mutex<HashMap<Vec<u8>, Parsed>>>,
}

#[derive(Debug, Clone)]
struct Parsed {
    peer: Arc<PeerIdentity>,
    issuing_ca: Vec<u8>,
}

impl RevocationGuard {
    pub fn new(trust: TrustStore) -> RevocationGuard {
        RevocationGuard {
            trust,
            parsed: Arc::default(),
        }
    }

    /// The parsed identity and issuing CA of `certs`, from the cache or parsed now.
    fn parse(&self, certs: &[CertificateDer<'static>]) -> Result<Parsed, tonic::Status> {
        let key: Vec<u8> = certs
            .iter()
            .flat_map(|cert| {
                (cert.len() as u32)
                    .to_be_bytes()
                    .into_iter()
                    .chain(cert.iter().copied())
            })
            .collect();
        let mut cache = self
            .parsed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(parsed) = cache.get(&key) {
            return Ok(parsed.clone());
        }
        let Some((leaf, intermediates)) = certs.split_first() else {
            return Err(tonic::Status::unauthenticated("no tls client certificate"));
        };
        let (peer, issuing_ca) =
            check_presented_chain_with_issuer(leaf, intermediates, self.trust.federation_domain())
                .map_err(|violation| tonic::Status::unauthenticated(violation.to_string()))?;
        let parsed = Parsed {
            peer: Arc::new(peer),
            issuing_ca: issuing_ca.to_vec(),
        };
        if cache.len() >= CHAINS_CACHED_MAX {
            cache.clear();
        }
        cache.insert(key, parsed.clone());
        Ok(parsed)
    }
}

impl tonic::service::Interceptor for RevocationGuard {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        // A request without certificates did not come through our TLS acceptor (the services
        // refuse it themselves); the handshake already checked every chain it admitted.
        let Some(certs) = super::peer_certificates(&request) else {
            return Ok(request);
        };
        if certs.is_empty() {
            return Ok(request);
        }
        let parsed = self.parse(&certs)?;
        self.trust
            .check(&parsed.peer, &parsed.issuing_ca)
            .map_err(|violation| tonic::Status::unauthenticated(violation.to_string()))?;
        request.extensions_mut().insert(VerifiedPeer(parsed.peer));
        Ok(request)
    }
}
