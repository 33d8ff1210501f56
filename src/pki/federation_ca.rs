//! The federation root CA: self-signed, name-constrained to the federation domain.

use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, GeneralSubtree, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, NameConstraints, PKCS_ED25519, PublicKeyData,
};
use rustls::pki_types::CertificateDer;
use time::OffsetDateTime;

use super::address::is_strictly_within;
use super::der::{
    OID_FEDERATION_DOMAIN, OID_MEMBER_DOMAIN, now_seconds, parse_cert, random_serial, read_utf8_extension,
    require_utf8_extension, utf8_extension,
};
use super::member_ca::{MEMBER_CA_VALIDITY, MemberCa};
use super::{CertBundle, PkiError, validate_domain};

/// Lifetime of a federation root, from its creation: five years.
pub const ROOT_CA_VALIDITY: Duration = Duration::from_secs(5 * 365 * 24 * 3600);

/// Certificates start this long before "now", so a peer whose clock is slightly behind still
/// accepts a certificate issued a moment ago.
pub(crate) const CLOCK_SKEW_ALLOWANCE: Duration = Duration::from_secs(5 * 60);

/// The federation root CA with its signing key.
pub struct FederationCa {
    domain: String,
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for FederationCa {
    // Hand-written so the signing key never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FederationCa")
            .field("domain", &self.domain)
            .finish_non_exhaustive()
    }
}

impl FederationCa {
    /// Creates a new root CA for `federation_domain` (e.g. `home.collective`), valid five years,
    /// path length 1 (member CAs below it may only issue leaves), constrained to the domain.
    pub fn init(federation_domain: &str) -> Result<FederationCa, PkiError> {
        let domain = validate_domain(federation_domain)?;
        let key = KeyPair::generate_for(&PKCS_ED25519)?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{domain} federation root"));
        params
            .distinguished_name
            .push(DnType::OrganizationName, domain.clone());
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.name_constraints = Some(NameConstraints {
            permitted_subtrees: vec![GeneralSubtree::DnsName(domain.clone())],
            excluded_subtrees: vec![],
        });
        params.custom_extensions = vec![utf8_extension(OID_FEDERATION_DOMAIN, &domain)];
        params.serial_number = Some(random_serial());
        let now = now_seconds();
        params.not_before = now - CLOCK_SKEW_ALLOWANCE;
        params.not_after = now + ROOT_CA_VALIDITY;
        let cert = params.self_signed(&key)?;
        let (not_before, not_after) = (params.not_before, params.not_after);
        Ok(FederationCa {
            domain,
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            not_before,
            not_after,
            issuer: Issuer::new(params, key),
        })
    }

    /// Loads a root CA saved earlier (see [`FederationCa::bundle`]) so it can sign again.
    pub fn load(cert_pem: &str, key_pem: &str) -> Result<FederationCa, PkiError> {
        let (cert_der, key) = super::member_ca::load_ca_parts(cert_pem, key_pem)?;
        let cert = parse_cert(&cert_der)?;
        if read_utf8_extension(&cert, OID_MEMBER_DOMAIN)?.is_some() {
            return Err(PkiError::Malformed("a member ca is not a federation root".into()));
        }
        let domain = require_utf8_extension(&cert, OID_FEDERATION_DOMAIN)?;
        let not_before = cert.validity().not_before.to_datetime();
        let not_after = cert.validity().not_after.to_datetime();
        drop(cert);
        let issuer = Issuer::from_ca_cert_der(&cert_der, key)?;
        Ok(FederationCa {
            domain,
            cert_pem: cert_pem.to_owned(),
            cert_der,
            not_before,
            not_after,
            issuer,
        })
    }

    /// Signs a member CA for `member_domain`, which must lie strictly below the federation
    /// domain, valid [`MEMBER_CA_VALIDITY`] (cut short to end with the root).
    pub fn sign_member(&self, member_domain: &str) -> Result<MemberCa, PkiError> {
        self.sign_member_for(member_domain, MEMBER_CA_VALIDITY)
    }

    /// Like [`FederationCa::sign_member`] with an explicit validity.
    pub fn sign_member_for(&self, member_domain: &str, validity: Duration) -> Result<MemberCa, PkiError> {
        let (member, params) = self.member_ca_params(member_domain, validity)?;
        let key = KeyPair::generate_for(&PKCS_ED25519)?;
        let cert = params.signed_by(&key, &self.issuer)?;
        MemberCa::from_signed(
            self.domain.clone(),
            member,
            cert.pem(),
            cert.der().clone(),
            (params.not_before, params.not_after),
            Issuer::new(params, key),
        )
    }

    /// Signs a member CA for `member_domain` on `public_key`, taken from a CSR whose signature
    /// the caller has checked (a joining member's key never leaves its machine). Returns the
    /// certificate in PEM.
    pub fn sign_member_for_key(
        &self,
        public_key: &impl PublicKeyData,
        member_domain: &str,
        validity: Duration,
    ) -> Result<String, PkiError> {
        let (_, params) = self.member_ca_params(member_domain, validity)?;
        Ok(params.signed_by(public_key, &self.issuer)?.pem())
    }

    /// Everything a member CA carries but its key: the member domain (validated, strictly below
    /// the federation's), names, constraints, extensions, a fresh serial, nested validity.
    fn member_ca_params(
        &self,
        member_domain: &str,
        validity: Duration,
    ) -> Result<(String, CertificateParams), PkiError> {
        let member = validate_domain(member_domain)?;
        if !is_strictly_within(&member, &self.domain) {
            return Err(PkiError::MemberOutsideFederation {
                member,
                federation: self.domain.clone(),
            });
        }
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        // The subject must be unique per member: the TLS policy finds a leaf's issuing CA among
        // the presented intermediates by subject.
        params.distinguished_name = DistinguishedName::new();
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
            utf8_extension(OID_FEDERATION_DOMAIN, &self.domain),
            utf8_extension(OID_MEMBER_DOMAIN, &member),
        ];
        params.serial_number = Some(random_serial());
        params.use_authority_key_identifier_extension = true;
        (params.not_before, params.not_after) = nested_validity(self.not_before, self.not_after, validity)?;
        Ok((member, params))
    }

    /// The federation domain, e.g. `home.collective`.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The root certificate, the one trust anchor of every verifier in the federation.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The root certificate in PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Certificate and signing key, for saving with [`CertBundle::write_to`].
    pub fn bundle(&self) -> CertBundle {
        CertBundle {
            cert_pem: self.cert_pem.clone(),
            key_pem: self.issuer.key().serialize_pem(),
            chain: Vec::new(),
        }
    }
}

/// The validity of a certificate issued now for `validity`, nested inside its issuer's
/// `[issuer_not_before, issuer_not_after]`: an issuer cannot vouch beyond its own lifetime.
pub(crate) fn nested_validity(
    issuer_not_before: OffsetDateTime,
    issuer_not_after: OffsetDateTime,
    validity: Duration,
) -> Result<(OffsetDateTime, OffsetDateTime), PkiError> {
    let now = now_seconds();
    let not_before = (now - CLOCK_SKEW_ALLOWANCE).max(issuer_not_before);
    let not_after = (now + validity).min(issuer_not_after);
    if not_after <= not_before || now >= issuer_not_after {
        return Err(PkiError::IssuerExpired);
    }
    Ok((not_before, not_after))
}
