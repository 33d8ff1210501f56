//! Writing a file: cut, hash, plan, upload in parallel, commit once.
//!
//! A blocking reader thread cuts the input into fixed-size chunks and hashes them; the writer
//! asks the leader where each batch goes (`PlanWrite`) and uploads every chunk to its targets at
//! once, with a bounded number of chunks in flight (which also bounds memory and holds the reader
//! back). An input of one chunk of at most `INLINE_BYTES_MAX` is committed inline instead, with
//! no plan and no upload. A chunk whose upload to some node fails is planned again without that node. Once every
//! chunk is stored, one `CommitFileVersion` names the chunk map and every replica stored: the
//! version and its placements become visible together, or not at all. Nothing is visible before
//! the commit, so a write that fails midway leaves no partial file (only unreferenced chunks,
//! which garbage collection removes).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use collective_events::pb::{self, command_envelope::Command};
use collective_proto::api;
use futures::stream::{FuturesUnordered, StreamExt};
use prost::bytes::Bytes;
use std::io::Read;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use super::CHUNK_BYTES_DEFAULT;
use super::error::{DataError, DataError as E};
use super::nodes::NodePool;
use super::progress::Progress;
use crate::buffers;
use crate::chunk_hash::ChunkHash;
use crate::client::Client;
use collective_events::decide::INLINE_BYTES_MAX;
use collective_proto::PLAN_CHUNKS_MAX;

/// How many times one chunk is planned again after uploads to some of its targets failed.
const REPLANS_PER_CHUNK_MAX: usize = 4;
/// Once one target of a chunk stored it, the others get this many times as long again, and at
/// least the pool's stall limit, before they are given up for other nodes.
const UPLOAD_LAG_FACTOR: f64 = 4.0;

