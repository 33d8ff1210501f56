//! The Raft log and vote on the coordinator's RocksDB: `raft_log` (u64 BE index -> entry) and
//! `raft_meta` (vote, last purged, committed), all protobuf.
//!
//! Durability: every write that openraft must see on disk before it proceeds (append, vote,
//! truncate, purge) is one `WriteBatch` written with `sync` (an fsync of the WAL) on a blocking
//! thread. An `append` call carries every entry openraft has for the disk at that moment, so a
//! burst of proposals costs one fsync (group commit). The state machine shares the WAL, and
//! RocksDB recovers a prefix of it, so an fsync here also makes earlier unsynced applies durable.

use std::fmt::Debug;
use std::io;
use std::ops::Bound;
use std::ops::RangeBounds;
use std::sync::Arc;

use collective_projections::CF_RAFT_LOG;
use collective_projections::CF_RAFT_META;
use collective_projections::rocksdb;
use openraft::LogState;
use openraft::OptionalSend;
use openraft::RaftLogReader;
use openraft::storage::IOFlushed;
use openraft::storage::RaftLogStorage;
use rocksdb::DB;
use rocksdb::Direction;
use rocksdb::IteratorMode;
use rocksdb::WriteBatch;
use rocksdb::WriteOptions;

use crate::types::Entry;
use crate::types::LogId;
use crate::types::TypeConfig;
use crate::types::Vote;
use crate::wire;

/// `raft_meta` key of the vote.
const KEY_VOTE: &[u8] = b"vote";
/// `raft_meta` key of the last purged log id (the log is empty up to and including it).
const KEY_LAST_PURGED: &[u8] = b"last_purged";
/// `raft_meta` key of the last committed log id (an optimisation: replayed on restart).
const KEY_COMMITTED: &[u8] = b"committed";

/// Most entries read in one `try_get_log_entries` call, to bound one read's memory; openraft
/// asks again for the rest.
const READ_ENTRIES_MAX: usize = 4096;

/// Raft log storage on the shared RocksDB. Cheap to clone; the clone is also the log reader.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<DB>,
}

impl LogStore {
    /// A log store on `db`, which must have the `raft_log` and `raft_meta` column families.
    pub fn new(db: Arc<DB>) -> Result<Self, io::Error> {
        for name in [CF_RAFT_LOG, CF_RAFT_META] {
            cf(&db, name)?;
        }
        Ok(Self { db })
    }

    async fn blocking<T, F>(&self, f: F) -> Result<T, io::Error>
    where
        T: Send + 'static,
        F: FnOnce(&DB) -> Result<T, io::Error> + Send + 'static,
    {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(io::Error::other)?
    }

    async fn read_meta_log_id(&self, key: &'static [u8]) -> Result<Option<LogId>, io::Error> {
        self.blocking(move |db| read_log_id(db, key)).await
    }
}

fn cf<'a>(db: &'a DB, name: &'static str) -> Result<&'a rocksdb::ColumnFamily, io::Error> {
    db.cf_handle(name)
        .ok_or_else(|| io::Error::other(format!("column family {name} is missing")))
}

fn synced() -> WriteOptions {
    let mut o = WriteOptions::default();
    o.set_sync(true);
    o
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn decode_index(key: &[u8]) -> Result<u64, io::Error> {
    let bytes: [u8; 8] = key
        .try_into()
        .map_err(|_| io::Error::other(format!("raft_log key of {} bytes, want 8", key.len())))?;
    Ok(u64::from_be_bytes(bytes))
}

fn corrupt(what: &str, e: wire::WireError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("corrupt {what}: {e}"))
}

fn read_log_id(db: &DB, key: &[u8]) -> Result<Option<LogId>, io::Error> {
    let meta = cf(db, CF_RAFT_META)?;
    match db.get_cf(meta, key).map_err(io::Error::other)? {
        None => Ok(None),
        Some(bytes) => wire::decode_log_id(&bytes)
            .map(Some)
            .map_err(|e| corrupt("log id", e)),
    }
}

fn last_entry_log_id(db: &DB) -> Result<Option<LogId>, io::Error> {
    let log = cf(db, CF_RAFT_LOG)?;
    match db.iterator_cf(log, IteratorMode::End).next() {
        None => Ok(None),
        Some(item) => {
            let (_, value) = item.map_err(io::Error::other)?;
            let entry = wire::decode_entry(&value).map_err(|e| corrupt("log entry", e))?;
            Ok(Some(entry.log_id))
        }
    }
}

