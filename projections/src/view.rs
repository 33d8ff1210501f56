//! `TablesView`: the `View` that `decide` reads, over any `TableRead` (a RocksDB transaction,
//! so earlier commands of the same batch are visible, or `MemTables`).
//!
//! `View` methods cannot fail, but a disk read can. A failed read must not look like "absent",
//! or this replica would decide differently from the others; so the first error is kept and
//! `finish` returns it, and the caller throws the decision away.

use std::cell::RefCell;

use collective_events::{CertificateView, EntryView, InviteView, NodeView, View, pb};

use crate::apply::FIRST_FREE_INODE;
use crate::error::StoreError;
use crate::keys::{decode_u64, dirent_key, length_prefixed, placement_key, u64_key};
use crate::records::{
    CertificateRecord, CoordinatorRecord, DatastoreRecord, EntryRecord, GrantRecord, InviteRecord,
    NodeRecord, decode_rows, get_record,
};
use crate::tables::{META_MEMBER, META_NEXT_INODE, Table, TableRead, scan_all};

/// A read-only `View` over tables that remembers the first storage error.
pub struct TablesView<'a, T: TableRead + ?Sized> {
    tables: &'a T,
    error: RefCell<Option<StoreError>>,
}

impl<'a, T: TableRead + ?Sized> TablesView<'a, T> {
    pub fn new(tables: &'a T) -> Self {
        Self {
            tables,
            error: RefCell::new(None),
        }
    }

    /// `Err` if any read failed; a decision taken over this view must then be discarded.
    pub fn finish(self) -> Result<(), StoreError> {
        match self.error.into_inner() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Runs a read; on failure records the error and yields `fallback`.
    fn read<R>(&self, fallback: R, f: impl FnOnce() -> Result<R, StoreError>) -> R {
        match f() {
            Ok(value) => value,
            Err(e) => {
                let mut slot = self.error.borrow_mut();
                if slot.is_none() {
                    *slot = Some(e);
                }
                fallback
            }
        }
    }

    fn entry_record(&self, inode: u64) -> Result<Option<EntryView>, StoreError> {
        let record = get_record::<EntryRecord>(self.tables, Table::Entries, &u64_key(inode))?;
        Ok(record.map(|r| entry_view(&r)))
    }
}

/// The `EntryView` of a stored entry.
pub fn entry_view(r: &EntryRecord) -> EntryView {
    EntryView {
        inode: r.inode,
        parent: r.parent,
        name: r.name.clone(),
        kind: r.kind(),
        version: r.version,
    }
}

impl<T: TableRead + ?Sized> View for TablesView<'_, T> {
    fn member(&self) -> Option<pb::MemberInitialized> {
        self.read(None, || get_record(self.tables, Table::SmMeta, META_MEMBER))
    }

    fn next_inode(&self) -> u64 {
        self.read(FIRST_FREE_INODE, || {
            match self.tables.get(Table::SmMeta, META_NEXT_INODE)? {
                Some(b) => decode_u64(Table::SmMeta, META_NEXT_INODE, &b),
                None => Ok(FIRST_FREE_INODE),
            }
        })
    }

    fn entry(&self, inode: u64) -> Option<EntryView> {
        self.read(None, || self.entry_record(inode))
    }

    fn lookup(&self, parent: u64, name: &str) -> Option<EntryView> {
        self.read(None, || {
            let key = dirent_key(parent, name);
            match self.tables.get(Table::Dirents, &key)? {
                Some(b) => self.entry_record(decode_u64(Table::Dirents, &key, &b)?),
                None => Ok(None),
            }
        })
    }

    fn has_children(&self, inode: u64) -> bool {
        self.read(false, || {
            let page = self
                .tables
                .scan_prefix(Table::Dirents, &u64_key(inode), None, 1)?;
            Ok(!page.is_empty())
        })
    }

    fn versions(&self, inode: u64) -> Vec<u64> {
        self.read(Vec::new(), || {
            let rows = scan_all(self.tables, Table::Versions, &u64_key(inode))?;
            rows.iter()
                .map(|(k, _)| {
                    let tail = k.get(8..).unwrap_or_default();
                    decode_u64(Table::Versions, k, tail)
                })
                .collect()
        })
    }

    fn coordinators(&self) -> Vec<pb::CoordinatorAdded> {
        self.read(Vec::new(), || {
            let rows = scan_all(self.tables, Table::Coordinators, &[])?;
            let records: Vec<CoordinatorRecord> = decode_rows(Table::Coordinators, rows)?;
            Ok(records.into_iter().filter_map(|r| r.added).collect())
        })
    }

    fn node(&self, address: &str) -> Option<NodeView> {
        self.read(None, || {
            let record = get_record::<NodeRecord>(self.tables, Table::Nodes, address.as_bytes())?;
            Ok(record.map(|r| NodeView {
                status: r.status(),
                free_bytes: r.free_bytes,
                joined: r.joined.unwrap_or_default(),
            }))
        })
    }

    fn replica_exists(&self, hash: &[u8], node: &str) -> bool {
        self.read(false, || {
            Ok(self
                .tables
                .get(Table::Placement, &placement_key(hash, node))?
                .is_some())
        })
    }

    fn has_replica(&self, hash: &[u8]) -> bool {
        self.read(false, || {
            Ok(!self
                .tables
                .scan_prefix(Table::Placement, &length_prefixed(hash), None, 1)?
                .is_empty())
        })
    }

    fn datastore(&self, path: &str) -> Option<pb::DatastoreCreated> {
        self.read(None, || {
            let r = get_record::<DatastoreRecord>(self.tables, Table::Datastores, path.as_bytes())?;
            Ok(r.and_then(|r| r.created))
        })
    }

    fn grant(&self, grant_id: &[u8]) -> Option<pb::GrantIssued> {
        self.read(None, || {
            let r = get_record::<GrantRecord>(self.tables, Table::Grants, grant_id)?;
            Ok(r.and_then(|r| r.issued))
        })
    }

    fn invite(&self, invite_id: &[u8]) -> Option<InviteView> {
        self.read(None, || {
            let r = get_record::<InviteRecord>(self.tables, Table::Invites, invite_id)?;
            Ok(r.map(invite_view))
        })
    }

    fn invite_by_code_hash(&self, code_hash: &[u8]) -> Option<InviteView> {
        self.read(None, || match self.tables.get(Table::InviteCodes, code_hash)? {
            Some(invite_id) => {
                let r = get_record::<InviteRecord>(self.tables, Table::Invites, &invite_id)?;
                Ok(r.map(invite_view))
            }
            None => Ok(None),
        })
    }

    fn certificate(&self, serial: &[u8]) -> Option<CertificateView> {
        self.read(None, || {
            let r = get_record::<CertificateRecord>(self.tables, Table::Certificates, serial)?;
            Ok(r.map(|r| CertificateView {
                issued: r.issued.unwrap_or_default(),
                revoked: r.revoked,
            }))
        })
    }
}

fn invite_view(r: InviteRecord) -> InviteView {
    InviteView {
        issued: r.issued.unwrap_or_default(),
        uses: r.uses,
        revoked: r.revoked,
    }
}