#[derive(Debug, Clone)]
pub struct WriteOptions {
    pub chunk_bytes: usize,
    /// Replicas per chunk; 0 lets the member choose (2, or 1 with a single node).
    pub replicas: u32,
    /// Versions kept; 0 = the member's default.
    pub keep_versions: u32,
    /// Commit only if the file is at this version (0 = must not exist yet).
    pub expected_version: Option<u64>,
    /// Chunks being uploaded at once (each to all its replicas).
    pub chunks_in_flight: usize,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            chunk_bytes: CHUNK_BYTES_DEFAULT,
            replicas: 0,
            keep_versions: 0,
            expected_version: None,
            chunks_in_flight: 8,
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct WriteSummary {
    pub path: String,
    pub version: u64,
    pub size: u64,
    pub chunks: usize,
    /// Chunk copies sent to nodes (a chunk with two replicas counts twice).
    pub uploaded: usize,
    /// Chunks already stored on enough healthy nodes: nothing sent.
    pub deduplicated: usize,
    pub replicas: u32,
    pub log_index: u64,
    pub elapsed_ms: u64,
}

/// One chunk cut from the input.
struct Cut {
    index: usize,
    offset: u64,
    hash: ChunkHash,
    data: Bytes,
}

/// Where a chunk ended up.
#[derive(Default)]
struct Stored {
    /// Nodes that confirmed a copy during this write.
    nodes: BTreeSet<String>,
    deduplicated: bool,
}

/// Writes everything `input` yields as the next version of `path`.
pub async fn write_file(
    client: &mut Client,
    pool: &NodePool,
    path: &str,
    input: Box<dyn Read + Send>,
    options: &WriteOptions,
    progress: Arc<dyn Progress>,
) -> Result<WriteSummary, DataError> {
    let started = Instant::now();
    if options.chunk_bytes == 0
        || options.chunk_bytes as u64 > collective_proto::chunk_limits::CHUNK_BYTES_MAX
    {
        return Err(E::Invalid(format!(
            "chunk size {} is outside 1 byte to {} bytes",
            options.chunk_bytes,
            collective_proto::chunk_limits::CHUNK_BYTES_MAX
        )));
    }
    let in_flight = options.chunks_in_flight.max(1);
    let (cuts_tx, mut cuts_rx) = mpsc::channel::<Result<Cut, DataError>>(in_flight);
    let chunk_bytes = options.chunk_bytes;
    let reader = tokio::task::spawn_blocking(move || cut(input, chunk_bytes, cuts_tx));

    // A small file (one short chunk) is committed inline: one Raft entry, no plan, no upload.
    let first = cuts_rx.recv().await.transpose()?;
    let second = match &first {
        Some(_) => cuts_rx.recv().await.transpose()?,
        None => None,
    };
    if let (Some(cut), None) = (&first, &second)
        && cut.data.len() <= INLINE_BYTES_MAX
    {
        progress.advance(cut.data.len() as u64);
        return commit_inline(client, path, options, cut.data.to_vec(), started).await;
    }
    let mut early: std::collections::VecDeque<Cut> = first.into_iter().chain(second).collect();

    let permits = Arc::new(Semaphore::new(in_flight));
    let mut uploads: JoinSet<Upload> = JoinSet::new();
    let mut refs: Vec<pb::ChunkRef> = Vec::new();
    let mut stored: Vec<Stored> = Vec::new();
    let mut earliest_plan: i64 = 0;
    let mut replicas_planned = options.replicas;
    let mut uploaded = 0usize;
    // Nodes that failed an upload of this write: later batches are planned without them, so a
    // dead node costs one failed upload, not one per batch until the member declares it down.
    let mut avoid: Vec<String> = Vec::new();
    let mut size = 0u64;
    let mut done = false;
    while !done || !uploads.is_empty() {
        // Gather a batch: wait for one chunk, then take whatever else is already cut.
        let mut batch = Vec::new();
        if !done {
            tokio::select! {
                biased;
                Some(finished) = uploads.join_next(), if !uploads.is_empty() => {
                    let outcome = finished.map_err(|e| E::Protocol(format!("upload task failed: {e}")))?;
                    uploaded += settle(client, pool, path, &progress, &permits, &mut uploads, &mut stored, &mut avoid, outcome).await?;
                    continue;
                }
                next = next_cut(&mut early, &mut cuts_rx) => match next {
                    Some(cut) => batch.push(cut?),
                    None => done = true,
                },
            }
            while batch.len() < PLAN_CHUNKS_MAX.min(in_flight) {
                if let Some(cut) = early.pop_front() {
                    batch.push(cut);
                    continue;
                }
                match cuts_rx.try_recv() {
                    Ok(cut) => batch.push(cut?),
                    Err(_) => break,
                }
            }
        } else if let Some(finished) = uploads.join_next().await {
            let outcome = finished.map_err(|e| E::Protocol(format!("upload task failed: {e}")))?;
            uploaded += settle(
                client,
                pool,
                path,
                &progress,
                &permits,
                &mut uploads,
                &mut stored,
                &mut avoid,
                outcome,
            )
            .await?;
            continue;
        }
        if batch.is_empty() {
            continue;
        }
        let plan = plan(client, path, &batch, options.replicas, &avoid).await?;
        if earliest_plan == 0 {
            earliest_plan = plan.planned_at_unix_ms;
        }
        replicas_planned = plan.replicas;
        for (cut, chunk_plan) in batch.into_iter().zip(&plan.chunks) {
            size += cut.data.len() as u64;
            refs.push(pb::ChunkRef {
                hash: cut.hash.as_bytes().to_vec(),
                offset: cut.offset,
                size: cut.data.len() as u64,
            });
            stored.push(Stored::default());
            if chunk_plan.targets.is_empty() {
                stored[cut.index].deduplicated = true;
                progress.advance(cut.data.len() as u64);
                continue;
            }
            let permit = Arc::clone(&permits)
                .acquire_owned()
                .await
                .map_err(|_| E::Protocol("upload window closed".into()))?;
            let job = Job::new(cut, 0, chunk_plan, &plan.nodes)?;
            let pool = pool.clone();
            uploads.spawn(async move {
                let outcome = job.run(&pool).await;
                drop(permit);
                outcome
            });
        }
    }
    reader
        .await
        .map_err(|e| E::Protocol(format!("reader task failed: {e}")))?;
    let deduplicated = stored.iter().filter(|s| s.deduplicated).count();
    let placements = refs
        .iter()
        .zip(&stored)
        .flat_map(|(chunk, s)| {
            s.nodes.iter().map(|node| pb::ChunkPlacement {
                hash: chunk.hash.clone(),
                node: node.clone(),
            })
        })
        .collect();
    let chunks = refs.len();
    let response = client
        .submit(Command::CommitFileVersion(pb::CommitFileVersion {
            path: path.to_string(),
            size,
            chunks: refs,
            expected_version: options.expected_version,
            keep_versions: options.keep_versions,
            placements,
            replicas: replicas_planned,
            planned_at_unix_ms: earliest_plan,
            inline_data: Vec::new(),
        }))
        .await?;
    let version = committed_version(&response)?;
    Ok(WriteSummary {
        path: path.to_string(),
        version,
        size,
        chunks,
        uploaded,
        deduplicated,
        replicas: replicas_planned,
        log_index: response.log_index,
        elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    })
}

/// The next cut: those already taken off the channel first.
async fn next_cut(
    early: &mut std::collections::VecDeque<Cut>,
    cuts: &mut mpsc::Receiver<Result<Cut, DataError>>,
) -> Option<Result<Cut, DataError>> {
    match early.pop_front() {
        Some(cut) => Some(Ok(cut)),
        None => cuts.recv().await,
    }
}

/// Commits a small file's content inline in the log.
async fn commit_inline(
    client: &mut Client,
    path: &str,
    options: &WriteOptions,
    data: Vec<u8>,
    started: Instant,
) -> Result<WriteSummary, DataError> {
    let size = data.len() as u64;
    let response = client
        .submit(Command::CommitFileVersion(pb::CommitFileVersion {
            path: path.to_string(),
            size,
            expected_version: options.expected_version,
            keep_versions: options.keep_versions,
            inline_data: data,
            ..Default::default()
        }))
        .await?;
    Ok(WriteSummary {
        path: path.to_string(),
        version: committed_version(&response)?,
        size,
        chunks: 0,
        uploaded: 0,
        deduplicated: 0,
        replicas: 0,
        log_index: response.log_index,
        elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    })
}

fn committed_version(response: &api::SubmitResponse) -> Result<u64, DataError> {
    response
        .events
        .iter()
        .find_map(|e| match &e.event {
            Some(pb::event_envelope::Event::FileVersionCommitted(c)) => Some(c.version),
            _ => None,
        })
        .ok_or_else(|| E::Protocol("the commit produced no FileVersionCommitted event".into()))
}

/// Cuts `input` into chunks of `chunk_bytes` (the last may be shorter) and hashes each, on a
/// blocking thread: reading straight into each chunk's buffer (no intermediate copy) and hashing
/// there keeps both off the async workers. Buffers come from the pool (`crate::buffers`) and go
/// back to it once the chunk is uploaded.
fn cut(mut input: Box<dyn Read + Send>, chunk_bytes: usize, out: mpsc::Sender<Result<Cut, DataError>>) {
    let mut offset = 0u64;
    for index in 0.. {
        let mut buffer = buffers::take(chunk_bytes);
        let filled = match buffers::fill(&mut input, &mut buffer) {
            Ok(filled) => filled,
            Err(e) => {
                let _ = out.blocking_send(Err(DataError::io("reading the input", e)));
                return;
            }
        };
        if filled == 0 {
            return;
        }
        let full = filled == chunk_bytes;
        let hash = ChunkHash::of(&buffer[..filled]);
        let data = buffers::into_bytes(buffer, filled);
        let len = data.len() as u64;
        if out
            .blocking_send(Ok(Cut {
                index,
                offset,
                hash,
                data,
            }))
            .is_err()
        {
            return;
        }
        offset += len;
        if !full {
            return;
        }
    }
}

async fn plan(
    client: &mut Client,
    path: &str,
    batch: &[Cut],
    replicas: u32,
    exclude: &[String],
) -> Result<api::PlanWriteResponse, DataError> {
    let response = client
        .plan_write(api::PlanWriteRequest {
            path: path.to_string(),
            chunks: batch
                .iter()
                .map(|c| api::ChunkSpec {
                    hash: c.hash.as_bytes().to_vec(),
                    size: c.data.len() as u64,
                })
                .collect(),
            replicas,
            exclude_nodes: exclude.to_vec(),
        })
        .await?;
    if response.chunks.len() != batch.len() {
        return Err(E::Protocol(format!(
            "a plan for {} chunks answered {}",
            batch.len(),
            response.chunks.len()
        )));
    }
    Ok(response)
}

/// One chunk's upload to the targets of one plan.
struct Job {
    cut: Cut,
    attempt: usize,
    /// (node, endpoint, ticket) per target.
    targets: Vec<(String, String, collective_proto::ticket::Ticket)>,
}

struct Upload {
    job: Job,
    stored: Vec<String>,
    errors: Vec<(String, String)>,
}

impl Job {
    fn new(
        cut: Cut,
        attempt: usize,
        plan: &api::ChunkPlan,
        access: &[api::NodeAccess],
    ) -> Result<Job, DataError> {
        let targets = plan
            .targets
            .iter()
            .map(|node| {
                let access = access.iter().find(|a| &a.address == node).ok_or_else(|| {
                    E::Protocol(format!("the plan names {node} but carries no ticket for it"))
                })?;
                let ticket = access
                    .ticket
                    .clone()
                    .ok_or_else(|| E::Protocol(format!("the plan's access to {node} has no ticket")))?;
                Ok((node.clone(), access.endpoint.clone(), ticket))
            })
            .collect::<Result<_, DataError>>()?;
        Ok(Job {
            cut,
            attempt,
            targets,
        })
    }

