//! Enumerating the chunks of a store by walking `chunks/ab/cd/<hex>` in every data directory,
//! lazily: a store of millions of chunks is listed one shard directory at a time, never held
//! whole in memory.

use std::fs;
use std::path::PathBuf;

use super::StoreError;
use crate::chunk_hash::ChunkHash;

/// Depth of chunk files below `chunks/` (two shard levels, then the file).
const SHARD_LEVELS: usize = 2;

/// The chunks of a store, as found on disk when each shard directory is reached: chunks put
/// after the walk passed their shard are missed, chunks deleted before are skipped. A chunk
/// present in two data directories is listed once per copy. Blocking: iterate it from
/// `spawn_blocking`. Iterator of [`ChunkHash`], or the IO error that stopped a directory
/// listing (the walk continues with the next directory after an error).
#[derive(Debug)]
pub struct ChunkList {
    /// Directories still to list, with their depth below `chunks/`.
    pending: Vec<(PathBuf, usize)>,
    /// The shard directory being listed now (at depth `SHARD_LEVELS`).
    current: Option<(PathBuf, fs::ReadDir)>,
}

impl ChunkList {
    /// Walks the `chunks/` directory of each data directory, in order.
    pub(crate) fn new(chunk_roots: Vec<PathBuf>) -> ChunkList {
        ChunkList {
            pending: chunk_roots.into_iter().rev().map(|root| (root, 0)).collect(),
            current: None,
        }
    }

    /// Lists one directory above the shard level, pushing its subdirectories in sorted order.
    fn descend(&mut self, dir: PathBuf, depth: usize) -> Result<(), StoreError> {
        let mut children = Vec::new();
        for entry in fs::read_dir(&dir).map_err(|e| StoreError::io("listing", &dir, e))? {
            let entry = entry.map_err(|e| StoreError::io("listing", &dir, e))?;
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                children.push(entry.path());
            }
        }
        // Sorted, so a walk goes through shards in hash order (and logs read in order).
        children.sort();
        self.pending
            .extend(children.into_iter().rev().map(|child| (child, depth + 1)));
        Ok(())
    }
}

impl Iterator for ChunkList {
    type Item = Result<ChunkHash, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some((dir, entries)) = &mut self.current {
                match entries.next() {
                    Some(Ok(entry)) => {
                        let name = entry.file_name();
                        match name.to_str().and_then(ChunkHash::from_hex) {
                            Some(hash) => return Some(Ok(hash)),
                            None => {
                                tracing::debug!(path = %entry.path().display(), "not a chunk file, skipped");
                                continue;
                            }
                        }
                    }
                    Some(Err(e)) => {
                        let error = StoreError::io("listing", dir.clone(), e);
                        self.current = None;
                        return Some(Err(error));
                    }
                    None => {
                        self.current = None;
                        continue;
                    }
                }
            }
            let (dir, depth) = self.pending.pop()?;
            if depth == SHARD_LEVELS {
                match fs::read_dir(&dir) {
                    Ok(entries) => self.current = Some((dir, entries)),
                    // A shard emptied and removed since it was listed: nothing to report.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Some(Err(StoreError::io("listing", &dir, e))),
                }
            } else if let Err(error) = self.descend(dir, depth) {
                return Some(Err(error));
            }
        }
    }
}
