//! The `Chunks` gRPC service: checks the ticket against the mTLS caller, then runs the store
//! on blocking threads. Streams that end early or send too much leave nothing behind.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use collective_proto::chunk::chunks_server::Chunks;
use collective_proto::chunk::put_request::Part;
use collective_proto::chunk::{
    DeleteRequest, DeleteResponse, GetRequest, GetResponse, HasRequest, HasResponse, PutHeader, PutRequest,
    PutResponse, ReplicateRequest, ReplicateResponse,
};
use collective_proto::chunk_limits::{
    CHUNK_BYTES_MAX, CHUNK_FRAME_BYTES_MAX, CHUNK_MESSAGE_BYTES_MAX, HASHES_PER_REQUEST_MAX,
};
use collective_proto::chunk_wire::{
    GET_RESPONSE_CHUNK_LENGTH, GET_RESPONSE_DATA, PUT_REQUEST_DATA, PUT_REQUEST_HEADER,
};
use tokio::sync::Semaphore;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

use super::chunk_store::{ChunkStore, Deletion, PendingChunk, PutStart, STAGE_BYTES_MAX, StoreError};
use super::corruption::{CorruptionQueue, FoundBy};
use super::errors::{store_status, ticket_status};
use super::replicate::{NodeIdentity, REPLICATIONS_CONCURRENT_MAX};
use crate::chunk_hash::ChunkHash;
use crate::ticket::{Ticket, TicketOp, TicketVerifier};
use crate::tls::bulk::BulkConnectInfo;
use crate::wire::{self, Rope};

/// Bytes of verified chunks held in memory by reads in progress, all together. A read holds its
/// whole chunk (at most `CHUNK_BYTES_MAX`) until its last frame is sent; further reads wait.
pub const READ_BUFFER_BYTES_MAX: u64 = 512 * 1024 * 1024;
/// Bytes of staging buffers held by puts in progress, all together: each holds one of up to
/// `STAGE_BYTES_MAX` (4 MiB) until it is committed or refused; further puts wait.
pub const PUT_STAGING_BYTES_MAX: u64 = 256 * 1024 * 1024;
/// Granularity of the read and staging budgets: one permit per MiB.
const BUDGET_UNIT_BYTES: u64 = 1024 * 1024;

/// The chunk service of one node.
#[derive(Debug, Clone)]
pub struct ChunkService {
    pub(super) store: Arc<ChunkStore>,
    tickets: Arc<TicketVerifier>,
    read_budget: Arc<Semaphore>,
    staging_budget: Arc<Semaphore>,
    /// Who this node is when it calls other nodes (replication).
    pub(super) identity: Arc<NodeIdentity>,
    /// Corrupt copies found while serving, for the member.
    reports: Arc<CorruptionQueue>,
    /// Replications running at once; more wait.
    pub(super) replications: Arc<Semaphore>,
}

impl ChunkService {
    /// The service over `store`, verifying tickets with `tickets`, calling other nodes as
    /// `identity`, and queueing corrupt copies it finds on `reports`.
    pub fn new(
        store: Arc<ChunkStore>,
        tickets: TicketVerifier,
        identity: NodeIdentity,
        reports: Arc<CorruptionQueue>,
    ) -> ChunkService {
        ChunkService {
            store,
            tickets: Arc::new(tickets),
            read_budget: Arc::new(Semaphore::new(
                (READ_BUFFER_BYTES_MAX / BUDGET_UNIT_BYTES) as usize,
            )),
            staging_budget: Arc::new(Semaphore::new(
                (PUT_STAGING_BYTES_MAX / BUDGET_UNIT_BYTES) as usize,
            )),
            identity: Arc::new(identity),
            reports,
            replications: Arc::new(Semaphore::new(REPLICATIONS_CONCURRENT_MAX)),
        }
    }

    /// Checks `ticket` for `op` on `hashes` by the verified TLS caller of `request`.
    pub(super) fn authorize<T>(
        &self,
        request: &Request<T>,
        ticket: Option<&Ticket>,
        op: TicketOp,
        hashes: &[ChunkHash],
    ) -> Result<(), Status> {
        let caller = crate::transport::caller(request)?;
        let ticket = ticket.ok_or_else(|| Status::unauthenticated("request carries no ticket"))?;
        match self
            .tickets
            .verify(ticket, op, &caller.address, hashes, super::unix_ms_now())
        {
            Ok(verified) => {
                tracing::debug!(caller = %caller.address, op = op.as_str_name(), signer = %verified.signer, "ticket accepted");
                Ok(())
            }
            Err(error) => {
                tracing::warn!(caller = %caller.address, op = op.as_str_name(), %error, "ticket refused");
                Err(ticket_status(&error))
            }
        }
    }

