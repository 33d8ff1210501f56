//! Client side: verifies the server's certificate chain and name, then what the client expects.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::policy::{ServerExpectation, check_presented_chain, rustls_error};
use super::{TlsError, provider};
use crate::pki::CaIdentity;

/// webpki's server verifier over the federation root only, followed by a [`ServerExpectation`].
#[derive(Debug)]
pub struct FederationServerVerifier {
    inner: Arc<WebPkiServerVerifier>,
    federation_domain: String,
    expect: ServerExpectation,
}

/// Builds a [`FederationServerVerifier`]; revocation is off until CRLs are given.
#[derive(Debug)]
pub struct FederationServerVerifierBuilder {
    root: CertificateDer<'static>,
    expect: ServerExpectation,
    crls: Vec<CertificateRevocationListDer<'static>>,
    allow_unknown_revocation_status: bool,
}

impl FederationServerVerifier {
    pub fn builder(
        root_der: &CertificateDer<'_>,
        expect: ServerExpectation,
    ) -> FederationServerVerifierBuilder {
        FederationServerVerifierBuilder {
            root: root_der.clone().into_owned(),
            expect,
            crls: Vec::new(),
            allow_unknown_revocation_status: false,
        }
    }

    pub fn expectation(&self) -> &ServerExpectation {
        &self.expect
    }
}

impl FederationServerVerifierBuilder {
    /// Checks every certificate of the chain against these CRLs.
    pub fn with_crls(mut self, crls: Vec<CertificateRevocationListDer<'static>>) -> Self {
        self.crls.extend(crls);
        self
    }

    /// Accepts certificates whose issuer has published no CRL among those given.
    pub fn allow_unknown_revocation_status(mut self) -> Self {
        self.allow_unknown_revocation_status = true;
        self
    }

    pub fn build(self) -> Result<Arc<FederationServerVerifier>, TlsError> {
        let federation_domain = CaIdentity::from_der(&self.root)?.federation_domain;
        let mut roots = RootCertStore::empty();
        roots.add(self.root)?;
        let mut builder =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider()).with_crls(self.crls);
        if self.allow_unknown_revocation_status {
            builder = builder.allow_unknown_revocation_status();
        }
        Ok(Arc::new(FederationServerVerifier {
            inner: builder.build()?,
            federation_domain,
            expect: self.expect,
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
        let peer = check_presented_chain(end_entity, intermediates, &self.federation_domain)
            .map_err(rustls_error)?;
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
