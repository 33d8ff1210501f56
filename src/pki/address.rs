//! Federated addresses (`local@domain`) and the DNS names derived from them.

use std::fmt;

use super::PkiError;

/// Longest DNS name we accept, in bytes (RFC 1035 limit).
const DOMAIN_LEN_BYTES_MAX: usize = 253;
/// Longest DNS label, in bytes (RFC 1035 limit).
const LABEL_LEN_BYTES_MAX: usize = 63;
/// Longest local part of an address, in bytes; generous, but bounded so certificates stay small.
const LOCAL_LEN_BYTES_MAX: usize = 128;

/// A process address such as `coord-1@alice.home.collective`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FederatedAddress {
    local: String,
    domain: String,
}

impl FederatedAddress {
    /// Parses `local@domain`; the domain is normalised to lowercase and must be a valid DNS name.
    pub fn parse(address: &str) -> Result<Self, PkiError> {
        let bad = |reason| PkiError::InvalidAddress {
            address: address.to_owned(),
            reason,
        };
        let (local, domain) = address.rsplit_once('@').ok_or_else(|| bad("missing '@'"))?;
        if local.is_empty() {
            return Err(bad("empty local part"));
        }
        if local.len() > LOCAL_LEN_BYTES_MAX {
            return Err(bad("local part longer than 128 bytes"));
        }
        if local.contains('@') || local.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(bad("local part contains '@', whitespace or control characters"));
        }
        let domain = validate_domain(domain)?;
        Ok(FederatedAddress {
            local: local.to_owned(),
            domain,
        })
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
    let bad = |reason| PkiError::InvalidAddress {
        address: local.to_owned(),
        reason,
    };
    if label.is_empty() {
        return Err(bad("local part has no letter or digit to form a dns label"));
    }
    if label.len() > LABEL_LEN_BYTES_MAX {
        return Err(bad("local part makes a dns label longer than 63 bytes"));
    }
    Ok(label.to_owned())
}

/// Checks that `domain` is a DNS name of at least two labels and returns it in lowercase.
pub fn validate_domain(domain: &str) -> Result<String, PkiError> {
    let bad = |reason| PkiError::InvalidDomain {
        domain: domain.to_owned(),
        reason,
    };
    let lower = domain.to_ascii_lowercase();
    if lower.is_empty() || lower.len() > DOMAIN_LEN_BYTES_MAX {
        return Err(bad("length must be 1 to 253 bytes"));
    }
    let labels: Vec<&str> = lower.split('.').collect();
    if labels.len() < 2 {
        return Err(bad("needs at least two labels"));
    }
    for label in labels {
        if label.is_empty() || label.len() > LABEL_LEN_BYTES_MAX {
            return Err(bad("every label must be 1 to 63 bytes"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(bad("labels may hold only letters, digits and '-'"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(bad("labels may not start or end with '-'"));
        }
    }
    Ok(lower)
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
        let a = FederatedAddress::parse("Coord_1@Alice.Home.Collective").unwrap();
        assert_eq!(a.local(), "Coord_1");
        assert_eq!(a.domain(), "alice.home.collective");
        assert_eq!(a.dns_name().unwrap(), "coord-1.alice.home.collective");
        assert_eq!(a.to_string(), "Coord_1@alice.home.collective");
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
