//! Client side: verifies the server's certificate chain and name, then what the client expects.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::policy::{ServerExpectation, check_presented_chain_with_issuer, revocation_error, rustls_error};
use super::{TlsError, TrustStore, provider};
use crate::pki::CaIdentity;

/// webpki's server verifier over the federation root only, followed by a [`ServerExpectation`].
#[derive(Debug)]
pub struct FederationServerVerifier {
    inner: Arc<WebPkiServerVerifier>,
    federation_domain: String,
    expect: ServerExpectation,
    trust: Option<TrustStore>,
}

/// Builds a [`FederationServerVerifier`]; revocation is off until CRLs are given.
#[derive(Debug)]
pub struct FederationServerVerifierBuilder {
    root: CertificateDer<'static>,
    expect: ServerExpectation,
    crls: Vec<CertificateRevocationListDer<'static>>,
    allow_unknown_revocation_status: bool,
    trust: Option<TrustStore>,
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
            trust: None,
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

    /// Also checks every chain against `trust` (removed member CAs, revoked leaves) at each
    /// handshake, so changes to the store apply without rebuilding the verifier.
    pub fn with_trust_store(mut self, trust: TrustStore) -> Self {
        self.trust = Some(trust);
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
        let (peer, issuing_ca) =
            check_presented_chain_with_issuer(end_entity, intermediates, &self.federation_domain)
                .map_err(rustls_error)?;
        if let Some(trust) = &self.trust {
            trust.check(&peer, issuing_ca).map_err(revocation_error)?;
        }
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
