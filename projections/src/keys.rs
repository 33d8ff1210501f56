//! Key encodings. Integers are big-endian so that RocksDB's bytewise order is numeric order;
//! variable-length leading components carry a u32 BE length so one component can never run into
//! the next (a node named `a` must not see the chunks of a node named `ab`).

use crate::error::StoreError;
use crate::tables::Table;

pub fn u64_key(value: u64) -> Vec<u8> {
    value.to_be_bytes().to_vec()
}

/// `events`: log_index ++ sequence, so a scan yields events in log order.
pub fn event_key(log_index: u64, sequence: u32) -> Vec<u8> {
    let mut key = Vec::with_capacity(12);
    key.extend_from_slice(&log_index.to_be_bytes());
    key.extend_from_slice(&sequence.to_be_bytes());
    key
}

/// `dirents`: parent ++ name, so the children of a directory are one prefix, sorted by name.
pub fn dirent_key(parent: u64, name: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(8 + name.len());
    key.extend_from_slice(&parent.to_be_bytes());
    key.extend_from_slice(name.as_bytes());
    key
}

/// `versions`: inode ++ version, oldest version first.
pub fn version_key(inode: u64, version: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(16);
    key.extend_from_slice(&inode.to_be_bytes());
    key.extend_from_slice(&version.to_be_bytes());
    key
}

/// A length-prefixed leading component, which is also the scan prefix for it.
pub fn length_prefixed(first: &[u8]) -> Vec<u8> {
    // Lengths past u32 cannot occur (Raft entries are far smaller); saturate rather than wrap.
    let len = u32::try_from(first.len()).unwrap_or(u32::MAX);
    let mut key = Vec::with_capacity(4 + first.len());
    key.extend_from_slice(&len.to_be_bytes());
    key.extend_from_slice(first);
    key
}

/// `placement`: hash ++ node, so the replicas of a chunk are one prefix.
pub fn placement_key(hash: &[u8], node: &str) -> Vec<u8> {
    let mut key = length_prefixed(hash);
    key.extend_from_slice(node.as_bytes());
    key
}

/// `node_chunks`: node ++ hash, so the chunks of a node are one prefix.
pub fn node_chunk_key(node: &str, hash: &[u8]) -> Vec<u8> {
    let mut key = length_prefixed(node.as_bytes());
    key.extend_from_slice(hash);
    key
}

/// The part of `key` after a length-prefixed first component, or `None` if it is malformed.
pub fn after_length_prefixed(key: &[u8]) -> Option<&[u8]> {
    let len = u32::from_be_bytes(key.get(..4)?.try_into().ok()?);
    key.get(4 + usize::try_from(len).ok()?..)
}

/// Reads a u64 BE value or key stored by this crate.
pub fn decode_u64(table: Table, key: &[u8], bytes: &[u8]) -> Result<u64, StoreError> {
    let arr: [u8; 8] = bytes.try_into().map_err(|_| StoreError::Corrupt {
        table: table.name(),
        key: key.to_vec(),
        reason: format!("expected 8 bytes, found {}", bytes.len()),
    })?;
    Ok(u64::from_be_bytes(arr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_keys_sort_numerically() {
        assert!(u64_key(255) < u64_key(256));
        assert!(event_key(1, u32::MAX) < event_key(2, 0));
        assert!(version_key(7, 9) < version_key(7, 10));
        assert!(dirent_key(2, "zzz") < dirent_key(3, "a"));
    }

    #[test]
    fn length_prefix_separates_components() {
        let a = node_chunk_key("a", b"b");
        assert!(!a.starts_with(&length_prefixed(b"ab")));
        assert!(!node_chunk_key("ab", b"").starts_with(&length_prefixed(b"a")));
        assert_eq!(
            after_length_prefixed(&placement_key(b"hh", "n1")),
            Some(&b"n1"[..])
        );
    }
}
