//! The column families of the coordinator's RocksDB instance and the `Tables` access trait.
//!
//! One column family per table. `raft_log` and `raft_meta` are created here so that one `open`
//! yields a complete database, but only the raft crate reads or writes them; every other table
//! belongs to the state machine and travels in snapshots.

use crate::error::StoreError;

/// Raft log entries, owned by the raft crate.
pub const CF_RAFT_LOG: &str = "raft_log";
/// Raft vote, committed and purge markers, owned by the raft crate.
pub const CF_RAFT_META: &str = "raft_meta";

/// `sm_meta` key where the raft crate keeps `last_applied` (opaque bytes to this crate).
pub const META_LAST_APPLIED: &[u8] = b"last_applied";
/// `sm_meta` key where the raft crate keeps the last applied membership (opaque bytes).
pub const META_MEMBERSHIP: &[u8] = b"membership";
/// `sm_meta` key of the next unused inode (u64 big-endian), maintained by `apply`.
pub const META_NEXT_INODE: &[u8] = b"next_inode";
/// `sm_meta` key of the member identity (`pb::MemberInitialized` bytes), set by `apply`.
pub const META_MEMBER: &[u8] = b"member";
/// `sm_meta` key of the number of events in the log (u64 big-endian), maintained by `apply`.
pub const META_EVENT_COUNT: &[u8] = b"event_count";

/// A state-machine table. Raft's own column families are deliberately not in this enum, so no
/// state-machine code path (apply, export, import) can touch them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Table {
    /// Raft bookkeeping given as opaque values, plus `next_inode`, `member`, `event_count`.
    SmMeta,
    /// log_index u64 BE ++ sequence u32 BE -> `pb::EventEnvelope`.
    Events,
    /// request_id -> `OutcomeRecord`.
    Dedupe,
    /// inode u64 BE -> `EntryRecord`.
    Entries,
    /// parent u64 BE ++ name -> inode u64 BE.
    Dirents,
    /// inode u64 BE ++ version u64 BE -> `pb::FileVersionCommitted`.
    Versions,
    /// address -> `NodeRecord`.
    Nodes,
    /// hash length u32 BE ++ hash ++ node -> `PlacementRecord`.
    Placement,
    /// node length u32 BE ++ node ++ hash -> empty.
    NodeChunks,
    /// path -> `DatastoreRecord`.
    Datastores,
    /// grant_id -> `GrantRecord`.
    Grants,
    /// invite_id -> `InviteRecord`.
    Invites,
    /// code_hash -> invite_id.
    InviteCodes,
    /// serial -> `CertificateRecord`.
    Certificates,
    /// raft_id u64 BE -> `CoordinatorRecord`.
    Coordinators,
    /// hash -> `ChunkRecord`: references, replicas wanted, unreferenced since.
    Chunks,
}

impl Table {
    /// Every state-machine table, in stream-id order.
    pub const ALL: [Table; 16] = [
        Table::SmMeta,
        Table::Events,
        Table::Dedupe,
        Table::Entries,
        Table::Dirents,
        Table::Versions,
        Table::Nodes,
        Table::Placement,
        Table::NodeChunks,
        Table::Datastores,
        Table::Grants,
        Table::Invites,
        Table::InviteCodes,
        Table::Certificates,
        Table::Coordinators,
        Table::Chunks,
    ];

