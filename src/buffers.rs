//! Large byte buffers kept for reuse: chunk buffers on the client's write path and on the node's
//! read and put paths.
//!
//! A fresh multi-MiB allocation costs a page fault and a zeroed page per 4 KiB once it is
//! touched, and the allocator hands large freed blocks back to the kernel soon after. `perf` put
//! that at about a tenth of a node's CPU while it served reads (docs/benchmarks.md); reusing a
//! buffer costs nothing. Buffers leave the pool as `Vec`s and come back when dropped through
//! [`give`] or, for bytes handed out with [`into_bytes`], when the last `Bytes` of them is
//! dropped.
//!
//! A reused buffer holds what it held before. Callers hand out only bytes they wrote since.

use std::collections::VecDeque;
use std::io::Read;
use std::sync::Mutex;

use prost::bytes::Bytes;

/// Most bytes the pool keeps: the read-ahead or upload window of a few streams of 4 MiB chunks.
const POOL_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Smaller buffers are cheap to allocate and not kept.
const POOL_BUFFER_BYTES_MIN: usize = 64 * 1024;

static FREE: Mutex<Pool> = Mutex::new(Pool::new(POOL_BYTES_MAX));

/// A buffer of exactly `len` initialized bytes: a kept one of that length, or a zeroed new one.
pub(crate) fn take(len: usize) -> Vec<u8> {
    if len >= POOL_BUFFER_BYTES_MIN
        && let Some(kept) = FREE.lock().unwrap_or_else(|p| p.into_inner()).take(len)
    {
        return kept;
    }
    vec![0u8; len]
}

/// Keeps `vec` for a later [`take`] of its length, unless it is small.
pub(crate) fn give(vec: Vec<u8>) {
    if vec.len() < POOL_BUFFER_BYTES_MIN {
        return;
    }
    let evicted = FREE.lock().unwrap_or_else(|p| p.into_inner()).give(vec);
    drop(evicted); // freed outside the lock
}

/// Buffers kept for reuse, oldest first, at most `bytes_max` of them in all.
///
/// A full pool makes room for the buffer given back by dropping the ones given back longest
/// ago: the sizes in use change with the work (a node's put stages and its read buffers differ
/// by a block), and a pool that kept its first buffers would serve none of the later ones.
struct Pool {
    kept: VecDeque<Vec<u8>>,
    bytes: usize,
    bytes_max: usize,
}

impl Pool {
    const fn new(bytes_max: usize) -> Pool {
        Pool {
            kept: VecDeque::new(),
            bytes: 0,
            bytes_max,
        }
    }

    /// The buffer of exactly `len` bytes given back last, if one is kept.
    fn take(&mut self, len: usize) -> Option<Vec<u8>> {
        let at = self.kept.iter().rposition(|vec| vec.len() == len)?;
        let vec = self.kept.remove(at)?;
        self.bytes -= vec.len();
        Some(vec)
    }

    /// Keeps `vec`, returning the buffers dropped to make room (or `vec` itself, if it is larger
    /// than the whole pool).
    fn give(&mut self, vec: Vec<u8>) -> Vec<Vec<u8>> {
        if vec.len() > self.bytes_max {
            return vec![vec];
        }
        let mut evicted = Vec::new();
        while self.bytes + vec.len() > self.bytes_max {
            let Some(oldest) = self.kept.pop_front() else {
                break;
            };
            self.bytes -= oldest.len();
            evicted.push(oldest);
        }
        self.bytes += vec.len();
        self.kept.push_back(vec);
        evicted
    }
}

/// `vec[start..start + used]` as `Bytes`, without copying; `vec` returns to the pool once the
/// last slice of them is dropped.
pub(crate) fn into_bytes(vec: Vec<u8>, start: usize, used: usize) -> Bytes {
    let used = used.min(vec.len().saturating_sub(start));
    Bytes::from_owner(Filled { vec, start, used })
}

/// Reads until `buffer` is full or the input ends, retrying short reads and EINTR; the bytes
/// read.
pub(crate) fn fill(input: &mut impl Read, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match input.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The filled part of a buffer, owned by the `Bytes` handed out.
struct Filled {
    vec: Vec<u8>,
    start: usize,
    used: usize,
}

impl AsRef<[u8]> for Filled {
    fn as_ref(&self) -> &[u8] {
        &self.vec[self.start..self.start + self.used]
    }
}

impl Drop for Filled {
    fn drop(&mut self) {
        give(std::mem::take(&mut self.vec));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handed_out_bytes_are_the_slice_asked_for_and_come_back_for_reuse() {
        // An odd length no other test uses, so parallel tests do not take this buffer.
        let len = POOL_BUFFER_BYTES_MIN + 12_345;
        let mut vec = take(len);
        assert_eq!(vec.len(), len);
        vec[10..20].copy_from_slice(b"0123456789");
        let address = vec.as_ptr();
        let bytes = into_bytes(vec, 10, 10);
        assert_eq!(&bytes[..], b"0123456789");
        let half = bytes.slice(5..);
        drop(bytes);
        assert_eq!(&half[..], b"56789");
        drop(half);
        let again = take(len);
        assert_eq!(
            again.as_ptr(),
            address,
            "the buffer came back once its last slice was dropped"
        );
        assert_eq!(
            &again[10..20],
            b"0123456789",
            "a reused buffer keeps its old bytes"
        );
    }

    #[test]
    fn small_buffers_are_not_kept() {
        let vec = take(100);
        let address = vec.as_ptr();
        give(vec);
        let guard = FREE.lock().unwrap_or_else(|p| p.into_inner());
        assert!(guard.kept.iter().all(|kept| kept.as_ptr() != address));
    }

    #[test]
    fn a_full_pool_drops_its_oldest_buffers_for_the_one_given_back() {
        let mut pool = Pool::new(10);
        for len in [4, 4, 2] {
            assert!(pool.give(vec![0u8; len]).is_empty(), "room for {len} bytes");
        }
        // Full: a 3-byte buffer costs the first 4-byte one, the oldest.
        let evicted = pool.give(vec![1u8; 3]);
        assert_eq!(evicted.iter().map(Vec::len).collect::<Vec<_>>(), [4]);
        assert_eq!(pool.bytes, 9);
        assert_eq!(pool.take(3), Some(vec![1u8; 3]), "the newest size is served");
        assert_eq!(pool.take(5), None);
        assert_eq!(
            pool.give(vec![0u8; 11]).len(),
            1,
            "larger than the pool: not kept"
        );
        assert_eq!(pool.bytes, 6);
        assert_eq!(pool.take(4).map(|v| v.len()), Some(4));
        assert_eq!(pool.take(2).map(|v| v.len()), Some(2));
        assert_eq!((pool.kept.len(), pool.bytes), (0, 0));
    }
}
