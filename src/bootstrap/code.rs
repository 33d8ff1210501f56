//! The invite code: what a joiner pastes. It carries the secret and everything needed to reach
//! and authenticate the inviting member's bootstrap endpoint, so nothing is trusted on first use.
//!
//! Format: `coll1-` followed by lowercase base32 (RFC 4648, no padding) of a protobuf
//! [`InviteCodeBody`] and a 4-byte blake3 checksum of it. The checksum turns a truncated or
//! mistyped code into a clear local error instead of a confusing refusal from the server.

use prost::Message;

/// Prefix of every invite code; the digit is the format version.
pub const CODE_PREFIX: &str = "coll1-";
/// Bytes of secret in a code: 160 bits from the operating system's CSPRNG (32 base32 characters).
pub const SECRET_BYTES: usize = 20;
/// Length of the SHA-256 fingerprint of the federation root certificate.
pub const FINGERPRINT_BYTES: usize = 32;
/// Bytes of checksum at the end of the encoded body.
const CHECKSUM_BYTES: usize = 4;
/// Longest code accepted, in characters: a bound on what is decoded at all.
pub const CODE_CHARS_MAX: usize = 2048;
/// Most bootstrap endpoints one code names.
pub const ENDPOINTS_MAX: usize = 8;

/// The decoded content of an invite code.
#[derive(Clone, PartialEq, Message)]
pub struct InviteCodeBody {
    /// The secret; the member's log knows only its blake3 hash.
    #[prost(bytes = "vec", tag = "1")]
    pub secret: Vec<u8>,
    /// Bootstrap endpoints (`host:port`) of the inviting member, tried in order.
    #[prost(string, repeated, tag = "2")]
    pub endpoints: Vec<String>,
    /// SHA-256 of the federation root certificate (DER) the server's chain must end in.
    #[prost(bytes = "vec", tag = "3")]
    pub root_fingerprint: Vec<u8>,
    /// The inviting member's domain: the server must present a coordinator certificate of it.
    #[prost(string, tag = "4")]
    pub member_domain: String,
    /// Whether this is a member invite (`federation join`) rather than a user invite.
    #[prost(bool, tag = "5")]
    pub member_invite: bool,
}

/// Why a code could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodeError {
    #[error("an invite code starts with {CODE_PREFIX:?}; check that the whole code was copied")]
    Prefix,
    #[error("the invite code is {0} characters long, more than {CODE_CHARS_MAX}")]
    TooLong(usize),
    #[error("the invite code contains characters outside base32 (a-z, 2-7): {0}")]
    Alphabet(String),
    #[error("the invite code is truncated or mistyped (its checksum does not match)")]
    Checksum,
    #[error("the invite code is malformed: {0}")]
    Malformed(String),
}

impl InviteCodeBody {
    /// A new body with a fresh secret from the operating system's CSPRNG.
    pub fn generate(
        endpoints: Vec<String>,
        root_fingerprint: [u8; 32],
        member_domain: &str,
        member_invite: bool,
    ) -> Self {
        let secret: [u8; SECRET_BYTES] = rand::random();
        InviteCodeBody {
            secret: secret.to_vec(),
            endpoints,
            root_fingerprint: root_fingerprint.to_vec(),
            member_domain: member_domain.to_string(),
            member_invite,
        }
    }

    /// The blake3 hash of the secret: what `IssueInvite` and `RedeemInvite` carry.
    pub fn code_hash(&self) -> [u8; 32] {
        code_hash(&self.secret)
    }

    pub fn encode_code(&self) -> String {
        let mut bytes = self.encode_to_vec();
        let checksum = blake3::hash(&bytes);
        bytes.extend_from_slice(&checksum.as_bytes()[..CHECKSUM_BYTES]);
        format!(
            "{CODE_PREFIX}{}",
            data_encoding::BASE32_NOPAD.encode(&bytes).to_ascii_lowercase()
        )
    }

    /// Reads a code as pasted: surrounding whitespace and inner spaces or line breaks are ignored.
    pub fn decode_code(code: &str) -> Result<InviteCodeBody, CodeError> {
        let compact: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        if compact.len() > CODE_CHARS_MAX {
            return Err(CodeError::TooLong(compact.len()));
        }
        let lower = compact.to_ascii_lowercase();
        let Some(payload) = lower.strip_prefix(CODE_PREFIX) else {
            return Err(CodeError::Prefix);
        };
        let bad: String = payload
            .chars()
            .filter(|c| !matches!(c, 'a'..='z' | '2'..='7'))
            .take(8)
            .collect();
        if !bad.is_empty() {
            return Err(CodeError::Alphabet(bad));
        }
        // A length that no byte string encodes to is a truncation as well.
        let bytes = data_encoding::BASE32_NOPAD
            .decode(payload.to_ascii_uppercase().as_bytes())
            .map_err(|_| CodeError::Checksum)?;
        if bytes.len() <= CHECKSUM_BYTES {
            return Err(CodeError::Checksum);
        }
        let (body, checksum) = bytes.split_at(bytes.len() - CHECKSUM_BYTES);
        if blake3::hash(body).as_bytes()[..CHECKSUM_BYTES] != *checksum {
            return Err(CodeError::Checksum);
        }
        let decoded = InviteCodeBody::decode(body).map_err(|e| CodeError::Malformed(e.to_string()))?;
        decoded.check()?;
        Ok(decoded)
    }

