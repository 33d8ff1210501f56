//! The client library over a member's metadata API: finds the leader, retries safely, and turns
//! gRPC statuses into errors that say what went wrong.
//!
//! Writes carry a request id chosen once per logical operation; every retry (after a leader
//! change, a timeout or a lost connection) reuses it, and the state machine applies a request id
//! at most once. So a retried write is never applied twice, and an acknowledged write is durable
//! on a quorum.

mod hints;
mod retry;

pub use retry::RetryPolicy;

use hints::Hints;

use crate::profile::Profile;
use anyhow::Context;
use collective_events::pb;
use collective_proto::api::{self, meta_client::MetaClient};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// Metadata key a follower uses to name the leader's endpoint.
pub const LEADER_ENDPOINT_KEY: &str = "leader-endpoint";
/// Metadata key with which a client that cannot reach the leader asks a follower to pass its
/// request on to the leader (see `coordinator::forward`).
pub const FORWARD_KEY: &str = "forward-to-leader";
/// Metadata key carrying the rejection code of a refused command.
pub const REJECTION_CODE_KEY: &str = "rejection-code";

/// How a read is served: linearizable by the leader, or by any coordinator within a staleness
/// bound.
#[derive(Debug, Clone, Copy, Default)]
pub enum Consistency {
    #[default]
    Linearizable,
    Stale {
        max_staleness_ms: u32,
    },
}

impl Consistency {
    pub fn from_stale_ms(stale_ms: Option<u32>) -> Self {
        match stale_ms {
            None => Consistency::Linearizable,
            Some(max_staleness_ms) => Consistency::Stale { max_staleness_ms },
        }
    }

    fn options(self) -> api::ReadOptions {
        match self {
            Consistency::Linearizable => api::ReadOptions::default(),
            Consistency::Stale { max_staleness_ms } => api::ReadOptions {
                allow_stale: true,
                max_staleness_ms,
            },
        }
    }
}

/// How long a coordinator whose dial got no answer is avoided: redirects to it are not followed,
/// and requests only a leader may serve go through a follower, which passes them on.
const UNREACHABLE_FOR: Duration = Duration::from_secs(30);

/// Longest a dial to one of the member's coordinators (TCP connect and TLS handshake) may take.
/// They sit on the member's network, or one VPN hop away: 5 s covers two lost SYNs. One that
/// takes longer is avoided for [`UNREACHABLE_FOR`], and requests go through the others.
const DIAL_MAX: Duration = Duration::from_secs(5);

/// The metadata client every call uses.
type Meta = MetaClient<InterceptedService<Channel, AskToForward>>;

/// A connection to one member's coordinators.
pub struct Client {
    profile: Profile,
    endpoints: Vec<String>,
    /// Index into `endpoints` of the coordinator believed to lead.
    preferred: usize,
    channels: HashMap<String, Channel>,
    /// Coordinators whose last dial got no answer in time (a partition, a host gone), and when.
    /// A refused connection does not count: the host answered, and trying again costs nothing
    /// (a restarting coordinator refuses until it listens again).
    unreachable: HashMap<String, Since>,
    /// The coordinator that last answered as the leader, or that another named as leader.
    leader: Option<String>,
    /// What the profile directory's hints say (as loaded, or as this client last saved them).
    hints: Hints,
    retry: RetryPolicy,
    /// Whether the profile's own certificate was checked against its federation root.
    identity_checked: bool,
}

/// When a coordinator was found unreachable: by this process's clock, and by the wall clock for
/// the hints left to the next process.
#[derive(Debug, Clone, Copy)]
struct Since {
    at: Instant,
    unix_ms: i64,
}

impl Since {
    fn now() -> Since {
        Since {
            at: Instant::now(),
            unix_ms: crate::coordinator::now_unix_ms(),
        }
    }
}

impl Client {
    /// A client of the profile's member. A profile kept in a directory starts from the hints an
    /// earlier process left there (see `hints.rs`): it asks the last known leader first, and
    /// does not dial a coordinator found unreachable less than [`UNREACHABLE_FOR`] ago.
    pub fn new(profile: Profile) -> Client {
        let endpoints = profile.config.coordinators.clone();
        let hints = if profile.dir.as_os_str().is_empty() {
            Hints::default()
        } else {
            Hints::load(&profile.dir)
        };
        let now = Instant::now();
        let now_unix_ms = crate::coordinator::now_unix_ms();
        let unreachable = hints
            .unreachable_within(now_unix_ms, UNREACHABLE_FOR)
            .into_iter()
            .map(|(endpoint, ago)| {
                let since = Since {
                    at: now.checked_sub(ago).unwrap_or(now),
                    unix_ms: now_unix_ms - ago.as_millis() as i64,
                };
                (endpoint, since)
            })
            .collect();
        let mut client = Client {
            profile,
            endpoints,
            preferred: 0,
            channels: HashMap::new(),
            unreachable,
            leader: hints.leader.clone(),
            hints,
            retry: RetryPolicy::default(),
            identity_checked: false,
        };
        if let Some(leader) = client.leader.clone() {
            client.prefer(&leader);
        }
        if client.is_unreachable(&client.endpoints[client.preferred]) {
            client.preferred = client.next_endpoint(client.preferred);
        }
        client
    }

