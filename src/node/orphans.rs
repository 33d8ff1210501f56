//! Orphan sweep: the node deletes copies it holds that the member's log does not record on it
//! (uploads of writes that failed before their commit), once they have been idle longer than
//! the garbage-collection grace period.
//!
//! Why a copy a writer still counts on survives: a writer commits at most `PLAN_AGE_MS_MAX`
//! (1 h) after it planned, and it put (or re-put, refreshing the copy's time) every chunk after
//! planning; the sweep deletes only copies idle for the grace period (2 h by default), and the
//! idle check and the delete happen under the store's lock against re-puts
//! (`ChunkStore::delete_if_idle`). The log is asked with a linearizable read, so a commit the
//! node has not heard of still counts.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use collective_proto::api;
use collective_proto::chunk_limits::HASHES_PER_REQUEST_MAX;
use tokio::sync::watch;

use super::chunk_store::{ChunkStore, Deletion};
use crate::chunk_hash::ChunkHash;
use crate::client::Client;

/// Pause between sweeps unless `COLLECTIVE_NODE_ORPHAN_SWEEP_MS` says otherwise.
pub const SWEEP_INTERVAL_DEFAULT: Duration = Duration::from_secs(3600);

/// When to sweep and what counts as idle.
#[derive(Debug, Clone, Copy)]
pub struct SweepConfig {
    pub interval: Duration,
    /// Copies written or re-put more recently than this are kept.
    pub min_idle: Duration,
}

impl SweepConfig {
    /// The defaults, or `COLLECTIVE_NODE_ORPHAN_SWEEP_MS` and `COLLECTIVE_NODE_ORPHAN_IDLE_MS`
    /// (default: `COLLECTIVE_GC_GRACE_MS`, the coordinators' grace period, so both sides of
    /// garbage collection agree unless a test separates them).
    pub fn from_env() -> anyhow::Result<SweepConfig> {
        use crate::env::millis;
        Ok(SweepConfig {
            interval: millis("COLLECTIVE_NODE_ORPHAN_SWEEP_MS", SWEEP_INTERVAL_DEFAULT)?,
            min_idle: millis(
                "COLLECTIVE_NODE_ORPHAN_IDLE_MS",
                millis("COLLECTIVE_GC_GRACE_MS", crate::coordinator::gc::GRACE_DEFAULT)?,
            )?,
        })
    }
}

/// Sweeps every `config.interval` until `stop` turns true.
pub async fn sweep_loop(
    store: Arc<ChunkStore>,
    mut client: Client,
    node: String,
    config: SweepConfig,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(config.interval) => {}
            _ = stop.changed() => return,
        }
        match sweep(&store, &mut client, &node, config.min_idle).await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "orphan copies removed (no commit recorded them)"),
            Err(error) => {
                tracing::warn!(error = %format!("{error:#}"), "orphan sweep failed; the next one retries")
            }
        }
    }
}

/// One sweep; returns the copies removed.
pub async fn sweep(
    store: &Arc<ChunkStore>,
    client: &mut Client,
    node: &str,
    min_idle: Duration,
) -> anyhow::Result<u64> {
    let listed = {
        let store = Arc::clone(store);
        tokio::task::spawn_blocking(move || store.list().collect::<Result<Vec<ChunkHash>, _>>()).await??
    };
    let mut removed = 0u64;
    for page in listed.chunks(HASHES_PER_REQUEST_MAX) {
        let answer = client
            .recorded_chunks(api::RecordedChunksRequest {
                node: node.to_string(),
                hashes: page.iter().map(|h| h.as_bytes().to_vec()).collect(),
            })
            .await?;
        anyhow::ensure!(
            answer.recorded.len() == page.len(),
            "the member answered {} flags for {} chunks",
            answer.recorded.len(),
            page.len()
        );
        let orphans: Vec<ChunkHash> = page
            .iter()
            .zip(&answer.recorded)
            .filter(|(_, recorded)| !**recorded)
            .map(|(hash, _)| *hash)
            .collect();
        let store = Arc::clone(store);
        removed += tokio::task::spawn_blocking(move || -> anyhow::Result<u64> {
            let mut removed = 0;
            for hash in orphans {
                if store.delete_if_idle(&hash, min_idle, SystemTime::now())? == Deletion::Removed {
                    tracing::debug!(chunk = %hash, "orphan copy removed");
                    removed += 1;
                }
            }
            Ok(removed)
        })
        .await??;
    }
    Ok(removed)
}
