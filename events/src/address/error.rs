//! Why a string is not a federated address: one variant per rule, each naming what is wrong.

use crate::path::PathError;

/// A rejected federated address. The messages are meant for the person who typed the address.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("address is empty")]
    Empty,
    #[error("address is {bytes} bytes long, more than the limit of {limit}", limit = super::ADDRESS_BYTES_MAX)]
    TooLong { bytes: usize },
    #[error("address {address:?} has no '@' (expected local@domain or /path@domain)")]
    MissingAt { address: String },
    #[error("address {address:?} has more than one '@' (only a /resource path may contain '@')")]
    TooManyAt { address: String },
    #[error("address {address:?} has nothing before the '@'")]
    EmptyLocal { address: String },
    #[error("address {address:?} has nothing after the '@'")]
    EmptyDomain { address: String },
    #[error("local part {local:?} is {bytes} bytes long, more than the limit of {limit}", limit = super::LOCAL_BYTES_MAX)]
    LocalTooLong { local: String, bytes: usize },
    #[error(
        "local part {local:?} contains {character:?}; allowed are a-z, 0-9, '.', '_' and '-' \
         (uppercase is folded to lowercase)"
    )]
    LocalInvalidCharacter { local: String, character: char },
    #[error("local part {local:?} must start and end with a letter or digit")]
    LocalBadEdge { local: String },
    #[error("domain {domain:?} has no dot (expected at least two labels, e.g. alice.home.collective)")]
    DomainWithoutDot { domain: String },
    #[error("domain is {bytes} bytes long, more than the limit of {limit}", limit = super::DOMAIN_BYTES_MAX)]
    DomainTooLong { bytes: usize },
    #[error("domain {domain:?} has an empty label")]
    EmptyLabel { domain: String },
    #[error("domain label {label_prefix:?}... is {bytes} bytes long, more than the limit of {limit}", limit = super::LABEL_BYTES_MAX)]
    LabelTooLong { label_prefix: String, bytes: usize },
    #[error("domain label {label:?} contains {character:?}; allowed are a-z, 0-9 and '-'")]
    LabelInvalidCharacter { label: String, character: char },
    #[error("domain label {label:?} must not start or end with '-'")]
    LabelHyphenEdge { label: String },
    #[error(
        "wildcard misplaced in {address:?}: '*' may only be the whole local part or the first \
         label of the domain (as in *@*.home.collective)"
    )]
    MisplacedWildcard { address: String },
    #[error(
        "address {address:?} names someone in any domain; a wildcard domain needs a wildcard local \
         part (*@*.suffix), because names are only meaningful inside one member's domain"
    )]
    NameWithWildcardDomain { address: String },
    #[error("resource {address:?} cannot use a wildcard domain: a resource lives in one member")]
    ResourceWithWildcardDomain { address: String },
    #[error("resource path in {address:?} is invalid: {source}")]
    InvalidResource { address: String, source: PathError },
}