    /// A client acting as another component of the member (a storage node) with its own
    /// certificate, rather than as the holder of a profile directory.
    pub fn with_identity(
        config: crate::profile::ProfileConfig,
        identity: crate::pki::CertBundle,
        root_ca_pem: String,
    ) -> Client {
        Client::new(Profile {
            dir: std::path::PathBuf::new(),
            config,
            identity,
            root_ca_pem,
        })
    }

    pub fn from_home(home: &std::path::Path) -> anyhow::Result<Client> {
        Ok(Client::new(Profile::load(home)?))
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Client {
        self.retry = retry;
        self
    }

    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// Proposes `command` with a fresh request id, retrying with the same id until it is
    /// acknowledged, definitively refused, or the retry deadline passes.
    pub async fn submit(
        &mut self,
        command: pb::command_envelope::Command,
    ) -> Result<api::SubmitResponse, ClientError> {
        self.submit_with_id(new_request_id(), command).await
    }

    pub async fn submit_with_id(
        &mut self,
        request_id: Vec<u8>,
        command: pb::command_envelope::Command,
    ) -> Result<api::SubmitResponse, ClientError> {
        let envelope = pb::CommandEnvelope {
            schema_version: collective_events::SCHEMA_VERSION,
            request_id,
            command: Some(command),
            ..Default::default()
        };
        self.call(true, move |mut meta| {
            let request = api::SubmitRequest {
                command: Some(envelope.clone()),
            };
            async move { meta.submit(request).await }
        })
        .await
    }

    pub async fn stat(&mut self, path: &str, read: Consistency) -> Result<api::StatResponse, ClientError> {
        let path = path.to_string();
        self.call(read_needs_leader(read), move |mut meta| {
            let request = api::StatRequest {
                path: path.clone(),
                read: Some(read.options()),
            };
            async move { meta.stat(request).await }
        })
        .await
    }

    pub async fn list(
        &mut self,
        path: &str,
        after: &str,
        limit: u32,
        read: Consistency,
    ) -> Result<api::ListResponse, ClientError> {
        let (path, after) = (path.to_string(), after.to_string());
        self.call(read_needs_leader(read), move |mut meta| {
            let request = api::ListRequest {
                path: path.clone(),
                after: after.clone(),
                limit,
                read: Some(read.options()),
            };
            async move { meta.list(request).await }
        })
        .await
    }

    pub async fn status(&mut self, read: Consistency) -> Result<api::StatusResponse, ClientError> {
        self.call(read_needs_leader(read), move |mut meta| async move {
            meta.status(api::StatusRequest {
                read: Some(read.options()),
            })
            .await
        })
        .await
    }

    pub async fn add_coordinator(
        &mut self,
        request: api::AddCoordinatorRequest,
    ) -> Result<api::MembershipResponse, ClientError> {
        self.call(true, move |mut meta| {
            let request = request.clone();
            async move { meta.add_coordinator(request).await }
        })
        .await
    }

    /// A storage node's heartbeat, sent to the leader.
    pub async fn heartbeat(
        &mut self,
        request: api::HeartbeatRequest,
    ) -> Result<api::HeartbeatResponse, ClientError> {
        self.call(true, move |mut meta| {
            let request = request.clone();
            async move { meta.heartbeat(request).await }
        })
        .await
    }

    pub async fn remove_coordinator(&mut self, raft_id: u64) -> Result<api::MembershipResponse, ClientError> {
        self.call(true, move |mut meta| async move {
            meta.remove_coordinator(api::RemoveCoordinatorRequest { raft_id })
                .await
        })
        .await
    }

    /// Streams the event log from `from_index`, calling `sink` for each batch in log order.
    pub async fn export_events(
        &mut self,
        from_index: u64,
        mut sink: impl FnMut(Vec<pb::EventEnvelope>) -> anyhow::Result<()>,
    ) -> anyhow::Result<u64> {
        // Find a live leader first, through the retrying path (dead endpoints are skipped and
        // redirects followed), then stream from it.
        self.status(Consistency::Linearizable).await?;
        let mut meta = self.meta(self.preferred, false).await?;
        let request = api::ExportEventsRequest {
            from_index,
            read: Some(Consistency::Linearizable.options()),
        };
        let mut stream = match meta.export_events(request).await {
            Ok(response) => response.into_inner(),
            Err(status) => match leader_hint(&status) {
                Some(leader) => {
                    self.prefer(&leader);
                    let mut meta = self.meta(self.preferred, false).await?;
                    meta.export_events(request)
                        .await
                        .map_err(ClientError::from)?
                        .into_inner()
                }
                None => return Err(ClientError::from(status).into()),
            },
        };
        let mut count = 0u64;
        while let Some(batch) = stream.message().await.map_err(ClientError::from)? {
            count += batch.events.len() as u64;
            sink(batch.events)?;
        }
        Ok(count)
    }

    /// Where to upload a batch of chunks (answered by the leader).
    pub async fn plan_write(
        &mut self,
        request: api::PlanWriteRequest,
    ) -> Result<api::PlanWriteResponse, ClientError> {
        self.call(true, move |mut meta| {
            let request = request.clone();
            async move { meta.plan_write(request).await }
        })
        .await
    }

    /// A page of a file version's chunk map, with replicas and (if asked) GET tickets.
    pub async fn plan_read(
        &mut self,
        mut request: api::PlanReadRequest,
        read: Consistency,
    ) -> Result<api::PlanReadResponse, ClientError> {
        request.read = Some(read.options());
        self.call(read_needs_leader(read), move |mut meta| {
            let request = request.clone();
            async move { meta.plan_read(request).await }
        })
        .await
    }

    /// For a storage node: which of `hashes` the log records on it (linearizable).
    pub async fn recorded_chunks(
        &mut self,
        request: api::RecordedChunksRequest,
    ) -> Result<api::RecordedChunksResponse, ClientError> {
        self.call(true, move |mut meta| {
            let request = request.clone();
            async move { meta.recorded_chunks(request).await }
        })
        .await
    }

    /// Runs one RPC with leader discovery and retries. `needs_leader` says whether a follower's
    /// redirect should be followed (writes and linearizable reads). A redirect to a coordinator
    /// this client could not dial is not followed: the request goes to the next coordinator,
    /// asking it to pass the request on to the leader.
    async fn call<T, F, Fut>(&mut self, needs_leader: bool, rpc: F) -> Result<T, ClientError>
    where
        F: FnMut(Meta) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let answer = self.call_with_retries(needs_leader, rpc).await;
        self.remember();
        answer
    }

