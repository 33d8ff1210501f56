//! The domain of a Collective member: federated addresses, the durable command and event schema,
//! and `decide`, the pure function from (state, command) to events or a rejection.
//!
//! This crate depends on no crate of ours and performs no IO: no clock, no randomness, no disk.

pub mod view;

/// Generated from `proto/collective/events.proto`.
#[allow(clippy::all, missing_docs)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/collective.events.v1.rs"));
}

pub use view::{CertificateView, EntryView, InviteView, NodeView, View, ROOT_INODE};

/// The schema version written in every envelope by this binary.
pub const SCHEMA_VERSION: u32 = 1;
