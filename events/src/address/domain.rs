//! DNS-style domain names as used in federated addresses: validation, case folding, suffix tests.
//!
//! Domains are folded to lowercase because DNS names are case-insensitive: `Alice.Home.Collective`
//! and `alice.home.collective` are one member, and one spelling keeps the event log and the
//! projections keyed consistently.

use super::{AddressError, DOMAIN_BYTES_MAX, LABEL_BYTES_MAX};

/// Validates a concrete domain (no wildcard) and returns its canonical lowercase spelling.
///
/// A domain needs at least two labels (`alice.collective`), each 1 to 63 bytes of `a-z`, `0-9`
/// and `-`, not starting or ending with `-`, and at most 253 bytes in all.
pub fn parse_domain(domain: &str) -> Result<String, AddressError> {
    let folded = domain.to_ascii_lowercase();
    check_labels(&folded, 2)?;
    Ok(folded)
}

/// Validates one domain label (a member name such as `bob`) and returns it in lowercase.
pub fn parse_label(label: &str) -> Result<String, AddressError> {
    let folded = label.to_ascii_lowercase();
    if folded.is_empty() {
        return Err(AddressError::EmptyLabel { domain: folded });
    }
    check_label(&folded, &folded)?;
    Ok(folded)
}

/// Whether `domain` lies strictly below `parent` (`alice.home.collective` below `home.collective`).
/// Both must already be canonical (see [`parse_domain`]).
pub fn is_strict_subdomain(domain: &str, parent: &str) -> bool {
    domain.len() > parent.len() + 1
        && domain.ends_with(parent)
        && domain.as_bytes()[domain.len() - parent.len() - 1] == b'.'
}

/// Validates the labels of a lowercase domain, requiring at least `labels_min` of them.
/// For a wildcard domain `*.suffix` the caller passes the suffix with `labels_min = 1`.
pub(super) fn check_labels(domain: &str, labels_min: usize) -> Result<(), AddressError> {
    if domain.len() > DOMAIN_BYTES_MAX {
        return Err(AddressError::DomainTooLong { bytes: domain.len() });
    }
    if domain.split('.').any(str::is_empty) {
        return Err(AddressError::EmptyLabel {
            domain: domain.to_owned(),
        });
    }
    if domain.split('.').count() < labels_min {
        return Err(AddressError::DomainWithoutDot {
            domain: domain.to_owned(),
        });
    }
    for label in domain.split('.') {
        check_label(label, domain)?;
    }
    Ok(())
}

fn check_label(label: &str, domain: &str) -> Result<(), AddressError> {
    if label.len() > LABEL_BYTES_MAX {
        let label_prefix = label.chars().take(16).collect();
        return Err(AddressError::LabelTooLong {
            label_prefix,
            bytes: label.len(),
        });
    }
    if let Some(character) = label.chars().find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '-')) {
        if character == '*' {
            return Err(AddressError::MisplacedWildcard {
                address: domain.to_owned(),
            });
        }
        return Err(AddressError::LabelInvalidCharacter {
            label: label.to_owned(),
            character,
        });
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(AddressError::LabelHyphenEdge {
            label: label.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn folds_case_and_checks_labels() {
        assert_eq!(
            parse_domain("Alice.Home.Collective"),
            Ok("alice.home.collective".to_owned())
        );
        assert!(matches!(
            parse_domain("collective"),
            Err(AddressError::DomainWithoutDot { .. })
        ));
        assert!(matches!(
            parse_domain("a..b"),
            Err(AddressError::EmptyLabel { .. })
        ));
        assert!(matches!(
            parse_domain("-a.b"),
            Err(AddressError::LabelHyphenEdge { .. })
        ));
    }

    #[test]
    fn strict_subdomain_respects_label_boundaries() {
        assert!(is_strict_subdomain("alice.home.collective", "home.collective"));
        assert!(is_strict_subdomain("x.alice.home.collective", "home.collective"));
        assert!(!is_strict_subdomain("home.collective", "home.collective"));
        assert!(!is_strict_subdomain("myhome.collective", "home.collective"));
        assert!(!is_strict_subdomain("collective", "home.collective"));
    }
}
