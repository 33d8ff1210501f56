//! The metadata API (`collective.api.v1.Meta`): commands go through Raft, reads are served from
//! the projections after `reads::prepare_read` made them fit for the requested consistency.

use super::errors::{not_leader, rejection_status, storage};
use super::forward::Forwarder;
use super::reads::prepare_read;
use super::state::Coordinator;
use super::{data_plan, grants, liveness, membership, revocation, rotation, status};
use crate::transport::{Caller, acting_caller, acting_member_caller};
use collective_events::decide::{RIGHT_READ, RIGHT_WRITE};
use collective_events::pb::{self, ComponentType, command_envelope::Command as PbCommand};
use collective_projections::{EntryRecord, StoreError, Table};
use collective_proto::api::{self, meta_server::Meta};
use collective_raft::Command;
use openraft::error::{ClientWriteError, RaftError};
use std::pin::Pin;
use std::sync::Arc;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

/// Entries returned by one `List` call when the caller asks for no particular number.
const LIST_ENTRIES_DEFAULT: u32 = 1000;
/// Entries returned by one `List` call at most.
const LIST_ENTRIES_MAX: u32 = 10_000;
/// Events sent per message of an `ExportEvents` stream.
const EXPORT_EVENTS_PER_MESSAGE: usize = 1000;
/// Messages buffered ahead of a slow `ExportEvents` reader.
const EXPORT_MESSAGES_IN_FLIGHT_MAX: usize = 4;

/// Returns the leader's answer to `$request` when its caller asked this follower to pass it on
/// (see `forward`); otherwise the handler goes on.
macro_rules! pass_on {
    ($service:expr, $request:expr, $rpc:ident) => {
        if let Some(answer) = $service
            .forward
            .pass_on(
                &$request,
                |mut meta, passed| async move { meta.$rpc(passed).await },
            )
            .await
        {
            return answer;
        }
    };
}

pub struct MetaService {
    coordinator: Arc<Coordinator>,
    forward: Forwarder,
}

impl MetaService {
    pub fn new(coordinator: Arc<Coordinator>) -> MetaService {
        MetaService {
            forward: Forwarder::new(Arc::clone(&coordinator)),
            coordinator,
        }
    }

    /// Members of this member may use the metadata API; grants for others arrive with the
    /// federation layer. A request a follower passed on acts for the client that sent it.
    fn authorize<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        acting_member_caller(request, &self.coordinator.config.member_domain)
    }

    /// Changing the coordinator group takes a client certificate of this member (an admin's):
    /// a node's or coordinator's key, if stolen, must not be able to reshape the Raft group.
    fn authorize_admin<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        let caller = self.authorize(request)?;
        if caller.component != pb::ComponentType::Client {
            return Err(Status::permission_denied(format!(
                "{} is not a client certificate; only an admin's client certificate may change the coordinators",
                caller.address
            )));
        }
        grants::require_admin(&caller, "change the coordinators")?;
        Ok(caller)
    }

    fn resolve(&self, path: &str) -> Result<EntryRecord, Status> {
        validate_path(path)?;
        self.coordinator
            .store
            .resolve(path)
            .map_err(storage)?
            .ok_or_else(|| Status::not_found(format!("{path} does not exist")))
    }
}

