//! The chunk store: chunks named by their blake3 hash, in one or more data directories.
//!
//! A chunk becomes visible only complete, verified and durable (see [`PendingChunk`]), and is
//! served only after its bytes hash to its name again.
//!
//! **Every read verifies the whole chunk.** A ranged read therefore reads and hashes the whole
//! chunk (at most `CHUNK_BYTES_MAX`, 64 MiB; blake3 runs at well over 1 GiB/s on one core), and
//! the bytes served come from that same verified buffer, so a byte that rotted on disk is never
//! sent, not even once. The alternative, a "verified at T" flag in memory with reads served
//! straight from disk, was rejected: it serves whatever rotted after T until a scrub notices.
//! Verified ranges without whole-chunk reads would need a blake3 outboard tree (bao) per chunk;
//! worth it only if small ranged reads of large chunks turn out to dominate.
//!
//! A chunk that fails verification, or that the disk or file system cannot read (see
//! [`error::is_damage`]), is moved to `quarantine/` at once, so `has` stops reporting it and
//! repair can replace it; the read that found it fails with [`StoreError::Corrupt`]. A copy so
//! damaged that it cannot even be moved stays where it is, and is reported again by every read
//! and scrub that meets it; `has` does not report it either.
//!
//! **A chunk's file time says when it was last written or re-put.** A put of a chunk already
//! present refreshes it, and [`ChunkStore::delete_if_idle`] spares a chunk whose time is recent:
//! garbage collection decides a chunk is unreferenced, then deletes it, and in between a writer
//! may have deduplicated against this very copy (its put answered "already present") and be
//! about to record a new reference to it. The refresh and the guarded delete take the same lock,
//! so either the refresh comes first (and the delete keeps the copy) or the delete does (and the
//! put, finding no file to refresh, stores the chunk again).
//!
//! Every method here blocks on file IO: call it from `spawn_blocking`.

mod data_dir;
mod direct;
mod error;
mod listing;
mod pending;

use std::fs;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use prost::bytes::Bytes;

use crate::chunk_hash::ChunkHash;
use collective_proto::chunk_limits::CHUNK_BYTES_MAX;
pub(crate) use data_dir::DataDir;
use data_dir::sync_dir;
pub use data_dir::{DataDirConfig, DirCapacity, MARKER_FILE, PROBE_STALL_LIMIT};
pub use error::StoreError;
pub use listing::ChunkList;
pub use pending::PendingChunk;

pub(crate) use direct::STAGE_BYTES_MAX;

/// How a chunk store is laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    pub data_dirs: Vec<DataDirConfig>,
    /// Bytes every file system keeps free, beyond any chunk (room for the OS and other users).
    pub free_bytes_reserved: u64,
    /// Move chunk files with direct I/O where the file system allows it (see `direct.rs`);
    /// false: always through the page cache.
    pub direct_io: bool,
}

/// The outcome of starting a put.
#[derive(Debug)]
pub enum PutStart {
    /// A verified copy is already here; nothing to write.
    AlreadyPresent,
    /// Stream the bytes into this, then commit it. Boxed: it carries a blake3 hasher (~2 KiB).
    Receiving(Box<PendingChunk>),
}

/// What a guarded delete did with one chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deletion {
    /// Every copy was removed.
    Removed,
    /// No copy was stored.
    Absent,
    /// A copy was written or re-put within the idle time asked for; nothing was removed.
    KeptRecent,
}

/// The chunks of one node.
#[derive(Debug)]
pub struct ChunkStore {
    dirs: Vec<Arc<DataDir>>,
    /// Serializes choosing a directory and reserving space in it, so concurrent puts cannot
    /// both count on the same free bytes.
    placing: Mutex<()>,
    /// Serializes a re-put's refresh of a file's time with deletes, so a guarded delete never
    /// removes a copy between a put seeing it and that put answering "already present".
    deleting: Mutex<()>,
}

