//! TLS 1.3 record protection (RFC 8446 §5): one direction's traffic key, IV and sequence
//! number, sealing records into a buffer and opening them where they lie.
//!
//! Only what a TLS 1.3 connection needs once rustls finished its handshake: every record is
//! `application_data` on the outside (type 23, legacy version 0x0303), the real content type is
//! the last non-zero byte of the plaintext, and the nonce is the IV XOR the record's sequence
//! number.

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use rustls::{ConnectionTrafficSecrets, Error, InvalidMessage, PeerMisbehaved};

/// Largest plaintext of one record (2^14 bytes, RFC 8446 §5.1).
pub(crate) const RECORD_PLAINTEXT_BYTES_MAX: usize = 16 * 1024;
/// Largest ciphertext of one record: the plaintext, the content type, padding and the tag may
/// not exceed 2^14 + 256 bytes (RFC 8446 §5.2).
pub(crate) const RECORD_CIPHERTEXT_BYTES_MAX: usize = RECORD_PLAINTEXT_BYTES_MAX + 256;
/// A record's header: outer type, legacy version, length.
pub(crate) const HEADER_BYTES: usize = 5;
/// The AEAD tag every suite we offer appends (AES-GCM and ChaCha20-Poly1305 alike).
pub(crate) const TAG_BYTES: usize = 16;
/// Space one sealed record of `plaintext` bytes takes: header, plaintext, type, tag.
pub(crate) const fn sealed_bytes(plaintext: usize) -> usize {
    HEADER_BYTES + plaintext + 1 + TAG_BYTES
}

pub(crate) const CONTENT_ALERT: u8 = 21;
pub(crate) const CONTENT_HANDSHAKE: u8 = 22;
pub(crate) const CONTENT_APPLICATION_DATA: u8 = 23;
const LEGACY_VERSION: [u8; 2] = [0x03, 0x03];

/// One direction of a connection: its key, its IV and the next record's sequence number.
pub(crate) struct Protection {
    key: LessSafeKey,
    iv: [u8; aead::NONCE_LEN],
    seq: u64,
}

impl Protection {
    /// The direction rustls handed over, starting at sequence number `seq`.
    pub(crate) fn new(seq: u64, secrets: &ConnectionTrafficSecrets) -> Result<Protection, Error> {
        let (algorithm, key, iv) = match secrets {
            ConnectionTrafficSecrets::Aes128Gcm { key, iv } => (&aead::AES_128_GCM, key, iv),
            ConnectionTrafficSecrets::Aes256Gcm { key, iv } => (&aead::AES_256_GCM, key, iv),
            ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => (&aead::CHACHA20_POLY1305, key, iv),
            _ => {
                return Err(Error::General(
                    "a cipher suite this record layer does not know".into(),
                ));
            }
        };
        let key = UnboundKey::new(algorithm, key.as_ref())
            .map_err(|_| Error::General("a traffic key of the wrong length".into()))?;
        let iv = iv
            .as_ref()
            .try_into()
            .map_err(|_| Error::General("a traffic IV of the wrong length".into()))?;
        Ok(Protection {
            key: LessSafeKey::new(key),
            iv,
            seq,
        })
    }

    /// Records sealed or opened with this key so far (the next sequence number).
    pub(crate) fn records(&self) -> u64 {
        self.seq
    }

    /// The next record's nonce (RFC 8446 §5.3); the sequence number moves on.
    fn next_nonce(&mut self) -> Result<Nonce, Error> {
        let mut nonce = self.iv;
        for (byte, seq) in nonce[aead::NONCE_LEN - 8..]
            .iter_mut()
            .zip(self.seq.to_be_bytes())
        {
            *byte ^= seq;
        }
        self.seq = self.seq.checked_add(1).ok_or(Error::EncryptError)?;
        Ok(Nonce::assume_unique_for_key(nonce))
    }

    /// Appends `plaintext` (at most [`RECORD_PLAINTEXT_BYTES_MAX`] bytes) to `out` as one
    /// record of inner type `content_type`.
    pub(crate) fn seal(
        &mut self,
        content_type: u8,
        plaintext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        let start = begin(out);
        out.extend_from_slice(plaintext);
        self.finish(content_type, out, start)
    }