    async fn call_with_retries<T, F, Fut>(&mut self, needs_leader: bool, mut rpc: F) -> Result<T, ClientError>
    where
        F: FnMut(Meta) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let deadline = tokio::time::Instant::now() + self.retry.deadline;
        let mut attempt = 0u32;
        let mut last_error: Option<ClientError> = None;
        loop {
            if tokio::time::Instant::now() >= deadline {
                return Err(ClientError::Unavailable {
                    detail: last_error
                        .map(|e| e.to_string())
                        .unwrap_or_else(|| "no coordinator answered".into()),
                    waited: self.retry.deadline,
                });
            }
            let index = self.preferred;
            let forward = needs_leader && self.any_unreachable();
            // Each attempt, dial included, ends at the deadline.
            let outcome = match tokio::time::timeout_at(deadline, self.meta(index, forward)).await {
                Ok(Ok(meta)) => match tokio::time::timeout_at(deadline, rpc(meta)).await {
                    Ok(answer) => answer.map(tonic::Response::into_inner).map_err(Some),
                    // Its connection is dropped below, like after any retryable failure.
                    Err(_) => Err(Some(tonic::Status::deadline_exceeded(format!(
                        "the coordinator at {} did not answer in time",
                        self.endpoints[index]
                    )))),
                },
                Ok(Err(error @ ClientError::Identity { .. })) => return Err(error),
                // A dial that timed out marked the coordinator unreachable.
                Ok(Err(error)) => {
                    last_error = Some(error);
                    Err(None)
                }
                Err(_) => {
                    let endpoint = self.endpoints[index].clone();
                    self.unreachable.insert(endpoint.clone(), Since::now());
                    last_error = Some(ClientError::Connect {
                        endpoint,
                        detail: "the dial was still going at the deadline".into(),
                    });
                    Err(None)
                }
            };
            match outcome {
                Ok(value) => {
                    if needs_leader && !forward {
                        self.leader = Some(self.endpoints[index].clone());
                    }
                    return Ok(value);
                }
                Err(Some(status)) => {
                    let redirect = leader_hint(&status).filter(|_| needs_leader);
                    if let Some(leader) = &redirect {
                        self.leader = Some(leader.clone());
                    }
                    if let Some(leader) = &redirect
                        && !self.is_unreachable(leader)
                    {
                        self.prefer(leader);
                        last_error = Some(ClientError::from(status));
                        // A redirect is progress, not a failure: retry at once.
                        continue;
                    }
                    if !is_retryable(&status) {
                        return Err(ClientError::from(status));
                    }
                    // The coordinator we talked to may be dead or partitioned: forget its
                    // connection and try the next one. One that redirected to a leader this
                    // client cannot reach answered fine: keep its connection.
                    if redirect.is_none() {
                        self.channels.remove(&self.endpoints[index]);
                    }
                    last_error = Some(ClientError::from(status));
                }
                Err(None) => {}
            }
            self.preferred = self.next_endpoint(index);
            attempt += 1;
            tokio::time::sleep(self.retry.backoff(attempt)).await;
        }
    }

    fn is_unreachable(&self, endpoint: &str) -> bool {
        self.unreachable
            .get(endpoint)
            .is_some_and(|since| since.at.elapsed() < UNREACHABLE_FOR)
    }

    /// Leaves what this client learned for the next process, if it changed (see `hints.rs`).
    fn remember(&mut self) {
        if self.profile.dir.as_os_str().is_empty() {
            return;
        }
        let hints = Hints {
            leader: self.leader.clone(),
            unreachable: self
                .unreachable
                .iter()
                .filter(|(_, since)| since.at.elapsed() < UNREACHABLE_FOR)
                .map(|(endpoint, since)| (endpoint.clone(), since.unix_ms))
                .collect(),
        };
        if hints != self.hints {
            hints.save(&self.profile.dir);
            self.hints = hints;
        }
    }

    fn any_unreachable(&self) -> bool {
        self.endpoints
            .iter()
            .any(|endpoint| self.is_unreachable(endpoint))
    }

    /// The coordinator to try after the one at `index`: the next one this client could dial
    /// lately, or simply the next one if it could dial none.
    fn next_endpoint(&self, index: usize) -> usize {
        let count = self.endpoints.len();
        (1..=count)
            .map(|step| (index + step) % count)
            .find(|next| !self.is_unreachable(&self.endpoints[*next]))
            .unwrap_or((index + 1) % count)
    }

    fn prefer(&mut self, endpoint: &str) {
        match self.endpoints.iter().position(|e| e == endpoint) {
            Some(index) => self.preferred = index,
            None => {
                self.endpoints.push(endpoint.to_string());
                self.preferred = self.endpoints.len() - 1;
            }
        }
    }

    /// A metadata client for the coordinator at `index`, asking it to pass requests on to the
    /// leader if `forward`.
    async fn meta(&mut self, index: usize, forward: bool) -> Result<Meta, ClientError> {
        let endpoint = self.endpoints[index].clone();
        let channel = match self.channels.get(&endpoint) {
            Some(channel) => channel.clone(),
            None => {
                if !self.identity_checked {
                    crate::transport::verify_own_identity(&self.profile.identity, &self.profile.root_ca_pem)
                        .map_err(|error| ClientError::Identity {
                            detail: format!("{error:#}"),
                        })?;
                    self.identity_checked = true;
                    self.renew_if_due().await;
                }
                let dial = crate::transport::connect_coordinator(
                    &endpoint,
                    &self.profile.identity,
                    &self.profile.root_ca_pem,
                    &self.profile.config.member_domain,
                );
                let connect_error = |detail: String| ClientError::Connect {
                    endpoint: endpoint.clone(),
                    detail,
                };
                let channel = match tokio::time::timeout(DIAL_MAX, dial).await {
                    Ok(dialed) => dialed.map_err(|error| connect_error(format!("{error:#}")))?,
                    Err(_) => {
                        self.unreachable.insert(endpoint.clone(), Since::now());
                        return Err(connect_error(format!("no connection within {DIAL_MAX:?}")));
                    }
                };
                self.channels.insert(endpoint.clone(), channel.clone());
                channel
            }
        };
        self.unreachable.remove(&endpoint);
        Ok(MetaClient::with_interceptor(channel, AskToForward(forward))
            .max_decoding_message_size(collective_proto::MESSAGE_BYTES_MAX)
            .max_encoding_message_size(collective_proto::MESSAGE_BYTES_MAX))
    }
}

