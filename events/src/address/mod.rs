//! Federated addresses: `local@domain` for principals, `/path@domain` for resources, and the
//! wildcards grant subjects use (`*@alice.home.collective`, `*@*.home.collective`).
//!
//! Canonical form, decided here once:
//! - domains and local names are folded to ASCII lowercase on parse (DNS is case-insensitive, and
//!   letting `Alice@x` and `alice@x` be two identities would invite impersonation);
//! - resource paths keep their case (the namespace is case-sensitive, like a Linux file system)
//!   and must be canonical namespace paths (see [`crate::path`]);
//! - a resource path may itself contain `@`; the domain is what follows the last `@`.
//!
//! So `parse(x.to_string()) == x` for every parsed `x`, and equality is plain string equality of
//! the canonical form.

mod domain;
mod error;

use std::fmt;

pub use domain::{is_strict_subdomain, parse_domain, parse_label};
pub use error::AddressError;

use crate::path::{NamespacePath, PATH_BYTES_MAX};

/// Longest local name, in bytes (as for the local part of an e-mail address).
pub const LOCAL_BYTES_MAX: usize = 64;
/// Longest domain, in bytes (DNS).
pub const DOMAIN_BYTES_MAX: usize = 253;
/// Longest domain label, in bytes (DNS).
pub const LABEL_BYTES_MAX: usize = 63;
/// Longest address of any kind, in bytes: a maximal resource path, `@`, a maximal domain.
pub const ADDRESS_BYTES_MAX: usize = PATH_BYTES_MAX + 1 + DOMAIN_BYTES_MAX;

/// A parsed, canonical federated address or address pattern.
///
/// Ordered by domain first, so that sorted lists group by member.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FederatedAddress {
    domain: DomainPart,
    local: LocalPart,
}

/// What stands before the `@`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LocalPart {
    /// `*`: any principal of the domain.
    Any,
    /// A principal: a user, node, coordinator or client (`node-01`, `alice`).
    Name(String),
    /// A resource in the member's namespace (`/files/data.txt`).
    Resource(NamespacePath),
}

/// What stands after the `@`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DomainPart {
    /// One domain, e.g. `alice.home.collective`.
    Exact(String),
    /// `*.suffix`: every domain strictly below `suffix`, e.g. `*.home.collective`.
    AnyBelow(String),
}

impl FederatedAddress {
    /// Parses and canonicalises an address; see [`AddressError`] for every rule.
    pub fn parse(text: &str) -> Result<Self, AddressError> {
        if text.is_empty() {
            return Err(AddressError::Empty);
        }
        if text.len() > ADDRESS_BYTES_MAX {
            return Err(AddressError::TooLong { bytes: text.len() });
        }
        if text.starts_with('/') {
            return parse_resource(text);
        }
        let (local, domain) = match text.split_once('@') {
            None => {
                return Err(AddressError::MissingAt {
                    address: text.to_owned(),
                });
            }
            Some((_, rest)) if rest.contains('@') => {
                return Err(AddressError::TooManyAt {
                    address: text.to_owned(),
                });
            }
            Some(parts) => parts,
        };
        if local.is_empty() {
            return Err(AddressError::EmptyLocal {
                address: text.to_owned(),
            });
        }
        if domain.is_empty() {
            return Err(AddressError::EmptyDomain {
                address: text.to_owned(),
            });
        }
        let local = parse_local(local, text)?;
        let domain = parse_domain_part(domain, text)?;
        if matches!((&local, &domain), (LocalPart::Name(_), DomainPart::AnyBelow(_))) {
            return Err(AddressError::NameWithWildcardDomain {
                address: text.to_owned(),
            });
        }
        Ok(Self { domain, local })
    }

    pub fn local(&self) -> &LocalPart {
        &self.local
    }

    pub fn domain(&self) -> &DomainPart {
        &self.domain
    }

    /// The principal's name, if this is a concrete principal address.
    pub fn name(&self) -> Option<&str> {
        match &self.local {
            LocalPart::Name(name) => Some(name),
            _ => None,
        }
    }

    /// The resource path, if this is a resource address.
    pub fn resource(&self) -> Option<&NamespacePath> {
        match &self.local {
            LocalPart::Resource(path) => Some(path),
            _ => None,
        }
    }

    /// The exact domain, or `None` for a wildcard domain.
    pub fn exact_domain(&self) -> Option<&str> {
        match &self.domain {
            DomainPart::Exact(domain) => Some(domain),
            DomainPart::AnyBelow(_) => None,
        }
    }

    /// Whether this is a pattern (`*` anywhere) rather than one principal or resource.
    pub fn is_wildcard(&self) -> bool {
        matches!(self.local, LocalPart::Any) || matches!(self.domain, DomainPart::AnyBelow(_))
    }

