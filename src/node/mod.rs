//! The storage node: a chunk store on local data directories, served over mutual TLS by the
//! `Chunks` gRPC service, each call authorized by a ticket its member's coordinators signed.
//!
//! `daemon` registers the node with its member and sends heartbeats; `scrub` re-reads every
//! chunk in the background at a bounded rate; `corruption` reports copies found corrupt (by a
//! read or a scrub, and quarantined by the store) to the member; `replicate` copies a chunk from
//! another node when the member's repair asks. Garbage collection deletes through a guarded
//! `Delete` that spares chunks written or re-put recently (see `chunk_store`).

pub mod chunk_store;
pub mod corruption;
pub mod daemon;
mod errors;
pub mod orphans;
mod replicate;
mod routes;
pub mod run;
pub mod scrub;
mod service;

pub use chunk_store::{
    ChunkList, ChunkStore, DataDirConfig, Deletion, DirCapacity, MARKER_FILE, PendingChunk, PutStart,
    StoreConfig, StoreError,
};
pub use corruption::{CORRUPTION_REPORTS_QUEUED_MAX, CorruptionQueue, FoundBy};
pub use errors::{store_status, ticket_status};
pub use replicate::{REPLICA_SOURCES_MAX, REPLICATIONS_CONCURRENT_MAX};
pub use routes::ChunkRoutes;
pub use run::{NodeConfig, RunningNode, start};
pub use scrub::{RateLimiter, ScrubConfig, ScrubStats};
pub use service::{ChunkService, PUT_STAGING_BYTES_MAX, READ_BUFFER_BYTES_MAX};

/// Milliseconds since the Unix epoch by this machine's clock (0 if the clock is before 1970).
pub fn unix_ms_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Resolves once `stop` holds true, or once its sender is gone (nobody can stop us any more,
/// which only happens when the node is being torn down).
pub(crate) async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    loop {
        if *stop.borrow_and_update() {
            return;
        }
        if stop.changed().await.is_err() {
            return;
        }
    }
}