impl Client {
    /// A profile's client certificate renews itself once two thirds of its lifetime are gone:
    /// the first connection of a client made from a profile directory asks the member to sign a
    /// new key, and saves the result in the profile. A failed renewal is logged and the current
    /// certificate, still valid, stays in use.
    async fn renew_if_due(&mut self) {
        if self.profile.dir.as_os_str().is_empty() {
            return;
        }
        let Ok(identity) = self.profile.identity.identity() else {
            return;
        };
        if identity.component != crate::pki::Component::Client
            || std::time::SystemTime::now() < identity.renew_at()
        {
            return;
        }
        match self.renew().await {
            Ok(serial) => tracing::info!(address = %identity.address, %serial, "profile certificate renewed"),
            Err(error) => tracing::warn!(
                error = %format!("{error:#}"),
                "the profile's certificate is due for renewal and renewing failed; it stays in use until it expires"
            ),
        }
    }

    async fn renew(&mut self) -> anyhow::Result<String> {
        let request = crate::pki::LeafRequest::new()?;
        let issued = crate::coordinator::rotation::request_renewal(
            &self.endpoints,
            &self.profile.identity,
            &self.profile.root_ca_pem,
            &self.profile.config.member_domain,
            request.csr_der(),
        )
        .await?;
        let renewed = request.into_bundle(issued)?;
        self.profile.save_identity(&renewed)?;
        let serial = renewed.identity()?.serial_hex();
        self.profile.identity = renewed;
        self.channels.clear();
        Ok(serial)
    }
}

