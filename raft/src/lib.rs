//! A member's metadata as an openraft group of 1 to 3 coordinators: type configuration, the
//! RocksDB log store, the state machine over the projections store, snapshot files, and the
//! protobuf encodings of everything Raft stores or sends.
//!
//! Knows nothing of TLS, gossip, FUSE or gRPC: the transport implements openraft's network
//! traits on top of the `wire` encode/decode functions and calls the `Raft` handle.

pub mod config;
pub mod error;
pub mod log_store;
pub mod open;
pub mod snapshot;
pub mod state_machine;
pub mod types;
pub mod wire;

pub use config::default_config;
pub use error::OpenError;
pub use log_store::LogStore;
pub use open::open_raft;
pub use snapshot::{IncomingSnapshot, SnapshotDir, SnapshotFile, SnapshotReader};
pub use state_machine::StateMachine;
pub use types::{
    Command, CoordinatorNode, Entry, LogId, Membership, NodeId, Raft, Response, Snapshot, SnapshotMeta,
    StoredMembership, TypeConfig, Vote,
};
