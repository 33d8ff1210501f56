//! Snapshot files under `<data_dir>/snapshots/`: how they are laid out, written, verified, found.
//!
//! Why files and not bytes in memory: a metadata snapshot holds the member's whole event log
//! (the audit history survives log purges only there), so it grows without bound; a file keeps
//! memory flat, can be streamed to a peer in chunks, and survives restarts as the "current
//! snapshot" openraft asks for. A file is written under a temporary name, fsynced, renamed to
//! `{index:020}-{term}.snap` (so lexical order is log order), and the directory fsynced; only the
//! newest [`SNAPSHOTS_KEPT`] are kept.
//!
//! Layout (all integers big-endian):
//! `magic (8) | meta length u32 | meta (wire::SnapshotMeta) | state stream | state length u64 |
//! blake3 (32) of every preceding byte`. The state stream is `Store::export_state` output.

use std::fs;
use std::fs::File;
use std::io;
use std::io::BufWriter;
use std::io::Read;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;

use prost::Message;

use crate::types::SnapshotMeta;
use crate::wire;

/// First bytes of every snapshot file, with the layout version.
const MAGIC: &[u8; 8] = b"CLVRSNP1";
/// Bytes after the state stream: its length and the blake3 of the file.
const TRAILER_BYTES: u64 = 8 + 32;
/// Largest snapshot metadata accepted, in bytes (a membership of a few nodes is ~200 bytes).
const META_BYTES_MAX: u32 = 1 << 20;
/// Largest snapshot file accepted from a peer, in bytes. A guard against a runaway sender
/// filling the disk; a member's metadata is expected to stay far below it.
pub const SNAPSHOT_BYTES_MAX: u64 = 64 << 30;
/// How many snapshot files are kept; older ones are deleted after a new one is in place.
pub const SNAPSHOTS_KEPT: usize = 2;
/// Read/write buffer for snapshot files, in bytes.
const BUFFER_BYTES: usize = 256 << 10;

/// A finished snapshot file, open for reading. Cheap to clone; the open handle keeps the bytes
/// readable even if a newer snapshot replaces (unlinks) the file while a peer is being sent it.
#[derive(Clone, Debug)]
pub struct SnapshotFile {
    path: PathBuf,
    file: Arc<File>,
    len_bytes: u64,
}

impl SnapshotFile {
    fn open(path: PathBuf) -> io::Result<Self> {
        let file = File::open(&path)?;
        let len_bytes = file.metadata()?.len();
        Ok(Self {
            path,
            file: Arc::new(file),
            len_bytes,
        })
    }

    /// Where the file was when it was opened.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Size of the file in bytes: what a transport sends.
    pub fn len_bytes(&self) -> u64 {
        self.len_bytes
    }

    /// A reader over the whole file from its first byte, independent of other readers.
    pub fn reader(&self) -> SnapshotReader {
        SnapshotReader {
            file: self.file.clone(),
            offset: 0,
            end: self.len_bytes,
        }
    }

    fn reader_range(&self, offset: u64, len: u64) -> SnapshotReader {
        SnapshotReader {
            file: self.file.clone(),
            offset,
            end: offset + len,
        }
    }

    /// Reads the metadata from the header, without checking the hash.
    pub fn read_meta(&self) -> io::Result<SnapshotMeta> {
        Ok(self.layout()?.0)
    }

    /// Checks the whole file (magic, lengths, blake3) and returns its meta and state range.
    pub(crate) fn verify(&self) -> io::Result<(SnapshotMeta, SnapshotReader)> {
        let (meta, state_offset, state_len) = self.layout()?;
        let body_len = self.len_bytes - TRAILER_BYTES + 8;
        let mut hasher = blake3::Hasher::new();
        let copied = io::copy(&mut self.reader_range(0, body_len), &mut hasher)?;
        let mut expected = [0u8; 32];
        self.file.read_exact_at(&mut expected, body_len)?;
        if copied != body_len || hasher.finalize().as_bytes() != &expected {
            return Err(invalid("snapshot checksum mismatch"));
        }
        Ok((meta, self.reader_range(state_offset, state_len)))
    }