fn start_index(range: &impl RangeBounds<u64>) -> u64 {
    match range.start_bound() {
        Bound::Included(s) => *s,
        Bound::Excluded(s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    }
}

fn contains_end(range: &(Bound<u64>, Bound<u64>), index: u64) -> bool {
    match range.1 {
        Bound::Included(e) => index <= e,
        Bound::Excluded(e) => index < e,
        Bound::Unbounded => true,
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let start = start_index(&range);
        let bounds = (range.start_bound().cloned(), range.end_bound().cloned());
        self.blocking(move |db| {
            let log = cf(db, CF_RAFT_LOG)?;
            let from = index_key(start);
            let mut entries = Vec::new();
            for item in db.iterator_cf(log, IteratorMode::From(&from, Direction::Forward)) {
                let (key, value) = item.map_err(io::Error::other)?;
                let index = decode_index(&key)?;
                if !contains_end(&bounds, index) || entries.len() >= READ_ENTRIES_MAX {
                    break;
                }
                let entry = wire::decode_entry(&value).map_err(|e| corrupt("log entry", e))?;
                // Paired with the write side: a key always holds the entry of its own index.
                if entry.log_id.index != index {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("raft_log key {index} holds entry {}", entry.log_id),
                    ));
                }
                entries.push(entry);
            }
            Ok(entries)
        })
        .await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        self.blocking(|db| {
            let meta = cf(db, CF_RAFT_META)?;
            match db.get_cf(meta, KEY_VOTE).map_err(io::Error::other)? {
                None => Ok(None),
                Some(b) => wire::decode_vote(&b).map(Some).map_err(|e| corrupt("vote", e)),
            }
        })
        .await
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        self.blocking(|db| {
            let last_purged_log_id = read_log_id(db, KEY_LAST_PURGED)?;
            let last_log_id = last_entry_log_id(db)?.or(last_purged_log_id);
            Ok(LogState {
                last_purged_log_id,
                last_log_id,
            })
        })
        .await
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        let bytes = wire::encode_vote(vote);
        self.blocking(move |db| {
            db.put_cf_opt(cf(db, CF_RAFT_META)?, KEY_VOTE, bytes, &synced())
                .map_err(io::Error::other)
        })
        .await
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        // Inline, not on a blocking thread: an unsynced put into the memtable takes microseconds,
        // less than the two thread hops would, and openraft calls this at every commit.
        let db = &self.db;
        let meta = cf(db, CF_RAFT_META)?;
        // Not synced: losing it only means re-learning the commit point from the leader.
        match committed {
            Some(c) => db.put_cf(meta, KEY_COMMITTED, wire::encode_log_id(&c)),
            None => db.delete_cf(meta, KEY_COMMITTED),
        }
        .map_err(io::Error::other)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        self.read_meta_log_id(KEY_COMMITTED).await
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<TypeConfig>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let encoded: Vec<(u64, Vec<u8>)> = entries
            .into_iter()
            .map(|e| (e.log_id.index, wire::encode_entry(&e)))
            .collect();
        // No holes: openraft hands consecutive entries; check it rather than corrupt the log.
        if encoded.windows(2).any(|w| w[1].0 != w[0].0 + 1) {
            let err = || io::Error::other("append: entries are not consecutive");
            callback.io_completed(Err(err()));
            return Err(err());
        }
        let result = self
            .blocking(move |db| {
                let log = cf(db, CF_RAFT_LOG)?;
                let mut batch = WriteBatch::default();
                for (index, bytes) in &encoded {
                    batch.put_cf(log, index_key(*index), bytes);
                }
                db.write_opt(batch, &synced()).map_err(io::Error::other)
            })
            .await;
        match result {
            Ok(()) => {
                callback.io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.io_completed(Err(io::Error::new(e.kind(), e.to_string())));
                Err(e)
            }
        }
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let from = last_log_id.map_or(0, |l| l.index + 1);
        self.blocking(move |db| {
            let mut batch = WriteBatch::default();
            batch.delete_range_cf(cf(db, CF_RAFT_LOG)?, index_key(from), index_key(u64::MAX));
            // `u64::MAX` is never a log index, so the exclusive end loses nothing.
            db.write_opt(batch, &synced()).map_err(io::Error::other)
        })
        .await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        let upto = log_id.index;
        let marker = wire::encode_log_id(&log_id);
        self.blocking(move |db| {
            // One atomic batch: the purge marker and the deletion land together, so the log
            // state never shows a gap that the marker does not explain.
            let mut batch = WriteBatch::default();
            batch.put_cf(cf(db, CF_RAFT_META)?, KEY_LAST_PURGED, marker);
            batch.delete_range_cf(
                cf(db, CF_RAFT_LOG)?,
                index_key(0),
                index_key(upto.saturating_add(1)),
            );
            db.write_opt(batch, &synced()).map_err(io::Error::other)
        })
        .await
    }
}
