//! Signing for a joiner: a certificate for the public key of its CSR, which proves it holds the
//! private key (the key never leaves the joiner's machine).
//!
//! `pki::MemberCa::issue_leaf` and `FederationCa::sign_member` generate the key themselves, so
//! the certificate profile is repeated here for a key given from outside; each result is read
//! back and checked against the federation's own verifier before it is handed out, so a drift
//! between the two profiles fails here, not in the joiner's first handshake.
//! (Moving `issue_leaf_for_key` into `pki` would remove the repetition; that crate is not ours.)

use crate::pki::{
    CertBundle, Component, FederatedAddress, OID_COMPONENT, OID_FEDERATED_ADDRESS, OID_FEDERATION_DOMAIN,
    OID_MEMBER_DOMAIN, PeerIdentity, SERIAL_LEN_BYTES,
};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, CustomExtension, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose, NameConstraints,
    PublicKey, SanType, SerialNumber,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateSigningRequestDer};
use std::time::{Duration, SystemTime};
use time::OffsetDateTime;

/// Largest CSR accepted, in bytes (an Ed25519 CSR is about 200).
pub const CSR_BYTES_MAX: usize = 4096;
/// Certificates start this long before now, to tolerate clock skew (as in `pki`).
const CLOCK_SKEW_ALLOWANCE: Duration = Duration::from_secs(300);
/// DER tag of UTF8String.
const TAG_UTF8_STRING: u8 = 0x0c;

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

/// A signed certificate with what the log records about it.
#[derive(Debug, Clone)]
pub struct Signed {
    pub cert_pem: String,
    pub cert_der: Vec<u8>,
    pub serial: Vec<u8>,
    pub not_after_unix_ms: i64,
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
    let (issuer, ca_extensions, ca_validity) = load_issuer(ca)?;
    let (federation_domain, member_domain) = ca_extensions;
    let parsed = FederatedAddress::parse(address).map_err(|e| SignError::Sign(e.to_string()))?;
    if parsed.domain() != member_domain {
        return Err(SignError::Sign(format!(
            "{address} is not in the member domain {member_domain}"
        )));
    }
    let canonical = parsed.to_string();
    let dns = parsed.dns_name().map_err(|e| SignError::Sign(e.to_string()))?;
    let mut params = base_params()?;
    params.subject_alt_names = vec![SanType::DnsName(
        dns.try_into()
            .map_err(|e: rcgen::Error| SignError::Sign(e.to_string()))?,
    )];
    params
        .distinguished_name
        .push(DnType::CommonName, canonical.clone());
    params
        .distinguished_name
        .push(DnType::OrganizationName, member_domain.clone());
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.custom_extensions = vec![
        utf8_extension(OID_FEDERATION_DOMAIN, &federation_domain),
        utf8_extension(OID_MEMBER_DOMAIN, &member_domain),
        utf8_extension(OID_COMPONENT, Component::Client.as_str()),
        utf8_extension(OID_FEDERATED_ADDRESS, &canonical),
    ];
    let signed = finish(params, public_key, &issuer, ca_validity, validity)?;
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
    let key = KeyPair::from_pem(&root.key_pem).map_err(|e| SignError::Ca(e.to_string()))?;
    let root_der =
        CertificateDer::from_pem_slice(root.cert_pem.as_bytes()).map_err(|e| SignError::Ca(e.to_string()))?;
    let (federation_domain, root_validity) = read_ca(&root_der, false)?;
    let member = member_domain.to_ascii_lowercase();
    if !crate::pki::is_within_domain(&member, &federation_domain) || member == federation_domain {
        return Err(SignError::Sign(format!(
            "{member} is not a member domain of {federation_domain}"
        )));
    }
    let issuer = Issuer::from_ca_cert_der(&root_der, key).map_err(|e| SignError::Ca(e.to_string()))?;
    let mut params = base_params()?;
    params
        .distinguished_name
        .push(DnType::CommonName, format!("{member} member ca"));
    params
        .distinguished_name
        .push(DnType::OrganizationName, member.clone());
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.name_constraints = Some(NameConstraints {
        permitted_subtrees: vec![GeneralSubtree::DnsName(member.clone())],
        excluded_subtrees: vec![],
    });
    params.custom_extensions = vec![
        utf8_extension(OID_FEDERATION_DOMAIN, &federation_domain),
        utf8_extension(OID_MEMBER_DOMAIN, &member),
    ];
    finish(params, public_key, &issuer, root_validity, validity)
}

type Validity = (OffsetDateTime, OffsetDateTime);

fn base_params() -> Result<CertificateParams, SignError> {
    let mut params =
        CertificateParams::new(Vec::<String>::new()).map_err(|e| SignError::Sign(e.to_string()))?;
    params.distinguished_name = DistinguishedName::new();
    params.use_authority_key_identifier_extension = true;
    let mut serial: [u8; SERIAL_LEN_BYTES] = rand::random();
    // Positive and full length, as `pki` makes them.
    serial[0] = (serial[0] & 0x7f) | 0x01;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    Ok(params)
}

