//! The state machine's storage: RocksDB tables, the pure `apply` of events to read models, the
//! `View` that `decide` reads, `execute` (dedupe, decide, envelope, apply) and snapshots.
//!
//! Depends on `collective-events` only. The raft crate reuses this RocksDB instance (and the
//! re-exported `rocksdb` crate) for its own `raft_log` and `raft_meta` column families.

pub mod apply;
#[cfg(test)]
mod apply_tests;
mod dbread;
pub mod error;
pub mod execute;
pub mod keys;
pub mod mem;
pub mod options;
pub mod query;
pub mod records;
pub mod snapshot;
pub mod store;
pub mod tables;
pub mod txn;
pub mod view;

pub use apply::apply;
pub use error::{SnapshotError, StoreError};
pub use execute::{Outcome, Rejected, execute};
pub use mem::MemTables;
pub use query::Replica;
pub use records::{
    CertificateRecord, ChunkRecord, CoordinatorRecord, DatastoreRecord, EntryRecord, GrantRecord,
    InviteRecord, NodeRecord, OutcomeRecord, PlacementRecord, RejectionRecord,
};
pub use rocksdb;
pub use snapshot::{ExportSummary, FrozenState};
pub use store::Store;
pub use tables::{
    ALL_COLUMN_FAMILIES, CF_RAFT_LOG, CF_RAFT_META, META_EVENT_COUNT, META_LAST_APPLIED, META_MEMBER,
    META_MEMBERSHIP, META_NEXT_INODE, Rows, SCAN_PAGE_ROWS, Table, TableRead, Tables, scan_all,
};
pub use txn::Txn;
pub use view::TablesView;
