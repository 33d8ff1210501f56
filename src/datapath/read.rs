//! Reading a file: the version's chunk map page by page, chunks fetched with read-ahead from
//! their replicas (the nearest healthy one, raced by the next if it runs long, then the others on
//! any error: see `nearest`), every chunk verified against its hash before a byte of it is
//! written out, in order.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::sink::ReadSink;
use collective_proto::api;
use collective_proto::ticket::Ticket;
use futures::stream::{FuturesUnordered, StreamExt};
use prost::bytes::Bytes;
use tokio::sync::oneshot;
use tokio::task::JoinSet;

use super::error::DataError;
use super::nearest::Fetching;
use super::nodes::NodePool;
use super::progress::Progress;
use crate::chunk_hash::ChunkHash;
use crate::client::{Client, Consistency};

/// Chunk fetches running at once by default: 12 of 4 MiB. Fewer leave the cores idle: cold
/// reads of 1 GiB from two nodes took 1.40 to 1.56 s with 16 against 1.50 to 1.70 s with 8
/// (session 12), and 1.25 s with 8 against 1.17 with 12 and 16 (session 19). More buy nothing
/// for one reader and cost every reader memory it touches for the first time, which is dear
/// here: in session 19 a single read was as fast with 12 as with 16 (medians 1.17 and 1.17 s,
/// then 1.10 and 1.14 s over 10 rounds) with about a third fewer page faults, and four reads at
/// once were 7% faster (1.13 against 1.22 s). As many fetched chunks again may wait to be
/// written out in order (see `Window`). docs/benchmarks.md has the runs.
pub const READ_AHEAD_DEFAULT: usize = 12;
/// How often a running fetch is checked against the time a race is due (`nearest`).
const HEDGE_CHECK_EVERY: Duration = Duration::from_millis(25);

#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// First byte to read.
    pub offset: u64,
    /// Bytes to read from `offset`; `None` to the end.
    pub length: Option<u64>,
    /// A kept version; `None` for the current one.
    pub version: Option<u64>,
    /// Chunk fetches running at once; as many fetched chunks again may wait to be written out.
    pub read_ahead: usize,
    pub consistency: Consistency,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            offset: 0,
            length: None,
            version: None,
            read_ahead: READ_AHEAD_DEFAULT,
            consistency: Consistency::Linearizable,
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ReadSummary {
    pub path: String,
    pub version: u64,
    /// Bytes written out.
    pub bytes: u64,
    pub chunks: usize,
    /// Fetches that failed on one replica and were served by another.
    pub failovers: usize,
    /// Chunks whose fetch ran long and was raced by a second replica.
    pub hedged: usize,
    /// Chunks served, by node.
    pub fetched_from: BTreeMap<String, usize>,
    pub elapsed_ms: u64,
}

/// The read-ahead window. Up to `running_max` fetches run at once, and what they fetched waits
/// until every chunk launched before it was written out: up to `running_max` more chunks. A
/// window that counted the chunks waiting, as the first one did, stalled whenever its oldest
/// fetch did: a node busy for a moment held up the fetches from the others too. Alternating cold
/// reads of 1 GiB from two nodes were 8 to 12% faster with this window in three comparisons out
/// of four, and 2% slower in the fourth; a limit of three times `running_max` in all did no
/// better than twice (docs/benchmarks.md, session 12). Memory: `2 × running_max` chunks at most.
struct Window<T> {
    running: usize,
    running_max: usize,
    /// Fetched, by launch number, waiting for the chunks launched before them.
    waiting: BTreeMap<usize, T>,
    launched: usize,
    next_out: usize,
}

impl<T> Window<T> {
    fn new(running_max: usize) -> Window<T> {
        Window {
            running: 0,
            running_max: running_max.max(1),
            waiting: BTreeMap::new(),
            launched: 0,
            next_out: 0,
        }
    }

    /// Whether another fetch may start.
    fn has_room(&self) -> bool {
        self.running < self.running_max && self.running + self.waiting.len() < 2 * self.running_max
    }

    /// Counts a fetch as started; returns its launch number.
    fn launch(&mut self) -> usize {
        self.running += 1;
        self.launched += 1;
        self.launched - 1
    }

