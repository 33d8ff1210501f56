//! Read-side queries on committed state, used by the server for linearizable reads (after a
//! read index is applied) and by the CLI. Each query reads from one RocksDB snapshot, so a
//! multi-read answer (a listing, a path walk) is consistent.

use collective_events::{ROOT_INODE, View, pb};

use crate::dbread::SnapshotRead;
use crate::error::StoreError;
use crate::keys::{after_length_prefixed, decode_u64, dirent_key, event_key, length_prefixed, u64_key};
use crate::records::{
    CertificateRecord, ChunkRecord, CoordinatorRecord, DatastoreRecord, EntryRecord, GrantRecord,
    InviteRecord, NodeRecord, PlacementRecord, decode, decode_rows, get_record,
};
use crate::store::Store;
use crate::tables::{META_EVENT_COUNT, Rows, Table, TableRead, scan_all};
use crate::view::TablesView;

/// One replica of a chunk: the node holding it and the size it recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replica {
    pub node: String,
    pub size: u64,
}

impl Store {
    fn reader(&self) -> SnapshotRead<'_> {
        SnapshotRead::new(self.db())
    }

    /// The entry at an absolute path (`/` is the root); components are separated by `/` and
    /// empty components are ignored.
    pub fn resolve(&self, path: &str) -> Result<Option<EntryRecord>, StoreError> {
        let r = self.reader();
        let mut inode = ROOT_INODE;
        for name in path.split('/').filter(|c| !c.is_empty()) {
            let key = dirent_key(inode, name);
            match r.get(Table::Dirents, &key)? {
                Some(bytes) => inode = decode_u64(Table::Dirents, &key, &bytes)?,
                None => return Ok(None),
            }
        }
        get_record(&r, Table::Entries, &u64_key(inode))
    }

    /// Up to `limit` children of a directory, by name, strictly after `after` when given.
    pub fn list_dir(
        &self,
        inode: u64,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<EntryRecord>, StoreError> {
        let r = self.reader();
        let after_key = after.map(|name| dirent_key(inode, name));
        let rows = r.scan_prefix(Table::Dirents, &u64_key(inode), after_key.as_deref(), limit)?;
        let mut entries = Vec::with_capacity(rows.len());
        for (k, v) in rows {
            let child = u64_key(decode_u64(Table::Dirents, &k, &v)?);
            let entry = get_record(&r, Table::Entries, &child)?.ok_or_else(|| StoreError::Corrupt {
                table: Table::Dirents.name(),
                key: k.clone(),
                reason: "directory entry names a missing inode".to_string(),
            })?;
            entries.push(entry);
        }
        Ok(entries)
    }

    pub fn stat(&self, inode: u64) -> Result<Option<EntryRecord>, StoreError> {
        get_record(&self.reader(), Table::Entries, &u64_key(inode))
    }

    /// The kept versions of a file, oldest first.
    pub fn versions(&self, inode: u64) -> Result<Vec<pb::FileVersionCommitted>, StoreError> {
        let rows = scan_all(&self.reader(), Table::Versions, &u64_key(inode))?;
        decode_rows(Table::Versions, rows)
    }

    /// Up to `limit` events in log order, starting with the first event of `from_index`.
    pub fn events(&self, from_index: u64, limit: usize) -> Result<Vec<pb::EventEnvelope>, StoreError> {
        let r = self.reader();
        let rows = scan_from(&r, Table::Events, &event_key(from_index, 0), limit)?;
        decode_rows(Table::Events, rows)
    }

    /// Up to `limit` events in log order strictly after the event `(log_index, sequence)`, for
    /// paging through the log without splitting an entry's events.
    pub fn events_after(
        &self,
        after: (u64, u32),
        limit: usize,
    ) -> Result<Vec<pb::EventEnvelope>, StoreError> {
        let r = self.reader();
        let start = event_key(after.0, after.1);
        let rows = r.scan_prefix(Table::Events, &[], Some(&start), limit)?;
        decode_rows(Table::Events, rows)
    }

    /// Number of events in the log.
    pub fn event_count(&self) -> Result<u64, StoreError> {
        match self.reader().get(Table::SmMeta, META_EVENT_COUNT)? {
            Some(b) => decode_u64(Table::SmMeta, META_EVENT_COUNT, &b),
            None => Ok(0),
        }
    }

    pub fn nodes(&self) -> Result<Vec<NodeRecord>, StoreError> {
        all(self, Table::Nodes)
    }

    pub fn coordinators(&self) -> Result<Vec<CoordinatorRecord>, StoreError> {
        all(self, Table::Coordinators)
    }

    pub fn datastores(&self) -> Result<Vec<DatastoreRecord>, StoreError> {
        all(self, Table::Datastores)
    }

    pub fn grants(&self) -> Result<Vec<GrantRecord>, StoreError> {
        all(self, Table::Grants)
    }

    pub fn invites(&self) -> Result<Vec<InviteRecord>, StoreError> {
        all(self, Table::Invites)
    }

    pub fn certificates(&self) -> Result<Vec<CertificateRecord>, StoreError> {
        all(self, Table::Certificates)
    }

    /// Every node holding a replica of the chunk `hash`.
    pub fn replicas(&self, hash: &[u8]) -> Result<Vec<Replica>, StoreError> {
        let rows = scan_all(&self.reader(), Table::Placement, &length_prefixed(hash))?;
        rows.iter()
            .map(|(k, v)| {
                let record: PlacementRecord = decode(Table::Placement, k, v)?;
                let node = after_length_prefixed(k)
                    .and_then(|n| std::str::from_utf8(n).ok())
                    .ok_or_else(|| corrupt_key(Table::Placement, k))?;
                Ok(Replica {
                    node: node.to_string(),
                    size: record.size,
                })
            })
            .collect()
    }

    /// The reference record of chunk `hash`, if a version references it or a replica exists.
    pub fn chunk(&self, hash: &[u8]) -> Result<Option<ChunkRecord>, StoreError> {
        get_record(&self.reader(), Table::Chunks, hash)
    }

    /// Up to `limit` chunk records in hash order, strictly after `after` (for paging scans).
    pub fn chunks_after(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, ChunkRecord)>, StoreError> {
        let rows = self.reader().scan_prefix(Table::Chunks, &[], after, limit)?;
        rows.into_iter()
            .map(|(k, v)| {
                let record = decode(Table::Chunks, &k, &v)?;
                Ok((k, record))
            })
            .collect()
    }

    /// Up to `limit` chunk hashes stored on `node`, in hash order.
    pub fn node_chunks(&self, node: &str, limit: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        self.node_chunks_after(node, None, limit)
    }

    /// Like `node_chunks`, continuing strictly after the hash `after` (for paging).
    pub fn node_chunks_after(
        &self,
        node: &str,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let prefix = length_prefixed(node.as_bytes());
        let after_key = after.map(|h| [prefix.as_slice(), h].concat());
        let rows = self
            .reader()
            .scan_prefix(Table::NodeChunks, &prefix, after_key.as_deref(), limit)?;
        rows.iter()
            .map(|(k, _)| {
                after_length_prefixed(k)
                    .map(<[u8]>::to_vec)
                    .ok_or_else(|| corrupt_key(Table::NodeChunks, k))
            })
            .collect()
    }

    /// A value of `sm_meta`, e.g. raft's `META_LAST_APPLIED`.
    pub fn meta(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.reader().get(Table::SmMeta, key)
    }

    /// Runs `f` over the `View` that `decide` sees, on one snapshot of committed state (for
    /// checks such as grants that the server makes before proposing).
    pub fn with_view<R>(&self, f: impl FnOnce(&dyn View) -> R) -> Result<R, StoreError> {
        let r = self.reader();
        let view = TablesView::new(&r);
        let out = f(&view);
        view.finish()?;
        Ok(out)
    }

    /// Up to `limit` raw rows of one table (for tests, debugging and tools).
    pub fn scan(
        &self,
        table: Table,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Rows, StoreError> {
        self.reader().scan_prefix(table, prefix, after, limit)
    }

    /// Every raw row of one table.
    pub fn rows(&self, table: Table) -> Result<Rows, StoreError> {
        scan_all(&self.reader(), table, &[])
    }
}

fn all<M: prost::Message + Default>(store: &Store, table: Table) -> Result<Vec<M>, StoreError> {
    decode_rows(table, scan_all(&store.reader(), table, &[])?)
}

/// Up to `limit` rows from `start` (inclusive) to the end of the table.
fn scan_from(r: &SnapshotRead<'_>, table: Table, start: &[u8], limit: usize) -> Result<Rows, StoreError> {
    let mut it = r
        .db()
        .raw_iterator_cf_opt(crate::dbread::cf(r.db(), table)?, r.read_options());
    it.seek(start);
    let mut rows = Vec::new();
    while rows.len() < limit {
        match (it.key(), it.value()) {
            (Some(k), Some(v)) => rows.push((k.to_vec(), v.to_vec())),
            _ => break,
        }
        it.next();
    }
    it.status()?;
    Ok(rows)
}

fn corrupt_key(table: Table, key: &[u8]) -> StoreError {
    StoreError::Corrupt {
        table: table.name(),
        key: key.to_vec(),
        reason: "malformed key".to_string(),
    }
}