    /// Parses the header and trailer: (meta, state offset, state length).
    fn layout(&self) -> io::Result<(SnapshotMeta, u64, u64)> {
        let mut head = [0u8; 12];
        if self.len_bytes < head.len() as u64 + TRAILER_BYTES {
            return Err(invalid("snapshot file too short"));
        }
        self.file.read_exact_at(&mut head, 0)?;
        if &head[..8] != MAGIC {
            return Err(invalid("not a snapshot file (bad magic)"));
        }
        let meta_len = u32::from_be_bytes([head[8], head[9], head[10], head[11]]);
        if meta_len > META_BYTES_MAX {
            return Err(invalid("snapshot meta too long"));
        }
        let state_offset = 12 + u64::from(meta_len);
        let state_len = self
            .len_bytes
            .checked_sub(state_offset + TRAILER_BYTES)
            .ok_or_else(|| invalid("snapshot file too short for its meta"))?;
        let mut len_field = [0u8; 8];
        self.file
            .read_exact_at(&mut len_field, state_offset + state_len)?;
        if u64::from_be_bytes(len_field) != state_len {
            return Err(invalid("snapshot state length mismatch"));
        }
        let mut meta = vec![0u8; meta_len as usize];
        self.file.read_exact_at(&mut meta, 12)?;
        let meta = wire::decode_snapshot_meta(&meta).map_err(|e| invalid(&e.to_string()))?;
        Ok((meta, state_offset, state_len))
    }
}

/// Sequential reader over (part of) a snapshot file, using positional reads.
#[derive(Debug)]
pub struct SnapshotReader {
    file: Arc<File>,
    offset: u64,
    end: u64,
}

impl Read for SnapshotReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.end.saturating_sub(self.offset);
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.offset)?;
        self.offset += n as u64;
        Ok(n)
    }
}

/// The directory of snapshot files of one coordinator.
#[derive(Clone, Debug)]
pub struct SnapshotDir {
    dir: PathBuf,
}

/// Distinguishes concurrent temporary files of one process.
static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

impl SnapshotDir {
    /// Opens (creating it if needed) `<data_dir>/snapshots`. Safe to call while a node runs on
    /// the same directory (the transport does, to receive snapshots).
    pub fn open(data_dir: &Path) -> io::Result<Self> {
        let dir = data_dir.join("snapshots");
        fs::create_dir_all(&dir)?;
        Ok(Self { dir })
    }

