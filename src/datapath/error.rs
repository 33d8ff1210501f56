//! What can go wrong on the data path, named so the user knows where.

use crate::client::ClientError;

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The coordinators refused or could not answer (planning or committing).
    #[error(transparent)]
    Meta(#[from] ClientError),
    /// A chunk could not be stored on enough nodes, after re-planning around failed ones.
    #[error("chunk {index} could not be uploaded: {detail}")]
    Upload { index: usize, detail: String },
    /// Every replica of a chunk failed or served bytes that do not match its hash.
    #[error("chunk {index} ({hash}) could not be read from any replica: {}", .errors.join("; "))]
    Unreadable {
        index: usize,
        hash: String,
        errors: Vec<String>,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// An answer that breaks the protocol (a coordinator or node of another version, or a bug).
    #[error("unexpected answer: {0}")]
    Protocol(String),
    #[error("{0}")]
    Invalid(String),
}

impl DataError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> DataError {
        DataError::Io {
            what: what.into(),
            source,
        }
    }
}
