//! Renewing a leaf: a fresh key and its signing request on the holder's side, the names to
//! carry over on the signer's side, and when a leaf is due for renewal.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use rcgen::{CertificateParams, KeyPair};
use x509_parser::extensions::GeneralName;

use super::der::parse_cert;
use super::federation_ca::CLOCK_SKEW_ALLOWANCE;
use super::{CertBundle, IssuedLeaf, PeerIdentity, PkiError};

/// Bytes of a SHA-256 certificate fingerprint (as `IssueCertificate` records it).
pub const FINGERPRINT_BYTES: usize = 32;

/// A leaf renews itself once this fraction of its lifetime has passed (numerator, denominator):
/// at two thirds, leaving a third of the lifetime to reach a signer through outages.
pub const RENEW_AT_FRACTION: (u32, u32) = (2, 3);

/// A new key pair and a certificate signing request for it, made by the certificate's holder:
/// the private key never leaves the process that will use it.
pub struct LeafRequest {
    key: KeyPair,
    csr_der: Vec<u8>,
}

impl std::fmt::Debug for LeafRequest {
    // Hand-written so the private key never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeafRequest").finish_non_exhaustive()
    }
}

impl LeafRequest {
    /// Generates an Ed25519 key and a request signed with it. The request names nothing: the
    /// signer takes the address and names from the certificate the caller authenticated with.
    pub fn new() -> Result<LeafRequest, PkiError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
        let params = CertificateParams::new(Vec::<String>::new())?;
        let csr = params.serialize_request(&key)?;
        Ok(LeafRequest {
            csr_der: csr.der().to_vec(),
            key,
        })
    }

    /// The request in DER, to send to the signer.
    pub fn csr_der(&self) -> &[u8] {
        &self.csr_der
    }

    /// Joins the signer's answer with the key, checking the certificate is for this key.
    pub fn into_bundle(self, issued: IssuedLeaf) -> Result<CertBundle, PkiError> {
        let bundle = CertBundle {
            cert_pem: issued.cert_pem,
            key_pem: self.key.serialize_pem(),
            chain: issued.chain,
        };
        let der = bundle.cert_der()?;
        let cert = parse_cert(&der)?;
        if cert.public_key().subject_public_key.data.as_ref() != self.key.public_key_raw() {
            return Err(PkiError::KeyMismatch);
        }
        bundle.chain_der()?;
        Ok(bundle)
    }
}

/// SHA-256 of a certificate's DER, as recorded by `IssueCertificate`.
pub fn fingerprint(der: &[u8]) -> [u8; FINGERPRINT_BYTES] {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    let mut out = [0u8; FINGERPRINT_BYTES];
    out.copy_from_slice(digest.as_ref());
    out
}

/// The extra subject alternative names of a leaf (IP addresses, and DNS names other than the
/// one derived from its address), which a renewal carries over unchanged.
pub fn extra_sans(leaf_der: &[u8]) -> Result<Vec<String>, PkiError> {
    let identity = PeerIdentity::from_der(leaf_der)?;
    let own = identity.address.dns_name()?;
    let cert = parse_cert(leaf_der)?;
    let mut out = Vec::new();
    if let Some(san) = cert.subject_alternative_name().map_err(PkiError::malformed)? {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(dns) if !dns.eq_ignore_ascii_case(&own) => out.push((*dns).to_owned()),
                GeneralName::IPAddress(bytes) => {
                    let ip = match bytes.len() {
                        4 => <[u8; 4]>::try_from(*bytes).map(IpAddr::from).ok(),
                        16 => <[u8; 16]>::try_from(*bytes).map(IpAddr::from).ok(),
                        _ => None,
                    };
                    let ip = ip.ok_or_else(|| PkiError::Malformed("ip address san of odd length".into()))?;
                    out.push(ip.to_string());
                }
                _ => {}
            }
        }
    }
    Ok(out)
}

impl PeerIdentity {
    /// When this leaf should be renewed: [`RENEW_AT_FRACTION`] into its lifetime.
    ///
    /// The lifetime counts from issuance, not from `not_before`, which issuers backdate by the
    /// clock-skew allowance; for a leaf of seconds that allowance would dwarf the lifetime.
    pub fn renew_at(&self) -> SystemTime {
        let issued = (self.not_before + CLOCK_SKEW_ALLOWANCE).min(self.not_after);
        let lifetime = self.not_after.duration_since(issued).unwrap_or(Duration::ZERO);
        let (num, den) = RENEW_AT_FRACTION;
        issued + lifetime * num / den
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a test fails loudly on any unexpected error")]
mod tests {
    use super::*;
    use crate::pki::{Component, FederationCa};

    #[test]
    fn a_renewed_leaf_keeps_names_and_gets_the_requesters_key() {
        let root = FederationCa::init("home.collective").unwrap();
        let alice = root.sign_member("alice.home.collective").unwrap();
        let old = alice
            .issue_leaf_with_sans(
                "node-01@alice.home.collective",
                Component::Node,
                Duration::from_secs(60),
                &["127.0.0.1"],
            )
            .unwrap();
        let sans = extra_sans(&old.cert_der().unwrap()).unwrap();
        assert_eq!(sans, vec!["127.0.0.1".to_string()]);
        let request = LeafRequest::new().unwrap();
        let sans_ref: Vec<&str> = sans.iter().map(String::as_str).collect();
        let issued = alice
            .issue_leaf_for_csr(
                request.csr_der(),
                "node-01@alice.home.collective",
                Component::Node,
                Duration::from_secs(90),
                &sans_ref,
            )
            .unwrap();
        let renewed = request.into_bundle(issued.clone()).unwrap();
        let (a, b) = (old.identity().unwrap(), renewed.identity().unwrap());
        assert_eq!(a.address, b.address);
        assert_eq!(a.component, b.component);
        assert_ne!(a.serial, b.serial);
        assert_eq!(extra_sans(&renewed.cert_der().unwrap()).unwrap(), sans);
        // Another key cannot claim the certificate.
        assert!(matches!(
            LeafRequest::new().unwrap().into_bundle(issued),
            Err(PkiError::KeyMismatch)
        ));
    }

    #[test]
    fn garbage_csr_is_refused() {
        let root = FederationCa::init("home.collective").unwrap();
        let alice = root.sign_member("alice.home.collective").unwrap();
        let refused = alice.issue_leaf_for_csr(
            b"not a csr",
            "node-01@alice.home.collective",
            Component::Node,
            Duration::from_secs(90),
            &[],
        );
        assert!(matches!(refused, Err(PkiError::BadCsr(_))), "{refused:?}");
    }

    #[test]
    fn renewal_is_due_at_two_thirds_of_the_lifetime_from_issuance() {
        let root = FederationCa::init("home.collective").unwrap();
        let alice = root.sign_member("alice.home.collective").unwrap();
        let leaf = alice
            .issue_leaf(
                "c@alice.home.collective",
                Component::Client,
                Duration::from_secs(30),
            )
            .unwrap()
            .identity()
            .unwrap();
        let until_renewal = leaf
            .renew_at()
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        // 20 s after issuance, give or take the second precision of X.509 times.
        assert!(
            until_renewal > Duration::from_secs(17) && until_renewal <= Duration::from_secs(21),
            "{until_renewal:?}"
        );
    }
}
