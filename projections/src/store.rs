//! `Store`: the coordinator's RocksDB instance. Cheap to clone; the raft crate takes `db()` for
//! its own column families and `begin()` for each batch of entries to apply.

use std::path::Path;
use std::sync::Arc;

use rocksdb::DB;

use crate::error::StoreError;
use crate::options::{cf_descriptors, db_options};
use crate::txn::Txn;

/// Handle to the database with every column family of `ALL_COLUMN_FAMILIES` open.
#[derive(Clone)]
pub struct Store {
    db: Arc<DB>,
}

impl Store {
    /// Opens (creating if missing) the database at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        let db = DB::open_cf_descriptors(&db_options(), path, cf_descriptors())?;
        Ok(Store { db: Arc::new(db) })
    }

    /// The database, for the raft crate's `raft_log` and `raft_meta` column families.
    pub fn db(&self) -> &Arc<DB> {
        &self.db
    }

    /// Starts a state-machine transaction.
    pub fn begin(&self) -> Txn {
        Txn::new(Arc::clone(&self.db))
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.db.path()).finish()
    }
}
