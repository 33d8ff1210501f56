//! Large byte buffers kept for reuse: chunk buffers on the client's write path and on the node's
//! read and put paths.
//!
//! A fresh multi-MiB allocation costs a page fault and a zeroed page per 4 KiB once it is
//! touched, and the allocator hands large freed blocks back to the kernel soon after. `perf` put
//! that at about a tenth of a node's CPU while it served reads (docs/benchmarks.md); reusing a
//! buffer costs nothing. A [`Buffer`] goes back to the pool when it is dropped, or, for bytes
//! handed out with [`into_bytes`], when the last `Bytes` of them is dropped.
//!
//! **Where the bytes live.** Every buffer starts on a block ([`ALIGN`], 4 KiB), as direct I/O
//! asks. One of 2 MiB or more is an anonymous mapping that starts on a 2 MiB boundary, and its
//! whole 2 MiB spans are advised for transparent huge pages (`MADV_HUGEPAGE`; in the kernel's
//! default `madvise` mode only advised memory gets them). The kernel cuts a direct transfer into
//! requests of at most `max_segments` physically separate pieces (254 on the virtio disks of
//! this project's machines, so about 1 MiB of 4 KiB pages); a 2 MiB page is one piece. Eight
//! threads reading 4 MiB direct from one file read 1,106 to 1,215 MiB/s into 4 KiB pages and
//! 2,456 to 2,663 MiB/s into huge ones (docs/benchmarks.md). Huge pages also mean fewer TLB
//! misses for the hash and the cipher, and fewer pages to pin for each transfer.
//!
//! A reused buffer holds what it held before. Callers hand out only bytes they wrote since.

use std::collections::VecDeque;
use std::io::Read;
use std::ops::{Deref, DerefMut};
use std::sync::{Mutex, Once};

use memmap2::{Advice, MmapMut};
use prost::bytes::Bytes;

/// Where every buffer starts: a multiple of the logical block of any device (512 bytes or
/// 4 KiB), so any buffer can take a direct transfer.
pub(crate) const ALIGN: usize = 4096;
/// A transparent huge page on x86-64 and on 4 KiB-page arm64: buffers this long or longer are
/// mappings that start on one.
const HUGE_PAGE: usize = 2 * 1024 * 1024;
/// Most bytes the pool keeps: the read-ahead or upload window of a few streams of 4 MiB chunks.
const POOL_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Smaller buffers are cheap to allocate and not kept.
const POOL_BUFFER_BYTES_MIN: usize = 64 * 1024;

static FREE: Mutex<Pool> = Mutex::new(Pool::new(POOL_BYTES_MAX));

/// A buffer of exactly `len` initialized bytes starting on a block: a kept one of that length,
/// or a zeroed new one. Dropped, it goes back to the pool.
pub(crate) fn take(len: usize) -> Buffer {
    if len >= POOL_BUFFER_BYTES_MIN
        && let Some(kept) = FREE.lock().unwrap_or_else(|p| p.into_inner()).take(len)
    {
        return Buffer(kept);
    }
    Buffer::new(len)
}

/// Bytes of memory that start on a block; see the module's notes.
pub(crate) struct Buffer(Region);

/// A buffer's memory, where the buffer starts in it and how long it is; what the pool keeps
/// (dropped as a `Region`, the memory is freed).
struct Region {
    memory: Memory,
    start: usize,
    len: usize,
}

enum Memory {
    Heap(Vec<u8>),
    Mapped(MmapMut),
}

impl Memory {
    fn bytes(&self) -> &[u8] {
        match self {
            Memory::Heap(vec) => vec,
            Memory::Mapped(map) => map,
        }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        match self {
            Memory::Heap(vec) => vec,
            Memory::Mapped(map) => map,
        }
    }
}

impl Buffer {
    fn new(len: usize) -> Buffer {
        if len >= HUGE_PAGE
            && let Some(buffer) = Buffer::mapped(len)
        {
            return buffer;
        }
        // Found inside a slightly larger allocation rather than forced on it: no `unsafe`.
        let vec = vec![0u8; len + ALIGN - 1];
        let start = (ALIGN - vec.as_ptr().addr() % ALIGN) % ALIGN;
        Buffer(Region {
            memory: Memory::Heap(vec),
            start,
            len,
        })
    }

