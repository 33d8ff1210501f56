//! Signing for a joiner: a certificate for the public key of its CSR, which proves it holds the
//! private key (the key never leaves the joiner's machine).
//!
//! The certificate profiles are `pki`'s own (`MemberCa::issue_leaf_for_key`,
//! `FederationCa::sign_member_for_key`); here the CSR is bounded and checked first, and each
//! client leaf is read back and checked against the federation's own verifier before it is
//! handed out, so a bad certificate fails here, not in the joiner's first handshake.

use crate::pki::{CertBundle, Component, FederatedAddress, FederationCa, MemberCa, PeerIdentity, PkiError};
use rcgen::{CertificateParams, CertificateSigningRequestParams, KeyPair, PublicKey};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateSigningRequestDer};
use std::time::{Duration, SystemTime};

/// Largest CSR accepted, in bytes (an Ed25519 CSR is about 200).
pub const CSR_BYTES_MAX: usize = 4096;

/// Why a joiner's request could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("the certificate request is {0} bytes, more than {CSR_BYTES_MAX}")]
    CsrTooLarge(usize),
    #[error("the certificate request is malformed or its signature does not verify: {0}")]
    CsrMalformed(String),
    #[error("the certificate request's key is not Ed25519")]
    CsrNotEd25519,
    #[error("the signing CA could not be loaded: {0}")]
    Ca(String),
    #[error("the signing CA has expired or ends too soon to sign")]
    CaExpired,
    #[error("signing failed: {0}")]
    Sign(String),
}

impl From<PkiError> for SignError {
    fn from(error: PkiError) -> SignError {
        match error {
            PkiError::IssuerExpired => SignError::CaExpired,
            other => SignError::Sign(other.to_string()),
        }
    }
}

/// A signed certificate with what the log records about it.
#[derive(Debug, Clone)]
pub struct Signed {
    pub cert_pem: String,
    pub cert_der: Vec<u8>,
    pub serial: Vec<u8>,
    pub not_after_unix_ms: i64,
}

impl Signed {
    fn from_pem(cert_pem: String) -> Result<Signed, SignError> {
        let der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| SignError::Sign(e.to_string()))?;
        let (_, cert) =
            x509_parser::parse_x509_certificate(&der).map_err(|e| SignError::Sign(e.to_string()))?;
        let serial = cert.raw_serial().to_vec();
        let not_after_unix_ms = cert.validity().not_after.timestamp().saturating_mul(1000);
        Ok(Signed {
            cert_der: der.to_vec(),
            cert_pem,
            serial,
            not_after_unix_ms,
        })
    }
}

/// Parses a CSR and checks its signature; returns the public key it proves possession of.
pub fn csr_public_key(csr_der: &[u8]) -> Result<PublicKey, SignError> {
    if csr_der.len() > CSR_BYTES_MAX {
        return Err(SignError::CsrTooLarge(csr_der.len()));
    }
    let csr = CertificateSigningRequestParams::from_der(&CertificateSigningRequestDer::from(csr_der))
        .map_err(|e| SignError::CsrMalformed(e.to_string()))?;
    if csr.public_key.algorithm() != &rcgen::PKCS_ED25519 {
        return Err(SignError::CsrNotEd25519);
    }
    Ok(csr.public_key)
}

/// A CSR for a new key: what a joiner sends. Its subject is irrelevant (the server decides).
pub fn new_csr() -> Result<(KeyPair, Vec<u8>), SignError> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ED25519).map_err(|e| SignError::Sign(e.to_string()))?;
    let params = CertificateParams::new(Vec::<String>::new()).map_err(|e| SignError::Sign(e.to_string()))?;
    let csr = params
        .serialize_request(&key)
        .map_err(|e| SignError::Sign(e.to_string()))?;
    Ok((key, csr.der().to_vec()))
}

/// A client leaf for `address` on `public_key`, signed by the member CA in `ca`, checked to
/// chain to `root_pem` with the federation's verifier.
pub fn sign_client(
    ca: &CertBundle,
    root_pem: &str,
    address: &str,
    public_key: &PublicKey,
    validity: Duration,
) -> Result<Signed, SignError> {
    let member_ca = MemberCa::load(&ca.cert_pem, &ca.key_pem).map_err(|e| SignError::Ca(e.to_string()))?;
    let canonical = FederatedAddress::parse(address)
        .map_err(|e| SignError::Sign(e.to_string()))?
        .to_string();
    let issued = member_ca.issue_leaf_for_key(public_key, &canonical, Component::Client, validity)?;
    let signed = Signed::from_pem(issued.cert_pem)?;
    // Read it back as every verifier will: identity from the extensions, chain to the root.
    let identity =
        PeerIdentity::from_der(&signed.cert_der).map_err(|e| SignError::Sign(format!("signed leaf: {e}")))?;
    if identity.address.to_string() != canonical || identity.component != Component::Client {
        return Err(SignError::Sign("signed leaf does not say what was asked".into()));
    }
    let bundle = CertBundle {
        cert_pem: signed.cert_pem.clone(),
        key_pem: String::new(),
        chain: vec![ca.cert_pem.clone()],
    };
    verify_chain(&bundle, root_pem)?;
    Ok(signed)
}