    /// Whether this is one concrete principal (`name@domain`): what a certificate can name.
    pub fn is_principal(&self) -> bool {
        self.name().is_some()
    }

    /// Whether the address belongs to `my_domain` (compared case-insensitively). Wildcard domains
    /// are never local: they span members.
    pub fn is_local(&self, my_domain: &str) -> bool {
        self.exact_domain()
            .is_some_and(|domain| domain.eq_ignore_ascii_case(my_domain))
    }

    /// Whether every address `other` stands for is also matched by `self`, as a grant subject.
    ///
    /// For a concrete `other` this is the usual pattern match. A pattern `other` is matched only
    /// by a pattern at least as wide (`*@*.collective` matches `*@alice.collective`), so this can
    /// also answer "does this grant cover that one". `*` matches principals, never resources.
    pub fn matches(&self, other: &FederatedAddress) -> bool {
        let local = match (&self.local, &other.local) {
            (LocalPart::Any, LocalPart::Any | LocalPart::Name(_)) => true,
            (LocalPart::Any, LocalPart::Resource(_)) => false,
            (mine, theirs) => mine == theirs,
        };
        let domain = match (&self.domain, &other.domain) {
            (DomainPart::Exact(mine), DomainPart::Exact(theirs)) => mine == theirs,
            (DomainPart::Exact(_), DomainPart::AnyBelow(_)) => false,
            (DomainPart::AnyBelow(suffix), DomainPart::Exact(theirs)) => is_strict_subdomain(theirs, suffix),
            (DomainPart::AnyBelow(mine), DomainPart::AnyBelow(theirs)) => {
                mine == theirs || is_strict_subdomain(theirs, mine)
            }
        };
        local && domain
    }
}

impl fmt::Display for FederatedAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.local {
            LocalPart::Any => f.write_str("*")?,
            LocalPart::Name(name) => f.write_str(name)?,
            LocalPart::Resource(path) => f.write_str(path.as_str())?,
        }
        match &self.domain {
            DomainPart::Exact(domain) => write!(f, "@{domain}"),
            DomainPart::AnyBelow(suffix) => write!(f, "@*.{suffix}"),
        }
    }
}

impl std::str::FromStr for FederatedAddress {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

fn parse_resource(text: &str) -> Result<FederatedAddress, AddressError> {
    let Some((path, domain)) = text.rsplit_once('@') else {
        return Err(AddressError::MissingAt {
            address: text.to_owned(),
        });
    };
    if domain.is_empty() {
        return Err(AddressError::EmptyDomain {
            address: text.to_owned(),
        });
    }
    let domain = parse_domain_part(domain, text)?;
    if matches!(domain, DomainPart::AnyBelow(_)) {
        return Err(AddressError::ResourceWithWildcardDomain {
            address: text.to_owned(),
        });
    }
    let path = NamespacePath::parse(path).map_err(|source| AddressError::InvalidResource {
        address: text.to_owned(),
        source,
    })?;
    Ok(FederatedAddress {
        domain,
        local: LocalPart::Resource(path),
    })
}

fn parse_local(local: &str, address: &str) -> Result<LocalPart, AddressError> {
    if local == "*" {
        return Ok(LocalPart::Any);
    }
    if local.contains('*') {
        return Err(AddressError::MisplacedWildcard {
            address: address.to_owned(),
        });
    }
    if local.len() > LOCAL_BYTES_MAX {
        return Err(AddressError::LocalTooLong {
            local: local.to_owned(),
            bytes: local.len(),
        });
    }
    let folded = local.to_ascii_lowercase();
    let allowed = |c: char| matches!(c, 'a'..='z' | '0'..='9' | '.' | '_' | '-');
    if let Some(character) = folded.chars().find(|&c| !allowed(c)) {
        return Err(AddressError::LocalInvalidCharacter {
            local: local.to_owned(),
            character,
        });
    }
    let alphanumeric_edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if !alphanumeric_edge(folded.chars().next()) || !alphanumeric_edge(folded.chars().last()) {
        return Err(AddressError::LocalBadEdge {
            local: local.to_owned(),
        });
    }
    Ok(LocalPart::Name(folded))
}

fn parse_domain_part(text: &str, address: &str) -> Result<DomainPart, AddressError> {
    let folded = text.to_ascii_lowercase();
    match folded.strip_prefix("*.") {
        Some(suffix) if !suffix.contains('*') => {
            domain::check_labels(suffix, 1)?;
            if folded.len() > DOMAIN_BYTES_MAX {
                return Err(AddressError::DomainTooLong { bytes: folded.len() });
            }
            Ok(DomainPart::AnyBelow(suffix.to_owned()))
        }
        _ if folded.contains('*') => Err(AddressError::MisplacedWildcard {
            address: address.to_owned(),
        }),
        _ => {
            domain::check_labels(&folded, 2)?;
            Ok(DomainPart::Exact(folded))
        }
    }
}