type ExportStream = Pin<Box<dyn Stream<Item = Result<api::ExportEventsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Meta for MetaService {
    async fn submit(
        &self,
        request: Request<api::SubmitRequest>,
    ) -> Result<Response<api::SubmitResponse>, Status> {
        pass_on!(self, request, submit);
        let caller = self.authorize(&request)?;
        if let Some(command) = request.get_ref().command.as_ref() {
            revocation::authorize_certificate_command(&request, &caller, command.command.as_ref())?;
        }
        let mut envelope = request
            .into_inner()
            .command
            .ok_or_else(|| Status::invalid_argument("the request carries no command"))?;
        if envelope.request_id.len() != 16 {
            return Err(Status::invalid_argument("request_id must be 16 bytes"));
        }
        check_node_command(&caller, envelope.command.as_ref())?;
        // Recording one's own certificate was authorized above (it must be exactly the certificate
        // presented on this connection); every other command is held to the caller's grants.
        if !matches!(envelope.command, Some(PbCommand::IssueCertificate(_))) {
            grants::authorize_command(&self.coordinator, &caller, envelope.command.as_ref())?;
        }
        // The actor comes from the certificate and the time from the proposer, never from the
        // client's own claims.
        envelope.actor = caller.address;
        envelope.proposed_at_unix_ms = now_unix_ms();
        let (log_index, events) = propose(&self.coordinator, envelope).await?;
        Ok(Response::new(api::SubmitResponse { log_index, events }))
    }

    async fn stat(&self, request: Request<api::StatRequest>) -> Result<Response<api::StatResponse>, Status> {
        pass_on!(self, request, stat);
        let caller = self.authorize(&request)?;
        let request = request.into_inner();
        grants::authorize_path(&self.coordinator, &caller, &request.path, RIGHT_READ)?;
        let read_index = prepare_read(&self.coordinator, request.read.as_ref()).await?;
        let entry = self.resolve(&request.path)?;
        Ok(Response::new(api::StatResponse {
            entry: Some(self.entry_info(&entry, &request.path)?),
            read_index,
        }))
    }

    async fn list(&self, request: Request<api::ListRequest>) -> Result<Response<api::ListResponse>, Status> {
        pass_on!(self, request, list);
        let caller = self.authorize(&request)?;
        let request = request.into_inner();
        grants::authorize_path(&self.coordinator, &caller, &request.path, RIGHT_READ)?;
        let read_index = prepare_read(&self.coordinator, request.read.as_ref()).await?;
        let directory = self.resolve(&request.path)?;
        if directory.kind != pb::EntryKind::Directory as i32 {
            return Err(Status::failed_precondition(format!(
                "{} is a file, not a directory",
                request.path
            )));
        }
        let limit = match request.limit {
            0 => LIST_ENTRIES_DEFAULT,
            n => n.min(LIST_ENTRIES_MAX),
        } as usize;
        let after = (!request.after.is_empty()).then_some(request.after.as_str());
        let mut children = self
            .coordinator
            .store
            .list_dir(directory.inode, after, limit + 1)
            .map_err(storage)?;
        let truncated = children.len() > limit;
        children.truncate(limit);
        let base = request.path.trim_end_matches('/');
        let entries = children
            .iter()
            .map(|child| self.entry_info(child, &format!("{base}/{}", child.name)))
            .collect::<Result<_, _>>()?;
        Ok(Response::new(api::ListResponse {
            directory: Some(self.entry_info(&directory, &request.path)?),
            entries,
            truncated,
            read_index,
        }))
    }

    async fn status(
        &self,
        request: Request<api::StatusRequest>,
    ) -> Result<Response<api::StatusResponse>, Status> {
        pass_on!(self, request, status);
        let caller = acting_caller(&request)?;
        let request = request.into_inner();
        let stale_ok = request.read.as_ref().is_some_and(|r| r.allow_stale);
        // Status must work without a leader (that is when it matters most), so only an explicit
        // redirect to a known leader is sent back.
        if !stale_ok
            && !self.coordinator.is_leader()
            && let Some((_, leader)) = self.coordinator.leader()
        {
            return Err(not_leader(Some(&leader.endpoint)));
        }
        Ok(Response::new(status::build(&self.coordinator, &caller)?))
    }

    type ExportEventsStream = ExportStream;

    async fn export_events(
        &self,
        request: Request<api::ExportEventsRequest>,
    ) -> Result<Response<Self::ExportEventsStream>, Status> {
        let caller = self.authorize(&request)?;
        grants::refuse_users(&caller, "export the event log")?;
        let request = request.into_inner();
        prepare_read(&self.coordinator, request.read.as_ref()).await?;
        let store = self.coordinator.store.clone();
        let (sender, receiver) = tokio::sync::mpsc::channel(EXPORT_MESSAGES_IN_FLIGHT_MAX);
        tokio::task::spawn_blocking(move || {
            // A cursor on the events table's key (log index, sequence): pages may end inside an
            // entry's events without losing or repeating any.
            let mut after = request
                .from_index
                .checked_sub(1)
                .map(|before| collective_projections::keys::event_key(before, u32::MAX));
            loop {
                let page = store.scan(Table::Events, &[], after.as_deref(), EXPORT_EVENTS_PER_MESSAGE);
                let page = match page.and_then(|rows| decode_events(&rows).map(|events| (rows, events))) {
                    Ok(page) => page,
                    Err(error) => {
                        let _ = sender.blocking_send(Err(storage(error)));
                        return;
                    }
                };
                let (rows, events) = page;
                let Some((last_key, _)) = rows.last() else { return };
                let full_page = rows.len() == EXPORT_EVENTS_PER_MESSAGE;
                after = Some(last_key.clone());
                if sender
                    .blocking_send(Ok(api::ExportEventsResponse { events }))
                    .is_err()
                    || !full_page
                {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(receiver),
        )))
    }

    async fn add_coordinator(
        &self,
        request: Request<api::AddCoordinatorRequest>,
    ) -> Result<Response<api::MembershipResponse>, Status> {
        let caller = self.authorize_admin(&request)?;
        Ok(Response::new(
            membership::add(&self.coordinator, &caller, request.into_inner()).await?,
        ))
    }

    async fn heartbeat(
        &self,
        request: Request<api::HeartbeatRequest>,
    ) -> Result<Response<api::HeartbeatResponse>, Status> {
        pass_on!(self, request, heartbeat);
        let caller = self.authorize(&request)?;
        let request = request.into_inner();
        check_node_self(&caller, &request.address)?;
        // Only the leader keeps the liveness table that its watchdog reads, and a leader that
        // lost its quorum sends the node on: the others may have elected a new leader, which
        // must hear the node or declare it down.
        if !self.coordinator.leads_with_quorum() {
            return Err(not_leader(self.coordinator.leader_elsewhere().as_deref()));
        }
        self.coordinator.liveness.seen(
            &request.address,
            request.load_milli,
            request.chunk_count,
            request.started_at_unix_ms,
            request.sent_at_unix_ms,
            request.failed_data_dirs,
        );
        let node = self
            .coordinator
            .store
            .nodes()
            .map_err(storage)?
            .into_iter()
            .find(|n| n.joined.as_ref().is_some_and(|j| j.address == request.address));
        let Some(node) = node else {
            return Ok(Response::new(api::HeartbeatResponse {
                joined: false,
                log_index: 0,
            }));
        };
        let log_index = if liveness::report_needed(&node, request.free_bytes) {
            liveness::propose_status(
                &self.coordinator,
                &request.address,
                pb::NodeStatus::Up,
                request.free_bytes,
            )
            .await?
        } else {
            0
        };
        Ok(Response::new(api::HeartbeatResponse {
            joined: true,
            log_index,
        }))
    }

    async fn plan_write(
        &self,
        request: Request<api::PlanWriteRequest>,
    ) -> Result<Response<api::PlanWriteResponse>, Status> {
        pass_on!(self, request, plan_write);
        let caller = self.authorize(&request)?;
        let coordinator = Arc::clone(&self.coordinator);
        let request = request.into_inner();
        grants::authorize_path(&coordinator, &caller, &request.path, RIGHT_WRITE)?;
        // Placement reads the projections and signs tickets: keep it off the async workers.
        let plan =
            tokio::task::spawn_blocking(move || data_plan::plan_write(&coordinator, &caller, &request))
                .await
                .map_err(|error| Status::internal(format!("planning failed: {error}")))??;
        Ok(Response::new(plan))
    }

    async fn recorded_chunks(
        &self,
        request: Request<api::RecordedChunksRequest>,
    ) -> Result<Response<api::RecordedChunksResponse>, Status> {
        pass_on!(self, request, recorded_chunks);
        let caller = self.authorize(&request)?;
        let request = request.into_inner();
        check_node_self(&caller, &request.node)?;
        if request.hashes.len() > collective_proto::chunk_limits::HASHES_PER_REQUEST_MAX {
            return Err(Status::invalid_argument(format!(
                "at most {} hashes per request, {} were sent",
                collective_proto::chunk_limits::HASHES_PER_REQUEST_MAX,
                request.hashes.len()
            )));
        }
        // Linearizable: a replica recorded by a commit the node has not heard of must count.
        prepare_read(&self.coordinator, None).await?;
        let store = self.coordinator.store.clone();
        let recorded = tokio::task::spawn_blocking(move || {
            let node = request.node.to_ascii_lowercase();
            request
                .hashes
                .iter()
                .map(|hash| store.replicas(hash).map(|r| r.iter().any(|r| r.node == node)))
                .collect::<Result<Vec<bool>, _>>()
        })
        .await
        .map_err(|error| Status::internal(format!("reading replicas failed: {error}")))?
        .map_err(storage)?;
        Ok(Response::new(api::RecordedChunksResponse { recorded }))
    }

    async fn plan_read(
        &self,
        request: Request<api::PlanReadRequest>,
    ) -> Result<Response<api::PlanReadResponse>, Status> {
        pass_on!(self, request, plan_read);
        let caller = self.authorize(&request)?;
        let request = request.into_inner();
        grants::authorize_path(&self.coordinator, &caller, &request.path, RIGHT_READ)?;
        let read_index = prepare_read(&self.coordinator, request.read.as_ref()).await?;
        let entry = self.resolve(&request.path)?;
        let info = self.entry_info(&entry, &request.path)?;
        let coordinator = Arc::clone(&self.coordinator);
        let mut plan = tokio::task::spawn_blocking(move || {
            data_plan::plan_read(&coordinator, &caller, &request, &entry, read_index)
        })
        .await
        .map_err(|error| Status::internal(format!("planning failed: {error}")))??;
        plan.entry = Some(info);
        Ok(Response::new(plan))
    }

    async fn remove_coordinator(
        &self,
        request: Request<api::RemoveCoordinatorRequest>,
    ) -> Result<Response<api::MembershipResponse>, Status> {
        let caller = self.authorize_admin(&request)?;
        Ok(Response::new(
            membership::remove(&self.coordinator, &caller, request.into_inner().raft_id).await?,
        ))
    }

    async fn renew_certificate(
        &self,
        request: Request<api::RenewCertificateRequest>,
    ) -> Result<Response<api::RenewCertificateResponse>, Status> {
        Ok(Response::new(
            rotation::renew_for_caller(&self.coordinator, request).await?,
        ))
    }

    async fn revocations(
        &self,
        request: Request<api::RevocationsRequest>,
    ) -> Result<Response<api::RevocationsResponse>, Status> {
        self.authorize(&request)?;
        Ok(Response::new(revocation::revocations(&self.coordinator)?))
    }
}

/// A node certificate may only register itself and report its own status; anything else it
/// submits is refused. Other callers of the member are not restricted here.
fn check_node_command(caller: &Caller, command: Option<&PbCommand>) -> Result<(), Status> {
    if caller.component != ComponentType::Node {
        return Ok(());
    }
    match command {
        Some(PbCommand::JoinNode(join)) => check_node_self(caller, &join.address),
        Some(PbCommand::ReportNodeStatus(report)) => check_node_self(caller, &report.address),
        // A node that found one of its copies corrupt gives it up, so repair replaces it.
        Some(PbCommand::RemoveReplica(remove)) => check_node_self(caller, &remove.node),
        _ => Err(Status::permission_denied(format!(
            "{} is a storage node; it may only join, report its own status and give up its own replicas",
            caller.address
        ))),
    }
}

/// Refuses a node report about any node but the caller itself.
fn check_node_self(caller: &Caller, address: &str) -> Result<(), Status> {
    if caller.component != ComponentType::Node {
        return Err(Status::permission_denied(format!(
            "{} holds a {:?} certificate; only a node reports its own heartbeat",
            caller.address, caller.component
        )));
    }
    if !caller.address.eq_ignore_ascii_case(address) {
        return Err(Status::permission_denied(format!(
            "{} may not report for node {address}",
            caller.address
        )));
    }
    Ok(())
}

/// Proposes a command the coordinator makes on its own behalf (repair, garbage collection,
/// reconciliation): its own address as the actor, a fresh request id, its clock.
pub async fn propose_own(
    coordinator: &Coordinator,
    command: PbCommand,
) -> Result<(u64, Vec<pb::EventEnvelope>), Status> {
    let envelope = pb::CommandEnvelope {
        schema_version: collective_events::SCHEMA_VERSION,
        actor: coordinator.config.address.clone(),
        request_id: crate::client::new_request_id(),
        proposed_at_unix_ms: now_unix_ms(),
        command: Some(command),
    };
    propose(coordinator, envelope).await
}

/// Longest a proposal is waited for before the caller is told to retry elsewhere.
const PROPOSAL_WAIT_MAX: std::time::Duration = std::time::Duration::from_secs(3);

/// Proposes one command and waits for its outcome.
pub async fn propose(
    coordinator: &Coordinator,
    envelope: pb::CommandEnvelope,
) -> Result<(u64, Vec<pb::EventEnvelope>), Status> {
    // A leader cut off from its quorum would hold the proposal until the partition heals; the
    // caller is better sent to look for the leader the others elected.
    if coordinator.is_stale_leader() {
        return Err(not_leader(None));
    }
    // One proposed just before the quorum went missing would wait as long; the caller retries
    // with the same request id, which the state machine applies at most once.
    let written = tokio::time::timeout(
        PROPOSAL_WAIT_MAX,
        coordinator.raft.client_write(Command(envelope)),
    )
    .await
    .map_err(|_| {
        Status::unavailable(format!(
            "the command was not committed within {PROPOSAL_WAIT_MAX:?} (this coordinator may \
                 have lost its quorum); retrying with the same request id is safe"
        ))
    })?;
    match written {
        Ok(written) => {
            let outcome = written
                .data
                .outcome
                .ok_or_else(|| Status::internal("a command entry produced no outcome"))?;
            // For a retried request id this is the original entry's index, not the retry's.
            let log_index = outcome.log_index;
            match outcome.result {
                Ok(events) => Ok((log_index, events)),
                Err(rejected) => Err(rejection_status(&rejected)),
            }
        }
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => Err(not_leader(
            forward.leader_node.as_ref().map(|n| n.endpoint.as_str()),
        )),
        Err(error) => Err(Status::unavailable(format!(
            "the command was not committed: {error}"
        ))),
    }
}

fn decode_events(rows: &[(Vec<u8>, Vec<u8>)]) -> Result<Vec<pb::EventEnvelope>, StoreError> {
    rows.iter()
        .map(|(key, value)| {
            <pb::EventEnvelope as prost::Message>::decode(value.as_slice()).map_err(|error| {
                StoreError::Corrupt {
                    table: Table::Events.name(),
                    key: key.clone(),
                    reason: error.to_string(),
                }
            })
        })
        .collect()
}

impl MetaService {
    /// An entry as clients see it, with the replica health of a file's current version.
    fn entry_info(&self, entry: &EntryRecord, path: &str) -> Result<api::EntryInfo, Status> {
        let (replicas_min, replicas_wanted) = data_plan::replica_health(&self.coordinator.store, entry)?;
        Ok(api::EntryInfo {
            replicas_min,
            replicas_wanted,
            ..entry_info(entry, path)
        })
    }
}

fn entry_info(entry: &EntryRecord, path: &str) -> api::EntryInfo {
    api::EntryInfo {
        inode: entry.inode,
        name: entry.name.clone(),
        path: if path.is_empty() {
            "/".into()
        } else {
            path.to_string()
        },
        kind: entry.kind,
        size: entry.size,
        version: entry.version,
        modified_at_unix_ms: entry.modified_at_unix_ms,
        chunk_count: u32::try_from(entry.chunks.len()).unwrap_or(u32::MAX),
        replicas_min: 0,
        replicas_wanted: 0,
    }
}

/// Reads use the same path rules as commands, so a malformed path gets the same clear error.
fn validate_path(path: &str) -> Result<(), Status> {
    collective_events::path::validate(path)
        .map_err(|error| Status::invalid_argument(format!("{path:?}: {error}")))
}

pub fn now_unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
