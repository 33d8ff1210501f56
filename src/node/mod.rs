//! The storage node: a chunk store on local data directories, served over mutual TLS by the
//! `Chunks` gRPC service, each call authorized by a ticket its member's coordinators signed.
//!
//! `daemon` registers the node with its member and sends heartbeats; repair, scrub and garbage
//! collection policy come later (the store already reports capacity and quarantines what fails
//! verification, which they will build on).

pub mod chunk_store;
pub mod daemon;
mod errors;
pub mod run;
mod service;

pub use chunk_store::{
    ChunkStore, DataDirConfig, DirCapacity, PendingChunk, PutStart, StoreConfig, StoreError,
};
pub use errors::{store_status, ticket_status};
pub use run::{NodeConfig, RunningNode, start};
pub use service::{ChunkService, GET_FRAMES_QUEUED_MAX, READ_BUFFER_BYTES_MAX};

/// Milliseconds since the Unix epoch by this machine's clock (0 if the clock is before 1970).
pub fn unix_ms_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
