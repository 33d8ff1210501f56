//! A member CA: an intermediate constrained to one member domain, issuing leaves and CRLs.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use rcgen::{
    CertificateParams, CertificateRevocationListParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, PublicKeyData,
    RevocationReason, RevokedCertParams, SanType, SerialNumber,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, CertificateSigningRequestDer};
use time::OffsetDateTime;

use super::address::is_within;
use super::der::{
    OID_COMPONENT, OID_FEDERATED_ADDRESS, OID_FEDERATION_DOMAIN, OID_MEMBER_DOMAIN, now_seconds, parse_cert,
    random_serial, require_utf8_extension, utf8_extension,
};
use super::federation_ca::nested_validity;
use super::{CertBundle, Component, FederatedAddress, PkiError};

/// Lifetime of a member CA, from its signing: two years (never beyond the root's end).
pub const MEMBER_CA_VALIDITY: Duration = Duration::from_secs(2 * 365 * 24 * 3600);

/// One entry of a CRL: which certificate, and when it was revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedSerial {
    /// Big-endian serial bytes, as in [`super::PeerIdentity::serial`].
    pub serial: Vec<u8>,
    pub revoked_at: SystemTime,
}

/// A leaf signed for someone else's key (see [`MemberCa::issue_leaf_for_csr`]): the
/// certificate and the intermediates to present with it, in PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedLeaf {
    pub cert_pem: String,
    pub chain: Vec<String>,
}

/// A member CA with its signing key.
pub struct MemberCa {
    federation_domain: String,
    member_domain: String,
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for MemberCa {
    // Hand-written so the signing key never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemberCa")
            .field("federation_domain", &self.federation_domain)
            .field("member_domain", &self.member_domain)
            .finish_non_exhaustive()
    }
}

impl MemberCa {
    pub(crate) fn from_signed(
        federation_domain: String,
        member_domain: String,
        cert_pem: String,
        cert_der: CertificateDer<'static>,
        (not_before, not_after): (OffsetDateTime, OffsetDateTime),
        issuer: Issuer<'static, KeyPair>,
    ) -> Result<MemberCa, PkiError> {
        Ok(MemberCa {
            federation_domain,
            member_domain,
            cert_pem,
            cert_der,
            not_before,
            not_after,
            issuer,
        })
    }

    /// Loads a member CA saved earlier (see [`MemberCa::bundle`]) so it can sign again.
    pub fn load(cert_pem: &str, key_pem: &str) -> Result<MemberCa, PkiError> {
        let (cert_der, key) = load_ca_parts(cert_pem, key_pem)?;
        let cert = parse_cert(&cert_der)?;
        let federation_domain = require_utf8_extension(&cert, OID_FEDERATION_DOMAIN)?;
        let member_domain = require_utf8_extension(&cert, OID_MEMBER_DOMAIN)?;
        let not_before = cert.validity().not_before.to_datetime();
        let not_after = cert.validity().not_after.to_datetime();
        drop(cert);
        let issuer = Issuer::from_ca_cert_der(&cert_der, key)?;
        Ok(MemberCa {
            federation_domain,
            member_domain,
            cert_pem: cert_pem.to_owned(),
            cert_der,
            not_before,
            not_after,
            issuer,
        })
    }

    /// Issues a leaf for `address` (`coord-1@alice.home.collective`), whose domain must be this
    /// member's domain; its DNS SAN is `<label>.<member domain>`, see [`super::dns_label`].
    pub fn issue_leaf(
        &self,
        address: &str,
        component: Component,
        validity: Duration,
    ) -> Result<CertBundle, PkiError> {
        self.issue_leaf_with_sans(address, component, validity, &[])
    }

    /// Like [`MemberCa::issue_leaf`], adding `extra_sans`: IP addresses (e.g. `127.0.0.1`), or
    /// DNS names inside the member domain.
    ///
    /// A DNS name outside the member domain (such as `localhost`) is refused: the CA's name
    /// constraint would make every verifier reject the leaf. Clients name the server by its
    /// DNS SAN, whatever address they dial, so `localhost` is never needed.
    pub fn issue_leaf_with_sans(
        &self,
        address: &str,
        component: Component,
        validity: Duration,
        extra_sans: &[&str],
    ) -> Result<CertBundle, PkiError> {
        let parsed = FederatedAddress::parse(address)?;
        let sans = self.leaf_sans(&parsed, address, extra_sans)?;
        let key = KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
        let cert = self
            .leaf_params(&parsed, component, validity, sans)?
            .signed_by(&key, &self.issuer)?;
        Ok(CertBundle {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            chain: vec![self.cert_pem.clone()],
        })
    }

    /// Signs a leaf for the public key of a certificate signing request (DER), whose signature
    /// proves the requester holds the private key. Only the key is taken from the request: the
    /// address, component and names come from the caller (a renewal copies them from the
    /// certificate being renewed), so a requester cannot ask for more than it already has.
    pub fn issue_leaf_for_csr(
        &self,
        csr_der: &[u8],
        address: &str,
        component: Component,
        validity: Duration,
        extra_sans: &[&str],
    ) -> Result<IssuedLeaf, PkiError> {
        let parsed = FederatedAddress::parse(address)?;
        let sans = self.leaf_sans(&parsed, address, extra_sans)?;
        let csr = CertificateSigningRequestParams::from_der(&CertificateSigningRequestDer::from(csr_der))
            .map_err(|e| PkiError::BadCsr(e.to_string()))?;
        if csr.public_key.algorithm() != &rcgen::PKCS_ED25519 {
            return Err(PkiError::BadCsr("the key must be ed25519".into()));
        }
        let cert = self
            .leaf_params(&parsed, component, validity, sans)?
            .signed_by(&csr.public_key, &self.issuer)?;
        Ok(IssuedLeaf {
            cert_pem: cert.pem(),
            chain: vec![self.cert_pem.clone()],
        })
    }

