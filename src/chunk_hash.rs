//! The name of a chunk: the blake3 hash of its content.

use std::fmt;

use collective_proto::chunk_limits::HASH_BYTES;

/// A chunk's blake3 hash; chunks are immutable and named by it everywhere (files, tickets, wire).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkHash([u8; HASH_BYTES]);

/// Bytes that are not a 32-byte hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a chunk hash is {HASH_BYTES} bytes, got {got}")]
pub struct BadHashLength {
    pub got: usize,
}

impl ChunkHash {
    /// The hash of `content`.
    pub fn of(content: &[u8]) -> ChunkHash {
        ChunkHash(*blake3::hash(content).as_bytes())
    }

    /// Reads a hash from the wire; anything but exactly 32 bytes is refused.
    pub fn from_slice(bytes: &[u8]) -> Result<ChunkHash, BadHashLength> {
        let array: [u8; HASH_BYTES] = bytes.try_into().map_err(|_| BadHashLength { got: bytes.len() })?;
        Ok(ChunkHash(array))
    }

    pub fn from_blake3(hash: blake3::Hash) -> ChunkHash {
        ChunkHash(*hash.as_bytes())
    }

    pub fn as_bytes(&self) -> &[u8; HASH_BYTES] {
        &self.0
    }

    /// Lowercase hex, 64 characters: the chunk's file name.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parses the 64-character lowercase hex of [`ChunkHash::to_hex`].
    pub fn from_hex(hex: &str) -> Option<ChunkHash> {
        if hex.len() != 2 * HASH_BYTES || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        let mut out = [0u8; HASH_BYTES];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(ChunkHash(out))
    }
}

impl fmt::Display for ChunkHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for ChunkHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChunkHash({})", self.to_hex())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a test fails loudly on any unexpected error")]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_rejects_bad_text() {
        let hash = ChunkHash::of(b"hello");
        assert_eq!(hash.to_hex(), blake3::hash(b"hello").to_hex().as_str());
        assert_eq!(ChunkHash::from_hex(&hash.to_hex()), Some(hash));
        assert_eq!(ChunkHash::from_hex(&hash.to_hex().to_uppercase()), None);
        assert_eq!(ChunkHash::from_hex("abc"), None);
        assert_eq!(ChunkHash::from_hex(&"g".repeat(64)), None);
    }

    #[test]
    fn wire_bytes_must_be_32_long() {
        assert!(ChunkHash::from_slice(&[0; 31]).is_err());
        assert!(ChunkHash::from_slice(&[0; 33]).is_err());
        assert_eq!(ChunkHash::from_slice(&[7; 32]).unwrap().as_bytes(), &[7; 32]);
    }
}