    pub(super) async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&ChunkStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, Status> {
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || work(&store))
            .await
            .map_err(|e| Status::internal(format!("chunk store task failed: {e}")))?
            .map_err(|e| store_status(&e))
    }
}

impl ChunkService {
    /// A `Put`, routed here by [`super::routes`]: the header message, then data messages, each
    /// written to the temporary file as the slices of HTTP/2 frames it arrived in.
    pub(super) async fn serve_put(
        &self,
        request: http::Request<tonic::body::Body>,
    ) -> Result<PutResponse, Status> {
        let (parts, body) = request.into_parts();
        let request = Request::from_http(http::Request::from_parts(parts, ()));
        let caller = crate::transport::caller(&request)?;
        let mut messages = wire::Messages::request(body, CHUNK_MESSAGE_BYTES_MAX);
        let first = messages
            .next()
            .await?
            .map(|message| wire::decode::<PutRequest>(message, "PutRequest"))
            .transpose()?;
        let Some(PutRequest {
            part: Some(Part::Header(header)),
        }) = first
        else {
            return Err(Status::invalid_argument("a put must start with its header"));
        };
        let PutHeader {
            ticket,
            hash,
            length_bytes,
        } = header;
        let hash = parse_hash(&hash)?;
        self.authorize(&request, ticket.as_ref(), TicketOp::Put, &[hash])?;
        if length_bytes > CHUNK_BYTES_MAX {
            return Err(store_status(&StoreError::TooLarge {
                length: length_bytes,
                max: CHUNK_BYTES_MAX,
            }));
        }
        let staged = length_bytes.min(STAGE_BYTES_MAX as u64);
        let _staging = Arc::clone(&self.staging_budget)
            .acquire_many_owned(staged.div_ceil(BUDGET_UNIT_BYTES).max(1) as u32)
            .await
            .map_err(|_| Status::unavailable("node is shutting down"))?;
        let start = self
            .blocking(move |store| store.begin_put(hash, length_bytes))
            .await?;
        let pending = match start {
            PutStart::AlreadyPresent => {
                return Ok(PutResponse {
                    already_present: true,
                });
            }
            PutStart::Receiving(pending) => pending,
        };
        let mut pending = PendingGuard(Some(pending));
        if let Err(status) = receive(&mut messages, &mut pending).await {
            // Remove the temporary file before answering, so a refused put has left nothing
            // by the time the caller hears of it.
            pending.discard().await;
            return Err(status);
        }
        let chunk = pending.take()?;
        self.blocking(move |_| chunk.commit()).await?;
        tracing::debug!(chunk = %hash, length_bytes, caller = %caller.address, "chunk stored");
        Ok(PutResponse {
            already_present: false,
        })
    }

