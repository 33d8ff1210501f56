//! One data directory: its layout on disk, what it holds, and how much more it may take.
//!
//! ```text
//! <root>/chunks/ab/cd/<64 hex>   chunks, by hash; visible only once complete and verified
//! <root>/tmp/<hex>.<random>.tmp  puts in progress; emptied at every open
//! <root>/quarantine/<hex>.<ms>   chunks that failed verification, kept for inspection
//! ```
//! Temporary files live on the same file system as the chunks, so publishing one is a rename.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::StoreError;
use crate::chunk_hash::ChunkHash;

/// Where a data directory may put chunks, and how much it may hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDirConfig {
    pub path: PathBuf,
    /// Most bytes of chunks to keep here, whatever the file system has free; `None`: no limit
    /// but the file system's.
    pub capacity_bytes_max: Option<u64>,
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
}

#[derive(Debug, Default)]
struct Usage {
    used_bytes: u64,
    chunk_count: u64,
    /// Bytes promised to puts in progress.
    reserved_bytes: u64,
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
    usage: Mutex<Usage>,
}

impl DataDir {
    /// Creates the layout if needed, deletes leftovers of interrupted puts, counts chunks, and
    /// (when `direct_io` asks for it) finds out whether the file system takes direct I/O.
    pub(crate) fn open(
        config: &DataDirConfig,
        free_bytes_reserved: u64,
        direct_io: bool,
    ) -> Result<DataDir, StoreError> {
        let root = config.path.clone();
        let mut dir = DataDir {
            chunks: root.join("chunks"),
            tmp: root.join("tmp"),
            quarantine: root.join("quarantine"),
            root,
            capacity_bytes_max: config.capacity_bytes_max,
            free_bytes_reserved,
            direct: false,
            usage: Mutex::new(Usage::default()),
        };
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

    /// What this directory can take now.
    pub(crate) fn capacity(&self) -> Result<DirCapacity, StoreError> {
        let stat = nix::sys::statvfs::statvfs(&self.root)
            .map_err(|e| StoreError::io("statvfs", &self.root, std::io::Error::from(e)))?;
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
        Ok(DirCapacity {
            path: self.root.clone(),
            total_bytes: total,
            free_bytes: free,
            used_bytes: usage.used_bytes,
            chunk_count: usage.chunk_count,
        })
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
