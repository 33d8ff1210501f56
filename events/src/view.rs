//! What `decide` may read of a member's state: a narrow, read-only view of the projections.
//!
//! `decide` is pure: it sees the state only through this trait, and the projections crate
//! implements it both over RocksDB (inside the apply transaction, so earlier entries of the same
//! batch are visible) and in memory for tests.

use crate::pb;

/// The inode of the namespace root `/`. It exists from the start and is never removed.
pub const ROOT_INODE: u64 = 1;

/// A namespace entry as `decide` needs to see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryView {
    pub inode: u64,
    pub parent: u64,
    pub name: String,
    pub kind: pb::EntryKind,
    /// Current version of a file (0 for directories).
    pub version: u64,
}

/// An invite as `decide` needs to see it. (Not `Eq`: prost derives only `PartialEq` for messages
/// with nested messages.)
#[derive(Clone, Debug, PartialEq)]
pub struct InviteView {
    pub issued: pb::InviteIssued,
    pub uses: u32,
    pub revoked: bool,
}

/// A certificate as `decide` needs to see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateView {
    pub issued: pb::CertificateIssued,
    pub revoked: bool,
}

/// A storage node as `decide` needs to see it. (Not `Eq`, as for [`InviteView`].)
#[derive(Clone, Debug, PartialEq)]
pub struct NodeView {
    pub joined: pb::NodeJoined,
    pub status: pb::NodeStatus,
    pub free_bytes: u64,
}

/// Read access to the projections. Every method is a point lookup or a bounded scan.
pub trait View {
    /// The member this log belongs to, once `MemberInitialized` has been applied.
    fn member(&self) -> Option<pb::MemberInitialized>;
    /// The next unused inode number (ids are never reused).
    fn next_inode(&self) -> u64;
    fn entry(&self, inode: u64) -> Option<EntryView>;
    fn lookup(&self, parent: u64, name: &str) -> Option<EntryView>;
    fn has_children(&self, inode: u64) -> bool;
    /// Versions of a file still kept, oldest first.
    fn versions(&self, inode: u64) -> Vec<u64>;
    fn coordinators(&self) -> Vec<pb::CoordinatorAdded>;
    fn node(&self, address: &str) -> Option<NodeView>;
    fn replica_exists(&self, hash: &[u8], node: &str) -> bool;
    /// Whether any node holds a recorded replica of `hash`.
    fn has_replica(&self, hash: &[u8]) -> bool;
    fn datastore(&self, path: &str) -> Option<pb::DatastoreCreated>;
    fn grant(&self, grant_id: &[u8]) -> Option<pb::GrantIssued>;
    fn invite(&self, invite_id: &[u8]) -> Option<InviteView>;
    fn invite_by_code_hash(&self, code_hash: &[u8]) -> Option<InviteView>;
    fn certificate(&self, serial: &[u8]) -> Option<CertificateView>;
}
