//! `MemTables`: the tables in ordered in-memory maps, for tests and for replaying the event log.

use std::collections::BTreeMap;
use std::ops::Bound;

use crate::error::StoreError;
use crate::tables::{Rows, Table, TableRead, Tables, scan_start};

/// All state-machine tables in memory, with the same ordering semantics as RocksDB's default
/// bytewise comparator.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemTables {
    tables: BTreeMap<Table, BTreeMap<Vec<u8>, Vec<u8>>>,
}

impl MemTables {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every row of one table, in key order.
    pub fn rows(&self, table: Table) -> Rows {
        self.tables
            .get(&table)
            .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }
}

impl TableRead for MemTables {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.tables.get(&table).and_then(|t| t.get(key)).cloned())
    }

    fn scan_prefix(
        &self,
        table: Table,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Rows, StoreError> {
        let Some(t) = self.tables.get(&table) else {
            return Ok(Vec::new());
        };
        let (start, inclusive) = scan_start(prefix, after);
        let lower = if inclusive {
            Bound::Included(start)
        } else {
            Bound::Excluded(start)
        };
        Ok(t.range::<[u8], _>((lower, Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}

impl Tables for MemTables {
    fn put(&mut self, table: Table, key: Vec<u8>, value: Vec<u8>) {
        self.tables.entry(table).or_default().insert(key, value);
    }

    fn delete(&mut self, table: Table, key: &[u8]) {
        if let Some(t) = self.tables.get_mut(&table) {
            t.remove(key);
        }
    }
}