    /// A `Get`, routed here by [`super::routes`]: the verified range of the chunk, each message
    /// sent as its head and then a slice of the buffer the chunk was read into. Gets ranked
    /// lower (asked earlier) are read and sent first.
    pub(super) async fn serve_get(
        &self,
        request: http::Request<tonic::body::Body>,
        rank: u64,
    ) -> Result<http::Response<tonic::body::Body>, Status> {
        let (parts, body) = request.into_parts();
        let turns = parts
            .extensions
            .get::<BulkConnectInfo>()
            .map(|info| info.send_turns.clone());
        let message = wire::Messages::request(body, CHUNK_MESSAGE_BYTES_MAX)
            .next()
            .await?
            .ok_or_else(|| Status::invalid_argument("a get must carry its request"))?;
        let request = Request::from_http(http::Request::from_parts(
            parts,
            wire::decode::<GetRequest>(message, "GetRequest")?,
        ));
        let hash = parse_hash(&request.get_ref().hash)?;
        self.authorize(
            &request,
            request.get_ref().ticket.as_ref(),
            TicketOp::Get,
            &[hash],
        )?;
        let GetRequest {
            offset_bytes,
            length_bytes,
            ..
        } = request.into_inner();
        // A damaged copy found by either call was set aside: the member still records a
        // replica here.
        let reported = |status: Status| {
            if status.code() == tonic::Code::DataLoss {
                self.reports.push(hash, FoundBy::Read);
            }
            status
        };
        let (chunk_length, dir) = self
            .blocking(move |store| store.length_in(&hash))
            .await
            .map_err(reported)?;
        let units = chunk_length.div_ceil(BUDGET_UNIT_BYTES).max(1) as u32;
        let permit = Arc::clone(&self.read_budget)
            .acquire_many_owned(units)
            .await
            .map_err(|_| Status::unavailable("node is shutting down"))?;
        let content = {
            // In the directory's turn (see `READS_PER_CORE`); its slots are never closed.
            let _slot = Arc::clone(&dir.read_slots).acquire(rank).await;
            self.blocking(move |store| store.read(&hash))
                .await
                .map_err(reported)?
        };
        let chunk_length = content.len() as u64;
        let length = length_bytes.unwrap_or(chunk_length.saturating_sub(offset_bytes));
        let end = offset_bytes
            .checked_add(length)
            .filter(|end| *end <= chunk_length);
        let Some(end) = end else {
            return Err(store_status(&StoreError::OutOfRange {
                offset: offset_bytes,
                length,
                chunk_length,
            }));
        };
        let mut range = content.slice(offset_bytes as usize..end as usize);
        let mut frames = Vec::new();
        let mut chunk_length_field = Vec::new();
        prost::encoding::uint64::encode(GET_RESPONSE_CHUNK_LENGTH, &chunk_length, &mut chunk_length_field);
        loop {
            // The whole chunk's length goes on the first message only.
            let head = std::mem::take(&mut chunk_length_field);
            let data = range.split_to(range.len().min(CHUNK_FRAME_BYTES_MAX));
            frames.push(wire::bytes_message_head(&head, GET_RESPONSE_DATA, data.len()));
            frames.push(data);
            if range.is_empty() {
                break;
            }
        }
        // The permit is held until the body is dropped: sent, or the caller gone.
        let mut body = wire::FramesBody::new(frames, Some(wire::ok_trailers()), permit);
        if let Some(turns) = &turns {
            body = body.in_turn(turns, rank);
        }
        Ok(wire::response(body))
    }
}

type GetStream = Pin<Box<dyn Stream<Item = Result<GetResponse, Status>> + Send>>;

/// `Put` and `Get` never reach tonic's generated server: [`super::routes::ChunkRoutes`] serves
/// them (without tonic's codec and its copies). Should a server be built without those routes,
/// they answer `UNIMPLEMENTED` rather than half-work.
#[tonic::async_trait]
impl Chunks for ChunkService {
    async fn put(&self, _request: Request<Streaming<PutRequest>>) -> Result<Response<PutResponse>, Status> {
        Err(not_routed("Put"))
    }

    type GetStream = GetStream;

    async fn get(&self, _request: Request<GetRequest>) -> Result<Response<GetStream>, Status> {
        Err(not_routed("Get"))
    }

    async fn has(&self, request: Request<HasRequest>) -> Result<Response<HasResponse>, Status> {
        let hashes = parse_hashes(&request.get_ref().hashes)?;
        self.authorize(
            &request,
            request.get_ref().ticket.as_ref(),
            TicketOp::Has,
            &hashes,
        )?;
        let present = self
            .blocking(move |store| Ok(hashes.iter().map(|h| store.contains(h)).collect()))
            .await?;
        Ok(Response::new(HasResponse { present }))
    }

    async fn delete(&self, request: Request<DeleteRequest>) -> Result<Response<DeleteResponse>, Status> {
        let hashes = parse_hashes(&request.get_ref().hashes)?;
        self.authorize(
            &request,
            request.get_ref().ticket.as_ref(),
            TicketOp::Delete,
            &hashes,
        )?;
        // A guarded delete (min_idle_ms > 0) is how garbage collection deletes: it spares a
        // copy a writer re-put (deduplicated against) after GC found it unreferenced.
        let min_idle = Duration::from_millis(request.get_ref().min_idle_ms);
        let outcomes: Vec<Deletion> = self
            .blocking(move |store| {
                let now = SystemTime::now();
                hashes
                    .iter()
                    .map(|h| store.delete_if_idle(h, min_idle, now))
                    .collect()
            })
            .await?;
        Ok(Response::new(DeleteResponse {
            removed: outcomes.iter().map(|o| *o == Deletion::Removed).collect(),
            kept_recent: outcomes.iter().map(|o| *o == Deletion::KeptRecent).collect(),
        }))
    }

