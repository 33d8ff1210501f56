//! Server side: verifies a client's certificate chain, then the endpoint's federation policy.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};

use super::policy::{Policy, check_presented_chain_with_issuer, revocation_error, rustls_error};
use super::{TlsError, TrustStore, provider};
use crate::pki::CaIdentity;

/// webpki's client verifier over the federation root only, followed by [`Policy`].
#[derive(Debug)]
pub struct FederationClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    federation_domain: String,
    policy: Policy,
    trust: Option<TrustStore>,
}

/// Builds a [`FederationClientVerifier`]; revocation is off until CRLs are given.
#[derive(Debug)]
pub struct FederationClientVerifierBuilder {
    root: CertificateDer<'static>,
    policy: Policy,
    crls: Vec<CertificateRevocationListDer<'static>>,
    allow_unknown_revocation_status: bool,
    trust: Option<TrustStore>,
}

impl FederationClientVerifier {
    pub fn builder(root_der: &CertificateDer<'_>, policy: Policy) -> FederationClientVerifierBuilder {
        FederationClientVerifierBuilder {
            root: root_der.clone().into_owned(),
            policy,
            crls: Vec::new(),
            allow_unknown_revocation_status: false,
            trust: None,
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }
}

impl FederationClientVerifierBuilder {
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

    pub fn build(self) -> Result<Arc<FederationClientVerifier>, TlsError> {
        let federation_domain = CaIdentity::from_der(&self.root)?.federation_domain;
        let mut roots = RootCertStore::empty();
        roots.add(self.root)?;
        let mut builder =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider()).with_crls(self.crls);
        if self.allow_unknown_revocation_status {
            builder = builder.allow_unknown_revocation_status();
        }
        Ok(Arc::new(FederationClientVerifier {
            inner: builder.build()?,
            federation_domain,
            policy: self.policy,
            trust: self.trust,
        }))
    }
}

impl ClientCertVerifier for FederationClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self.inner.verify_client_cert(end_entity, intermediates, now)?;
        let (peer, issuing_ca) =
            check_presented_chain_with_issuer(end_entity, intermediates, &self.federation_domain)
                .map_err(rustls_error)?;
        if let Some(trust) = &self.trust {
            trust.check(&peer, issuing_ca).map_err(revocation_error)?;
        }
        self.policy.check(&peer).map_err(rustls_error)?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