    /// Seals the record [`begin`] started at `start` in `out`, whose plaintext the caller
    /// appended after it (at most [`RECORD_PLAINTEXT_BYTES_MAX`] bytes), as inner type
    /// `content_type`: the plaintext is encrypted where it lies.
    pub(crate) fn finish(&mut self, content_type: u8, out: &mut Vec<u8>, start: usize) -> Result<(), Error> {
        let plaintext = out.len() - start - HEADER_BYTES;
        debug_assert!(plaintext <= RECORD_PLAINTEXT_BYTES_MAX);
        let length = u16::try_from(plaintext + 1 + TAG_BYTES).map_err(|_| Error::EncryptError)?;
        out[start + 3..start + HEADER_BYTES].copy_from_slice(&length.to_be_bytes());
        out.push(content_type);
        let header: [u8; HEADER_BYTES] = out[start..start + HEADER_BYTES]
            .try_into()
            .map_err(|_| Error::EncryptError)?;
        let nonce = self.next_nonce()?;
        let tag = self
            .key
            .seal_in_place_separate_tag(nonce, Aad::from(header), &mut out[start + HEADER_BYTES..])
            .map_err(|_| Error::EncryptError)?;
        out.extend_from_slice(tag.as_ref());
        debug_assert_eq!(out.len() - start, sealed_bytes(plaintext));
        Ok(())
    }

    /// Opens the one whole record that lies in `region` from `at` to its end (header included,
    /// its length what the header says), moving its plaintext to the front of `region` as it
    /// decrypts: AES-GCM writes each block where it is told, so the move costs nothing beyond
    /// the decryption. Returns its inner content type and the length of its plaintext, now at
    /// `region[..length]`. A record that fails to open is an error: the connection cannot go
    /// on.
    pub(crate) fn open(&mut self, region: &mut [u8], at: usize) -> Result<(u8, usize), Error> {
        let header: [u8; HEADER_BYTES] = region
            .get(at..at + HEADER_BYTES)
            .and_then(|h| h.try_into().ok())
            .ok_or(Error::InvalidMessage(InvalidMessage::MessageTooShort))?;
        if region.len() != at + HEADER_BYTES + record_length(&header)? {
            return Err(Error::InvalidMessage(InvalidMessage::MessageTooShort));
        }
        let nonce = self.next_nonce()?;
        let opened = self
            .key
            .open_within(nonce, Aad::from(header), region, at + HEADER_BYTES..)
            .map_err(|_| Error::DecryptError)?;
        // The content type is the last non-zero byte; zeros after it are padding.
        let Some(type_at) = opened.iter().rposition(|byte| *byte != 0) else {
            return Err(Error::PeerMisbehaved(PeerMisbehaved::IllegalTlsInnerPlaintext));
        };
        let content_type = opened[type_at];
        if type_at > RECORD_PLAINTEXT_BYTES_MAX {
            return Err(Error::PeerSentOversizedRecord);
        }
        Ok((content_type, type_at))
    }
}

/// Starts a record at the end of `out`: its header, whose length [`Protection::finish`] fills
/// in. Returns where the record starts.
pub(crate) fn begin(out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.push(CONTENT_APPLICATION_DATA);
    out.extend_from_slice(&LEGACY_VERSION);
    out.extend_from_slice(&[0, 0]);
    start
}

