//! Errors of the raft layer, split by who must act: the caller, or the node itself.

use crate::types::TypeConfig;

/// Why a Raft node could not be started. `Config` and `Storage` are the caller's to fix (bad
/// settings, a missing or unreadable data directory); `Fatal` means openraft itself refused to
/// run on this node's state and the process must stop rather than retry.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("invalid raft configuration")]
    Config(#[from] openraft::ConfigError),
    #[error("raft storage unavailable")]
    Storage(#[source] std::io::Error),
    #[error("raft node failed to start")]
    Fatal(#[from] openraft::errors::Fatal<TypeConfig>),
}
