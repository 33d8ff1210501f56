//! Telling the member about corrupt copies: a chunk that failed verification (on a client read
//! or in a scrub) was quarantined, so the replica the member records here no longer exists. The
//! node submits `RemoveReplica` for it, and repair then restores the replica count elsewhere.
//!
//! Reports wait in a small in-memory queue and are retried until the member answers, so a
//! coordinator election or a short outage loses none. A report is settled when the member
//! records the removal, or answers NOT_FOUND (no such replica was recorded: nothing to undo).
//! A node restart drops unsent reports; the quarantined file stays for inspection, and the
//! member's reconciliation (`Has`) finds the copy missing in any case.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use collective_events::pb::{self, command_envelope::Command};
use tokio::sync::{Notify, watch};

use crate::chunk_hash::ChunkHash;
use crate::client::{Client, ClientError};

/// Reports waiting to be submitted; past this, new reports are dropped (and counted): the
/// quarantine directory still holds the evidence.
pub const CORRUPTION_REPORTS_QUEUED_MAX: usize = 1024;
/// Wait before retrying a report the member could not take.
const REPORT_RETRY_INITIAL: Duration = Duration::from_millis(500);
/// Longest wait between retries while the member stays unreachable.
const REPORT_RETRY_MAX: Duration = Duration::from_secs(30);

/// How a corrupt copy was found; it becomes the removal's recorded reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FoundBy {
    /// A client's Get (or any other read serving a request).
    Read,
    /// The background scrubber.
    Scrub,
}

impl FoundBy {
    /// The reason recorded in the member's `ReplicaRemoved` event. The copy either failed its
    /// hash or could not be read at all (the node's log says which).
    pub fn reason(self) -> &'static str {
        match self {
            FoundBy::Read => "corrupt or unreadable: found by read",
            FoundBy::Scrub => "corrupt or unreadable: found by scrub",
        }
    }
}

/// One report waiting for the member.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Report {
    hash: ChunkHash,
    found_by: FoundBy,
    /// Kept across retries, so a retry of a submission whose answer was lost is recognized.
    request_id: Vec<u8>,
}

/// The queue of reports, filled by reads and the scrubber, drained by [`submit_loop`].
#[derive(Debug, Default)]
pub struct CorruptionQueue {
    reports: Mutex<VecDeque<Report>>,
    wake: Notify,
    dropped: AtomicU64,
}

impl CorruptionQueue {
    pub fn new() -> CorruptionQueue {
        CorruptionQueue::default()
    }

    /// Queues a report for `hash` unless one is already waiting; false when it was not queued
    /// (a duplicate, or the queue is full).
    pub fn push(&self, hash: ChunkHash, found_by: FoundBy) -> bool {
        let mut reports = self.lock();
        if reports.iter().any(|r| r.hash == hash) {
            return false;
        }
        if reports.len() >= CORRUPTION_REPORTS_QUEUED_MAX {
            drop(reports);
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::error!(chunk = %hash, dropped, "corruption report queue full; report dropped");
            return false;
        }
        reports.push_back(Report {
            hash,
            found_by,
            request_id: crate::client::new_request_id(),
        });
        drop(reports);
        self.wake.notify_one();
        true
    }

    /// The reports waiting, oldest first.
    pub fn pending(&self) -> Vec<(ChunkHash, FoundBy)> {
        self.lock().iter().map(|r| (r.hash, r.found_by)).collect()
    }

