//! One data directory: its layout on disk, what it holds, and how much more it may take.
//!
//! ```text
//! <root>/chunks/ab/cd/<64 hex>   chunks, by hash; visible only once complete and verified
//! <root>/tmp/<hex>.<random>.tmp  puts in progress; emptied at every open
//! <root>/quarantine/<hex>.<ms>   chunks that failed verification, kept for inspection
//! <root>/collective-data-dir     the directory's marker: a random name, written at first open
//! ```
//! Temporary files live on the same file system as the chunks, so publishing one is a rename.
//!
//! **A directory is the one the node stored chunks in, or it is not used.** The node records
//! each directory's marker (`data-dirs.json` beside `node.toml`) and passes it back at every
//! open. A directory without it is refused rather than filled anew: most often its disk is not
//! mounted, and the node would otherwise store chunks on the file system under the mount point
//! (often the system disk) while the member counted every chunk on the real disk as lost. A
//! directory with another marker holds some other disk. Either is out of service, with the
//! reason, until the disk is back (or the record is removed, to start that directory afresh).
//!
//! **A directory whose disk fails is taken out of service.** Every few seconds, and after any
//! I/O error in it, the directory is probed: a small file is written, synced, read back and
//! removed, and `chunks/` is listed. A probe that fails for any reason but a full disk (or a
//! process out of file handles or memory) marks the directory failed until the node restarts:
//! no chunk is placed there, none is served or reported present from there, and it counts no
//! space. The heartbeat names it, so the member asks the node again which chunks it holds and
//! copies the missing ones from other replicas. One unreadable copy does not fail a directory
//! (that copy is quarantined, see the store's docs); a disk that also refuses the probe does.
//!
//! **A disk that stops answering fails too.** A dying disk, or a file system frozen or hung on
//! its device, may never return the probe's write or sync: the thread waits in the kernel, and
//! no error ever comes. A probe still running after [`PROBE_STALL_LIMIT`] fails the directory
//! all the same ("does not answer"), and no second probe of it is started while one hangs.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::RngCore;

use super::StoreError;
use crate::chunk_hash::ChunkHash;
use crate::pki::PkiError;
use crate::slots::OrderedSlots;

/// The shortest time between two probes of a directory after I/O errors in it: a failing disk
/// fails every operation, and one probe a second is enough to tell.
pub(crate) const PROBE_AFTER_ERROR_EVERY: Duration = Duration::from_secs(1);
/// How long a probe may run before its directory is failed as not answering: far beyond any
/// sync of one block on a working disk, even a busy spinning one.
pub const PROBE_STALL_LIMIT: Duration = Duration::from_secs(30);
/// Bytes a probe writes and reads back: one block.
const PROBE_BYTES: usize = 4096;
/// The file naming a data directory, in its root (see the module docs).
pub const MARKER_FILE: &str = "collective-data-dir";
/// Anyone may read a marker; only the node writes it.
const MARKER_FILE_MODE: u32 = 0o644;

/// Where a data directory may put chunks, and how much it may hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDirConfig {
    pub path: PathBuf,
    /// Most bytes of chunks to keep here, whatever the file system has free; `None`: no limit
    /// but the file system's.
    pub capacity_bytes_max: Option<u64>,
    /// The marker the directory held when this node last opened it, which it must hold again;
    /// `None` for a directory the node has not used yet (its marker is adopted, or written).
    pub marker: Option<String>,
}

/// Space in one data directory, for heartbeats and placement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirCapacity {
    pub path: PathBuf,
    /// The file system's size, or the configured limit if smaller.
    pub total_bytes: u64,
    /// What a new chunk could use now (after puts in progress and the reserve).
    pub free_bytes: u64,
    pub used_bytes: u64,
    pub chunk_count: u64,
    /// Why the directory was taken out of service; `None` while it works. A failed directory
    /// counts no bytes and no chunks.
    pub failed: Option<String>,
}

#[derive(Debug, Default)]
struct Usage {
    used_bytes: u64,
    chunk_count: u64,
    /// Bytes promised to puts in progress.
    reserved_bytes: u64,
}

#[derive(Debug, Default)]
struct Health {
    /// Why the directory was taken out of service; once set, kept until the process ends.
    failed: Option<String>,
    /// When the last probe started.
    probed_at: Option<Instant>,
    /// Whether that probe is still running.
    probing: bool,
}

