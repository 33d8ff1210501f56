//! Client side: verifies the server's certificate chain and name, then what the client expects.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use super::policy::{ServerExpectation, rustls_error};
use super::verifier_builder::{VerifierBuilder, check_federation_chain};
use super::{TlsError, TrustStore, provider};

/// webpki's server verifier over the federation root only, followed by a [`ServerExpectation`].
#[derive(Debug)]
pub struct FederationServerVerifier {
    inner: Arc<WebPkiServerVerifier>,
    federation_domain: String,
    expect: ServerExpectation,
    trust: Option<TrustStore>,
}

/// Builds a [`FederationServerVerifier`]; revocation is off until CRLs are given.
pub type FederationServerVerifierBuilder = VerifierBuilder<ServerExpectation>;

impl FederationServerVerifier {
    pub fn builder(
        root_der: &CertificateDer<'_>,
        expect: ServerExpectation,
    ) -> FederationServerVerifierBuilder {
        VerifierBuilder::new(root_der, expect)
    }

    pub fn expectation(&self) -> &ServerExpectation {
        &self.expect
    }
}

impl VerifierBuilder<ServerExpectation> {
    pub fn build(self) -> Result<Arc<FederationServerVerifier>, TlsError> {
        let (roots, federation_domain) = self.anchor()?;
        let mut builder = WebPkiServerVerifier::builder_with_provider(roots, provider()).with_crls(self.crls);
        if self.allow_unknown_revocation_status {
            builder = builder.allow_unknown_revocation_status();
        }
        Ok(Arc::new(FederationServerVerifier {
            inner: builder.build()?,
            federation_domain,
            expect: self.policy,
            trust: self.trust,
        }))
    }
}

impl ServerCertVerifier for FederationServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified =
            self.inner
                .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)?;
        let peer = check_federation_chain(
            end_entity,
            intermediates,
            &self.federation_domain,
            self.trust.as_ref(),
        )?;
        self.expect.check(&peer).map_err(rustls_error)?;
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