    /// Reports dropped because the queue was full, since the node started.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn front(&self) -> Option<Report> {
        self.lock().front().cloned()
    }

    fn settle(&self, report: &Report) {
        self.lock().retain(|r| r.request_id != report.request_id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Report>> {
        // A plain queue: a panic elsewhere leaves it whole.
        self.reports
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// What the member's answer means for a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Recorded, or nothing to record: remove it from the queue.
    Settled,
    /// Refused for good (malformed, not permitted): retrying cannot help.
    Refused,
    /// No definite answer: keep it and retry.
    Retry,
}

fn outcome<T>(result: &Result<T, ClientError>) -> Outcome {
    match result {
        Ok(_) => Outcome::Settled,
        Err(ClientError::Refused { code, .. }) => match code {
            tonic::Code::NotFound => Outcome::Settled,
            tonic::Code::InvalidArgument
            | tonic::Code::PermissionDenied
            | tonic::Code::Unauthenticated
            | tonic::Code::FailedPrecondition
            | tonic::Code::AlreadyExists
            | tonic::Code::OutOfRange
            | tonic::Code::Unimplemented => Outcome::Refused,
            _ => Outcome::Retry,
        },
        Err(ClientError::Identity { .. } | ClientError::Connect { .. } | ClientError::Unavailable { .. }) => {
            Outcome::Retry
        }
    }
}

/// Submits queued reports for node `node_address` through `client`, oldest first, until `stop`
/// turns true.
pub async fn submit_loop(
    queue: std::sync::Arc<CorruptionQueue>,
    mut client: Client,
    node_address: String,
    mut stop: watch::Receiver<bool>,
) {
    let mut retry_after = REPORT_RETRY_INITIAL;
    loop {
        if *stop.borrow() {
            return;
        }
        let Some(report) = queue.front() else {
            tokio::select! {
                _ = queue.wake.notified() => continue,
                _ = super::stopped(&mut stop) => return,
            }
        };
        let command = Command::RemoveReplica(pb::RemoveReplica {
            hash: report.hash.as_bytes().to_vec(),
            node: node_address.clone(),
            reason: report.found_by.reason().to_string(),
        });
        let result = client.submit_with_id(report.request_id.clone(), command).await;
        match outcome(&result) {
            Outcome::Settled => {
                queue.settle(&report);
                retry_after = REPORT_RETRY_INITIAL;
                let recorded = result.is_ok();
                tracing::info!(chunk = %report.hash, reason = report.found_by.reason(), recorded, "corrupt replica reported to the member");
            }
            Outcome::Refused => {
                queue.settle(&report);
                if let Err(error) = result {
                    tracing::error!(chunk = %report.hash, %error, "the member refused a corrupt replica report; dropped");
                }
            }
            Outcome::Retry => {
                if let Err(error) = result {
                    tracing::warn!(chunk = %report.hash, %error, retry_in_ms = retry_after.as_millis() as u64, "corrupt replica report not delivered; will retry");
                }
                tokio::select! {
                    _ = tokio::time::sleep(retry_after) => {}
                    _ = super::stopped(&mut stop) => return,
                }
                retry_after = (retry_after * 2).min(REPORT_RETRY_MAX);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(code: tonic::Code) -> Result<(), ClientError> {
        Err(ClientError::Refused {
            code,
            rejection: None,
            message: String::new(),
        })
    }

    #[test]
    fn a_report_is_queued_once_per_chunk_and_settled_by_request_id() {
        let queue = CorruptionQueue::new();
        let (a, b) = (ChunkHash::of(b"a"), ChunkHash::of(b"b"));
        assert!(queue.push(a, FoundBy::Scrub));
        assert!(!queue.push(a, FoundBy::Read), "one report per chunk waits");
        assert!(queue.push(b, FoundBy::Read));
        assert_eq!(queue.pending(), vec![(a, FoundBy::Scrub), (b, FoundBy::Read)]);
        let front = queue.front().expect("a report waits");
        assert_eq!(front.hash, a);
        queue.settle(&front);
        assert_eq!(queue.pending(), vec![(b, FoundBy::Read)]);
    }

    #[test]
    fn a_full_queue_drops_and_counts_new_reports() {
        let queue = CorruptionQueue::new();
        for i in 0..CORRUPTION_REPORTS_QUEUED_MAX as u32 {
            assert!(queue.push(ChunkHash::of(&i.to_le_bytes()), FoundBy::Scrub));
        }
        assert!(!queue.push(ChunkHash::of(b"one too many"), FoundBy::Scrub));
        assert_eq!(queue.dropped(), 1);
        assert_eq!(queue.pending().len(), CORRUPTION_REPORTS_QUEUED_MAX);
    }

    #[test]
    fn not_found_settles_a_report_and_unreachable_members_are_retried() {
        assert_eq!(outcome(&Ok::<(), ClientError>(())), Outcome::Settled);
        assert_eq!(outcome(&refused(tonic::Code::NotFound)), Outcome::Settled);
        assert_eq!(outcome(&refused(tonic::Code::PermissionDenied)), Outcome::Refused);
        assert_eq!(outcome(&refused(tonic::Code::InvalidArgument)), Outcome::Refused);
        assert_eq!(outcome(&refused(tonic::Code::Unavailable)), Outcome::Retry);
        assert_eq!(outcome(&refused(tonic::Code::Internal)), Outcome::Retry);
        let unreachable: Result<(), ClientError> = Err(ClientError::Unavailable {
            detail: "connection refused".into(),
            waited: Duration::from_secs(5),
        });
        assert_eq!(outcome(&unreachable), Outcome::Retry);
        let connect: Result<(), ClientError> = Err(ClientError::Connect {
            endpoint: "127.0.0.1:1".into(),
            detail: "refused".into(),
        });
        assert_eq!(outcome(&connect), Outcome::Retry);
    }

    #[test]
    fn reasons_name_how_the_corruption_was_found() {
        assert!(FoundBy::Scrub.reason().contains("scrub"));
        assert!(FoundBy::Read.reason().contains("read"));
    }
}
