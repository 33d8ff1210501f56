//! Federated addresses (`local@domain`) and the DNS names derived from them.

use std::fmt;

use super::PkiError;

/// Longest DNS label, in bytes (RFC 1035 limit).
const LABEL_LEN_BYTES_MAX: usize = 63;

/// A process address such as `coord-1@alice.home.collective`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FederatedAddress {
    local: String,
    domain: String,
}

impl FederatedAddress {
    /// Parses `local@domain` with the federation's address rules (`collective_events::address`,
    /// which also folds case), and requires a process address: one named local part in one
    /// exact domain, no wildcard and no resource path.
    pub fn parse(address: &str) -> Result<Self, PkiError> {
        let bad = |reason: String| PkiError::InvalidAddress {
            address: address.to_owned(),
            reason,
        };
        let parsed = collective_events::FederatedAddress::parse(address).map_err(|e| bad(e.to_string()))?;
        match (parsed.name(), parsed.exact_domain()) {
            (Some(local), Some(domain)) => Ok(FederatedAddress {
                local: local.to_owned(),
                domain: domain.to_owned(),
            }),
            _ => Err(bad(
                "a process address names one local part in one domain, without wildcards or paths".into(),
            )),
        }
    }

    /// The part before `@`.
    pub fn local(&self) -> &str {
        &self.local
    }

    /// The member domain after `@`.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The DNS name a leaf for this address carries as SAN: `<label>.<domain>`.
    pub fn dns_name(&self) -> Result<String, PkiError> {
        Ok(format!("{}.{}", dns_label(&self.local)?, self.domain))
    }
}

impl fmt::Display for FederatedAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local, self.domain)
    }
}

/// Turns an address's local part into one DNS label: lowercase ASCII letters, digits and `-`;
/// every other character becomes `-`, and leading/trailing dashes are dropped.
///
/// Two local parts may map to the same label (`node_1`, `node.1`); that is harmless because the
/// authoritative identity is the address extension, which the policy checks, not the SAN.
pub fn dns_label(local: &str) -> Result<String, PkiError> {
    let mapped: String = local
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => c,
            _ => '-',
        })
        .collect();
    let label = mapped.trim_matches('-');
    let bad = |reason: &str| PkiError::InvalidAddress {
        address: local.to_owned(),
        reason: reason.to_owned(),
    };
    if label.is_empty() {
        return Err(bad("local part has no letter or digit to form a dns label"));
    }
    if label.len() > LABEL_LEN_BYTES_MAX {
        return Err(bad("local part makes a dns label longer than 63 bytes"));
    }
    Ok(label.to_owned())
}

/// Checks that `domain` is a DNS name of at least two labels and returns it in lowercase, by the
/// federation's address rules (`collective_events::address::parse_domain`).
pub fn validate_domain(domain: &str) -> Result<String, PkiError> {
    collective_events::address::parse_domain(domain).map_err(|e| PkiError::InvalidDomain {
        domain: domain.to_owned(),
        reason: e.to_string(),
    })
}

/// True when `name` equals `domain` or lies below it (`x.alice.home.collective` under
/// `alice.home.collective`); the RFC 5280 subtree rule for DNS names.
pub fn is_within(name: &str, domain: &str) -> bool {
    let name = name.to_ascii_lowercase();
    let domain = domain.to_ascii_lowercase();
    name == domain || name.strip_suffix(&domain).is_some_and(|head| head.ends_with('.'))
}

/// True when `name` lies strictly below `domain`.
pub(crate) fn is_strictly_within(name: &str, domain: &str) -> bool {
    is_within(name, domain) && name.len() > domain.len()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a test fails loudly on any unexpected error")]
mod tests {
    use super::*;

    #[test]
    fn address_parses_and_derives_dns_name() {
        // One canonical form, the event log's: local names and domains fold to lowercase.
        let a = FederatedAddress::parse("Coord_1@Alice.Home.Collective").unwrap();
        assert_eq!(a.local(), "coord_1");
        assert_eq!(a.domain(), "alice.home.collective");
        assert_eq!(a.dns_name().unwrap(), "coord-1.alice.home.collective");
        assert_eq!(a.to_string(), "coord_1@alice.home.collective");
    }

    #[test]
    fn bad_addresses_are_refused() {
        for bad in [
            "",
            "@alice.home.collective",
            "x@",
            "x@localhost",
            "x y@a.b",
            "x@a..b",
            "---@a.b",
        ] {
            let parsed = FederatedAddress::parse(bad).and_then(|a| a.dns_name());
            assert!(parsed.is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn subtree_rule_needs_a_label_boundary() {
        assert!(is_within("a.alice.home.collective", "alice.home.collective"));
        assert!(is_within("alice.home.collective", "alice.home.collective"));
        assert!(!is_within("malice.home.collective", "alice.home.collective"));
        assert!(is_strictly_within("alice.home.collective", "home.collective"));
        assert!(!is_strictly_within("home.collective", "home.collective"));
    }
}