    /// Signs a leaf for `public_key`, taken from a CSR whose signature the caller has checked
    /// (the bootstrap endpoint parses and bounds a joiner's CSR before anything else).
    pub fn issue_leaf_for_key(
        &self,
        public_key: &impl PublicKeyData,
        address: &str,
        component: Component,
        validity: Duration,
    ) -> Result<IssuedLeaf, PkiError> {
        let parsed = FederatedAddress::parse(address)?;
        let sans = self.leaf_sans(&parsed, address, &[])?;
        let cert = self
            .leaf_params(&parsed, component, validity, sans)?
            .signed_by(public_key, &self.issuer)?;
        Ok(IssuedLeaf {
            cert_pem: cert.pem(),
            chain: vec![self.cert_pem.clone()],
        })
    }

    /// The subject alternative names of a leaf: its address's DNS name, then `extra_sans`.
    fn leaf_sans(
        &self,
        parsed: &FederatedAddress,
        address: &str,
        extra_sans: &[&str],
    ) -> Result<Vec<SanType>, PkiError> {
        if parsed.domain() != self.member_domain {
            return Err(PkiError::AddressOutsideMember {
                address: address.to_owned(),
                member: self.member_domain.clone(),
            });
        }
        let mut sans = vec![SanType::DnsName(parsed.dns_name()?.try_into()?)];
        for extra in extra_sans {
            if let Ok(ip) = extra.parse::<IpAddr>() {
                sans.push(SanType::IpAddress(ip));
            } else if is_within(extra, &self.member_domain) {
                sans.push(SanType::DnsName(extra.to_ascii_lowercase().try_into()?));
            } else {
                return Err(PkiError::SanOutsideMember {
                    name: (*extra).to_owned(),
                    member: self.member_domain.clone(),
                });
            }
        }
        Ok(sans)
    }

    /// Everything a leaf carries but its key: names, extensions, a fresh serial, nested validity.
    fn leaf_params(
        &self,
        parsed: &FederatedAddress,
        component: Component,
        validity: Duration,
        sans: Vec<SanType>,
    ) -> Result<CertificateParams, PkiError> {
        let canonical = parsed.to_string();
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.subject_alt_names = sans;
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, canonical.clone());
        params
            .distinguished_name
            .push(DnType::OrganizationName, self.member_domain.clone());
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.custom_extensions = vec![
            utf8_extension(OID_FEDERATION_DOMAIN, &self.federation_domain),
            utf8_extension(OID_MEMBER_DOMAIN, &self.member_domain),
            utf8_extension(OID_COMPONENT, component.as_str()),
            utf8_extension(OID_FEDERATED_ADDRESS, &canonical),
        ];
        params.serial_number = Some(random_serial());
        params.use_authority_key_identifier_extension = true;
        (params.not_before, params.not_after) = nested_validity(self.not_before, self.not_after, validity)?;
        Ok(params)
    }

    /// Signs a CRL listing `revoked`, valid from now for `validity`. `crl_number` must grow
    /// with every CRL this CA publishes (RFC 5280 5.2.3).
    pub fn issue_crl(
        &self,
        revoked: &[RevokedSerial],
        crl_number: u64,
        validity: Duration,
    ) -> Result<CertificateRevocationListDer<'static>, PkiError> {
        let this_update = now_seconds();
        let params = CertificateRevocationListParams {
            this_update,
            next_update: this_update + validity,
            crl_number: SerialNumber::from(crl_number),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|r| RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&r.serial),
                    revocation_time: OffsetDateTime::from(r.revoked_at),
                    reason_code: Some(RevocationReason::Unspecified),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        Ok(params.signed_by(&self.issuer)?.der().clone())
    }

    /// The federation domain this CA belongs to.
    pub fn federation_domain(&self) -> &str {
        &self.federation_domain
    }

    /// The member domain this CA is constrained to, e.g. `alice.home.collective`.
    pub fn member_domain(&self) -> &str {
        &self.member_domain
    }

    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn not_before(&self) -> SystemTime {
        self.not_before.into()
    }

    pub fn not_after(&self) -> SystemTime {
        self.not_after.into()
    }

    /// Certificate and signing key, for saving with [`CertBundle::write_to`]. The chain is
    /// empty: the root is the trust anchor and is distributed on its own.
    pub fn bundle(&self) -> CertBundle {
        CertBundle {
            cert_pem: self.cert_pem.clone(),
            key_pem: self.issuer.key().serialize_pem(),
            chain: Vec::new(),
        }
    }
}

/// Parses a CA certificate and its key from PEM and checks that they belong together.
pub(crate) fn load_ca_parts(
    cert_pem: &str,
    key_pem: &str,
) -> Result<(CertificateDer<'static>, KeyPair), PkiError> {
    let cert_der = CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(|e| PkiError::Pem {
        what: "ca certificate",
        reason: e.to_string(),
    })?;
    let key = KeyPair::from_pem(key_pem).map_err(|e| PkiError::Pem {
        what: "ca key",
        reason: e.to_string(),
    })?;
    let cert = parse_cert(&cert_der)?;
    if !cert.is_ca() {
        return Err(PkiError::Malformed("certificate is not a ca".into()));
    }
    if cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
        return Err(PkiError::KeyMismatch);
    }
    drop(cert);
    Ok((cert_der, key))
}