    /// The fetch `launched` ended with `result`.
    fn arrived(&mut self, launched: usize, result: T) {
        self.running -= 1;
        self.waiting.insert(launched, result);
    }

    /// The result of the next fetch in launch order, once it arrived.
    fn next_in_order(&mut self) -> Option<T> {
        let result = self.waiting.remove(&self.next_out)?;
        self.next_out += 1;
        Some(result)
    }
}

/// A chunk to fetch, with where from.
struct Fetch {
    index: usize,
    hash: ChunkHash,
    size: u64,
    /// Part of the chunk wanted: [skip, skip + take).
    skip: u64,
    take: u64,
    /// The nodes that hold it, in the plan's order.
    sources: Vec<Source>,
}

/// A node that holds a chunk: its address, its endpoint and the ticket for this read's chunks
/// there. A ticket names every chunk of its page (up to 10 KiB), so the page's chunks share it.
type Source = (Arc<str>, Arc<str>, Arc<Ticket>);

/// Writes the requested range of `path` to `out`.
pub async fn read_file<S: ReadSink>(
    client: &mut Client,
    pool: &NodePool,
    path: &str,
    out: &mut S,
    options: &ReadOptions,
    progress: Arc<dyn Progress>,
) -> Result<ReadSummary, DataError> {
    let started = Instant::now();
    let first = page(client, path, options.version, 0, options.consistency).await?;
    let version = first.version;
    let size = first.size;
    if options.offset > size {
        return Err(DataError::Invalid(format!(
            "offset {} is past the end of {path} ({size} bytes)",
            options.offset
        )));
    }
    let end = match options.length {
        Some(length) => options.offset.saturating_add(length).min(size),
        None => size,
    };
    progress.set_total(end - options.offset);
    if !first.inline_data.is_empty() {
        return write_inline(out, path, &first, options.offset, end, started, &progress).await;
    }
    let total_chunks = first.chunk_total as usize;
    let mut pending: VecDeque<Fetch> = VecDeque::new();
    let mut next_page = Some(first);
    let mut next_index = 0usize;
    let mut in_flight = JoinSet::new();
    let mut window = Window::new(options.read_ahead);
    let avoided = Avoided::default();
    let mut written = 0u64;
    let mut failovers = 0usize;
    let mut chunks = 0usize;
    let mut fetched_from = BTreeMap::new();
    let mut hedged = 0usize;
    // The turn to ask of the next fetch launched (see `AskTurn`); the first may ask at once.
    let mut next_turn = NextTurn::first();
    loop {
        // Keep the read-ahead window full, fetching plan pages as the window reaches them.
        while window.has_room() {
            if pending.is_empty() {
                let response = match next_page.take() {
                    Some(response) => response,
                    None if next_index < total_chunks => {
                        page(client, path, Some(version), next_index, options.consistency).await?
                    }
                    None => break,
                };
                if response.chunks.is_empty() && next_index >= total_chunks {
                    break; // an empty file
                }
                if response.chunks.is_empty() {
                    return Err(DataError::Protocol(format!(
                        "the chunk map of {path} ended at chunk {next_index} of {total_chunks}"
                    )));
                }
                let access = sources_of(&response.nodes);
                for location in &response.chunks {
                    let index = next_index;
                    next_index += 1;
                    if let Some(fetch) = fetch_of(index, location, &access, options.offset, end)? {
                        pending.push_back(fetch);
                    }
                }
                if pending.is_empty() && next_index >= total_chunks {
                    break;
                }
                continue;
            }
            let Some(fetch) = pending.pop_front() else { break };
            let pool = pool.clone();
            let avoided = Arc::clone(&avoided);
            let launched = window.launch();
            // Each fetch is a task of its own, so chunks are received and hashed on all the
            // runtime's workers. Polled here, every fetch was hashed by this one task: when it
            // fell behind, finished fetches waited to be hashed, the window stayed full and the
            // nodes sat idle with nothing asked of them (docs/benchmarks.md, session 16).
            let (turn, after) = next_turn.chain();
            next_turn = after;
            in_flight.spawn(async move { (launched, fetch_chunk(&pool, fetch, &avoided, turn).await) });
        }
        let Some(result) = window.next_in_order() else {
            let Some(joined) = in_flight.join_next().await else {
                break;
            };
            let (launched, result) = match joined {
                Ok(done) => done,
                Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
                Err(error) => return Err(DataError::Protocol(format!("a chunk fetch was stopped: {error}"))),
            };
            window.arrived(launched, result);
            continue;
        };
        let fetched = result?;
        failovers += fetched.failovers;
        hedged += usize::from(fetched.hedged);
        *fetched_from.entry(fetched.node).or_insert(0) += 1;
        let mut bytes = 0u64;
        for frame in fetched.frames {
            bytes += frame.len() as u64;
            out.put(frame)
                .await
                .map_err(|e| DataError::io("writing the output", e))?;
        }
        written += bytes;
        chunks += 1;
        progress.advance(bytes);
    }
    out.finish()
        .await
        .map_err(|e| DataError::io("writing the output", e))?;
    if written != end - options.offset {
        return Err(DataError::Protocol(format!(
            "read {written} bytes of {path}, expected {}",
            end - options.offset
        )));
    }
    Ok(ReadSummary {
        path: path.to_string(),
        version,
        bytes: written,
        chunks,
        failovers,
        hedged,
        fetched_from,
        elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    })
}

