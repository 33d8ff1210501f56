//! Chunk files moved with direct I/O (`O_DIRECT`): between the device and our own buffers,
//! bypassing the page cache.
//!
//! **Why.** A chunk store writes each chunk once, fsyncs it, and later reads it whole to verify
//! it; it gains little from caching the file in the kernel, and the page cache costs CPU: on
//! this project's 2-core test machines a buffered 1 GiB write plus `fdatasync` took 0.5 to 2.8
//! CPU seconds of kernel time, the same write with `O_DIRECT` 0.2 to 0.6 (`dd bs=4M`; see
//! docs/benchmarks.md). A node writes every replica it receives, so on a machine where client
//! and nodes share the cores that is CPU the data path itself needs. A cold read is cheaper too
//! (no page cache fill and copy).
//!
//! **What it asks.** Buffers, file offsets and lengths must be multiples of the device's
//! logical block: [`ALIGN`] (4 KiB) covers 512-byte and 4 KiB devices. Chunks are written
//! through an aligned staging buffer and the last block is padded, then the file is cut back to
//! the chunk's length before the fsync; reads go into an aligned buffer.
//!
//! **Where it is not available** (tmpfs before Linux 6.6, some network and FUSE file systems),
//! opening with `O_DIRECT` fails with `EINVAL`. Each data directory probes at open
//! ([`supports_direct_io`]) and falls back to buffered I/O through the same code, which is also
//! what `direct_io = false` in `node.toml` asks for.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use prost::bytes::Bytes;

use crate::buffers::{self, Buffer};

/// The alignment of every direct transfer: buffer address, file offset and length. Every
/// buffer of the pool (`crate::buffers`) starts on one.
pub(crate) use crate::buffers::ALIGN;

/// The largest staging buffer of a put: a chunk of the default size (4 MiB) is staged whole and
/// written in one call when it is committed, so receiving its frames does no I/O and the node
/// need not hop to a blocking thread for each (see `PendingChunk::stages`).
pub(crate) const STAGE_BYTES_MAX: usize = 4 * 1024 * 1024;

pub(crate) fn round_up(bytes: usize) -> usize {
    bytes.div_ceil(ALIGN) * ALIGN
}

fn direct_flag(direct: bool) -> i32 {
    if direct {
        nix::fcntl::OFlag::O_DIRECT.bits()
    } else {
        0
    }
}

/// Creates a new file for writing a chunk.
pub(crate) fn create_new(path: &Path, direct: bool) -> std::io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(direct_flag(direct))
        .open(path)
}

/// Opens a chunk file for reading.
pub(crate) fn open_read(path: &Path, direct: bool) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(direct_flag(direct))
        .open(path)
}

