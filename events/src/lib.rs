//! The domain of a Collective member: federated addresses, namespace paths, the durable command
//! and event schema, and `decide`, the pure function from (state, command) to events or a rejection.
//!
//! This crate depends on no crate of ours and performs no IO: no clock, no randomness, no disk.
//!
//! - [`address`]: `local@domain`, `/path@domain` and grant-subject wildcards, in canonical form.
//! - [`path`]: the one canonical spelling of a namespace path, with its limits.
//! - [`decide()`]: every business rule; see its module for the determinism contract.
//! - [`view`]: the read-only state `decide` sees, implemented by the projections crate.
//! - [`pb`]: the generated protobuf types of `proto/collective/events.proto`.

pub mod address;
pub mod decide;
pub mod path;
pub mod view;

/// Generated from `proto/collective/events.proto`.
#[allow(clippy::all, missing_docs)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/collective.events.v1.rs"));
    include!(concat!(env!("OUT_DIR"), "/collective.events.v1.serde.rs"));
}

pub use address::{AddressError, DomainPart, FederatedAddress, LocalPart};
pub use decide::{Rejection, RejectionCode, VERSIONS_KEPT_DEFAULT, decide};
pub use path::{NAME_BYTES_MAX, NamespacePath, PATH_BYTES_MAX, PathError};
pub use view::{CertificateView, EntryView, InviteView, NodeView, ROOT_INODE, View};

/// The schema version written in every envelope by this binary.
pub const SCHEMA_VERSION: u32 = 1;