#[derive(Debug)]
pub(crate) struct DataDir {
    pub(crate) root: PathBuf,
    chunks: PathBuf,
    pub(crate) tmp: PathBuf,
    quarantine: PathBuf,
    capacity_bytes_max: Option<u64>,
    free_bytes_reserved: u64,
    /// Chunk files are written and read with direct I/O (see `direct.rs`).
    pub(crate) direct: bool,
    /// The directory's marker; empty for one that could not be opened.
    pub(crate) marker: String,
    usage: Mutex<Usage>,
    health: Mutex<Health>,
    /// Turns to read a chunk here and verify it (a get's; see [`READS_PER_CORE`]).
    pub(crate) read_slots: Arc<OrderedSlots>,
}

/// Chunk reads (from disk, then verified) one directory runs at once, per core (at least 2: one
/// reading while another is hashed); further reads wait their turn, the get the node took up
/// first served first (see [`OrderedSlots`]).
/// Reading and hashing are a node's work for a get: a client that asked 8 chunks of a node at
/// once had them all read and hashed side by side, so each was done only when nearly all were,
/// and the first reached the client late. Per directory, so that a disk that stops answering
/// holds up only the reads that were going to it anyway.
pub(crate) const READS_PER_CORE: usize = 1;

fn reads_at_once() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    (cores * READS_PER_CORE).max(2)
}

impl DataDir {
    /// The directory as configured, before anything on disk is looked at.
    pub(crate) fn new(config: &DataDirConfig, free_bytes_reserved: u64) -> DataDir {
        let root = config.path.clone();
        DataDir {
            chunks: root.join("chunks"),
            tmp: root.join("tmp"),
            quarantine: root.join("quarantine"),
            root,
            capacity_bytes_max: config.capacity_bytes_max,
            free_bytes_reserved,
            direct: false,
            marker: String::new(),
            usage: Mutex::new(Usage::default()),
            health: Mutex::new(Health::default()),
            read_slots: OrderedSlots::new(reads_at_once()),
        }
    }

    /// Checks the directory's marker, creates the layout if needed, deletes leftovers of
    /// interrupted puts, counts chunks, and (when `direct_io` asks for it) finds out whether the
    /// file system takes direct I/O.
    pub(crate) fn open(
        config: &DataDirConfig,
        free_bytes_reserved: u64,
        direct_io: bool,
    ) -> Result<DataDir, StoreError> {
        let mut dir = DataDir::new(config, free_bytes_reserved);
        dir.marker = dir.check_marker(config.marker.as_deref())?;
        for path in [&dir.root, &dir.chunks, &dir.tmp, &dir.quarantine] {
            fs::create_dir_all(path).map_err(|e| StoreError::io("creating", path, e))?;
        }
        for entry in fs::read_dir(&dir.tmp).map_err(|e| StoreError::io("listing", &dir.tmp, e))? {
            let path = entry.map_err(|e| StoreError::io("listing", &dir.tmp, e))?.path();
            fs::remove_file(&path).map_err(|e| StoreError::io("removing leftover", &path, e))?;
        }
        dir.direct = direct_io && super::direct::supports_direct_io(&dir.tmp);
        let (used_bytes, chunk_count) = count_chunks(&dir.chunks)?;
        *dir.lock() = Usage {
            used_bytes,
            chunk_count,
            reserved_bytes: 0,
        };
        Ok(dir)
    }