/// Reads `path` whole, expecting `length` bytes: at most `length` rounded up to the next block
/// past it, so a file that grew comes back longer than expected (and fails its hash) rather
/// than silently cut to the expected length.
pub(crate) fn read_whole(path: &Path, length: u64, direct: bool) -> std::io::Result<Bytes> {
    let length = usize::try_from(length).map_err(std::io::Error::other)?;
    let mut buffer = buffers::take(round_up(length + 1));
    let mut filled = 0;
    if direct {
        let mut file = open_read(path, true)?;
        // Direct reads return whole blocks, except the last one of the file.
        while filled < buffer.len() && filled % ALIGN == 0 {
            match file.read(&mut buffer[filled..]) {
                Ok(0) => return Ok(buffers::into_bytes(buffer, filled)),
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if filled >= length {
            return Ok(buffers::into_bytes(buffer, filled));
        }
        // Cut short inside a block before the expected end: finish through the page cache
        // rather than call a good copy truncated.
    }
    let mut file = open_read(path, false)?;
    file.seek(SeekFrom::Start(filled as u64))?;
    filled += buffers::fill(&mut file, &mut buffer[filled..])?;
    Ok(buffers::into_bytes(buffer, filled))
}

/// Bytes bound for a chunk file, gathered into aligned blocks before they are written.
#[derive(Debug)]
pub(crate) struct StagedWriter {
    file: File,
    stage: Buffer,
    staged: usize,
    written: u64,
}

impl StagedWriter {
    /// `length_bytes` sizes the stage: no larger than the chunk needs.
    pub(crate) fn new(file: File, length_bytes: u64) -> StagedWriter {
        let stage_len = round_up(
            usize::try_from(length_bytes)
                .unwrap_or(usize::MAX)
                .min(STAGE_BYTES_MAX),
        )
        .max(ALIGN);
        StagedWriter {
            file,
            stage: buffers::take(stage_len),
            staged: 0,
            written: 0,
        }
    }

    /// Stages `data`, writing the stage out whenever it is full and more bytes come: a stage
    /// filled by the last bytes of a chunk is written by [`StagedWriter::finish`].
    pub(crate) fn write(&mut self, mut data: &[u8]) -> std::io::Result<()> {
        while !data.is_empty() {
            if self.staged == self.stage.len() {
                self.flush_stage(self.staged)?;
            }
            let room = self.stage.len() - self.staged;
            let take = room.min(data.len());
            self.stage[self.staged..self.staged + take].copy_from_slice(&data[..take]);
            self.staged += take;
            data = &data[take..];
        }
        Ok(())
    }

    /// Whether `len` more bytes fit in the stage, so that writing them does no I/O.
    pub(crate) fn fits(&self, len: usize) -> bool {
        self.staged + len <= self.stage.len()
    }

    fn flush_stage(&mut self, padded: usize) -> std::io::Result<()> {
        self.file.write_all(&self.stage[..padded])?;
        self.written += self.staged as u64;
        self.staged = 0;
        Ok(())
    }

    /// Writes what is staged, its last block padded with zeros, cuts the file back to the bytes
    /// given, and syncs it. Returns the file, durable.
    pub(crate) fn finish(mut self) -> std::io::Result<File> {
        if self.staged > 0 {
            let padded = round_up(self.staged);
            self.stage[self.staged..padded].fill(0);
            let exact = padded == self.staged;
            self.flush_stage(padded)?;
            if !exact {
                self.file.set_len(self.written)?;
            }
        }
        self.file.sync_all()?;
        Ok(self.file)
    }
}

/// Whether `dir` (an empty scratch directory) takes direct I/O: a block written and read back
/// with `O_DIRECT`. Any failure means no; the probe file is removed either way.
pub(crate) fn supports_direct_io(dir: &Path) -> bool {
    let path = dir.join("direct-io-probe");
    let probe = || -> std::io::Result<()> {
        let mut writer = StagedWriter::new(create_new(&path, true)?, ALIGN as u64 + 1);
        writer.write(&[0x5a; ALIGN + 1])?;
        writer.finish()?;
        let back = read_whole(&path, ALIGN as u64 + 1, true)?;
        if back.len() != ALIGN + 1 || back.iter().any(|b| *b != 0x5a) {
            return Err(std::io::Error::other("direct I/O probe read back other bytes"));
        }
        Ok(())
    };
    let supported = probe();
    let _ = fs::remove_file(&path);
    if let Err(error) = &supported {
        tracing::info!(dir = %dir.display(), %error, "no direct I/O here; chunks go through the page cache");
    }
    supported.is_ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a test fails loudly on any unexpected error")]
mod tests {
    use super::*;

    fn round_trip(direct: bool) {
        let dir = tempfile::tempdir().unwrap();
        let direct = direct && supports_direct_io(dir.path());
        // Lengths around block and stage boundaries, written in frames of awkward sizes.
        for length in [
            0,
            1,
            ALIGN - 1,
            ALIGN,
            ALIGN + 1,
            STAGE_BYTES_MAX,
            STAGE_BYTES_MAX + 4097,
            3 * STAGE_BYTES_MAX - 1,
        ] {
            let content: Vec<u8> = (0..length).map(|i| (i * 31 % 251) as u8).collect();
            let path = dir.path().join(format!("chunk-{length}"));
            let mut writer = StagedWriter::new(create_new(&path, direct).unwrap(), length as u64);
            for frame in content.chunks(333_333) {
                writer.write(frame).unwrap();
            }
            writer.finish().unwrap();
            assert_eq!(
                fs::metadata(&path).unwrap().len(),
                length as u64,
                "length {length}"
            );
            let back = read_whole(&path, length as u64, direct).unwrap();
            assert!(back[..] == content[..], "length {length}, direct {direct}");
        }
    }

    #[test]
    fn a_chunk_that_fits_the_stage_is_written_only_when_finished() {
        let dir = tempfile::tempdir().unwrap();
        let direct = supports_direct_io(dir.path());
        let path = dir.path().join("chunk");
        let frame = vec![9u8; STAGE_BYTES_MAX / 4];
        let mut writer = StagedWriter::new(create_new(&path, direct).unwrap(), STAGE_BYTES_MAX as u64 + 1);
        for _ in 0..4 {
            assert!(writer.fits(frame.len()));
            writer.write(&frame).unwrap();
        }
        assert_eq!(
            fs::metadata(&path).unwrap().len(),
            0,
            "nothing written while staging"
        );
        // The stage is full: one byte more writes it out first.
        assert!(!writer.fits(1));
        writer.write(&[1]).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().len(), STAGE_BYTES_MAX as u64);
        writer.finish().unwrap();
        let back = read_whole(&path, STAGE_BYTES_MAX as u64 + 1, direct).unwrap();
        assert_eq!(back.len(), STAGE_BYTES_MAX + 1);
        assert!(back[..STAGE_BYTES_MAX].iter().all(|b| *b == 9) && back[STAGE_BYTES_MAX] == 1);
    }

    #[test]
    fn chunks_of_every_awkward_length_round_trip_through_direct_io() {
        round_trip(true);
    }

    #[test]
    fn chunks_of_every_awkward_length_round_trip_through_the_page_cache() {
        round_trip(false);
    }

    #[test]
    fn a_file_longer_than_expected_reads_back_longer() {
        let dir = tempfile::tempdir().unwrap();
        let direct = supports_direct_io(dir.path());
        let path = dir.path().join("grown");
        fs::write(&path, vec![1u8; 2 * ALIGN + 5]).unwrap();
        // Expected one byte, found more: at least the byte past the expected end comes back.
        for expected in [1u64, ALIGN as u64, 2 * ALIGN as u64] {
            let back = read_whole(&path, expected, direct).unwrap();
            assert!(
                back.len() as u64 > expected,
                "expected {expected}, read {}",
                back.len()
            );
        }
    }

    #[test]
    fn a_file_shorter_than_expected_reads_back_shorter() {
        let dir = tempfile::tempdir().unwrap();
        let direct = supports_direct_io(dir.path());
        let path = dir.path().join("short");
        fs::write(&path, vec![1u8; ALIGN + 5]).unwrap();
        let back = read_whole(&path, 3 * ALIGN as u64, direct).unwrap();
        assert_eq!(back.len(), ALIGN + 5);
    }

    #[test]
    fn a_reused_buffer_hands_out_only_the_bytes_read_into_it() {
        let dir = tempfile::tempdir().unwrap();
        let direct = supports_direct_io(dir.path());
        let length = 4 << 20;
        // Leave a buffer of the size the read will want in the pool, full of other bytes.
        let mut stale = buffers::take(round_up(length + 1));
        stale.fill(0xaa);
        drop(stale);
        let path = dir.path().join("short");
        fs::write(&path, vec![1u8; ALIGN + 5]).unwrap();
        let back = read_whole(&path, length as u64, direct).unwrap();
        assert!(back[..] == vec![1u8; ALIGN + 5][..]);
    }

    #[test]
    fn the_probe_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        supports_direct_io(dir.path());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