impl ChunkStore {
    /// Opens (creating if needed) every data directory, removing leftovers of interrupted puts.
    pub fn open(config: &StoreConfig) -> Result<ChunkStore, StoreError> {
        if config.data_dirs.is_empty() {
            return Err(StoreError::Config("at least one data directory is needed".into()));
        }
        // A directory that cannot be opened is taken out of service, not the node: its other
        // directories still serve. With none left there is nothing to serve.
        let mut dirs = Vec::with_capacity(config.data_dirs.len());
        let mut first_error = None;
        for dir_config in &config.data_dirs {
            let dir = match DataDir::open(dir_config, config.free_bytes_reserved, config.direct_io) {
                Ok(dir) => dir,
                Err(error) => {
                    let dir = DataDir::new(dir_config, config.free_bytes_reserved);
                    dir.fail(format!("could not be opened: {error}"));
                    first_error.get_or_insert(error);
                    dir
                }
            };
            dirs.push(Arc::new(dir));
        }
        if let Some(error) = first_error.filter(|_| !dirs.iter().any(|dir| dir.working())) {
            return Err(error);
        }
        Ok(ChunkStore {
            dirs,
            placing: Mutex::new(()),
            deleting: Mutex::new(()),
        })
    }

    /// True when some data directory holds a file for `hash` (not read here; a corrupt one is
    /// found by the next read or scrub and quarantined). A file whose metadata cannot be read
    /// does not count.
    pub fn contains(&self, hash: &ChunkHash) -> bool {
        self.working().any(|dir| dir.chunk_path(hash).is_file())
    }

    /// Starts a put of `length_bytes` bytes named `hash`, in the directory with the most room.
    ///
    /// An existing copy is verified first: a good one makes the put a no-op (after refreshing
    /// its file time, see the module docs), a corrupt one is quarantined and replaced by this put.
    pub fn begin_put(&self, hash: ChunkHash, length_bytes: u64) -> Result<PutStart, StoreError> {
        if length_bytes > CHUNK_BYTES_MAX {
            return Err(StoreError::TooLarge {
                length: length_bytes,
                max: CHUNK_BYTES_MAX,
            });
        }
        match self.read(&hash) {
            Ok(_) => {
                if self.refresh(&hash)? {
                    return Ok(PutStart::AlreadyPresent);
                }
                // Deleted since the read (garbage collection won the race): store it again.
            }
            Err(StoreError::NotFound(_) | StoreError::Corrupt { .. }) => {}
            Err(other) => return Err(other),
        }
        let dir = {
            let _placing = self.placing.lock().unwrap_or_else(|p| p.into_inner());
            let mut best: Option<(u64, &Arc<DataDir>)> = None;
            for dir in &self.dirs {
                let capacity = dir.capacity();
                if capacity.failed.is_none() && best.is_none_or(|(most, _)| capacity.free_bytes > most) {
                    best = Some((capacity.free_bytes, dir));
                }
            }
            let (available, dir) =
                best.ok_or_else(|| StoreError::NoWorkingDir(self.failures().join("; ")))?;
            if available < length_bytes {
                return Err(StoreError::Full {
                    needed: length_bytes,
                    available,
                });
            }
            dir.reserve(length_bytes);
            Arc::clone(dir)
        };
        PendingChunk::create(dir, hash, length_bytes).map(|p| PutStart::Receiving(Box::new(p)))
    }

    /// The whole chunk, verified against its name. A copy that fails, or that cannot be read for
    /// damage, is quarantined.
    pub fn read(&self, hash: &ChunkHash) -> Result<Bytes, StoreError> {
        let Found { dir, path, length } = match self.locate(hash) {
            Ok(found) => found,
            Err(Located::Damaged(dir, error)) => return Err(self.unreadable(&dir, hash, &error)),
            Err(Located::Missing) => return Err(StoreError::NotFound(*hash)),
        };
        if length > CHUNK_BYTES_MAX {
            return Err(self.quarantine(&dir, hash, "longer than any chunk may be"));
        }
        // Reads up to a block past the expected end: a file that grew is caught by the hash.
        let buffer = match direct::read_whole(&path, length, dir.direct) {
            Ok(buffer) => buffer,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(StoreError::NotFound(*hash)),
            Err(e) if error::is_damage(&e) => return Err(self.unreadable(&dir, hash, &e)),
            Err(e) => return Err(dir.suspect(StoreError::io("reading", &path, e))),
        };
        if ChunkHash::of(&buffer) != *hash {
            return Err(self.quarantine(&dir, hash, "content does not match its hash"));
        }
        Ok(buffer)
    }

