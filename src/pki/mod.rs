//! The federation's certificate hierarchy: root CA -> member CA -> leaf, Ed25519 throughout.
//!
//! Every certificate carries the federation domain in a non-critical extension (OID
//! `1.3.6.1.4.1.99999.1`); member CAs and leaves add the member domain (`.2`); leaves add the
//! component (`.3`) and the federated address (`.4`). Name constraints in X.509 bind only the
//! DNS SAN, so the `tls` layer cross-checks these extensions against the issuing member CA.
//!
//! This module performs file IO only in [`CertBundle`]; everything else is pure computation
//! plus randomness (keys and serial numbers).

mod address;
mod bundle;
mod component;
mod der;
mod error;
mod federation_ca;
mod identity;
mod member_ca;
mod removal;
mod renewal;

pub use address::{FederatedAddress, dns_label, is_within as is_within_domain, validate_domain};
pub use bundle::CertBundle;
pub(crate) use bundle::{sync_dir, write_atomic};
pub use component::Component;
pub use der::{
    OID_COMPONENT, OID_FEDERATED_ADDRESS, OID_FEDERATION_DOMAIN, OID_MEMBER_DOMAIN, SERIAL_LEN_BYTES,
};
pub use error::PkiError;
pub use federation_ca::{FederationCa, ROOT_CA_VALIDITY};
pub use identity::{CaIdentity, PeerIdentity};
pub use member_ca::{IssuedLeaf, MEMBER_CA_VALIDITY, MemberCa, RevokedSerial};
pub use removal::{REMOVAL_REASON_BYTES_MAX, sign_removal, verify_removal};
pub use renewal::{FINGERPRINT_BYTES, LeafRequest, RENEW_AT_FRACTION, extra_sans, fingerprint};