    /// A mapping large enough to start on a huge page, with the whole huge pages of the buffer
    /// advised; `None` if the kernel maps nothing (the heap is tried instead).
    fn mapped(len: usize) -> Option<Buffer> {
        // mmap returns page-aligned addresses, so a 2 MiB boundary lies at most this far in.
        let map = MmapMut::map_anon(len + HUGE_PAGE - ALIGN).ok()?;
        let start = (HUGE_PAGE - map.as_ptr().addr() % HUGE_PAGE) % HUGE_PAGE;
        // Only whole huge pages: a tail advised too would take a whole one for a few blocks.
        if let Err(error) = map.advise_range(Advice::HugePage, start, len / HUGE_PAGE * HUGE_PAGE) {
            static SAID: Once = Once::new();
            SAID.call_once(|| {
                tracing::info!(%error, "no transparent huge pages for chunk buffers; using small pages");
            });
        }
        Some(Buffer(Region {
            memory: Memory::Mapped(map),
            start,
            len,
        }))
    }
}

impl Deref for Buffer {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        let Region { memory, start, len } = &self.0;
        &memory.bytes()[*start..start + len]
    }
}

impl DerefMut for Buffer {
    fn deref_mut(&mut self) -> &mut [u8] {
        let Region { memory, start, len } = &mut self.0;
        &mut memory.bytes_mut()[*start..*start + *len]
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        if self.0.len < POOL_BUFFER_BYTES_MIN {
            return;
        }
        let empty = Region {
            memory: Memory::Heap(Vec::new()),
            start: 0,
            len: 0,
        };
        let kept = std::mem::replace(&mut self.0, empty);
        let evicted = FREE.lock().unwrap_or_else(|p| p.into_inner()).give(kept);
        drop(evicted); // freed outside the lock
    }
}

impl std::fmt::Debug for Buffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Buffer")
            .field("len", &self.0.len)
            .field("mapped", &matches!(self.0.memory, Memory::Mapped(_)))
            .finish()
    }
}

/// Buffers kept for reuse, oldest first, at most `bytes_max` of them in all.
///
/// A full pool makes room for the buffer given back by dropping the ones given back longest
/// ago: the sizes in use change with the work (a node's put stages and its read buffers differ
/// by a block), and a pool that kept its first buffers would serve none of the later ones.
struct Pool {
    kept: VecDeque<Region>,
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
    fn take(&mut self, len: usize) -> Option<Region> {
        let at = self.kept.iter().rposition(|kept| kept.len == len)?;
        let kept = self.kept.remove(at)?;
        self.bytes -= kept.len;
        Some(kept)
    }

    /// Keeps `kept`, returning the buffers dropped to make room (or `kept` itself, if it is
    /// larger than the whole pool).
    fn give(&mut self, kept: Region) -> Vec<Region> {
        if kept.len > self.bytes_max {
            return vec![kept];
        }
        let mut evicted = Vec::new();
        while self.bytes + kept.len > self.bytes_max {
            let Some(oldest) = self.kept.pop_front() else {
                break;
            };
            self.bytes -= oldest.len;
            evicted.push(oldest);
        }
        self.bytes += kept.len;
        self.kept.push_back(kept);
        evicted
    }
}

/// The first `used` bytes of `buffer` as `Bytes`, without copying; `buffer` returns to the pool
/// once the last slice of them is dropped.
pub(crate) fn into_bytes(buffer: Buffer, used: usize) -> Bytes {
    let used = used.min(buffer.len());
    Bytes::from_owner(Filled { buffer, used })
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
    buffer: Buffer,
    used: usize,
}

