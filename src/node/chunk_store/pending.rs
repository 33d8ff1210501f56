//! A put in progress: a temporary file that becomes the chunk only once it is complete, hashes
//! to its name and is on disk. Dropping it before that removes the file and frees its space.

use std::fs;
use std::path::PathBuf;
use std::sync::Arc;

use rand::RngCore;

use super::StoreError;
use super::data_dir::{DataDir, sync_dir};
use super::direct::{self, StagedWriter};
use crate::chunk_hash::ChunkHash;

/// A chunk being received. Its file I/O blocks: call it from `spawn_blocking`, except a `write`
/// whose bytes it only [`stages`](PendingChunk::stages) (a copy and a hash).
#[derive(Debug)]
pub struct PendingChunk {
    dir: Arc<DataDir>,
    hash: ChunkHash,
    length_bytes: u64,
    received_bytes: u64,
    hasher: blake3::Hasher,
    writer: Option<StagedWriter>,
    tmp_path: PathBuf,
}

impl PendingChunk {
    /// Creates the temporary file in `dir`, which has reserved `length_bytes` for it.
    pub(crate) fn create(
        dir: Arc<DataDir>,
        hash: ChunkHash,
        length_bytes: u64,
    ) -> Result<PendingChunk, StoreError> {
        let mut random = [0u8; 8];
        rand::rng().fill_bytes(&mut random);
        let suffix: String = random.iter().map(|b| format!("{b:02x}")).collect();
        let tmp_path = dir.tmp.join(format!("{}.{suffix}.tmp", hash.to_hex()));
        let writer = match direct::create_new(&tmp_path, dir.direct) {
            Ok(file) => StagedWriter::new(file, length_bytes),
            Err(e) => {
                dir.release(length_bytes);
                return Err(dir.suspect(StoreError::io("creating", &tmp_path, e)));
            }
        };
        Ok(PendingChunk {
            dir,
            hash,
            length_bytes,
            received_bytes: 0,
            hasher: blake3::Hasher::new(),
            writer: Some(writer),
            tmp_path,
        })
    }

    /// Appends `data`; refuses bytes beyond the announced length.
    pub fn write(&mut self, data: &[u8]) -> Result<(), StoreError> {
        let len = data.len() as u64;
        if self.received_bytes + len > self.length_bytes {
            return Err(StoreError::Overrun {
                announced: self.length_bytes,
            });
        }
        let writer = self.writer.as_mut().ok_or_else(|| StoreError::Io {
            context: "writing",
            path: self.tmp_path.clone(),
            source: std::io::Error::other("pending chunk already closed"),
        })?;
        writer
            .write(data)
            .map_err(|e| self.dir.suspect(StoreError::io("writing", &self.tmp_path, e)))?;
        self.hasher.update(data);
        self.received_bytes += len;
        Ok(())
    }

    /// Whether [`PendingChunk::write`] of `len` more bytes would only copy and hash them (no
    /// I/O), so it may run on an async thread.
    pub fn stages(&self, len: usize) -> bool {
        self.writer.as_ref().is_some_and(|writer| writer.fits(len))
    }

    /// Bytes received so far.
    pub fn received_bytes(&self) -> u64 {
        self.received_bytes
    }

    /// Checks length and hash, syncs the file, renames it into place and syncs the directory.
    /// On any error the temporary file is removed and nothing becomes visible.
    pub fn commit(mut self) -> Result<(), StoreError> {
        self.publish().map_err(|e| self.dir.suspect(e))
    }

    fn publish(&mut self) -> Result<(), StoreError> {
        if self.received_bytes != self.length_bytes {
            return Err(StoreError::Truncated {
                announced: self.length_bytes,
                received: self.received_bytes,
            });
        }
        let actual = ChunkHash::from_blake3(self.hasher.finalize());
        if actual != self.hash {
            return Err(StoreError::HashMismatch {
                expected: self.hash,
                actual,
            });
        }
        if let Some(writer) = self.writer.take() {
            writer
                .finish()
                .map_err(|e| StoreError::io("writing out", &self.tmp_path, e))?;
        }
        let shard = self.dir.shard_dir(&self.hash);
        if !shard.is_dir() {
            fs::create_dir_all(&shard).map_err(|e| StoreError::io("creating", &shard, e))?;
            // The new shard directories must survive a crash as well as the chunk in them.
            for parent in shard.ancestors().skip(1).take(2) {
                sync_dir(parent)?;
            }
        }
        let target = self.dir.chunk_path(&self.hash);
        let existed = target.exists();
        fs::rename(&self.tmp_path, &target).map_err(|e| StoreError::io("publishing", &target, e))?;
        // Renamed: the file is no longer ours to remove on drop.
        self.tmp_path = PathBuf::new();
        sync_dir(&shard)?;
        if !existed {
            self.dir.added(self.length_bytes);
        }
        Ok(())
    }
}

impl Drop for PendingChunk {
    fn drop(&mut self) {
        self.dir.release(self.length_bytes);
        self.writer = None;
        if !self.tmp_path.as_os_str().is_empty()
            && let Err(error) = fs::remove_file(&self.tmp_path)
            && error.kind() != std::io::ErrorKind::NotFound
        {
            // Left for the next open, which empties tmp/; never visible as a chunk.
            tracing::warn!(path = %self.tmp_path.display(), %error, "could not remove temporary chunk file");
        }
    }
}
