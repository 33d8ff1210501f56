//! What a certificate says about its holder, read back from the custom extensions.

use std::time::SystemTime;

use x509_parser::extensions::GeneralName;

use super::address::is_within;
use super::der::{
    OID_COMPONENT, OID_FEDERATED_ADDRESS, OID_FEDERATION_DOMAIN, OID_MEMBER_DOMAIN, parse_cert,
    read_utf8_extension, require_utf8_extension,
};
use super::{Component, FederatedAddress, PkiError};

/// The identity carried by a leaf certificate.
///
/// Parsing checks only that the leaf is self-consistent (address domain equals its member
/// domain, member domain under the federation domain); that the issuer vouches for it is the
/// TLS verifier's job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    /// Extension `.1`, e.g. `home.collective`.
    pub federation_domain: String,
    /// Extension `.2`, e.g. `alice.home.collective`.
    pub member_domain: String,
    /// Extension `.3`.
    pub component: Component,
    /// Extension `.4`, e.g. `coord-1@alice.home.collective`.
    pub address: FederatedAddress,
    /// The DNS names of the subject alternative name extension.
    pub dns_names: Vec<String>,
    /// Big-endian serial number bytes, as a CRL entry names them.
    pub serial: Vec<u8>,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

impl PeerIdentity {
    /// Reads the identity of a leaf certificate from its DER bytes.
    pub fn from_der(leaf_der: &[u8]) -> Result<PeerIdentity, PkiError> {
        let cert = parse_cert(leaf_der)?;
        let federation_domain = require_utf8_extension(&cert, OID_FEDERATION_DOMAIN)?;
        let member_domain = require_utf8_extension(&cert, OID_MEMBER_DOMAIN)?;
        let component: Component = require_utf8_extension(&cert, OID_COMPONENT)?.parse()?;
        let raw_address = require_utf8_extension(&cert, OID_FEDERATED_ADDRESS)?;
        let address = FederatedAddress::parse(&raw_address)?;
        if address.domain() != member_domain {
            return Err(PkiError::AddressOutsideMember {
                address: raw_address,
                member: member_domain,
            });
        }
        if !is_within(&member_domain, &federation_domain) {
            return Err(PkiError::MemberOutsideFederation {
                member: member_domain,
                federation: federation_domain,
            });
        }
        let mut dns_names = Vec::new();
        if let Some(san) = cert.subject_alternative_name().map_err(PkiError::malformed)? {
            for name in &san.value.general_names {
                if let GeneralName::DNSName(dns) = name {
                    dns_names.push((*dns).to_owned());
                }
            }
        }
        Ok(PeerIdentity {
            federation_domain,
            member_domain,
            component,
            address,
            dns_names,
            serial: cert.raw_serial().to_vec(),
            not_before: cert.validity().not_before.to_datetime().into(),
            not_after: cert.validity().not_after.to_datetime().into(),
        })
    }

    /// The serial as lowercase hex, for logs.
    pub fn serial_hex(&self) -> String {
        self.serial.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// What a CA certificate (root or member) says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaIdentity {
    /// Extension `.1`.
    pub federation_domain: String,
    /// Extension `.2`; `None` on the federation root.
    pub member_domain: Option<String>,
    pub serial: Vec<u8>,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

impl CaIdentity {
    /// Reads the identity of a root or member CA certificate from its DER bytes.
    pub fn from_der(ca_der: &[u8]) -> Result<CaIdentity, PkiError> {
        let cert = parse_cert(ca_der)?;
        if !cert.is_ca() {
            return Err(PkiError::Malformed("certificate is not a ca".into()));
        }
        Ok(CaIdentity {
            federation_domain: require_utf8_extension(&cert, OID_FEDERATION_DOMAIN)?,
            member_domain: read_utf8_extension(&cert, OID_MEMBER_DOMAIN)?,
            serial: cert.raw_serial().to_vec(),
            not_before: cert.validity().not_before.to_datetime().into(),
            not_after: cert.validity().not_after.to_datetime().into(),
        })
    }
}
