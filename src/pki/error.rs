//! Errors of the PKI layer: bad names, bad certificates, failed signing, file IO.

use std::path::PathBuf;

/// Everything that can go wrong while issuing, loading or parsing federation certificates.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("invalid domain {domain:?}: {reason}")]
    InvalidDomain { domain: String, reason: String },
    #[error("invalid federated address {address:?}: {reason}")]
    InvalidAddress { address: String, reason: String },
    #[error("member domain {member} is not a subdomain of federation domain {federation}")]
    MemberOutsideFederation { member: String, federation: String },
    #[error("address {address} is outside member domain {member}")]
    AddressOutsideMember { address: String, member: String },
    #[error("extra subject alternative name {name:?} is outside member domain {member}")]
    SanOutsideMember { name: String, member: String },
    #[error("unknown component {0:?} (expected coordinator, node or client)")]
    UnknownComponent(String),
    #[error("issuer has expired or expires before the requested validity starts")]
    IssuerExpired,
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("malformed certificate: {0}")]
    Malformed(String),
    #[error("certificate lacks extension {oid}")]
    MissingExtension { oid: &'static str },
    #[error("extension {oid} is not a DER UTF8String")]
    BadExtension { oid: &'static str },
    #[error("private key does not match certificate")]
    KeyMismatch,
    #[error("certificate signing request refused: {0}")]
    BadCsr(String),
    #[error("malformed pem in {what}: {reason}")]
    Pem { what: &'static str, reason: String },
    #[error("io on {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

impl PkiError {
    pub(crate) fn malformed(e: impl std::fmt::Display) -> Self {
        PkiError::Malformed(e.to_string())
    }
}