    fn check(&self) -> Result<(), CodeError> {
        let malformed = |what: String| Err(CodeError::Malformed(what));
        if self.secret.len() != SECRET_BYTES {
            return malformed(format!(
                "its secret is {} bytes, not {SECRET_BYTES}",
                self.secret.len()
            ));
        }
        if self.root_fingerprint.len() != FINGERPRINT_BYTES {
            return malformed("its root fingerprint is not 32 bytes".into());
        }
        if self.endpoints.is_empty() || self.endpoints.len() > ENDPOINTS_MAX {
            return malformed(format!(
                "it names {} endpoints (1 to {ENDPOINTS_MAX})",
                self.endpoints.len()
            ));
        }
        if self.member_domain.is_empty() {
            return malformed("it names no member".into());
        }
        Ok(())
    }
}

/// The blake3 hash of an invite secret.
pub fn code_hash(secret: &[u8]) -> [u8; 32] {
    *blake3::hash(secret).as_bytes()
}

/// Whether `presented` (the hash of a presented secret) equals `stored`, in time independent of
/// where they differ. `blake3::Hash` compares in constant time.
pub fn hashes_equal(stored: &[u8], presented: &[u8; 32]) -> bool {
    let Ok(stored) = <[u8; 32]>::try_from(stored) else {
        return false;
    };
    blake3::Hash::from_bytes(stored) == blake3::Hash::from_bytes(*presented)
}

/// SHA-256 of a certificate's DER: how a code names the federation root.
pub fn fingerprint(der: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn body() -> InviteCodeBody {
        InviteCodeBody::generate(
            vec!["127.0.0.1:7402".into()],
            [7; 32],
            "alice.home.collective",
            false,
        )
    }

    #[test]
    fn a_code_round_trips_and_survives_case_and_whitespace() {
        let body = body();
        let code = body.encode_code();
        assert!(code.starts_with(CODE_PREFIX));
        assert_eq!(InviteCodeBody::decode_code(&code).unwrap(), body);
        let pasted = format!("  {}\n{} ", &code[..40].to_ascii_uppercase(), &code[40..]);
        assert_eq!(InviteCodeBody::decode_code(&pasted).unwrap(), body);
    }

    #[test]
    fn two_codes_have_different_secrets_of_at_least_16_characters() {
        let (a, b) = (body(), body());
        assert_ne!(a.secret, b.secret);
        assert!(data_encoding::BASE32_NOPAD.encode(&a.secret).len() >= 16);
    }

    #[test]
    fn every_truncation_is_refused_with_a_clear_error() {
        let code = body().encode_code();
        for cut in 0..code.len() {
            let error = InviteCodeBody::decode_code(&code[..cut]).unwrap_err();
            assert!(
                matches!(error, CodeError::Prefix | CodeError::Checksum),
                "cut at {cut}: {error:?}"
            );
        }
    }

    #[test]
    fn a_changed_character_or_foreign_text_is_refused() {
        let code = body().encode_code();
        let mut chars: Vec<char> = code.chars().collect();
        let last = chars.len() - 10;
        chars[last] = if chars[last] == 'a' { 'b' } else { 'a' };
        let typo: String = chars.into_iter().collect();
        assert_eq!(
            InviteCodeBody::decode_code(&typo).unwrap_err(),
            CodeError::Checksum
        );
        assert_eq!(
            InviteCodeBody::decode_code("hello").unwrap_err(),
            CodeError::Prefix
        );
        assert!(matches!(
            InviteCodeBody::decode_code("coll1-abc!def").unwrap_err(),
            CodeError::Alphabet(_)
        ));
        let long = format!("coll1-{}", "a".repeat(CODE_CHARS_MAX));
        assert!(matches!(
            InviteCodeBody::decode_code(&long).unwrap_err(),
            CodeError::TooLong(_)
        ));
    }

    #[test]
    fn a_well_formed_body_missing_parts_is_malformed() {
        let mut empty = body();
        empty.endpoints.clear();
        assert!(matches!(
            InviteCodeBody::decode_code(&empty.encode_code()).unwrap_err(),
            CodeError::Malformed(_)
        ));
    }

    #[test]
    fn hashes_compare_equal_only_when_equal() {
        let h = code_hash(b"secret");
        assert!(hashes_equal(&h, &h));
        assert!(!hashes_equal(&code_hash(b"other"), &h));
        assert!(!hashes_equal(&h[..31], &h));
    }
}
