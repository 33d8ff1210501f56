//! Server side: verifies a client's certificate chain, then the endpoint's federation policy.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

use super::policy::{Policy, rustls_error};
use super::verifier_builder::{VerifierBuilder, check_federation_chain};
use super::{TlsError, TrustStore, provider};

/// webpki's client verifier over the federation root only, followed by [`Policy`].
#[derive(Debug)]
pub struct FederationClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    federation_domain: String,
    policy: Policy,
    trust: Option<TrustStore>,
}

/// Builds a [`FederationClientVerifier`]; revocation is off until CRLs are given.
pub type FederationClientVerifierBuilder = VerifierBuilder<Policy>;

impl FederationClientVerifier {
    pub fn builder(root_der: &CertificateDer<'_>, policy: Policy) -> FederationClientVerifierBuilder {
        VerifierBuilder::new(root_der, policy)
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }
}

impl VerifierBuilder<Policy> {
    pub fn build(self) -> Result<Arc<FederationClientVerifier>, TlsError> {
        let (roots, federation_domain) = self.anchor()?;
        let mut builder = WebPkiClientVerifier::builder_with_provider(roots, provider()).with_crls(self.crls);
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
        let peer = check_federation_chain(
            end_entity,
            intermediates,
            &self.federation_domain,
            self.trust.as_ref(),
        )?;
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
