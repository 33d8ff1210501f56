//! The durable values of the projection tables, as protobuf records (prost), so that a future
//! binary reads them: tags are never reused, new fields are optional with harmless defaults.
//!
//! Times are the `proposed_at_unix_ms` of the envelope that produced the change, never a clock
//! read during apply, so every replica writes the same bytes.

use collective_events::pb;
use prost::Message;

use crate::error::StoreError;
use crate::tables::Table;

/// A namespace entry (`entries` table): a directory or a file and its current version.
#[derive(Clone, PartialEq, Message)]
pub struct EntryRecord {
    #[prost(uint64, tag = "1")]
    pub inode: u64,
    /// The root's parent is the root itself.
    #[prost(uint64, tag = "2")]
    pub parent: u64,
    /// Empty for the root.
    #[prost(string, tag = "3")]
    pub name: String,
    #[prost(enumeration = "pb::EntryKind", tag = "4")]
    pub kind: i32,
    /// Current version of a file; 0 for a directory.
    #[prost(uint64, tag = "5")]
    pub version: u64,
    /// Size of the current version in bytes; 0 for a directory.
    #[prost(uint64, tag = "6")]
    pub size: u64,
    /// Chunk map of the current version.
    #[prost(message, repeated, tag = "7")]
    pub chunks: Vec<pb::ChunkRef>,
    #[prost(int64, tag = "8")]
    pub created_at_unix_ms: i64,
    #[prost(int64, tag = "9")]
    pub modified_at_unix_ms: i64,
}

/// A storage node (`nodes` table).
#[derive(Clone, PartialEq, Message)]
pub struct NodeRecord {
    #[prost(message, optional, tag = "1")]
    pub joined: Option<pb::NodeJoined>,
    #[prost(enumeration = "pb::NodeStatus", tag = "2")]
    pub status: i32,
    #[prost(uint64, tag = "3")]
    pub free_bytes: u64,
    #[prost(int64, tag = "4")]
    pub joined_at_unix_ms: i64,
    #[prost(int64, tag = "5")]
    pub status_changed_at_unix_ms: i64,
}

/// One replica of a chunk on a node (`placement` table).
#[derive(Clone, PartialEq, Message)]
pub struct PlacementRecord {
    #[prost(uint64, tag = "1")]
    pub size: u64,
}

/// A chunk some file version references or once referenced (`chunks` table, keyed by hash):
/// what repair and garbage collection work from.
#[derive(Clone, PartialEq, Message)]
pub struct ChunkRecord {
    /// Kept file versions naming this chunk (a version naming it twice counts once).
    #[prost(uint64, tag = "1")]
    pub refs: u64,
    /// Replicas wanted: the most any referencing version asked for since it was last unreferenced.
    #[prost(uint32, tag = "2")]
    pub replicas_wanted: u32,
    #[prost(uint64, tag = "3")]
    pub size: u64,
    /// When `refs` last dropped to 0 (proposer time); 0 while referenced. Garbage collection
    /// removes the replicas once this is old enough.
    #[prost(int64, tag = "4")]
    pub unreferenced_at_unix_ms: i64,
}

/// A datastore (`datastores` table).
#[derive(Clone, PartialEq, Message)]
pub struct DatastoreRecord {
    #[prost(message, optional, tag = "1")]
    pub created: Option<pb::DatastoreCreated>,
    #[prost(string, tag = "2")]
    pub created_by: String,
    #[prost(int64, tag = "3")]
    pub created_at_unix_ms: i64,
}

/// A grant in force (`grants` table); a revoked grant is deleted (the log keeps its history).
#[derive(Clone, PartialEq, Message)]
pub struct GrantRecord {
    #[prost(message, optional, tag = "1")]
    pub issued: Option<pb::GrantIssued>,
    #[prost(string, tag = "2")]
    pub issued_by: String,
    #[prost(int64, tag = "3")]
    pub issued_at_unix_ms: i64,
}

/// An invite (`invites` table), kept after use or revocation so a late redemption is refused
/// with a precise reason.
#[derive(Clone, PartialEq, Message)]
pub struct InviteRecord {
    #[prost(message, optional, tag = "1")]
    pub issued: Option<pb::InviteIssued>,
    #[prost(uint32, tag = "2")]
    pub uses: u32,
    #[prost(bool, tag = "3")]
    pub revoked: bool,
    #[prost(string, tag = "4")]
    pub issued_by: String,
    #[prost(int64, tag = "5")]
    pub issued_at_unix_ms: i64,
}

/// A certificate the member issued (`certificates` table), kept after revocation for CRLs.
#[derive(Clone, PartialEq, Message)]
pub struct CertificateRecord {
    #[prost(message, optional, tag = "1")]
    pub issued: Option<pb::CertificateIssued>,
    #[prost(bool, tag = "2")]
    pub revoked: bool,
    #[prost(string, tag = "3")]
    pub revoke_reason: String,
    #[prost(int64, tag = "4")]
    pub issued_at_unix_ms: i64,
    #[prost(int64, tag = "5")]
    pub revoked_at_unix_ms: i64,
}

/// A coordinator of the member's Raft group (`coordinators` table).
#[derive(Clone, PartialEq, Message)]
pub struct CoordinatorRecord {
    #[prost(message, optional, tag = "1")]
    pub added: Option<pb::CoordinatorAdded>,
    #[prost(int64, tag = "2")]
    pub added_at_unix_ms: i64,
}

/// The outcome of one request (`dedupe` table, keyed by request_id): a retry of the request is
/// answered from here instead of being applied again.
#[derive(Clone, PartialEq, Message)]
pub struct OutcomeRecord {
    /// Raft index of the entry that carried the request the first time.
    #[prost(uint64, tag = "1")]
    pub log_index: u64,
    /// The request produced the events (log_index, 0) .. (log_index, event_count - 1).
    #[prost(uint32, tag = "2")]
    pub event_count: u32,
    /// Set when `decide` rejected the request (then `event_count` is 0).
    #[prost(message, optional, tag = "3")]
    pub rejection: Option<RejectionRecord>,
}

/// A durable rejection: the code by its stable name, so a reordering of the Rust enum cannot
/// change the meaning of stored bytes.
#[derive(Clone, PartialEq, Message)]
pub struct RejectionRecord {
    #[prost(string, tag = "1")]
    pub code: String,
    #[prost(string, tag = "2")]
    pub message: String,
}

/// Decodes a record read from `table` at `key`, naming both if the bytes are corrupt.
pub fn decode<M: Message + Default>(table: Table, key: &[u8], bytes: &[u8]) -> Result<M, StoreError> {
    M::decode(bytes).map_err(|e| StoreError::Corrupt {
        table: table.name(),
        key: key.to_vec(),
        reason: e.to_string(),
    })
}

/// Reads and decodes one record, `None` if the key is absent.
pub(crate) fn get_record<M: Message + Default>(
    tables: &(impl crate::tables::TableRead + ?Sized),
    table: Table,
    key: &[u8],
) -> Result<Option<M>, StoreError> {
    match tables.get(table, key)? {
        Some(bytes) => decode(table, key, &bytes).map(Some),
        None => Ok(None),
    }
}

/// Decodes every row of a scan.
pub(crate) fn decode_rows<M: Message + Default>(
    table: Table,
    rows: crate::tables::Rows,
) -> Result<Vec<M>, StoreError> {
    rows.iter().map(|(k, v)| decode(table, k, v)).collect()
}
