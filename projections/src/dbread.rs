//! Reads from RocksDB, optionally at a snapshot and optionally merged with a transaction's
//! pending writes. Shared by `Txn` (live DB + overlay) and the read-side queries (snapshot).

use std::collections::BTreeMap;
use std::ops::Bound;

use rocksdb::{ColumnFamily, DB, ReadOptions, Snapshot};

use crate::error::StoreError;
use crate::tables::{Rows, Table, TableRead, scan_start};

/// Pending writes of one table: `None` is a delete.
pub(crate) type Pending = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

pub(crate) fn cf(db: &DB, table: Table) -> Result<&ColumnFamily, StoreError> {
    db.cf_handle(table.name())
        .ok_or(StoreError::MissingColumnFamily(table.name()))
}

pub(crate) fn get(
    db: &DB,
    ro: &ReadOptions,
    table: Table,
    key: &[u8],
    pending: Option<&Pending>,
) -> Result<Option<Vec<u8>>, StoreError> {
    if let Some(value) = pending.and_then(|p| p.get(key)) {
        return Ok(value.clone());
    }
    Ok(db.get_cf_opt(cf(db, table)?, key, ro)?)
}

/// A prefix scan merging the DB with pending writes; pending entries win on equal keys.
pub(crate) fn scan(
    db: &DB,
    ro: ReadOptions,
    table: Table,
    prefix: &[u8],
    after: Option<&[u8]>,
    limit: usize,
    pending: Option<&Pending>,
) -> Result<Rows, StoreError> {
    let (start, inclusive) = scan_start(prefix, after);
    let mut it = db.raw_iterator_cf_opt(cf(db, table)?, ro);
    it.seek(start);
    if !inclusive && it.valid() && it.key() == Some(start) {
        it.next();
    }
    let lower = if inclusive {
        Bound::Included(start)
    } else {
        Bound::Excluded(start)
    };
    let empty = Pending::new();
    let mut over = pending
        .unwrap_or(&empty)
        .range::<[u8], _>((lower, Bound::Unbounded))
        .take_while(|(k, _)| k.starts_with(prefix))
        .peekable();
    let mut rows = Vec::new();
    while rows.len() < limit {
        let next = {
            let db_key = it.key().filter(|k| k.starts_with(prefix));
            match (db_key, over.peek()) {
                (None, None) => break,
                (Some(_), None) => Next::Stored,
                (None, Some(_)) => Next::Pending,
                (Some(d), Some((o, _))) => match d.cmp(o.as_slice()) {
                    std::cmp::Ordering::Less => Next::Stored,
                    std::cmp::Ordering::Greater => Next::Pending,
                    std::cmp::Ordering::Equal => Next::Shadowed,
                },
            }
        };
        if let Next::Stored = next {
            if let (Some(k), Some(v)) = (it.key(), it.value()) {
                rows.push((k.to_vec(), v.to_vec()));
            }
            it.next();
            continue;
        }
        if let Next::Shadowed = next {
            // A pending write replaces the stored row: skip the stored one.
            it.next();
        }
        if let Some((k, Some(v))) = over.next() {
            rows.push((k.clone(), v.clone()));
        }
    }
    it.status()?;
    Ok(rows)
}

/// Which side of the merge yields the next row.
enum Next {
    Stored,
    Pending,
    Shadowed,
}

/// A consistent read-only view of the committed state, for queries spanning several reads.
pub(crate) struct SnapshotRead<'a> {
    db: &'a DB,
    snapshot: Snapshot<'a>,
}

impl<'a> SnapshotRead<'a> {
    pub(crate) fn new(db: &'a DB) -> Self {
        Self {
            db,
            snapshot: db.snapshot(),
        }
    }

    pub(crate) fn read_options(&self) -> ReadOptions {
        let mut ro = ReadOptions::default();
        ro.set_snapshot(&self.snapshot);
        ro
    }

    pub(crate) fn db(&self) -> &'a DB {
        self.db
    }
}

impl TableRead for SnapshotRead<'_> {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        get(self.db, &self.read_options(), table, key, None)
    }

    fn scan_prefix(
        &self,
        table: Table,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Rows, StoreError> {
        scan(self.db, self.read_options(), table, prefix, after, limit, None)
    }
}