    /// The directory's marker: `expected` if it holds that, its own if the node has none on record
    /// (a fresh one written if it has none either). Checked before anything is created, so a
    /// mount point whose disk is missing stays empty.
    fn check_marker(&self, expected: Option<&str>) -> Result<String, StoreError> {
        let path = self.root.join(MARKER_FILE);
        let found = match fs::read_to_string(&path) {
            Ok(text) => Some(text.trim().to_owned()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(StoreError::io("reading", &path, e)),
        };
        match (expected, found) {
            (Some(expected), Some(found)) if expected == found => Ok(found),
            (Some(expected), Some(found)) => Err(StoreError::Config(format!(
                "{} holds data directory {found}, not {expected}, the one this node stored chunks \
                 in: is another disk mounted there?",
                self.root.display()
            ))),
            (Some(expected), None) => Err(StoreError::Config(format!(
                "{} is not the data directory this node stored chunks in (its marker {expected} is \
                 missing): is its disk mounted? (To start it afresh, remove it from the node's \
                 data-dirs.json.)",
                self.root.display()
            ))),
            (None, Some(found)) => Ok(found),
            (None, None) => {
                let mut random = [0u8; 16];
                rand::rng().fill_bytes(&mut random);
                let marker: String = random.iter().map(|b| format!("{b:02x}")).collect();
                fs::create_dir_all(&self.root).map_err(|e| StoreError::io("creating", &self.root, e))?;
                crate::pki::write_atomic(&path, format!("{marker}\n").as_bytes(), MARKER_FILE_MODE).map_err(
                    |e| match e {
                        PkiError::Io { path, source } => StoreError::io("writing", path, source),
                        other => StoreError::io("writing", &path, std::io::Error::other(other)),
                    },
                )?;
                sync_dir(&self.root)?;
                Ok(marker)
            }
        }
    }

    /// Why the directory is out of service, or `None` while it works.
    pub(crate) fn failure(&self) -> Option<String> {
        self.health().failed.clone()
    }

    pub(crate) fn working(&self) -> bool {
        self.health().failed.is_none()
    }

    /// Takes the directory out of service, saying so loudly; true if it was in service.
    pub(crate) fn fail(&self, why: String) -> bool {
        let mut health = self.health();
        if health.failed.is_some() {
            return false;
        }
        tracing::error!(
            dir = %self.root.display(),
            %why,
            "data directory failed: until the node restarts it stores no chunk and serves none, \
             and the member copies its chunks again from other replicas"
        );
        health.failed = Some(why);
        true
    }

    /// Probes the directory (see the module docs) unless it failed already or was probed less
    /// than `interval` ago; a failed probe takes it out of service. True when this call did.
    pub(crate) fn check(&self, interval: Duration) -> bool {
        {
            let mut health = self.health();
            let recent = health.probed_at.is_some_and(|at| at.elapsed() < interval);
            if health.failed.is_some() || health.probing || recent {
                return false;
            }
            health.probed_at = Some(Instant::now());
            health.probing = true;
        }
        let probed = self.probe();
        self.health().probing = false;
        match probed {
            Ok(()) => false,
            Err(error) if super::error::says_nothing_of_the_disk(&error) => false,
            Err(error) => self.fail(format!("probe failed: {error}")),
        }
    }

    /// Fails the directory if a probe of it has been running for longer than `limit`: its disk
    /// does not answer. True when this call did.
    pub(crate) fn check_stalled(&self, limit: Duration) -> bool {
        let stalled = {
            let health = self.health();
            health.probing && health.probed_at.is_some_and(|at| at.elapsed() > limit)
        };
        stalled
            && self.fail(format!(
                "the disk does not answer: a probe (one block written and synced) has not \
                 finished in {} s",
                limit.as_secs()
            ))
    }

    /// `error`, from an operation in this directory; an I/O failure other than a full disk
    /// gets the directory probed (at most once a second), since a failing disk fails everything.
    pub(crate) fn suspect(&self, error: StoreError) -> StoreError {
        if matches!(error, StoreError::Io { .. }) {
            self.check(PROBE_AFTER_ERROR_EVERY);
        }
        error
    }

    /// Writes, syncs, reads back and removes a one-block file in `tmp/`, then lists `chunks/`.
    fn probe(&self) -> std::io::Result<()> {
        let mut random = [0u8; 8];
        rand::rng().fill_bytes(&mut random);
        let content: Vec<u8> = random.iter().copied().cycle().take(PROBE_BYTES).collect();
        let suffix: String = random.iter().map(|b| format!("{b:02x}")).collect();
        let path = self.tmp.join(format!("probe.{suffix}.tmp"));
        let written = (|| {
            let mut file = File::create_new(&path)?;
            file.write_all(&content)?;
            file.sync_all()?;
            let mut back = Vec::with_capacity(PROBE_BYTES);
            File::open(&path)?.read_to_end(&mut back)?;
            if back != content {
                return Err(std::io::Error::other("a probe file read back different bytes"));
            }
            Ok(())
        })();
        let removed = match fs::remove_file(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => other,
        };
        written?;
        removed?;
        fs::read_dir(&self.chunks)?.next().transpose()?;
        Ok(())
    }

    /// `chunks/ab/cd`: two levels of 256 keep every directory small up to billions of chunks.
    pub(crate) fn shard_dir(&self, hash: &ChunkHash) -> PathBuf {
        let hex = hash.to_hex();
        self.chunks.join(&hex[0..2]).join(&hex[2..4])
    }

    pub(crate) fn chunk_path(&self, hash: &ChunkHash) -> PathBuf {
        self.shard_dir(hash).join(hash.to_hex())
    }

    pub(crate) fn quarantine_path(&self, hash: &ChunkHash, now_unix_ms: u64) -> PathBuf {
        self.quarantine.join(format!("{}.{now_unix_ms}", hash.to_hex()))
    }

    pub(crate) fn quarantine_dir(&self) -> &Path {
        &self.quarantine
    }

    pub(crate) fn chunks_dir(&self) -> &Path {
        &self.chunks
    }

    /// What this directory can take now; nothing once it failed (a file system that cannot
    /// even say how full it is fails it).
    pub(crate) fn capacity(&self) -> DirCapacity {
        let out_of_service = |why: String| DirCapacity {
            path: self.root.clone(),
            total_bytes: 0,
            free_bytes: 0,
            used_bytes: 0,
            chunk_count: 0,
            failed: Some(why),
        };
        if let Some(why) = self.failure() {
            return out_of_service(why);
        }
        let stat = match nix::sys::statvfs::statvfs(&self.root) {
            Ok(stat) => stat,
            Err(errno) => {
                self.fail(format!("statvfs failed: {errno}"));
                return out_of_service(self.failure().unwrap_or_default());
            }
        };
        let block = stat.fragment_size();
        let fs_total = stat.blocks().saturating_mul(block);
        let fs_free = stat.blocks_available().saturating_mul(block);
        let usage = self.lock();
        let mut free = fs_free
            .saturating_sub(self.free_bytes_reserved)
            .saturating_sub(usage.reserved_bytes);
        let mut total = fs_total;
        if let Some(max) = self.capacity_bytes_max {
            free = free.min(max.saturating_sub(usage.used_bytes + usage.reserved_bytes));
            total = total.min(max);
        }
        DirCapacity {
            path: self.root.clone(),
            total_bytes: total,
            free_bytes: free,
            used_bytes: usage.used_bytes,
            chunk_count: usage.chunk_count,
            failed: None,
        }
    }

    pub(crate) fn reserve(&self, bytes: u64) {
        self.lock().reserved_bytes += bytes;
    }

    pub(crate) fn release(&self, bytes: u64) {
        let mut usage = self.lock();
        usage.reserved_bytes = usage.reserved_bytes.saturating_sub(bytes);
    }

    pub(crate) fn added(&self, bytes: u64) {
        let mut usage = self.lock();
        usage.used_bytes += bytes;
        usage.chunk_count += 1;
    }

    pub(crate) fn removed(&self, bytes: u64) {
        let mut usage = self.lock();
        usage.used_bytes = usage.used_bytes.saturating_sub(bytes);
        usage.chunk_count = usage.chunk_count.saturating_sub(1);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Usage> {
        // Usage is plain counters; a panic elsewhere leaves them whole, so keep going.
        self.usage.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Fsyncs a directory, so a rename or unlink in it survives a crash.
pub(crate) fn sync_dir(path: &Path) -> Result<(), StoreError> {
    File::open(path)
        .and_then(|dir| dir.sync_all())
        .map_err(|e| StoreError::io("syncing directory", path, e))
}

/// Sums the sizes of the chunk files under `chunks/`.
fn count_chunks(chunks: &Path) -> Result<(u64, u64), StoreError> {
    let mut bytes = 0;
    let mut count = 0;
    let mut stack = vec![chunks.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).map_err(|e| StoreError::io("listing", &dir, e))? {
            let entry = entry.map_err(|e| StoreError::io("listing", &dir, e))?;
            let meta = entry
                .metadata()
                .map_err(|e| StoreError::io("reading metadata of", entry.path(), e))?;
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                bytes += meta.len();
                count += 1;
            }
        }
    }
    Ok((bytes, count))
}
