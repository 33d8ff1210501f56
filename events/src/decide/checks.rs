//! Field checks shared by the decisions: byte lengths, paths, addresses, free text. Each turns a
//! malformed field into an `InvalidArgument` rejection that names the field.

use super::Rejection;
use crate::address::FederatedAddress;
use crate::path::NamespacePath;

/// Length of ids chosen by proposers (request ids, grant ids, invite ids), in bytes.
pub const ID_BYTES: usize = 16;
/// Length of a blake3 chunk hash or invite code hash, in bytes.
pub const HASH_BYTES: usize = 32;
/// Length of a certificate fingerprint (sha-256), in bytes.
pub const FINGERPRINT_BYTES: usize = 32;
/// Longest certificate serial, in bytes (RFC 5280 caps serials at 20 octets).
pub const SERIAL_BYTES_MAX: usize = 20;
/// Longest endpoint (`host:port`), in bytes.
pub const ENDPOINT_BYTES_MAX: usize = 256;
/// Longest free-text reason in a removal or revocation, in bytes.
pub const REASON_BYTES_MAX: usize = 1024;

/// Requires `bytes` to be exactly `expected` bytes long.
pub fn exact_len(bytes: &[u8], expected: usize, what: &str) -> Result<(), Rejection> {
    if bytes.len() == expected {
        return Ok(());
    }
    Err(Rejection::invalid(format!(
        "{what} must be {expected} bytes, got {}",
        bytes.len()
    )))
}

/// Requires free text to be at most `limit` bytes.
pub fn text_max(text: &str, limit: usize, what: &str) -> Result<(), Rejection> {
    if text.len() <= limit {
        return Ok(());
    }
    Err(Rejection::invalid(format!(
        "{what} is {} bytes, more than the limit of {limit}",
        text.len()
    )))
}

/// Requires a non-empty endpoint of bounded length; its syntax is the transport's business.
pub fn endpoint(text: &str, what: &str) -> Result<(), Rejection> {
    if text.is_empty() {
        return Err(Rejection::invalid(format!("{what} endpoint is empty")));
    }
    text_max(text, ENDPOINT_BYTES_MAX, &format!("{what} endpoint"))
}

/// Parses a namespace path.
pub fn path(text: &str, what: &str) -> Result<NamespacePath, Rejection> {
    NamespacePath::parse(text).map_err(|e| Rejection::invalid(format!("{what}: {e}")))
}

/// Parses any address or pattern.
pub fn address(text: &str, what: &str) -> Result<FederatedAddress, Rejection> {
    FederatedAddress::parse(text).map_err(|e| Rejection::invalid(format!("{what}: {e}")))
}

/// Parses one concrete principal (`name@domain`), the only kind a certificate or node can be.
pub fn principal(text: &str, what: &str) -> Result<FederatedAddress, Rejection> {
    let parsed = address(text, what)?;
    if !parsed.is_principal() {
        return Err(Rejection::invalid(format!(
            "{what} '{parsed}' must be one principal (name@domain)"
        )));
    }
    Ok(parsed)
}

/// Parses a principal that must belong to `member_domain`.
pub fn principal_in(text: &str, member_domain: &str, what: &str) -> Result<FederatedAddress, Rejection> {
    let parsed = principal(text, what)?;
    if !parsed.is_local(member_domain) {
        return Err(Rejection::invalid(format!(
            "{what} '{parsed}' is not in this member's domain {member_domain}"
        )));
    }
    Ok(parsed)
}

/// Requires an enum field to hold a known, specified value.
pub fn known_enum<E: TryFrom<i32> + PartialEq>(
    value: i32,
    unspecified: E,
    what: &str,
) -> Result<E, Rejection> {
    match E::try_from(value) {
        Ok(known) if known != unspecified => Ok(known),
        Ok(_) => Err(Rejection::invalid(format!("{what} is unspecified"))),
        Err(_) => Err(Rejection::invalid(format!("{what} has unknown value {value}"))),
    }
}

/// Lowercase hex of an id, for messages.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
