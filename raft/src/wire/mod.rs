//! Protobuf encodings of Raft types: what the log store writes to disk and what peers exchange.
//!
//! These are hand-written `prost::Message` structs (no `.proto` file: only this crate reads and
//! writes them, and the lead ships network messages as opaque bytes). The same rules as
//! `events.proto` apply: tags are never reused, new fields get new tags and harmless defaults.
//! Every conversion is lossless both ways; decoding bytes from disk or a peer returns
//! [`WireError`], never panics.

mod network;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use openraft::EntryPayload;
use openraft::vote::RaftLeaderId;
use prost::Message;

use crate::types;
pub use network::*;

/// Bytes from disk or a peer that do not decode to a valid Raft value.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("malformed protobuf")]
    Decode(#[from] prost::DecodeError),
    #[error("required field {0} is missing")]
    Missing(&'static str),
    #[error("invalid membership: {0}")]
    Membership(String),
    #[error("malformed command in log entry")]
    Command(#[source] prost::DecodeError),
}

/// A log id: committed leader (term, node) and index.
#[derive(Clone, PartialEq, Message)]
pub struct LogId {
    #[prost(uint64, tag = "1")]
    pub term: u64,
    #[prost(uint64, tag = "2")]
    pub node_id: u64,
    #[prost(uint64, tag = "3")]
    pub index: u64,
}

/// A vote: leader (term, node) and whether a quorum granted it.
#[derive(Clone, PartialEq, Message)]
pub struct Vote {
    #[prost(uint64, tag = "1")]
    pub term: u64,
    #[prost(uint64, tag = "2")]
    pub node_id: u64,
    #[prost(bool, tag = "3")]
    pub committed: bool,
}

/// A coordinator's federated address and gRPC endpoint.
#[derive(Clone, PartialEq, Message)]
pub struct Node {
    #[prost(string, tag = "1")]
    pub address: String,
    #[prost(string, tag = "2")]
    pub endpoint: String,
}

/// One voter set of a (possibly joint) config.
#[derive(Clone, PartialEq, Message)]
pub struct VoterSet {
    #[prost(uint64, repeated, tag = "1")]
    pub ids: Vec<u64>,
}

/// A membership: joint voter sets (one outside a change) and every node, voters and learners.
#[derive(Clone, PartialEq, Message)]
pub struct Membership {
    #[prost(message, repeated, tag = "1")]
    pub configs: Vec<VoterSet>,
    #[prost(btree_map = "uint64, message", tag = "2")]
    pub nodes: BTreeMap<u64, Node>,
}

/// A membership and the log id of the entry that carried it (absent before the first one).
#[derive(Clone, PartialEq, Message)]
pub struct StoredMembership {
    #[prost(message, optional, tag = "1")]
    pub log_id: Option<LogId>,
    #[prost(message, optional, tag = "2")]
    pub membership: Option<Membership>,
}

/// The payload of a blank entry (a new leader's first entry).
#[derive(Clone, PartialEq, Message)]
pub struct Blank {}

/// A Raft log entry as stored in the `raft_log` column family and sent to followers.
#[derive(Clone, PartialEq, Message)]
pub struct Entry {
    #[prost(message, optional, tag = "1")]
    pub log_id: Option<LogId>,
    #[prost(oneof = "entry::Payload", tags = "2, 3, 4")]
    pub payload: Option<entry::Payload>,
}

/// Nested types of [`Entry`].
pub mod entry {
    /// What an entry carries.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Payload {
        #[prost(message, tag = "2")]
        Blank(super::Blank),
        /// A prost-encoded `collective.events.v1.CommandEnvelope`.
        #[prost(bytes = "vec", tag = "3")]
        Command(Vec<u8>),
        #[prost(message, tag = "4")]
        Membership(super::Membership),
    }
}

/// Snapshot metadata: the last log id it includes and the membership as of that point.
#[derive(Clone, PartialEq, Message)]
pub struct SnapshotMeta {
    #[prost(message, optional, tag = "1")]
    pub last_log_id: Option<LogId>,
    #[prost(message, optional, tag = "2")]
    pub last_membership: Option<StoredMembership>,
}

// ---------------------------------------------------------------------------------------------
// Conversions: Raft type -> wire (infallible), wire -> Raft type (checked).

impl From<&types::LogId> for LogId {
    fn from(l: &types::LogId) -> Self {
        Self {
            term: l.leader_id.term,
            node_id: l.leader_id.node_id,
            index: l.index,
        }
    }
}

impl From<LogId> for types::LogId {
    fn from(l: LogId) -> Self {
        types::LogId {
            leader_id: types::LeaderId::new(l.term, l.node_id),
            index: l.index,
        }
    }
}

impl From<&types::Vote> for Vote {
    fn from(v: &types::Vote) -> Self {
        Self {
            term: v.leader_id.term,
            node_id: v.leader_id.node_id,
            committed: v.committed,
        }
    }
}

impl From<Vote> for types::Vote {
    fn from(v: Vote) -> Self {
        types::Vote {
            leader_id: types::LeaderId::new(v.term, v.node_id),
            committed: v.committed,
        }
    }
}

impl From<&types::CoordinatorNode> for Node {
    fn from(n: &types::CoordinatorNode) -> Self {
        Self {
            address: n.address.clone(),
            endpoint: n.endpoint.clone(),
        }
    }
}

impl From<Node> for types::CoordinatorNode {
    fn from(n: Node) -> Self {
        Self {
            address: n.address,
            endpoint: n.endpoint,
        }
    }
}

impl From<&types::Membership> for Membership {
    fn from(m: &types::Membership) -> Self {
        Self {
            configs: m
                .get_joint_config()
                .iter()
                .map(|set| VoterSet {
                    ids: set.iter().copied().collect(),
                })
                .collect(),
            nodes: m.nodes().map(|(id, n)| (*id, Node::from(n))).collect(),
        }
    }
}

impl TryFrom<Membership> for types::Membership {
    type Error = WireError;
    fn try_from(m: Membership) -> Result<Self, WireError> {
        let configs: Vec<BTreeSet<u64>> = m
            .configs
            .into_iter()
            .map(|s| s.ids.into_iter().collect())
            .collect();
        let nodes: BTreeMap<u64, types::CoordinatorNode> =
            m.nodes.into_iter().map(|(id, n)| (id, n.into())).collect();
        // `new` checks that every voter has a node; the empty default membership passes.
        types::Membership::new(configs, nodes).map_err(|e| WireError::Membership(e.to_string()))
    }
}

impl From<&types::StoredMembership> for StoredMembership {
    fn from(m: &types::StoredMembership) -> Self {
        Self {
            log_id: m.log_id().as_ref().map(LogId::from),
            membership: Some(Membership::from(m.membership())),
        }
    }
}

impl TryFrom<StoredMembership> for types::StoredMembership {
    type Error = WireError;
    fn try_from(m: StoredMembership) -> Result<Self, WireError> {
        let membership = m
            .membership
            .ok_or(WireError::Missing("stored_membership.membership"))?;
        Ok(types::StoredMembership::new(
            m.log_id.map(Into::into),
            membership.try_into()?,
        ))
    }
}

impl From<&types::Entry> for Entry {
    fn from(e: &types::Entry) -> Self {
        let payload = match &e.payload {
            EntryPayload::Blank => entry::Payload::Blank(Blank {}),
            EntryPayload::Normal(c) => entry::Payload::Command(c.0.encode_to_vec()),
            EntryPayload::Membership(m) => entry::Payload::Membership(m.into()),
        };
        Self {
            log_id: Some(LogId::from(&e.log_id)),
            payload: Some(payload),
        }
    }
}

impl Entry {
    /// Checks and converts to the Raft entry. Not `TryFrom`: openraft's generic `Entry` has a
    /// blanket conversion that a `TryFrom` impl here would conflict with.
    pub fn into_raft(self) -> Result<types::Entry, WireError> {
        let e = self;
        let log_id = e.log_id.ok_or(WireError::Missing("entry.log_id"))?.into();
        let payload = match e.payload.ok_or(WireError::Missing("entry.payload"))? {
            entry::Payload::Blank(_) => EntryPayload::Blank,
            entry::Payload::Command(bytes) => {
                let envelope = collective_events::pb::CommandEnvelope::decode(bytes.as_slice())
                    .map_err(WireError::Command)?;
                EntryPayload::Normal(types::Command(envelope))
            }
            entry::Payload::Membership(m) => EntryPayload::Membership(m.try_into()?),
        };
        Ok(types::Entry { log_id, payload })
    }
}

impl From<&types::SnapshotMeta> for SnapshotMeta {
    fn from(m: &types::SnapshotMeta) -> Self {
        Self {
            last_log_id: m.last_log_id.as_ref().map(LogId::from),
            last_membership: Some(StoredMembership::from(&m.last_membership)),
        }
    }
}

impl TryFrom<SnapshotMeta> for types::SnapshotMeta {
    type Error = WireError;
    fn try_from(m: SnapshotMeta) -> Result<Self, WireError> {
        let last_membership = m
            .last_membership
            .ok_or(WireError::Missing("snapshot_meta.last_membership"))?;
        Ok(types::SnapshotMeta {
            last_log_id: m.last_log_id.map(Into::into),
            last_membership: last_membership.try_into()?,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Byte-level helpers for the durable encodings.

/// Encodes a log entry for the `raft_log` column family.
pub fn encode_entry(e: &types::Entry) -> Vec<u8> {
    Entry::from(e).encode_to_vec()
}

/// Decodes a log entry read from the `raft_log` column family.
pub fn decode_entry(bytes: &[u8]) -> Result<types::Entry, WireError> {
    Entry::decode(bytes)?.into_raft()
}

/// Encodes a vote for `raft_meta`.
pub fn encode_vote(v: &types::Vote) -> Vec<u8> {
    Vote::from(v).encode_to_vec()
}

/// Decodes a vote read from `raft_meta`.
pub fn decode_vote(bytes: &[u8]) -> Result<types::Vote, WireError> {
    Ok(Vote::decode(bytes)?.into())
}

/// Encodes a log id (last purged, committed, last applied).
pub fn encode_log_id(l: &types::LogId) -> Vec<u8> {
    LogId::from(l).encode_to_vec()
}

/// Decodes a log id.
pub fn decode_log_id(bytes: &[u8]) -> Result<types::LogId, WireError> {
    Ok(LogId::decode(bytes)?.into())
}

/// Encodes a stored membership (state machine metadata).
pub fn encode_stored_membership(m: &types::StoredMembership) -> Vec<u8> {
    StoredMembership::from(m).encode_to_vec()
}

/// Decodes a stored membership.
pub fn decode_stored_membership(bytes: &[u8]) -> Result<types::StoredMembership, WireError> {
    StoredMembership::decode(bytes)?.try_into()
}

/// Encodes snapshot metadata.
pub fn encode_snapshot_meta(m: &types::SnapshotMeta) -> Vec<u8> {
    SnapshotMeta::from(m).encode_to_vec()
}

/// Decodes snapshot metadata.
pub fn decode_snapshot_meta(bytes: &[u8]) -> Result<types::SnapshotMeta, WireError> {
    SnapshotMeta::decode(bytes)?.try_into()
}