/// A member CA for `member_domain` on `public_key`, signed by the federation root in `root`.
pub fn sign_member_ca(
    root: &CertBundle,
    member_domain: &str,
    public_key: &PublicKey,
    validity: Duration,
) -> Result<Signed, SignError> {
    let root = FederationCa::load(&root.cert_pem, &root.key_pem).map_err(|e| SignError::Ca(e.to_string()))?;
    Signed::from_pem(root.sign_member_for_key(public_key, member_domain, validity)?)
}

/// Checks a leaf (with its member CA) against the root exactly as every listener would.
fn verify_chain(bundle: &CertBundle, root_pem: &str) -> Result<(), SignError> {
    use rustls::server::danger::ClientCertVerifier;
    let root = crate::transport::root_der(root_pem).map_err(|e| SignError::Ca(e.to_string()))?;
    let verifier = crate::tls::FederationClientVerifier::builder(&root, crate::tls::Policy::any_component())
        .build()
        .map_err(|e| SignError::Sign(e.to_string()))?;
    let chain = bundle
        .presented_chain_der()
        .map_err(|e| SignError::Sign(e.to_string()))?;
    let Some((leaf, intermediates)) = chain.split_first() else {
        return Err(SignError::Sign("empty chain".into()));
    };
    verifier
        .verify_client_cert(
            leaf,
            intermediates,
            rustls::pki_types::UnixTime::since_unix_epoch(unix_now()),
        )
        .map_err(|e| SignError::Sign(format!("the signed certificate does not verify: {e}")))?;
    Ok(())
}

fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use crate::pki::FederationCa;

    const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);

    #[test]
    fn a_csr_key_gets_a_client_leaf_that_verifies_and_names_the_address() {
        let root = FederationCa::init("home.collective").unwrap();
        let member = root.sign_member("alice.home.collective").unwrap();
        let (key, csr) = new_csr().unwrap();
        let public = csr_public_key(&csr).unwrap();
        assert_eq!(rcgen::PublicKeyData::der_bytes(&public), key.public_key_raw());
        let signed = sign_client(
            &member.bundle(),
            root.cert_pem(),
            "bob@alice.home.collective",
            &public,
            YEAR,
        )
        .unwrap();
        let identity = PeerIdentity::from_der(&signed.cert_der).unwrap();
        assert_eq!(identity.address.to_string(), "bob@alice.home.collective");
        assert_eq!(identity.serial, signed.serial);
        // The joiner's bundle (its key, the new leaf, the member CA) is a working identity.
        let bundle = CertBundle {
            cert_pem: signed.cert_pem,
            key_pem: key.serialize_pem(),
            chain: vec![member.cert_pem().to_string()],
        };
        crate::transport::verify_own_identity(&bundle, root.cert_pem()).unwrap();
    }

    #[test]
    fn an_address_outside_the_member_is_refused() {
        let root = FederationCa::init("home.collective").unwrap();
        let member = root.sign_member("alice.home.collective").unwrap();
        let (_, csr) = new_csr().unwrap();
        let public = csr_public_key(&csr).unwrap();
        assert!(
            sign_client(
                &member.bundle(),
                root.cert_pem(),
                "bob@bob.home.collective",
                &public,
                YEAR
            )
            .is_err()
        );
    }

    #[test]
    fn malformed_oversized_and_non_ed25519_csrs_are_refused() {
        assert!(matches!(
            csr_public_key(&[0u8; 10]),
            Err(SignError::CsrMalformed(_))
        ));
        assert!(matches!(
            csr_public_key(&vec![0u8; CSR_BYTES_MAX + 1]),
            Err(SignError::CsrTooLarge(_))
        ));
        let (_, mut csr) = new_csr().unwrap();
        let last = csr.len() - 1;
        csr[last] ^= 1;
        assert!(matches!(csr_public_key(&csr), Err(SignError::CsrMalformed(_))));
        let p256 = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let csr = CertificateParams::new(Vec::<String>::new())
            .unwrap()
            .serialize_request(&p256)
            .unwrap();
        assert!(matches!(csr_public_key(csr.der()), Err(SignError::CsrNotEd25519)));
    }

    #[test]
    fn a_member_ca_on_a_csr_key_signs_leaves_that_verify() {
        let root = FederationCa::init("home.collective").unwrap();
        let (key, csr) = new_csr().unwrap();
        let public = csr_public_key(&csr).unwrap();
        let signed = sign_member_ca(&root.bundle(), "bob.home.collective", &public, YEAR).unwrap();
        let member = crate::pki::MemberCa::load(&signed.cert_pem, &key.serialize_pem()).unwrap();
        assert_eq!(member.member_domain(), "bob.home.collective");
        let leaf = member
            .issue_leaf("admin@bob.home.collective", Component::Client, YEAR)
            .unwrap();
        crate::transport::verify_own_identity(&leaf, root.cert_pem()).unwrap();
        assert!(sign_member_ca(&root.bundle(), "bob.other.collective", &public, YEAR).is_err());
    }
}
