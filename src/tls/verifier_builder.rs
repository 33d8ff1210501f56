//! What the client-certificate and server-certificate verifiers share: how they are built (the
//! federation root as the only anchor, optional CRLs, an optional trust store) and the checks
//! they run once webpki has verified a chain.

use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer};

use super::policy::{check_presented_chain_with_issuer, revocation_error, rustls_error};
use super::{TlsError, TrustStore};
use crate::pki::{CaIdentity, PeerIdentity};

/// Builds a verifier that checks `P` (a [`super::Policy`] for clients, a
/// [`super::ServerExpectation`] for servers); revocation is off until CRLs are given.
#[derive(Debug)]
pub struct VerifierBuilder<P> {
    pub(super) root: CertificateDer<'static>,
    pub(super) policy: P,
    pub(super) crls: Vec<CertificateRevocationListDer<'static>>,
    pub(super) allow_unknown_revocation_status: bool,
    pub(super) trust: Option<TrustStore>,
}

impl<P> VerifierBuilder<P> {
    pub(super) fn new(root_der: &CertificateDer<'_>, policy: P) -> VerifierBuilder<P> {
        VerifierBuilder {
            root: root_der.clone().into_owned(),
            policy,
            crls: Vec::new(),
            allow_unknown_revocation_status: false,
            trust: None,
        }
    }

    /// Checks every certificate of the chain against these CRLs (member CAs' and the root's).
    pub fn with_crls(mut self, crls: Vec<CertificateRevocationListDer<'static>>) -> Self {
        self.crls.extend(crls);
        self
    }

    /// Accepts certificates whose issuer has published no CRL among those given; without it,
    /// once any CRL is given, every issuer in the chain must have one.
    pub fn allow_unknown_revocation_status(mut self) -> Self {
        self.allow_unknown_revocation_status = true;
        self
    }

    /// Also checks every chain against `trust` (removed member CAs, revoked leaves) at each
    /// handshake, so changes to the store apply without rebuilding the verifier.
    pub fn with_trust_store(mut self, trust: TrustStore) -> Self {
        self.trust = Some(trust);
        self
    }

    /// The root as webpki's only anchor, and the federation domain it names.
    pub(super) fn anchor(&self) -> Result<(Arc<RootCertStore>, String), TlsError> {
        let federation_domain = CaIdentity::from_der(&self.root)?.federation_domain;
        let mut roots = RootCertStore::empty();
        roots.add(self.root.clone())?;
        Ok((Arc::new(roots), federation_domain))
    }
}

/// After webpki accepted a chain: the federation policy of the chain (extensions, issuing member
/// CA), then what `trust` has removed or revoked. Returns the peer's identity.
pub(super) fn check_federation_chain(
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    federation_domain: &str,
    trust: Option<&TrustStore>,
) -> Result<PeerIdentity, rustls::Error> {
    let (peer, issuing_ca) = check_presented_chain_with_issuer(end_entity, intermediates, federation_domain)
        .map_err(rustls_error)?;
    if let Some(trust) = trust {
        trust.check(&peer, issuing_ca).map_err(revocation_error)?;
    }
    Ok(peer)
}
