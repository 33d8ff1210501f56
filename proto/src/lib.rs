//! Generated gRPC services of Collective: the metadata API clients call and the Raft transport
//! between coordinators. Messages of the durable event schema come from `collective_events::pb`.

/// `collective.api.v1`: the metadata service.
#[allow(clippy::all, missing_docs)]
pub mod api {
    tonic::include_proto!("collective.api.v1");
}

/// `collective.raft.v1`: the Raft transport.
#[allow(clippy::all, missing_docs)]
pub mod raft {
    tonic::include_proto!("collective.raft.v1");
}

/// Largest gRPC message a coordinator accepts or sends, in bytes. Raft appends are batched
/// below it and snapshots are streamed in chunks of `SNAPSHOT_CHUNK_BYTES`.
pub const MESSAGE_BYTES_MAX: usize = 16 * 1024 * 1024;

/// Size of one snapshot chunk on the wire, in bytes.
pub const SNAPSHOT_CHUNK_BYTES: usize = 1024 * 1024;
