//! Generated gRPC services of Collective: the metadata API clients call, the Raft transport
//! between coordinators, and the storage nodes' chunk service with its tickets. Messages of the
//! durable event schema come from `collective_events::pb`.

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

/// `collective.bootstrap.v1`: invite redemption on the bootstrap listener, and the caller's
/// access (identity, grants, invites) on the coordinator's listener.
#[allow(clippy::all, missing_docs)]
pub mod bootstrap {
    tonic::include_proto!("collective.bootstrap.v1");
}

/// Largest gRPC message a coordinator accepts or sends, in bytes. Raft appends are batched
/// below it and snapshots are streamed in chunks of `SNAPSHOT_CHUNK_BYTES`.
pub const MESSAGE_BYTES_MAX: usize = 16 * 1024 * 1024;

/// Most chunks one `PlanWrite` or `PlanRead` covers (a write plans in batches, a read pages).
/// Also bounds the hashes of the tickets a plan carries (below `HASHES_PER_REQUEST_MAX`).
pub const PLAN_CHUNKS_MAX: usize = 1024;

/// Size of one snapshot chunk on the wire, in bytes.
pub const SNAPSHOT_CHUNK_BYTES: usize = 1024 * 1024;

/// `collective.ticket.v1`: capabilities a member's coordinator signs for chunk operations.
#[allow(clippy::all, missing_docs)]
pub mod ticket {
    tonic::include_proto!("collective.ticket.v1");
}

/// `collective.chunk.v1`: the storage node's chunk service.
#[allow(clippy::all, missing_docs)]
pub mod chunk {
    tonic::include_proto!("collective.chunk.v1");
}

/// What the chunk calls that carry bulk bytes are framed by by hand (without tonic's codec, which
/// copies every message): their paths and the field numbers of `chunk.proto` they use.
pub mod chunk_wire {
    pub const PUT_PATH: &str = "/collective.chunk.v1.Chunks/Put";
    pub const GET_PATH: &str = "/collective.chunk.v1.Chunks/Get";
    /// `PutRequest.header`, the first message's one field.
    pub const PUT_REQUEST_HEADER: u32 = 1;
    /// `PutRequest.data`, every later message's.
    pub const PUT_REQUEST_DATA: u32 = 2;
    /// `GetResponse.data`.
    pub const GET_RESPONSE_DATA: u32 = 1;
    /// `GetResponse.chunk_length_bytes`, on the first message.
    pub const GET_RESPONSE_CHUNK_LENGTH: u32 = 2;
}

/// Limits of the chunk service, shared by nodes and clients.
pub mod chunk_limits {
    /// Largest data frame of a Put or Get stream, in bytes.
    pub const CHUNK_FRAME_BYTES_MAX: usize = 1024 * 1024;
    /// Largest chunk a node stores, in bytes. Reads buffer a whole chunk to verify it before
    /// serving a byte, so this also bounds a read's memory.
    pub const CHUNK_BYTES_MAX: u64 = 64 * 1024 * 1024;
    /// Most hashes in one Has or Delete request, and in one ticket.
    pub const HASHES_PER_REQUEST_MAX: usize = 4096;
    /// Length of a chunk hash (blake3), in bytes.
    pub const HASH_BYTES: usize = 32;
    /// Largest gRPC message of the chunk service, in bytes: a frame, or a ticket with
    /// `HASHES_PER_REQUEST_MAX` hashes and its certificate chain, with room to spare.
    pub const CHUNK_MESSAGE_BYTES_MAX: usize = 2 * 1024 * 1024;
}