/// Sets [`FORWARD_KEY`] on every request of a client that asks a follower to pass requests on.
#[derive(Clone, Copy)]
struct AskToForward(bool);

impl tonic::service::Interceptor for AskToForward {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if self.0 {
            request
                .metadata_mut()
                .insert(FORWARD_KEY, tonic::metadata::MetadataValue::from_static("1"));
        }
        Ok(request)
    }
}

fn read_needs_leader(read: Consistency) -> bool {
    matches!(read, Consistency::Linearizable)
}

/// 16 random bytes naming one logical operation.
pub fn new_request_id() -> Vec<u8> {
    rand::random::<[u8; 16]>().to_vec()
}

fn leader_hint(status: &tonic::Status) -> Option<String> {
    if status.code() != tonic::Code::Unavailable {
        return None;
    }
    let value = status.metadata().get(LEADER_ENDPOINT_KEY)?.to_str().ok()?;
    (!value.is_empty()).then(|| value.to_string())
}

/// Whether an RPC may be retried with the same request id: the coordinator could not decide
/// (no leader, lost connection, timeout). Refusals are final.
fn is_retryable(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::Unavailable
            | tonic::Code::DeadlineExceeded
            | tonic::Code::Unknown
            | tonic::Code::Aborted
    )
}

/// What a caller sees when an operation fails.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The member refused the operation; retrying will not help.
    #[error("{}: {message}", crate::error::describe_code(*code))]
    Refused {
        code: tonic::Code,
        rejection: Option<String>,
        message: String,
    },
    /// The profile's certificate would be refused by every coordinator.
    #[error("{detail}")]
    Identity { detail: String },
    #[error("cannot reach the coordinator at {endpoint}: {detail}")]
    Connect { endpoint: String, detail: String },
    /// No coordinator gave a definite answer before the deadline: the operation may or may not
    /// have been applied; retrying with the same request id is safe.
    #[error("no coordinator answered in {waited:?} (last error: {detail})")]
    Unavailable { detail: String, waited: Duration },
}

impl ClientError {
    /// Whether the operation was definitively not applied.
    pub fn is_refusal(&self) -> bool {
        matches!(self, ClientError::Refused { .. })
    }

    pub fn rejection(&self) -> Option<&str> {
        match self {
            ClientError::Refused { rejection, .. } => rejection.as_deref(),
            _ => None,
        }
    }
}

impl From<tonic::Status> for ClientError {
    fn from(status: tonic::Status) -> Self {
        let rejection = status
            .metadata()
            .get(REJECTION_CODE_KEY)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        // Transport failures (a refused certificate, a reset connection) carry their cause in
        // the source chain, not in the message: show it, or the user sees "operation was
        // canceled" for a certificate the coordinator refused.
        let mut message = status.message().to_string();
        let mut source = std::error::Error::source(&status);
        while let Some(cause) = source {
            let text = cause.to_string();
            if !message.contains(&text) {
                message = format!("{message}: {text}");
            }
            source = cause.source();
        }
        ClientError::Refused {
            code: status.code(),
            rejection,
            message,
        }
    }
}

/// Loads the profile in `home` and connects.
pub fn connect(home: &std::path::Path) -> anyhow::Result<Client> {
    Client::from_home(home).context("loading the client profile")
}