    /// The column family name. Frozen: renaming one orphans its data.
    pub const fn name(self) -> &'static str {
        match self {
            Table::SmMeta => "sm_meta",
            Table::Events => "events",
            Table::Dedupe => "dedupe",
            Table::Entries => "entries",
            Table::Dirents => "dirents",
            Table::Versions => "versions",
            Table::Nodes => "nodes",
            Table::Placement => "placement",
            Table::NodeChunks => "node_chunks",
            Table::Datastores => "datastores",
            Table::Grants => "grants",
            Table::Invites => "invites",
            Table::InviteCodes => "invite_codes",
            Table::Certificates => "certificates",
            Table::Coordinators => "coordinators",
            Table::Chunks => "chunks",
        }
    }

    /// The id of this table in a state snapshot stream. Frozen: ids are never reused, so a
    /// stream written by any past binary still reads into the right table.
    pub const fn stream_id(self) -> u8 {
        match self {
            Table::SmMeta => 1,
            Table::Events => 2,
            Table::Dedupe => 3,
            Table::Entries => 4,
            Table::Dirents => 5,
            Table::Versions => 6,
            Table::Nodes => 7,
            Table::Placement => 8,
            Table::NodeChunks => 9,
            Table::Datastores => 10,
            Table::Grants => 11,
            Table::Invites => 12,
            Table::InviteCodes => 13,
            Table::Certificates => 14,
            Table::Coordinators => 15,
            Table::Chunks => 16,
        }
    }

    /// The table a stream id names, if this binary knows it.
    pub fn from_stream_id(id: u8) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.stream_id() == id)
    }

    /// Whether the table is a read model rebuilt by `apply` alone (as opposed to the event log,
    /// the dedupe records and raft's opaque meta, which `execute` and the raft crate write).
    pub const fn is_projection(self) -> bool {
        !matches!(self, Table::Events | Table::Dedupe)
    }
}

/// Every column family of the database: raft's two, then the state-machine tables.
pub const ALL_COLUMN_FAMILIES: [&str; 18] = [
    CF_RAFT_LOG,
    CF_RAFT_META,
    Table::SmMeta.name(),
    Table::Events.name(),
    Table::Dedupe.name(),
    Table::Entries.name(),
    Table::Dirents.name(),
    Table::Versions.name(),
    Table::Nodes.name(),
    Table::Placement.name(),
    Table::NodeChunks.name(),
    Table::Datastores.name(),
    Table::Grants.name(),
    Table::Invites.name(),
    Table::InviteCodes.name(),
    Table::Certificates.name(),
    Table::Coordinators.name(),
    Table::Chunks.name(),
];

/// Key/value pairs as returned by a scan, in key order.
pub type Rows = Vec<(Vec<u8>, Vec<u8>)>;

/// Read access to the state-machine tables.
pub trait TableRead {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Up to `limit` rows whose key starts with `prefix`, in key order; when `after` is given,
    /// only keys strictly greater than it (for paging: pass the last key of the previous page).
    fn scan_prefix(
        &self,
        table: Table,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Rows, StoreError>;
}

/// Read and write access to the state-machine tables. Writes cannot fail: they are buffered
/// (a RocksDB `WriteBatch` or a map) and only a commit touches the disk.
pub trait Tables: TableRead {
    fn put(&mut self, table: Table, key: Vec<u8>, value: Vec<u8>);
    fn delete(&mut self, table: Table, key: &[u8]);
}

/// Where a scan starts: the later of `prefix` (inclusive) and `after` (exclusive).
pub(crate) fn scan_start<'a>(prefix: &'a [u8], after: Option<&'a [u8]>) -> (&'a [u8], bool) {
    match after {
        Some(a) if a >= prefix => (a, false),
        _ => (prefix, true),
    }
}

/// Rows read per page by `scan_all`; bounds the size of any single scan.
pub const SCAN_PAGE_ROWS: usize = 1024;

/// Every row under `prefix`, read a page at a time.
pub fn scan_all(tables: &(impl TableRead + ?Sized), table: Table, prefix: &[u8]) -> Result<Rows, StoreError> {
    let mut rows: Rows = Vec::new();
    loop {
        let after = rows.last().map(|(k, _)| k.clone());
        let page = tables.scan_prefix(table, prefix, after.as_deref(), SCAN_PAGE_ROWS)?;
        let done = page.len() < SCAN_PAGE_ROWS;
        rows.extend(page);
        if done {
            return Ok(rows);
        }
    }
}