    /// Puts the chunk on every target at once. Once one target stored it, the others get
    /// [`UPLOAD_LAG_FACTOR`] times as long again, and at least the stall limit (10 s by
    /// default): a target still not done then counts as stalled, and the chunk is planned
    /// elsewhere. A node that froze so costs a write about the stall limit, not the transfer
    /// limit (30 s for a 4 MiB chunk), while a slow one that keeps within the stall limit of
    /// its peer is waited for.
    async fn run(self, pool: &NodePool) -> Upload {
        let started = Instant::now();
        let mut puts: FuturesUnordered<_> = self
            .targets
            .iter()
            .map(|(node, endpoint, ticket)| async {
                let result = pool
                    .put(node, endpoint, ticket, &self.cut.hash, self.cut.data.clone())
                    .await;
                (node.clone(), result)
            })
            .collect();
        let mut pending: Vec<&str> = self.targets.iter().map(|(node, _, _)| node.as_str()).collect();
        let mut stored = Vec::new();
        let mut errors = Vec::new();
        // Set once a target stored the chunk: (how long it took, how long the others get more).
        let mut lag_limit: Option<(Duration, Duration)> = None;
        loop {
            let next = match lag_limit {
                None => puts.next().await,
                Some((first_took, lag)) => {
                    let deadline = started + first_took + lag;
                    match tokio::time::timeout_at(deadline.into(), puts.next()).await {
                        Ok(next) => next,
                        Err(_) => {
                            for node in pending.drain(..) {
                                errors.push((
                                    node.to_owned(),
                                    format!(
                                        "{node} had not stored the chunk {lag:?} after another target \
                                         stored it in {first_took:?}; giving up on it for this chunk"
                                    ),
                                ));
                            }
                            break;
                        }
                    }
                }
            };
            let Some((node, result)) = next else { break };
            pending.retain(|p| *p != node);
            match result {
                Ok(_) => {
                    stored.push(node);
                    if lag_limit.is_none() {
                        let took = started.elapsed();
                        lag_limit = Some((took, took.mul_f64(UPLOAD_LAG_FACTOR).max(pool.stall())));
                    }
                }
                Err(error) => errors.push((node, error)),
            }
        }
        drop(puts);
        Upload {
            job: self,
            stored,
            errors,
        }
    }
}

/// Records a finished upload; a chunk some target failed is planned again without the nodes
/// that failed it, and its new upload joins the set. Returns the copies stored.
#[allow(clippy::too_many_arguments)]
async fn settle(
    client: &mut Client,
    pool: &NodePool,
    path: &str,
    progress: &Arc<dyn Progress>,
    permits: &Arc<Semaphore>,
    uploads: &mut JoinSet<Upload>,
    stored: &mut [Stored],
    avoid: &mut Vec<String>,
    outcome: Upload,
) -> Result<usize, DataError> {
    let Upload {
        job,
        stored: ok,
        errors,
    } = outcome;
    let index = job.cut.index;
    let copies = ok.len();
    stored[index].nodes.extend(ok);
    if errors.is_empty() {
        progress.advance(job.cut.data.len() as u64);
        return Ok(copies);
    }
    for (node, error) in &errors {
        tracing::warn!(chunk = index, %node, %error, "chunk upload failed; planning it elsewhere");
    }
    if job.attempt + 1 >= REPLANS_PER_CHUNK_MAX {
        let detail = errors
            .iter()
            .map(|(node, error)| format!("{node}: {error}"))
            .collect::<Vec<_>>()
            .join("; ");
        return Err(E::Upload { index, detail });
    }
    for (node, _) in errors {
        if !avoid.contains(&node) {
            avoid.push(node);
        }
    }
    // The stored copies count: ask only for the replicas still missing, away from failed nodes.
    let mut exclude = avoid.clone();
    exclude.extend(stored[index].nodes.iter().cloned());
    let missing_replicas = job.targets.len() - copies;
    let batch = [job.cut];
    tokio::time::sleep(Duration::from_millis(100 * (job.attempt as u64 + 1))).await;
    let plan = plan(
        client,
        path,
        &batch,
        u32::try_from(missing_replicas).unwrap_or(1),
        &exclude,
    )
    .await?;
    let [cut] = batch;
    let Some(chunk_plan) = plan.chunks.first() else {
        return Err(E::Protocol("an empty re-plan".into()));
    };
    if chunk_plan.targets.is_empty() {
        progress.advance(cut.data.len() as u64);
        return Ok(copies);
    }
    let permit = Arc::clone(permits)
        .acquire_owned()
        .await
        .map_err(|_| E::Protocol("upload window closed".into()))?;
    let job = Job::new(cut, job.attempt + 1, chunk_plan, &plan.nodes)?;
    let pool = pool.clone();
    uploads.spawn(async move {
        let outcome = job.run(&pool).await;
        drop(permit);
        outcome
    });
    Ok(copies)
}