    /// The length of a stored chunk, from its file (not verified; [`ChunkStore::read`] does). A
    /// copy whose metadata cannot be read for damage is quarantined, as by a read.
    pub fn length(&self, hash: &ChunkHash) -> Result<u64, StoreError> {
        self.length_in(hash).map(|(length, _)| length)
    }

    /// [`ChunkStore::length`], and the directory the chunk is in.
    pub(crate) fn length_in(&self, hash: &ChunkHash) -> Result<(u64, Arc<DataDir>), StoreError> {
        match self.locate(hash) {
            Ok(Found { dir, length, .. }) => Ok((length, dir)),
            Err(Located::Damaged(dir, error)) => Err(self.unreadable(&dir, hash, &error)),
            Err(Located::Missing) => Err(StoreError::NotFound(*hash)),
        }
    }

    /// Every chunk on disk, data directory by data directory; see [`ChunkList`].
    pub fn list(&self) -> ChunkList {
        ChunkList::new(self.working().map(|dir| dir.chunks_dir().to_path_buf()).collect())
    }

    /// Sets the file time of the stored copy of `hash` to now; false when there is none (it
    /// was deleted meanwhile).
    fn refresh(&self, hash: &ChunkHash) -> Result<bool, StoreError> {
        let _deleting = self.deleting.lock().unwrap_or_else(|p| p.into_inner());
        let Ok(Found { path, .. }) = self.locate(hash) else {
            return Ok(false);
        };
        let file = match fs::File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(StoreError::io("opening", &path, e)),
        };
        file.set_modified(SystemTime::now())
            .map_err(|e| StoreError::io("refreshing the time of", &path, e))?;
        Ok(true)
    }

    /// Removes every copy of `hash` unless one was written or re-put less than `min_idle` before
    /// `now` (a time in the future counts as recent); `min_idle` zero removes unconditionally.
    pub fn delete_if_idle(
        &self,
        hash: &ChunkHash,
        min_idle: Duration,
        now: SystemTime,
    ) -> Result<Deletion, StoreError> {
        let _deleting = self.deleting.lock().unwrap_or_else(|p| p.into_inner());
        if !min_idle.is_zero() {
            for dir in self.working() {
                let path = dir.chunk_path(hash);
                let modified = match fs::metadata(&path).and_then(|meta| meta.modified()) {
                    Ok(modified) => modified,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(StoreError::io("reading the time of", &path, e)),
                };
                let idle = now.duration_since(modified).unwrap_or(Duration::ZERO);
                if idle < min_idle {
                    return Ok(Deletion::KeptRecent);
                }
            }
        }
        Ok(if self.delete_locked(hash)? {
            Deletion::Removed
        } else {
            Deletion::Absent
        })
    }

    /// Removes every copy of `hash`; true when there was one.
    pub fn delete(&self, hash: &ChunkHash) -> Result<bool, StoreError> {
        let _deleting = self.deleting.lock().unwrap_or_else(|p| p.into_inner());
        self.delete_locked(hash)
    }

    fn delete_locked(&self, hash: &ChunkHash) -> Result<bool, StoreError> {
        let mut removed = false;
        for dir in self.working() {
            let path = dir.chunk_path(hash);
            let length = match fs::metadata(&path) {
                Ok(meta) => meta.len(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(StoreError::io("reading metadata of", &path, e)),
            };
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(StoreError::io("removing", &path, e)),
            }
            sync_dir(&dir.shard_dir(hash))?;
            dir.removed(length);
            removed = true;
        }
        Ok(removed)
    }

    /// Space in every data directory, in configuration order; a failed one says why.
    pub fn capacity(&self) -> Vec<DirCapacity> {
        self.dirs.iter().map(|dir| dir.capacity()).collect()
    }

    /// How many data directories the store has, in service or not.
    pub fn dir_count(&self) -> usize {
        self.dirs.len()
    }

    /// Probes the `index`th data directory (see `data_dir.rs`) unless it is out of service or a
    /// probe of it is still running, taking it out of service if its disk fails; true when this
    /// call did. The caller paces the probes; one directory at a time, so that a probe hung on
    /// one disk holds no other back.
    pub fn check_dir(&self, index: usize) -> bool {
        self.dirs.get(index).is_some_and(|dir| dir.check(Duration::ZERO))
    }

    /// Takes out of service each directory whose probe has been running for longer than
    /// `limit` (see `data_dir.rs`); how many this call took.
    pub fn fail_stalled(&self, limit: Duration) -> usize {
        self.dirs.iter().filter(|dir| dir.check_stalled(limit)).count()
    }

    /// Each data directory in service, with its marker (for the node to record).
    pub fn markers(&self) -> Vec<(std::path::PathBuf, String)> {
        self.working()
            .map(|dir| (dir.root.clone(), dir.marker.clone()))
            .collect()
    }

    /// The data directories out of service, each as "PATH: why".
    pub fn failures(&self) -> Vec<String> {
        self.dirs
            .iter()
            .filter_map(|dir| dir.failure().map(|why| format!("{}: {why}", dir.root.display())))
            .collect()
    }

    /// The data directories in service.
    fn working(&self) -> impl Iterator<Item = &Arc<DataDir>> {
        self.dirs.iter().filter(|dir| dir.working())
    }

    /// The first data directory with a file for `hash`. A file whose metadata the file system
    /// cannot read for damage is passed over for a good one in another directory.
    fn locate(&self, hash: &ChunkHash) -> Result<Found, Located> {
        let mut damaged = None;
        for dir in self.working() {
            let path = dir.chunk_path(hash);
            match fs::metadata(&path) {
                Ok(meta) if meta.is_file() => {
                    return Ok(Found {
                        dir: Arc::clone(dir),
                        path,
                        length: meta.len(),
                    });
                }
                Err(e) if error::is_damage(&e) => {
                    damaged.get_or_insert((Arc::clone(dir), e));
                }
                Ok(_) | Err(_) => {}
            }
        }
        Err(damaged.map_or(Located::Missing, |(dir, e)| Located::Damaged(dir, e)))
    }

    /// [`ChunkStore::quarantine`] for a copy the disk or file system could not read.
    fn unreadable(&self, dir: &DataDir, hash: &ChunkHash, error: &std::io::Error) -> StoreError {
        tracing::error!(chunk = %hash, %error, dir = %dir.chunks_dir().display(), "chunk could not be read");
        let damaged = self.quarantine(dir, hash, "the disk could not read it");
        // One bad sector, or the whole disk? The probe tells.
        dir.check(data_dir::PROBE_AFTER_ERROR_EVERY);
        damaged
    }

    /// Moves a failed copy out of `chunks/` so it is never served again, and says so loudly.
    fn quarantine(&self, dir: &DataDir, hash: &ChunkHash, why: &'static str) -> StoreError {
        let from = dir.chunk_path(hash);
        let length = fs::metadata(&from).map(|m| m.len()).unwrap_or(0);
        let to = dir.quarantine_path(hash, crate::node::unix_ms_now());
        let moved = fs::rename(&from, &to)
            .map_err(|e| StoreError::io("quarantining", &from, e))
            .and_then(|()| sync_dir(&dir.shard_dir(hash)))
            .and_then(|()| sync_dir(dir.quarantine_dir()));
        match moved {
            Ok(()) => {
                dir.removed(length);
                tracing::error!(chunk = %hash, why, quarantined = %to.display(), "corrupt chunk quarantined");
            }
            Err(error) => {
                tracing::error!(chunk = %hash, why, %error, "corrupt chunk could not be quarantined");
            }
        }
        StoreError::Corrupt { hash: *hash, why }
    }
}

/// A stored copy [`ChunkStore::locate`] found: its directory, its file and the file's length.
struct Found {
    dir: Arc<DataDir>,
    path: std::path::PathBuf,
    length: u64,
}

/// Why [`ChunkStore::locate`] found no copy to read.
#[derive(Debug)]
enum Located {
    Missing,
    /// Only a copy whose metadata could not be read, with the error.
    Damaged(Arc<DataDir>, std::io::Error),
}

#[cfg(test)]
mod tests;