/// The length of the protected payload that follows `header`, once the header is known to be
/// one of a TLS 1.3 record after the handshake.
pub(crate) fn record_length(header: &[u8; HEADER_BYTES]) -> Result<usize, Error> {
    if header[0] != CONTENT_APPLICATION_DATA {
        return Err(Error::InvalidMessage(InvalidMessage::InvalidContentType));
    }
    if header[1..3] != LEGACY_VERSION {
        return Err(Error::InvalidMessage(InvalidMessage::UnknownProtocolVersion));
    }
    let length = usize::from(u16::from_be_bytes([header[3], header[4]]));
    if length > RECORD_CIPHERTEXT_BYTES_MAX {
        return Err(Error::PeerSentOversizedRecord);
    }
    if length < 1 + TAG_BYTES {
        return Err(Error::InvalidMessage(InvalidMessage::MessageTooShort));
    }
    Ok(length)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a test fails loudly on any unexpected error")]
mod tests {
    use super::*;
    use rustls::crypto::cipher::{AeadKey, Iv};

    fn pair() -> (Protection, Protection) {
        let secrets = || ConnectionTrafficSecrets::Aes256Gcm {
            key: AeadKey::from([7u8; 32]),
            iv: Iv::new([9u8; 12]),
        };
        (
            Protection::new(5, &secrets()).unwrap(),
            Protection::new(5, &secrets()).unwrap(),
        )
    }

    #[test]
    fn a_sealed_record_opens_to_its_type_and_plaintext() {
        let (mut sealer, mut opener) = pair();
        let mut wire = Vec::new();
        sealer
            .seal(CONTENT_APPLICATION_DATA, b"hello", &mut wire)
            .unwrap();
        sealer.seal(CONTENT_ALERT, &[1, 0], &mut wire).unwrap();
        assert_eq!(wire.len(), sealed_bytes(5) + sealed_bytes(2));
        let (first, second) = wire.split_at_mut(sealed_bytes(5));
        let (kind, length) = opener.open(first, 0).unwrap();
        assert_eq!(
            (kind, &first[..length]),
            (CONTENT_APPLICATION_DATA, &b"hello"[..])
        );
        let (kind, length) = opener.open(second, 0).unwrap();
        assert_eq!((kind, &second[..length]), (CONTENT_ALERT, &[1u8, 0][..]));
        assert_eq!((sealer.records(), opener.records()), (7, 7));
    }

    #[test]
    fn a_record_opened_after_other_bytes_moves_its_plaintext_to_the_front() {
        let (mut sealer, mut opener) = pair();
        let plaintext = vec![0x5Au8; 1000];
        let mut region = vec![0xEEu8; 37];
        sealer
            .seal(CONTENT_APPLICATION_DATA, &plaintext, &mut region)
            .unwrap();
        let (kind, length) = opener.open(&mut region, 37).unwrap();
        assert_eq!(kind, CONTENT_APPLICATION_DATA);
        assert!(region[..length] == plaintext[..]);
    }

    #[test]
    fn a_flipped_bit_a_replayed_record_or_a_changed_header_does_not_open() {
        let (mut sealer, mut opener) = pair();
        let mut wire = Vec::new();
        sealer
            .seal(CONTENT_APPLICATION_DATA, b"payload", &mut wire)
            .unwrap();
        for at in [0, 3, HEADER_BYTES, wire.len() - 1] {
            let (_, mut opener) = pair();
            let mut damaged = wire.clone();
            damaged[at] ^= 1;
            assert!(opener.open(&mut damaged, 0).is_err(), "a bit flipped at {at}");
        }
        let mut replay = wire.clone();
        opener.open(&mut wire, 0).unwrap();
        assert_eq!(
            opener.open(&mut replay, 0),
            Err(Error::DecryptError),
            "the sequence moved on"
        );
    }

    #[test]
    fn headers_of_anything_but_a_protected_record_of_sane_length_are_refused() {
        assert!(record_length(&[23, 3, 3, 0, 17]).is_ok());
        assert_eq!(
            record_length(&[22, 3, 3, 0, 40]),
            Err(Error::InvalidMessage(InvalidMessage::InvalidContentType))
        );
        assert_eq!(
            record_length(&[23, 3, 1, 0, 40]),
            Err(Error::InvalidMessage(InvalidMessage::UnknownProtocolVersion))
        );
        let over = (RECORD_CIPHERTEXT_BYTES_MAX + 1) as u16;
        let [high, low] = over.to_be_bytes();
        assert_eq!(
            record_length(&[23, 3, 3, high, low]),
            Err(Error::PeerSentOversizedRecord)
        );
        assert_eq!(
            record_length(&[23, 3, 3, 0, 16]),
            Err(Error::InvalidMessage(InvalidMessage::MessageTooShort))
        );
    }

    #[test]
    fn an_all_padding_record_has_no_content_type() {
        let (mut sealer, mut opener) = pair();
        let mut wire = Vec::new();
        // A record whose "type" is zero is nothing but padding.
        sealer.seal(0, &[0, 0, 0], &mut wire).unwrap();
        assert_eq!(
            opener.open(&mut wire, 0),
            Err(Error::PeerMisbehaved(PeerMisbehaved::IllegalTlsInnerPlaintext))
        );
    }
}
