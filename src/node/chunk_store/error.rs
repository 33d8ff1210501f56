//! Why the chunk store refused or failed an operation.

use std::path::PathBuf;

use crate::chunk_hash::ChunkHash;

/// Chunk store failures; `node::errors` maps each to a gRPC status.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("chunk {0} is not stored on this node")]
    NotFound(ChunkHash),
    #[error("chunk {hash} is damaged on this node ({why}) and no longer served here; read another replica")]
    Corrupt { hash: ChunkHash, why: &'static str },
    #[error("chunk of {length} bytes exceeds the {max} byte chunk limit")]
    TooLarge { length: u64, max: u64 },
    #[error("no data directory has room for {needed} bytes (most free: {available} bytes)")]
    Full { needed: u64, available: u64 },
    #[error("no data directory on this node is in service ({0}); store the chunk on another node")]
    NoWorkingDir(String),
    #[error("disk full writing {path}: {source}")]
    DiskFull { path: PathBuf, source: std::io::Error },
    #[error("stream sent more than the announced {announced} bytes")]
    Overrun { announced: u64 },
    #[error("stream ended after {received} of the announced {announced} bytes")]
    Truncated { announced: u64, received: u64 },
    #[error("content hashes to {actual}, not to its name {expected}; nothing was stored")]
    HashMismatch { expected: ChunkHash, actual: ChunkHash },
    #[error("range {offset}+{length} lies outside chunk of {chunk_length} bytes")]
    OutOfRange {
        offset: u64,
        length: u64,
        chunk_length: u64,
    },
    #[error("{context} {path}: {source}")]
    Io {
        context: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("data directory configuration: {0}")]
    Config(String),
}

impl StoreError {
    /// An IO failure at `path`; "no space" and "quota exceeded" become [`StoreError::DiskFull`]
    /// so the caller learns that the disk, not the request, is the problem.
    pub(crate) fn io(context: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> StoreError {
        let path = path.into();
        if matches!(
            source.kind(),
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
        ) {
            return StoreError::DiskFull { path, source };
        }
        StoreError::Io {
            context,
            path,
            source,
        }
    }
}

/// True when `error` says the disk or the file system could not read what it holds: the copy is
/// damaged, as surely as one whose bytes no longer hash to its name. Linux reports an I/O
/// error as `EIO`, an unrecoverable medium error (a bad sector) as `ENODATA`, a failed
/// integrity check as `EILSEQ`, and ext4 and XFS report metadata whose checksum fails as
/// `EBADMSG` and other corrupt metadata as `EUCLEAN`. Running out of memory or file handles,
/// or a permission refused, says nothing about the copy and is not damage.
pub(crate) fn is_damage(error: &std::io::Error) -> bool {
    use nix::errno::Errno;
    error.raw_os_error().is_some_and(|errno| {
        [
            Errno::EIO,
            Errno::ENODATA,
            Errno::EILSEQ,
            Errno::EBADMSG,
            Errno::EUCLEAN,
        ]
        .iter()
        .any(|damage| *damage as i32 == errno)
    })
}

/// True for errors that say nothing about the disk, so a probe that meets one does not fail a
/// data directory: the file system is full (puts are refused with a clear error for that), or
/// the process ran out of file handles or memory.
pub(crate) fn says_nothing_of_the_disk(error: &std::io::Error) -> bool {
    use nix::errno::Errno;
    matches!(
        error.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded | std::io::ErrorKind::OutOfMemory
    ) || error
        .raw_os_error()
        .is_some_and(|errno| errno == Errno::EMFILE as i32 || errno == Errno::ENFILE as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_errors_of_the_medium_or_the_file_system_are_damage_and_others_not() {
        use nix::errno::Errno;
        for errno in [
            Errno::EIO,
            Errno::ENODATA,
            Errno::EILSEQ,
            Errno::EBADMSG,
            Errno::EUCLEAN,
        ] {
            assert!(
                is_damage(&std::io::Error::from_raw_os_error(errno as i32)),
                "{errno}"
            );
        }
        for errno in [
            Errno::ENOENT,
            Errno::EMFILE,
            Errno::ENOMEM,
            Errno::EACCES,
            Errno::EINTR,
        ] {
            assert!(
                !is_damage(&std::io::Error::from_raw_os_error(errno as i32)),
                "{errno}"
            );
        }
        assert!(!is_damage(&std::io::Error::other("no errno")));
    }

    #[test]
    fn a_full_disk_or_a_process_out_of_handles_says_nothing_of_the_disk_and_io_errors_do() {
        use nix::errno::Errno;
        for errno in [
            Errno::ENOSPC,
            Errno::EDQUOT,
            Errno::ENOMEM,
            Errno::EMFILE,
            Errno::ENFILE,
        ] {
            assert!(
                says_nothing_of_the_disk(&std::io::Error::from_raw_os_error(errno as i32)),
                "{errno}"
            );
        }
        for errno in [Errno::EIO, Errno::EROFS, Errno::ENOTDIR, Errno::EUCLEAN] {
            assert!(
                !says_nothing_of_the_disk(&std::io::Error::from_raw_os_error(errno as i32)),
                "{errno}"
            );
        }
    }

    #[test]
    fn no_space_and_quota_errors_read_as_disk_full() {
        for errno in [nix::errno::Errno::ENOSPC, nix::errno::Errno::EDQUOT] {
            let error = StoreError::io("writing", "/x", std::io::Error::from_raw_os_error(errno as i32));
            assert!(matches!(error, StoreError::DiskFull { .. }), "{errno}: {error}");
        }
        let other = StoreError::io(
            "writing",
            "/x",
            std::io::Error::from_raw_os_error(nix::errno::Errno::EIO as i32),
        );
        assert!(matches!(other, StoreError::Io { .. }));
    }
}