    async fn replicate(
        &self,
        request: Request<ReplicateRequest>,
    ) -> Result<Response<ReplicateResponse>, Status> {
        self.replicate_chunk(request).await.map(Response::new)
    }
}

/// Writes the data messages of a put into `pending`, refusing oversized frames, anything but
/// data after the header, and bytes past the announced length.
async fn receive(messages: &mut wire::Messages, pending: &mut PendingGuard) -> Result<(), Status> {
    let not_data = || Status::invalid_argument("only data frames may follow the put header");
    while let Some(message) = messages.next().await? {
        let data = wire::take_bytes_field(
            message,
            PUT_REQUEST_DATA,
            "PutRequest",
            |field, wire_type, rest| {
                if field == PUT_REQUEST_HEADER {
                    return Err(not_data());
                }
                wire::skip(field, wire_type, rest, "PutRequest")
            },
        )?
        .ok_or_else(not_data)?;
        pending.write_frame(data).await?;
    }
    Ok(())
}

fn not_routed(call: &str) -> Status {
    Status::unimplemented(format!(
        "{call} is served by the node's own route, not by this server"
    ))
}

/// Holds a put in progress; dropping it (an error, a cancelled stream) discards the temporary
/// file on a blocking thread rather than on the runtime.
pub(super) struct PendingGuard(pub(super) Option<Box<PendingChunk>>);

impl PendingGuard {
    pub(super) fn take(&mut self) -> Result<Box<PendingChunk>, Status> {
        self.0
            .take()
            .ok_or_else(|| Status::internal("put state lost after a failed write"))
    }

    /// Appends one data frame (at most `CHUNK_FRAME_BYTES_MAX`, as the slices it arrived in): here
    /// when it only goes to the stage, on a blocking thread when it writes to the file.
    pub(super) async fn write_frame(&mut self, data: Rope) -> Result<(), Status> {
        if data.len() > CHUNK_FRAME_BYTES_MAX {
            return Err(Status::invalid_argument(format!(
                "data frame of {} bytes exceeds {CHUNK_FRAME_BYTES_MAX}",
                data.len()
            )));
        }
        let mut chunk = self.take()?;
        if chunk.stages(data.len()) {
            // A copy and a hash of at most 1 MiB: cheaper here than a hop to a blocking thread.
            let written = data.into_parts().try_for_each(|part| chunk.write(&part));
            self.0 = Some(chunk);
            return written.map_err(|e| store_status(&e));
        }
        let (chunk, written) = tokio::task::spawn_blocking(move || {
            let written = data.into_parts().try_for_each(|part| chunk.write(&part));
            (chunk, written)
        })
        .await
        .map_err(|e| Status::internal(format!("chunk store task failed: {e}")))?;
        self.0 = Some(chunk);
        written.map_err(|e| store_status(&e))
    }

    /// Drops the put in progress on a blocking thread and waits until its file is gone.
    pub(super) async fn discard(&mut self) {
        if let Some(pending) = self.0.take() {
            let _ = tokio::task::spawn_blocking(move || drop(pending)).await;
        }
    }
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        if let Some(pending) = self.0.take() {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    runtime.spawn_blocking(move || drop(pending));
                }
                Err(_) => drop(pending),
            }
        }
    }
}

pub(super) fn parse_hash(bytes: &[u8]) -> Result<ChunkHash, Status> {
    ChunkHash::from_slice(bytes).map_err(|e| Status::invalid_argument(e.to_string()))
}

fn parse_hashes(list: &[impl AsRef<[u8]>]) -> Result<Vec<ChunkHash>, Status> {
    if list.len() > HASHES_PER_REQUEST_MAX {
        return Err(Status::invalid_argument(format!(
            "{} hashes in one request, at most {HASHES_PER_REQUEST_MAX} allowed",
            list.len()
        )));
    }
    list.iter().map(|h| parse_hash(h.as_ref())).collect()
}
