//! Small encoding helpers: the custom extension OIDs, DER UTF8String values, random serials.

use rand::RngCore;
use rcgen::{CustomExtension, SerialNumber};
use x509_parser::certificate::X509Certificate;
use x509_parser::der_parser::ber::BerObjectContent;

use super::PkiError;

/// Federation domain, on every certificate of the hierarchy.
pub const OID_FEDERATION_DOMAIN: &[u64] = &[1, 3, 6, 1, 4, 1, 99999, 1];
/// Member domain, on member CAs and leaves.
pub const OID_MEMBER_DOMAIN: &[u64] = &[1, 3, 6, 1, 4, 1, 99999, 2];
/// Component type (`coordinator`, `node`, `client`), on leaves.
pub const OID_COMPONENT: &[u64] = &[1, 3, 6, 1, 4, 1, 99999, 3];
/// Federated address (`coord-1@alice.home.collective`), on leaves.
pub const OID_FEDERATED_ADDRESS: &[u64] = &[1, 3, 6, 1, 4, 1, 99999, 4];

/// Serial numbers are this many random bytes with the top bit cleared (positive, RFC 5280 <= 20).
///
/// rcgen's default serial is a hash of the public key, so re-issuing for the same key would
/// reuse a serial and one CRL entry would revoke both certificates.
pub const SERIAL_LEN_BYTES: usize = 16;

/// DER tag of UTF8String.
const TAG_UTF8_STRING: u8 = 0x0c;

/// Dotted form of an OID, for error messages.
pub(crate) fn oid_name(oid: &[u64]) -> &'static str {
    match oid.last() {
        Some(1) => "1.3.6.1.4.1.99999.1 (federation domain)",
        Some(2) => "1.3.6.1.4.1.99999.2 (member domain)",
        Some(3) => "1.3.6.1.4.1.99999.3 (component)",
        Some(4) => "1.3.6.1.4.1.99999.4 (federated address)",
        _ => "unknown oid",
    }
}

/// A non-critical extension whose value is `value` as a DER UTF8String.
///
/// Non-critical is essential: webpki rejects any certificate with an unknown critical extension.
pub(crate) fn utf8_extension(oid: &[u64], value: &str) -> CustomExtension {
    let bytes = value.as_bytes();
    let mut der = Vec::with_capacity(bytes.len() + 4);
    der.push(TAG_UTF8_STRING);
    let len = bytes.len();
    if len < 0x80 {
        der.push(len as u8);
    } else {
        let len_bytes: Vec<u8> = len
            .to_be_bytes()
            .iter()
            .copied()
            .skip_while(|b| *b == 0)
            .collect();
        der.push(0x80 | len_bytes.len() as u8);
        der.extend_from_slice(&len_bytes);
    }
    der.extend_from_slice(bytes);
    // `from_oid_content` is non-critical by default; never call `set_criticality(true)` here.
    CustomExtension::from_oid_content(oid, der)
}

/// Reads a UTF8String extension from a parsed certificate; `None` when absent.
pub(crate) fn read_utf8_extension(
    cert: &X509Certificate<'_>,
    oid: &[u64],
) -> Result<Option<String>, PkiError> {
    let wanted = x509_parser::der_parser::oid::Oid::from(oid)
        .map_err(|e| PkiError::Malformed(format!("oid {oid:?}: {e:?}")))?;
    let Some(ext) = cert.extensions().iter().find(|e| e.oid == wanted) else {
        return Ok(None);
    };
    let bad = || PkiError::BadExtension { oid: oid_name(oid) };
    let (rest, obj) = x509_parser::der_parser::parse_der(ext.value).map_err(|_| bad())?;
    if !rest.is_empty() {
        return Err(bad());
    }
    match obj.content {
        BerObjectContent::UTF8String(s) => Ok(Some(s.to_owned())),
        _ => Err(bad()),
    }
}

/// Like [`read_utf8_extension`], but absence is an error.
pub(crate) fn require_utf8_extension(cert: &X509Certificate<'_>, oid: &[u64]) -> Result<String, PkiError> {
    read_utf8_extension(cert, oid)?.ok_or(PkiError::MissingExtension { oid: oid_name(oid) })
}

/// A fresh random serial number, top bit cleared so the DER INTEGER is positive.
pub(crate) fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; SERIAL_LEN_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    bytes[0] &= 0x7f;
    // A zero first byte would be stripped by DER's minimal encoding; keep serials full length.
    bytes[0] |= 0x01;
    SerialNumber::from_slice(&bytes)
}

/// Parses DER into an x509-parser certificate, with our error type.
pub(crate) fn parse_cert(der: &[u8]) -> Result<X509Certificate<'_>, PkiError> {
    let (rest, cert) = x509_parser::parse_x509_certificate(der).map_err(PkiError::malformed)?;
    if !rest.is_empty() {
        return Err(PkiError::Malformed("trailing bytes after certificate".into()));
    }
    Ok(cert)
}

/// The current time truncated to whole seconds, because X.509 times have second precision and
/// nesting checks must compare what is actually encoded.
pub(crate) fn now_seconds() -> time::OffsetDateTime {
    let now = time::OffsetDateTime::now_utc();
    now.replace_nanosecond(0).unwrap_or(now)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a test fails loudly on any unexpected error")]
mod tests {
    use super::*;

    #[test]
    fn long_values_use_long_form_length() {
        let value = "x".repeat(300);
        let ext = utf8_extension(OID_FEDERATED_ADDRESS, &value);
        let content = ext.content();
        assert_eq!(&content[..4], &[0x0c, 0x82, 0x01, 0x2c]);
        assert_eq!(content.len(), 304);
        assert!(!ext.criticality());
    }

    #[test]
    fn serials_are_positive_and_full_length() {
        let s = random_serial();
        assert_eq!(s.as_ref().len(), SERIAL_LEN_BYTES);
        assert_eq!(s.as_ref()[0] & 0x80, 0);
        assert_ne!(s.as_ref()[0], 0);
    }
}