/// A small file's content came inline with the plan.
async fn write_inline<S: ReadSink>(
    out: &mut S,
    path: &str,
    plan: &api::PlanReadResponse,
    start: u64,
    end: u64,
    started: Instant,
    progress: &Arc<dyn Progress>,
) -> Result<ReadSummary, DataError> {
    let data = plan
        .inline_data
        .get(start as usize..end as usize)
        .ok_or_else(|| DataError::Protocol(format!("{path}: inline content shorter than its size")))?;
    out.put(Bytes::copy_from_slice(data))
        .await
        .map_err(|e| DataError::io("writing the output", e))?;
    out.finish()
        .await
        .map_err(|e| DataError::io("writing the output", e))?;
    progress.advance(data.len() as u64);
    Ok(ReadSummary {
        path: path.to_string(),
        version: plan.version,
        bytes: data.len() as u64,
        chunks: 0,
        failovers: 0,
        hedged: 0,
        fetched_from: BTreeMap::new(),
        elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    })
}

async fn page(
    client: &mut Client,
    path: &str,
    version: Option<u64>,
    first_chunk: usize,
    consistency: Consistency,
) -> Result<api::PlanReadResponse, DataError> {
    Ok(client
        .plan_read(
            api::PlanReadRequest {
                path: path.to_string(),
                read: None,
                version,
                tickets: true,
                first_chunk: u32::try_from(first_chunk)
                    .map_err(|_| DataError::Invalid(format!("chunk index {first_chunk} is too large")))?,
                chunk_limit: 0,
            },
            consistency,
        )
        .await?)
}

/// The nodes a plan page gives access to, each with its ticket (nodes without one are left out).
fn sources_of(access: &[api::NodeAccess]) -> Vec<Source> {
    access
        .iter()
        .filter_map(|node| {
            let ticket = node.ticket.clone()?;
            Some((
                Arc::from(node.address.as_str()),
                Arc::from(node.endpoint.as_str()),
                Arc::new(ticket),
            ))
        })
        .collect()
}

/// What to fetch of chunk `index` for the byte range [start, end), or `None` if it lies outside.
fn fetch_of(
    index: usize,
    location: &api::ChunkLocation,
    access: &[Source],
    start: u64,
    end: u64,
) -> Result<Option<Fetch>, DataError> {
    let chunk = location
        .chunk
        .as_ref()
        .ok_or_else(|| DataError::Protocol(format!("chunk {index} has no reference")))?;
    let chunk_end = chunk.offset.saturating_add(chunk.size);
    if chunk_end <= start || chunk.offset >= end {
        return Ok(None);
    }
    let hash =
        ChunkHash::from_slice(&chunk.hash).map_err(|e| DataError::Protocol(format!("chunk {index}: {e}")))?;
    let sources = location
        .replicas
        .iter()
        .filter_map(|replica| {
            access
                .iter()
                .find(|(node, _, _)| **node == *replica.node)
                .cloned()
        })
        .collect();
    let skip = start.saturating_sub(chunk.offset);
    let take = end.min(chunk_end) - chunk.offset - skip;
    Ok(Some(Fetch {
        index,
        hash,
        size: chunk.size,
        skip,
        take,
        sources,
    }))
}

