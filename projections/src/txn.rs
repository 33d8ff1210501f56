//! `Txn`: one state-machine transaction over the RocksDB store. Reads see this transaction's
//! own pending writes first, then the database; writes stay in memory until `commit`, which
//! writes them as ONE `WriteBatch`, so events, projections, dedupe records and `last_applied`
//! become durable together or not at all. Dropping a `Txn` discards it.

use std::collections::BTreeMap;
use std::sync::Arc;

use collective_events::pb;
use rocksdb::{DB, ReadOptions, WriteBatch, WriteOptions};

use crate::dbread::{self, Pending};
use crate::error::StoreError;
use crate::execute::{Outcome, execute};
use crate::tables::{Rows, Table, TableRead, Tables};

/// A transaction on the state-machine tables. Only one should be open at a time (the state
/// machine applies entries in order); two concurrent ones would not see each other's writes.
pub struct Txn {
    db: Arc<DB>,
    pending: BTreeMap<Table, Pending>,
}

impl Txn {
    pub(crate) fn new(db: Arc<DB>) -> Self {
        Self {
            db,
            pending: BTreeMap::new(),
        }
    }

    /// Executes the command of the Raft entry at `log_index` (see `crate::execute`).
    pub fn execute(&mut self, log_index: u64, cmd: &pb::CommandEnvelope) -> Result<Outcome, StoreError> {
        execute(self, log_index, cmd)
    }

    /// Stores a raft-owned value (e.g. `META_LAST_APPLIED`) in `sm_meta`, in this transaction.
    pub fn put_meta(&mut self, key: &[u8], value: Vec<u8>) {
        self.put(Table::SmMeta, key.to_vec(), value);
    }

    /// Reads an `sm_meta` value as this transaction sees it.
    pub fn get_meta(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(Table::SmMeta, key)
    }

    /// Number of pending writes (puts and deletes).
    pub fn pending_writes(&self) -> usize {
        self.pending.values().map(BTreeMap::len).sum()
    }

    /// The pending writes as one batch, for a caller that adds its own writes before writing.
    pub fn into_write_batch(self) -> Result<WriteBatch, StoreError> {
        let mut batch = WriteBatch::default();
        for (table, rows) in &self.pending {
            let cf = dbread::cf(&self.db, *table)?;
            for (key, value) in rows {
                match value {
                    Some(v) => batch.put_cf(cf, key, v),
                    None => batch.delete_cf(cf, key),
                }
            }
        }
        Ok(batch)
    }

    /// Writes everything atomically, without fsync: the raft crate decides when to sync (a
    /// synced raft write, or `flush_wal(true)`, persists this batch too; see `options`).
    pub fn commit(self) -> Result<(), StoreError> {
        self.commit_with(&WriteOptions::default())
    }

    /// Writes everything atomically with the given options (e.g. `set_sync(true)`).
    pub fn commit_with(self, opts: &WriteOptions) -> Result<(), StoreError> {
        let db = Arc::clone(&self.db);
        let batch = self.into_write_batch()?;
        db.write_opt(batch, opts)?;
        Ok(())
    }
}

impl TableRead for Txn {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        dbread::get(
            &self.db,
            &ReadOptions::default(),
            table,
            key,
            self.pending.get(&table),
        )
    }

    fn scan_prefix(
        &self,
        table: Table,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Rows, StoreError> {
        dbread::scan(
            &self.db,
            ReadOptions::default(),
            table,
            prefix,
            after,
            limit,
            self.pending.get(&table),
        )
    }
}

impl Tables for Txn {
    fn put(&mut self, table: Table, key: Vec<u8>, value: Vec<u8>) {
        self.pending.entry(table).or_default().insert(key, Some(value));
    }

    fn delete(&mut self, table: Table, key: &[u8]) {
        self.pending.entry(table).or_default().insert(key.to_vec(), None);
    }
}
