//! Errors of the storage layer. None of them is a domain rejection: a `StoreError` while applying
//! means this replica can no longer apply deterministically and must stop.

/// A failure of the state machine's storage.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    #[error("column family {0} is missing")]
    MissingColumnFamily(&'static str),
    #[error("corrupt record in table {table} at key {key:02x?}: {reason}")]
    Corrupt {
        table: &'static str,
        key: Vec<u8>,
        reason: String,
    },
    #[error("entry at log index {log_index} produced more events than fit a u32 sequence")]
    TooManyEvents { log_index: u64 },
    #[error("snapshot stream refused: {0}")]
    Snapshot(#[from] SnapshotError),
    #[error("snapshot io: {0}")]
    Io(#[from] std::io::Error),
}

/// Why a state snapshot stream was refused by `Store::import_state`. The old state is untouched.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("bad magic, not a collective state stream")]
    BadMagic,
    #[error("unsupported state stream format version {0}")]
    UnsupportedVersion(u32),
    #[error("stream truncated")]
    Truncated,
    #[error("unknown record tag {0}")]
    UnknownTag(u8),
    #[error("unknown table id {0}")]
    UnknownTable(u8),
    #[error("{what} length {len} bytes exceeds the limit of {max} bytes")]
    TooLong { what: &'static str, len: u64, max: u64 },
    #[error("record count mismatch: trailer says {expected}, stream held {actual}")]
    CountMismatch { expected: u64, actual: u64 },
    #[error("checksum mismatch: the stream is corrupt")]
    ChecksumMismatch,
    #[error("bytes after the end of the stream")]
    TrailingBytes,
}
