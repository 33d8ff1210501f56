//! Progress of a transfer, reported as bytes move; the CLI draws a bar from it on a terminal.

/// Receives progress of one transfer. Called from the transfer's task; keep it cheap.
pub trait Progress: Send + Sync {
    /// The transfer's total size, once known (a write from a pipe never knows it).
    fn set_total(&self, _bytes: u64) {}
    /// `bytes` more were moved.
    fn advance(&self, bytes: u64);
}

/// Reports nothing.
pub struct NoProgress;

impl Progress for NoProgress {
    fn advance(&self, _bytes: u64) {}
}