impl AsRef<[u8]> for Filled {
    fn as_ref(&self) -> &[u8] {
        &self.buffer[..self.used]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handed_out_bytes_are_the_slice_asked_for_and_come_back_for_reuse() {
        // An odd length no other test uses, so parallel tests do not take this buffer.
        let len = POOL_BUFFER_BYTES_MIN + 12_345;
        let mut buffer = take(len);
        assert_eq!(buffer.len(), len);
        buffer[..10].copy_from_slice(b"0123456789");
        let address = buffer.as_ptr();
        let bytes = into_bytes(buffer, 10);
        assert_eq!(&bytes[..], b"0123456789");
        assert_eq!(bytes.as_ptr(), address, "handed out without copying");
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
        assert_eq!(&again[..10], b"0123456789", "a reused buffer keeps its old bytes");
    }

    #[test]
    fn every_buffer_starts_on_a_block_and_a_large_one_on_a_huge_page() {
        for len in [1, ALIGN - 1, ALIGN, 3 * ALIGN + 7, 64 * 1024, HUGE_PAGE - 1] {
            let buffer = take(len);
            assert_eq!(
                (buffer.len(), buffer.as_ptr().addr() % ALIGN),
                (len, 0),
                "{len} bytes"
            );
        }
        for len in [HUGE_PAGE, (4 << 20) + ALIGN + 1] {
            let buffer = Buffer::new(len);
            assert!(matches!(buffer.0.memory, Memory::Mapped(_)), "{len} bytes");
            assert_eq!(
                (buffer.len(), buffer.as_ptr().addr() % HUGE_PAGE),
                (len, 0),
                "{len} bytes"
            );
            assert!(buffer.iter().all(|b| *b == 0), "a new buffer is zeroed");
        }
    }

    /// The kernel's own account of the mapping `address` lies in: its `AnonHugePages`, in KiB.
    fn huge_kib_of_mapping_at(address: usize) -> u64 {
        let smaps = std::fs::read_to_string("/proc/self/smaps").expect("read /proc/self/smaps");
        let mut inside = false;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ')
                && let Some((from, to)) = range.split_once('-')
                && let (Ok(from), Ok(to)) = (usize::from_str_radix(from, 16), usize::from_str_radix(to, 16))
            {
                inside = (from..to).contains(&address);
            } else if inside && let Some(kib) = line.strip_prefix("AnonHugePages:") {
                return kib
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse()
                    .expect("a number of kB");
            }
        }
        panic!("no mapping holds {address:#x}");
    }

    #[test]
    fn a_large_buffer_is_backed_by_huge_pages_where_the_kernel_has_them() {
        let mode = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
        if !mode.contains("[always]") && !mode.contains("[madvise]") {
            eprintln!(
                "transparent huge pages are off here ({}): nothing to check",
                mode.trim()
            );
            return;
        }
        // Two whole huge pages and a tail of one block, as a node's 4 MiB chunk read takes.
        let mut buffer = Buffer::new(2 * HUGE_PAGE + ALIGN);
        buffer.fill(1);
        assert_eq!(
            huge_kib_of_mapping_at(buffer.as_ptr().addr()),
            2 * HUGE_PAGE as u64 / 1024,
            "the whole huge pages are huge, the tail is not"
        );
    }

    #[test]
    fn small_buffers_are_not_kept() {
        let buffer = take(100);
        let address = buffer.as_ptr().addr();
        drop(buffer);
        let guard = FREE.lock().unwrap_or_else(|p| p.into_inner());
        assert!(
            guard
                .kept
                .iter()
                .all(|kept| kept.memory.bytes().as_ptr().addr() + kept.start != address)
        );
    }

    fn kept(len: usize, byte: u8) -> Region {
        Region {
            memory: Memory::Heap(vec![byte; len]),
            start: 0,
            len,
        }
    }

    fn lens(kept: &[Region]) -> Vec<usize> {
        kept.iter().map(|kept| kept.len).collect()
    }

    #[test]
    fn a_full_pool_drops_its_oldest_buffers_for_the_one_given_back() {
        let mut pool = Pool::new(10);
        for len in [4, 4, 2] {
            assert!(pool.give(kept(len, 0)).is_empty(), "room for {len} bytes");
        }
        // Full: a 3-byte buffer costs the first 4-byte one, the oldest.
        assert_eq!(lens(&pool.give(kept(3, 1))), [4]);
        assert_eq!(pool.bytes, 9);
        let newest = pool.take(3).expect("the newest size is served");
        assert_eq!(newest.memory.bytes(), [1, 1, 1]);
        assert!(pool.take(5).is_none());
        assert_eq!(
            lens(&pool.give(kept(11, 0))),
            [11],
            "larger than the pool: not kept"
        );
        assert_eq!(pool.bytes, 6);
        assert_eq!(pool.take(4).map(|kept| kept.len), Some(4));
        assert_eq!(pool.take(2).map(|kept| kept.len), Some(2));
        assert_eq!((pool.kept.len(), pool.bytes), (0, 0));
    }
}
