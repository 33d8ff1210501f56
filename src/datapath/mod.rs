//! The client data path: files cut into content-addressed chunks, uploaded in parallel to the
//! nodes the leader placed them on and committed in one Raft entry ([`write`]); read back by
//! fetching chunks from their replicas with read-ahead, verifying every byte ([`read`]).
//!
//! Tickets come with each plan, so a node never calls a coordinator on the data path, and the
//! bytes never pass through a coordinator.

mod error;
mod nearest;
mod nodes;
mod progress;
mod read;
mod sink;
mod write;

pub use error::DataError;
pub(crate) use nodes::transfer_limit;
pub use nodes::{NODE_CONNECT_TIMEOUT, NodePool, REPLICA_STALL_DEFAULT, replica_stall_from_env};
pub use progress::{NoProgress, Progress};
pub use read::{READ_AHEAD_DEFAULT, ReadOptions, ReadSummary, read_file};
pub use sink::{Discard, ReadSink, WriterThread};
pub use write::{WriteOptions, WriteSummary, write_file};

/// Default chunk size: 4 MiB. Measured with `collective bench io` (docs/benchmarks.md): large
/// enough that per-chunk costs (a ticket check, an fsync and a rename on the node, a Raft
/// record of the placement) vanish against the transfer, small enough that a failed upload
/// costs little to redo, that read-ahead of a few chunks keeps several nodes busy, and that a
/// node verifying a whole chunk before serving a ranged read wastes little.
pub const CHUNK_BYTES_DEFAULT: usize = 4 * 1024 * 1024;