/// A fetch's place in the order its read asks for chunks. Each fetch is a task of its own, and
/// tasks start in no particular order (tokio runs the newest first): the chunks were asked for
/// out of order, the nodes sent them so, and those that came early waited in memory for the
/// ones asked first (a cold read of 1 GiB, traced, had its third chunk arrive after its
/// sixteenth, and up to 23 chunks waiting). So a fetch chooses its replica and puts its request
/// on the connection only after the fetch launched before it did; a node then reads and sends
/// chunks in the order it began to handle their gets (`crate::slots`). Alternating cold reads
/// against nodes that do: a third fewer page faults, a fifth less memory, 2 to 9% less time
/// (docs/benchmarks.md, session 17).
struct AskTurn {
    /// Fires when the fetch launched before has asked, or gave up (the sender dropped).
    mine: Option<oneshot::Receiver<()>>,
    /// Fired once this fetch has asked.
    after: oneshot::Sender<()>,
}

/// The turn the next fetch launched will take.
struct NextTurn(Option<oneshot::Receiver<()>>);

impl NextTurn {
    /// The turn of a read's first fetch, which asks at once.
    fn first() -> NextTurn {
        NextTurn(None)
    }

    /// This fetch's turn, and the one of the fetch launched after it.
    fn chain(self) -> (AskTurn, NextTurn) {
        let (after, next) = oneshot::channel();
        (AskTurn { mine: self.0, after }, NextTurn(Some(next)))
    }
}

/// Nodes that failed a fetch during this read: later chunks try them last.
type Avoided = Arc<Mutex<HashSet<String>>>;

/// How one chunk was fetched.
struct Fetched {
    /// The wanted part of the chunk, as frames.
    frames: Vec<Bytes>,
    /// The node that served it.
    node: String,
    /// Replicas that failed before it.
    failovers: usize,
    /// Whether a second replica was asked while the first was still running.
    hedged: bool,
}

/// A fetch of a chunk from one replica, under way.
struct Attempt<'a> {
    /// Which of the chunk's sources.
    at: usize,
    fetching: Fetching<'a>,
    /// Bytes received so far.
    received: Arc<AtomicU64>,
    started: Instant,
}

