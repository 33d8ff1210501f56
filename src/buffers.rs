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

use std::io::Read;
use std::sync::Mutex;

use prost::bytes::Bytes;

/// Most bytes the pool keeps: the read-ahead or upload window of a few streams of 4 MiB chunks.
const POOL_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Smaller buffers are cheap to allocate and not kept.
const POOL_BUFFER_BYTES_MIN: usize = 64 * 1024;

static FREE: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// A buffer of exactly `len` initialized bytes: a kept one of that length, or a zeroed new one.
pub(crate) fn take(len: usize) -> Vec<u8> {
    if len >= POOL_BUFFER_BYTES_MIN {
        let mut free = FREE.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(at) = free.iter().position(|vec| vec.len() == len) {
            return free.swap_remove(at);
        }
    }
    vec![0u8; len]
}

/// Keeps `vec` for a later [`take`] of its length, unless it is small or the pool is full.
pub(crate) fn give(vec: Vec<u8>) {
    if vec.len() < POOL_BUFFER_BYTES_MIN {
        return;
    }
    let mut free = FREE.lock().unwrap_or_else(|p| p.into_inner());
    let kept: usize = free.iter().map(Vec::len).sum();
    if kept + vec.len() <= POOL_BYTES_MAX {
        free.push(vec);
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
        assert!(guard.iter().all(|kept| kept.as_ptr() != address));
    }
}
