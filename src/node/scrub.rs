//! The scrubber: re-reads every stored chunk through [`ChunkStore::read`], which verifies it and
//! quarantines a copy that rotted, at a bounded rate so client traffic keeps the disk. A copy
//! found corrupt is reported to the member (see `corruption`), so repair replaces it before a
//! client ever needs it.
//!
//! Passes run back to back with a pause between them; the first starts when the node does.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::chunk_store::{ChunkList, ChunkStore, StoreError};
use super::corruption::{CorruptionQueue, FoundBy};

/// Default scrub rate: a 4 TB disk is read in about 36 hours, a small share of a disk's
/// bandwidth.
pub const SCRUB_BYTES_PER_SEC_DEFAULT: u64 = 32 * 1024 * 1024;
/// Default pause between the end of one pass and the start of the next.
pub const SCRUB_PASS_INTERVAL_DEFAULT: Duration = Duration::from_secs(3600);
/// Chunk names listed per blocking call while walking the data directories.
const LIST_BATCH_CHUNKS: usize = 256;

/// How fast and how often to scrub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScrubConfig {
    /// Most bytes read per second, averaged; 0 disables scrubbing.
    pub bytes_per_sec: u64,
    /// Pause between passes.
    pub pass_interval: Duration,
}

impl Default for ScrubConfig {
    fn default() -> ScrubConfig {
        ScrubConfig {
            bytes_per_sec: SCRUB_BYTES_PER_SEC_DEFAULT,
            pass_interval: SCRUB_PASS_INTERVAL_DEFAULT,
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScrubStats {
    /// Chunks read and found good.
    pub chunks: u64,
    /// Bytes read, good and corrupt.
    pub bytes: u64,
    /// Chunks found corrupt (now quarantined and reported).
    pub corrupt: u64,
    /// Chunks (or directories) that could not be read for another reason.
    pub errors: u64,
}

/// Paces reads to an average rate without banking credit: time a read spent waiting for the
/// disk is not paid back with a burst later.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    bytes_per_sec: u64,
    /// When the bytes read so far are paid for: the next read should not start before.
    next_start: Option<Instant>,
}

impl RateLimiter {
    /// A limiter for `bytes_per_sec` (positive).
    pub fn new(bytes_per_sec: u64) -> RateLimiter {
        RateLimiter {
            bytes_per_sec: bytes_per_sec.max(1),
            next_start: None,
        }
    }

    /// Records a read of `bytes` that began at `started`; returns how long after `now` the
    /// next read must wait.
    pub fn consume(&mut self, bytes: u64, started: Instant, now: Instant) -> Duration {
        let cost = Duration::from_secs_f64(bytes as f64 / self.bytes_per_sec as f64);
        let from = match self.next_start {
            Some(due) if due > started => due,
            _ => started,
        };
        let next = from + cost;
        self.next_start = Some(next);
        next.saturating_duration_since(now)
    }
}

/// Scrubs `store` pass after pass until `stop` turns true.
pub async fn scrub_loop(
    store: Arc<ChunkStore>,
    config: ScrubConfig,
    reports: Arc<CorruptionQueue>,
    mut stop: watch::Receiver<bool>,
) {
    if config.bytes_per_sec == 0 {
        tracing::info!("scrubbing disabled (scrub_bytes_per_sec = 0)");
        return;
    }
    loop {
        let started = Instant::now();
        let Some(stats) = scrub_pass(&store, config.bytes_per_sec, &reports, &mut stop).await else {
            return;
        };
        tracing::info!(
            chunks = stats.chunks,
            bytes = stats.bytes,
            corrupt = stats.corrupt,
            errors = stats.errors,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "scrub pass finished"
        );
        tokio::select! {
            _ = tokio::time::sleep(config.pass_interval) => {}
            _ = super::stopped(&mut stop) => return,
        }
    }
}

/// One pass over every chunk; `None` when stopped midway.
pub async fn scrub_pass(
    store: &Arc<ChunkStore>,
    bytes_per_sec: u64,
    reports: &CorruptionQueue,
    stop: &mut watch::Receiver<bool>,
) -> Option<ScrubStats> {
    let mut stats = ScrubStats::default();
    let mut limiter = RateLimiter::new(bytes_per_sec);
    let mut list = Some(store.list());
    while let Some(walk) = list.take() {
        let (walk, batch) = match tokio::task::spawn_blocking(move || next_batch(walk)).await {
            Ok(listed) => listed,
            Err(error) => {
                tracing::error!(%error, "scrub listing task failed; pass abandoned");
                stats.errors += 1;
                return Some(stats);
            }
        };
        if batch.is_empty() {
            break;
        }
        list = Some(walk);
        for listed in batch {
            let hash = match listed {
                Ok(hash) => hash,
                Err(error) => {
                    tracing::warn!(%error, "scrub could not list a chunk directory");
                    stats.errors += 1;
                    continue;
                }
            };
            let started = Instant::now();
            let reader = Arc::clone(store);
            let (length, read) = match tokio::task::spawn_blocking(move || match reader.length(&hash) {
                // Its file system could not even say how long it is: already reported (and
                // quarantined if it could be moved); reading it would report it again.
                Err(corrupt @ StoreError::Corrupt { .. }) => (0, Err(corrupt)),
                length => (length.unwrap_or(0), reader.read(&hash).map(|_| ())),
            })
            .await
            {
                Ok(done) => done,
                Err(error) => {
                    tracing::error!(chunk = %hash, %error, "scrub read task failed");
                    stats.errors += 1;
                    continue;
                }
            };
            match read {
                Ok(()) => {
                    stats.chunks += 1;
                    stats.bytes += length;
                }
                // Deleted since it was listed.
                Err(StoreError::NotFound(_)) => {}
                Err(StoreError::Corrupt { .. }) => {
                    stats.corrupt += 1;
                    stats.bytes += length;
                    reports.push(hash, FoundBy::Scrub);
                }
                Err(error) => {
                    tracing::warn!(chunk = %hash, %error, "scrub could not read a chunk");
                    stats.errors += 1;
                }
            }
            let wait = limiter.consume(length, started, Instant::now());
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = super::stopped(stop) => return None,
            }
        }
    }
    Some(stats)
}

fn next_batch(mut walk: ChunkList) -> (ChunkList, Vec<Result<crate::chunk_hash::ChunkHash, StoreError>>) {
    let batch = walk.by_ref().take(LIST_BATCH_CHUNKS).collect();
    (walk, batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn reads_are_paced_to_the_rate() {
        let mut limiter = RateLimiter::new(1000);
        let t0 = Instant::now();
        // 500 bytes at 1000 B/s cost half a second, counted from the read's start.
        assert_eq!(limiter.consume(500, t0, t0), 500 * MS);
        assert_eq!(limiter.consume(500, t0, t0 + 100 * MS), 900 * MS, "still owed");
        // The next read starts on time: it pays its own cost.
        assert_eq!(limiter.consume(1000, t0 + 1000 * MS, t0 + 1000 * MS), 1000 * MS);
    }

    #[test]
    fn a_slow_read_earns_no_burst_later() {
        let mut limiter = RateLimiter::new(1000);
        let t0 = Instant::now();
        assert_eq!(limiter.consume(100, t0, t0), 100 * MS);
        // The disk was busy: the next read started 10 s late and took 1 s. No credit for the
        // idle time: the following read still waits its full cost.
        let started = t0 + 10_000 * MS;
        assert_eq!(
            limiter.consume(1000, started, started + 1000 * MS),
            Duration::ZERO
        );
        let next = started + 1000 * MS;
        assert_eq!(limiter.consume(1000, next, next), 1000 * MS);
    }

    #[test]
    fn a_zero_rate_cannot_divide_by_zero() {
        let mut limiter = RateLimiter::new(0);
        let t0 = Instant::now();
        assert_eq!(limiter.consume(2, t0, t0), 2000 * MS);
    }

    #[tokio::test]
    async fn a_pass_reads_every_chunk_and_reports_only_the_corrupt_one() {
        use crate::chunk_hash::ChunkHash;
        use crate::node::{DataDirConfig, PutStart, StoreConfig};

        let tmp = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(
            ChunkStore::open(&StoreConfig {
                data_dirs: vec![DataDirConfig {
                    path: tmp.path().to_path_buf(),
                    capacity_bytes_max: None,
                    marker: None,
                }],
                free_bytes_reserved: 0,
                direct_io: true,
            })
            .expect("open"),
        );
        let mut hashes = Vec::new();
        for i in 0..5u8 {
            let content = vec![i; 1000 + usize::from(i)];
            let hash = ChunkHash::of(&content);
            let PutStart::Receiving(mut pending) = store.begin_put(hash, content.len() as u64).expect("put")
            else {
                panic!("new chunk already present");
            };
            pending.write(&content).expect("write");
            pending.commit().expect("commit");
            hashes.push(hash);
        }
        let bad = hashes[2];
        let hex = bad.to_hex();
        let path = tmp
            .path()
            .join("chunks")
            .join(&hex[..2])
            .join(&hex[2..4])
            .join(&hex);
        let mut bytes = std::fs::read(&path).expect("read chunk file");
        bytes[7] ^= 0x40;
        std::fs::write(&path, bytes).expect("corrupt chunk file");

        let reports = CorruptionQueue::new();
        let (_keep, mut stop) = watch::channel(false);
        let stats = scrub_pass(&store, u64::MAX, &reports, &mut stop)
            .await
            .expect("not stopped");
        assert_eq!(stats.chunks, 4);
        assert_eq!(stats.corrupt, 1);
        assert_eq!(stats.errors, 0);
        assert_eq!(stats.bytes, (0..5u64).map(|i| 1000 + i).sum::<u64>());
        assert_eq!(reports.pending(), vec![(bad, FoundBy::Scrub)]);
        assert!(!store.contains(&bad), "the corrupt copy was quarantined");
        // A second pass finds the four good chunks and nothing more to report.
        let again = scrub_pass(&store, u64::MAX, &reports, &mut stop)
            .await
            .expect("not stopped");
        assert_eq!((again.chunks, again.corrupt), (4, 0));
    }
}