    /// Removes temporary files (half-built or half-received snapshots) left by a crash. Only
    /// before the node starts: while it runs, a temporary file may be a transfer in progress.
    pub(crate) fn remove_stale_temp_files(&self) -> io::Result<()> {
        for entry in fs::read_dir(&self.dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "tmp") {
                fs::remove_file(&path)?;
            }
        }
        Ok(())
    }

    fn tmp_path(&self, what: &str) -> PathBuf {
        let seq = TMP_SEQ.fetch_add(1, Ordering::Relaxed);
        self.dir.join(format!("{what}-{}-{seq}.tmp", std::process::id()))
    }

    /// Starts receiving a snapshot from a peer: write its bytes, then [`IncomingSnapshot::finish`]
    /// and hand the result to `Raft::install_full_snapshot`.
    pub fn incoming(&self) -> io::Result<IncomingSnapshot> {
        let path = self.tmp_path("incoming");
        let file = BufWriter::with_capacity(BUFFER_BYTES, File::create_new(&path)?);
        Ok(IncomingSnapshot {
            path,
            file,
            written_bytes: 0,
        })
    }

    /// Writes a snapshot file for `meta` whose state stream `export` produces, and puts it in
    /// place. Blocking.
    pub(crate) fn write(
        &self,
        meta: &SnapshotMeta,
        export: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) -> io::Result<SnapshotFile> {
        let tmp = self.tmp_path("build");
        let result = (|| {
            let file = BufWriter::with_capacity(BUFFER_BYTES, File::create_new(&tmp)?);
            let mut w = HashingWriter {
                inner: file,
                hasher: blake3::Hasher::new(),
                count: 0,
            };
            let meta_bytes = wire::SnapshotMeta::from(meta).encode_to_vec();
            let meta_len = u32::try_from(meta_bytes.len()).map_err(|_| invalid("meta too long"))?;
            w.write_all(MAGIC)?;
            w.write_all(&meta_len.to_be_bytes())?;
            w.write_all(&meta_bytes)?;
            let state_start = w.count;
            export(&mut w)?;
            let state_len = w.count - state_start;
            w.write_all(&state_len.to_be_bytes())?;
            let hash = *w.hasher.finalize().as_bytes();
            let mut file = w.inner;
            file.write_all(&hash)?;
            file.into_inner().map_err(|e| e.into_error())?.sync_all()
        })();
        if let Err(e) = result {
            // Best effort: a leftover temporary file is also removed at the next start.
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        self.place(&tmp, meta)
    }

    /// Moves a verified file (built here or received) to its final name, fsyncs the directory,
    /// and prunes old snapshots. Returns the placed file, reopened at its final path.
    pub(crate) fn place(&self, from: &Path, meta: &SnapshotMeta) -> io::Result<SnapshotFile> {
        let name = match &meta.last_log_id {
            Some(l) => format!("{:020}-{}.snap", l.index, l.leader_id.term),
            None => format!("{:020}-none.snap", 0),
        };
        let path = self.dir.join(name);
        fs::rename(from, &path)?;
        File::open(&self.dir)?.sync_all()?;
        let placed = SnapshotFile::open(path)?;
        self.prune()?;
        Ok(placed)
    }

    /// Snapshot files, oldest first.
    fn files(&self) -> io::Result<Vec<PathBuf>> {
        let mut files: Vec<PathBuf> = fs::read_dir(&self.dir)?
            .map(|e| e.map(|e| e.path()))
            .collect::<io::Result<Vec<_>>>()?
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "snap"))
            .collect();
        files.sort_by_key(|p| sort_key(p));
        Ok(files)
    }

    fn prune(&self) -> io::Result<()> {
        let files = self.files()?;
        let excess = files.len().saturating_sub(SNAPSHOTS_KEPT);
        for old in &files[..excess] {
            fs::remove_file(old)?;
        }
        Ok(())
    }

    /// The newest snapshot file and its meta, if any.
    pub fn latest(&self) -> io::Result<Option<(SnapshotMeta, SnapshotFile)>> {
        let Some(path) = self.files()?.pop() else {
            return Ok(None);
        };
        let file = SnapshotFile::open(path)?;
        let meta = file.read_meta()?;
        Ok(Some((meta, file)))
    }
}

/// Orders `{index:020}-{term}.snap` by (index, term); "none" sorts first.
fn sort_key(path: &Path) -> (u64, Option<u64>) {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
    let (index, term) = stem.split_once('-').unwrap_or((stem, ""));
    (index.parse().unwrap_or(0), term.parse().ok())
}

/// A snapshot being received from a peer, written to a temporary file.
#[derive(Debug)]
pub struct IncomingSnapshot {
    path: PathBuf,
    file: BufWriter<File>,
    written_bytes: u64,
}

impl Write for IncomingSnapshot {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.written_bytes + buf.len() as u64 > SNAPSHOT_BYTES_MAX {
            return Err(invalid("incoming snapshot exceeds SNAPSHOT_BYTES_MAX"));
        }
        let n = self.file.write(buf)?;
        self.written_bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl IncomingSnapshot {
    /// Flushes and fsyncs the received bytes and opens them as a snapshot. The content is
    /// verified (magic, lengths, blake3, meta) when it is installed, not here.
    pub fn finish(self) -> io::Result<SnapshotFile> {
        let file = self.file.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        SnapshotFile::open(self.path)
    }
}

struct HashingWriter<W: Write> {
    inner: W,
    hasher: blake3::Hasher,
    count: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}