fn finish(
    mut params: CertificateParams,
    public_key: &PublicKey,
    issuer: &Issuer<'_, KeyPair>,
    (ca_not_before, ca_not_after): Validity,
    validity: Duration,
) -> Result<Signed, SignError> {
    let now = OffsetDateTime::now_utc();
    let now = now.replace_nanosecond(0).unwrap_or(now);
    let not_before = (now - CLOCK_SKEW_ALLOWANCE).max(ca_not_before);
    let not_after = (now + validity).min(ca_not_after);
    if not_after <= not_before || now >= ca_not_after {
        return Err(SignError::CaExpired);
    }
    params.not_before = not_before;
    params.not_after = not_after;
    let serial = params
        .serial_number
        .as_ref()
        .map(|s| s.as_ref().to_vec())
        .unwrap_or_default();
    let cert = params
        .signed_by(public_key, issuer)
        .map_err(|e| SignError::Sign(e.to_string()))?;
    let not_after_unix_ms = not_after.unix_timestamp().saturating_mul(1000);
    Ok(Signed {
        cert_pem: cert.pem(),
        cert_der: cert.der().to_vec(),
        serial,
        not_after_unix_ms,
    })
}

/// A loaded member CA: its issuer, (federation, member) domains and validity.
type LoadedCa = (Issuer<'static, KeyPair>, (String, String), Validity);

/// The member CA's issuer, its (federation, member) domains and validity.
fn load_issuer(ca: &CertBundle) -> Result<LoadedCa, SignError> {
    let key = KeyPair::from_pem(&ca.key_pem).map_err(|e| SignError::Ca(e.to_string()))?;
    let der =
        CertificateDer::from_pem_slice(ca.cert_pem.as_bytes()).map_err(|e| SignError::Ca(e.to_string()))?;
    let (federation_domain, validity) = read_ca(&der, true)?;
    let cert = parse(&der)?;
    let member_domain =
        utf8_value(&cert, OID_MEMBER_DOMAIN)?.ok_or_else(|| SignError::Ca("not a member ca".into()))?;
    drop(cert);
    let issuer = Issuer::from_ca_cert_der(&der, key).map_err(|e| SignError::Ca(e.to_string()))?;
    Ok((issuer, (federation_domain, member_domain), validity))
}

/// The federation domain and validity of a CA certificate; `member` says which kind it must be.
fn read_ca(der: &CertificateDer<'_>, member: bool) -> Result<(String, Validity), SignError> {
    let cert = parse(der)?;
    if !cert.is_ca() {
        return Err(SignError::Ca("the certificate is not a ca".into()));
    }
    if utf8_value(&cert, OID_MEMBER_DOMAIN)?.is_some() != member {
        return Err(SignError::Ca(if member {
            "expected a member ca, found the root".into()
        } else {
            "expected the federation root, found a member ca".into()
        }));
    }
    let federation = utf8_value(&cert, OID_FEDERATION_DOMAIN)?
        .ok_or_else(|| SignError::Ca("no federation domain".into()))?;
    let validity = (
        cert.validity().not_before.to_datetime(),
        cert.validity().not_after.to_datetime(),
    );
    Ok((federation, validity))
}

fn parse<'a>(der: &'a [u8]) -> Result<x509_parser::certificate::X509Certificate<'a>, SignError> {
    x509_parser::parse_x509_certificate(der)
        .map(|(_, cert)| cert)
        .map_err(|e| SignError::Ca(e.to_string()))
}

fn utf8_value(
    cert: &x509_parser::certificate::X509Certificate<'_>,
    oid: &[u64],
) -> Result<Option<String>, SignError> {
    let wanted = x509_parser::der_parser::oid::Oid::from(oid).map_err(|e| SignError::Ca(format!("{e:?}")))?;
    let Some(ext) = cert.extensions().iter().find(|e| e.oid == wanted) else {
        return Ok(None);
    };
    let (_, obj) = x509_parser::der_parser::parse_der(ext.value).map_err(|e| SignError::Ca(e.to_string()))?;
    match obj.content {
        x509_parser::der_parser::ber::BerObjectContent::UTF8String(s) => Ok(Some(s.to_owned())),
        _ => Err(SignError::Ca("an extension is not a UTF8String".into())),
    }
}

/// A non-critical extension holding `value` as a DER UTF8String (as `pki` writes them).
fn utf8_extension(oid: &[u64], value: &str) -> CustomExtension {
    let bytes = value.as_bytes();
    let mut der = vec![TAG_UTF8_STRING];
    if bytes.len() < 0x80 {
        der.push(bytes.len() as u8);
    } else {
        let len: Vec<u8> = bytes
            .len()
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        der.push(0x80 | len.len() as u8);
        der.extend_from_slice(&len);
    }
    der.extend_from_slice(bytes);
    CustomExtension::from_oid_content(oid, der)
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