/// One chunk, from the nearest replica (see `nearest`), raced by the next one if it runs long;
/// replicas on nodes that already failed during this read are tried last, so a dead or stalled
/// node costs the read once, not once per chunk.
async fn fetch_chunk(
    pool: &NodePool,
    fetch: Fetch,
    avoided: &Avoided,
    turn: AskTurn,
) -> Result<Fetched, DataError> {
    if let Some(mine) = turn.mine {
        // An error means the fetch before gave up without asking: this one's turn all the same.
        let _ = mine.await;
    }
    let mut asked = Some(turn.after);
    let failed = avoided.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let nodes: Vec<String> = fetch
        .sources
        .iter()
        .map(|(node, _, _)| node.to_string())
        .collect();
    let nearest = pool.nearest();
    let mut next = nearest.order(&nodes, &failed).await.into_iter();
    // By attempt number; taken out once the attempt ended.
    let mut running: Vec<Option<Attempt<'_>>> = Vec::new();
    let mut attempts = FuturesUnordered::new();
    let mut errors = Vec::new();
    let mut hedged = false;
    loop {
        let launch = attempts.is_empty() || {
            // One race per chunk, against the attempt that is running.
            let first = running.iter().flatten().next();
            !hedged
                && next.len() > 0
                && first.is_some_and(|a| nearest.hedge_due(&nodes, a.at, &failed, fetch.size, a.started))
        };
        if launch {
            let Some(at) = next.next() else { break };
            if !attempts.is_empty() {
                hedged = true;
            }
            let (node, endpoint, ticket) = &fetch.sources[at];
            let received = Arc::new(AtomicU64::new(0));
            let attempt = running.len();
            running.push(Some(Attempt {
                at,
                fetching: nearest.fetching(node),
                received: Arc::clone(&received),
                started: Instant::now(),
            }));
            let hash = fetch.hash;
            // The first attempt passes the turn on once it was polled for the first time: its
            // request is then on its way to the node (or it failed at once).
            let mut asked = asked.take();
            attempts.push(async move {
                let mut get = std::pin::pin!(pool.get(node, endpoint, ticket, &hash, fetch.size, &received));
                let result = std::future::poll_fn(|cx| {
                    let polled = get.as_mut().poll(cx);
                    if let Some(asked) = asked.take() {
                        let _ = asked.send(());
                    }
                    polled
                })
                .await;
                (attempt, result)
            });
            continue;
        }
        let done = tokio::select! {
            done = attempts.next() => done,
            () = tokio::time::sleep(HEDGE_CHECK_EVERY), if !hedged && next.len() > 0 => continue,
        };
        let Some((attempt, result)) = done else { break };
        let Some(Attempt { at, fetching, .. }) = running[attempt].take() else {
            continue;
        };
        let node = &fetch.sources[at].0;
        match result {
            Ok(frames) => {
                fetching.answered(fetch.size);
                for loser in running.iter_mut().filter_map(Option::take) {
                    let received = loser.received.load(Ordering::Relaxed);
                    loser.fetching.raced_out(received, fetch.size);
                }
                return Ok(Fetched {
                    frames: window(frames, fetch.skip, fetch.take),
                    node: node.to_string(),
                    failovers: errors.len(),
                    hedged,
                });
            }
            Err(error) => {
                drop(fetching);
                tracing::warn!(chunk = fetch.index, %node, %error, "replica failed; trying the next");
                avoided
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(node.to_string());
                errors.push(error);
            }
        }
    }
    if fetch.sources.is_empty() {
        errors.push("no replica of it is recorded on a node of the member".into());
    }
    Err(DataError::Unreadable {
        index: fetch.index,
        hash: fetch.hash.to_hex(),
        errors,
    })
}

/// The bytes [skip, skip + take) of a chunk held as consecutive frames, without copying.
fn window(frames: Vec<Bytes>, skip: u64, take: u64) -> Vec<Bytes> {
    let (mut skip, mut take) = (skip as usize, take as usize);
    let mut out = Vec::new();
    for frame in frames {
        if take == 0 {
            break;
        }
        if skip >= frame.len() {
            skip -= frame.len();
            continue;
        }
        let end = frame.len().min(skip + take);
        out.push(frame.slice(skip..end));
        take -= end - skip;
        skip = 0;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fetch_held_up_does_not_stop_the_others_and_results_leave_in_order() {
        let mut window = Window::new(2);
        let (first, second) = (window.launch(), window.launch());
        assert!(!window.has_room(), "two fetches run at most");
        // The second arrives while the first is held up: two more may start behind it.
        window.arrived(second, "second");
        assert_eq!(window.next_in_order(), None, "nothing leaves before the first");
        assert!(window.has_room());
        let third = window.launch();
        window.arrived(third, "third");
        let fourth = window.launch();
        assert!(!window.has_room(), "two running at most");
        window.arrived(fourth, "fourth");
        assert!(
            !window.has_room(),
            "three waiting and one running fill twice the window"
        );
        window.arrived(first, "first");
        let out: Vec<_> = std::iter::from_fn(|| window.next_in_order()).collect();
        assert_eq!(out, ["first", "second", "third", "fourth"]);
        assert!(window.has_room());
    }

    #[test]
    fn a_window_spans_frames_without_copying() {
        let frames = vec![
            Bytes::from_static(b"abcd"),
            Bytes::from_static(b"efgh"),
            Bytes::from_static(b"ij"),
        ];
        let joined = |parts: Vec<Bytes>| parts.iter().flat_map(|b| b.to_vec()).collect::<Vec<u8>>();
        assert_eq!(joined(window(frames.clone(), 0, 10)), b"abcdefghij");
        assert_eq!(joined(window(frames.clone(), 3, 4)), b"defg");
        assert_eq!(joined(window(frames.clone(), 8, 2)), b"ij");
        assert_eq!(joined(window(frames.clone(), 4, 4)), b"efgh");
        assert!(window(frames, 10, 0).is_empty());
    }
}
