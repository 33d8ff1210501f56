//! Passing a request on to the leader, for a client that cannot reach the leader itself.
//!
//! A follower normally answers a request only the leader may serve with a redirect, which the
//! client follows. A client that then fails to reach the leader (a partition between the two, a
//! firewall) asks a follower again with [`FORWARD_KEY`] set. The follower passes the request on
//! over its own connection to the leader, naming the client by the certificate the client
//! presented ([`ON_BEHALF_OF_KEY`]), and hands back whatever the leader answered. The leader
//! authorizes the client, not the follower ([`crate::transport::acting_caller`]), and tickets
//! name the client. A write keeps its request id, so a retry through another path is still
//! applied at most once.

use super::state::Coordinator;
use crate::client::{FORWARD_KEY, LEADER_ENDPOINT_KEY, REJECTION_CODE_KEY};
use crate::transport::ON_BEHALF_OF_KEY;
use collective_events::pb::ComponentType;
use collective_proto::api::meta_client::MetaClient;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

/// Longest a passed-on request waits for the leader's answer. A commit is given up after 3 s
/// (`PROPOSAL_WAIT_MAX`), a plan takes milliseconds; the caller then retries elsewhere, within
/// its own deadline (5 s for a node's heartbeat).
const FORWARD_WAIT_MAX: Duration = Duration::from_secs(4);

/// A follower's connection to its current leader, for passing requests on.
pub struct Forwarder {
    coordinator: Arc<Coordinator>,
    /// The leader's endpoint and a channel to it, replaced when the leader changes.
    leader: Mutex<Option<(String, Channel)>>,
}

impl Forwarder {
    pub fn new(coordinator: Arc<Coordinator>) -> Forwarder {
        Forwarder {
            coordinator,
            leader: Mutex::new(None),
        }
    }

    /// Passes `request` on to the leader when its caller asked for that, this coordinator does
    /// not lead, and it heard from the leader within the longest election timeout; `None` to
    /// serve the request here (which redirects or refuses it if it needs a leader). A leader
    /// not heard from lately may be cut off or replaced: a request passed on to it would wait
    /// for nothing. A coordinator's own requests, and requests already passed on, are never
    /// passed on.
    pub async fn pass_on<Req, Resp, F, Fut>(
        &self,
        request: &Request<Req>,
        rpc: F,
    ) -> Option<Result<Response<Resp>, Status>>
    where
        Req: Clone,
        F: FnOnce(MetaClient<Channel>, Request<Req>) -> Fut,
        Fut: Future<Output = Result<Response<Resp>, Status>>,
    {
        if request.metadata().get(FORWARD_KEY).is_none() || self.coordinator.is_leader() {
            return None;
        }
        let heard_lately = self
            .coordinator
            .since_leader_contact_ms()
            .is_some_and(|ms| ms <= collective_raft::config::ELECTION_TIMEOUT_MAX_MS);
        if !heard_lately {
            return None;
        }
        let caller = crate::transport::caller(request).ok()?;
        if caller.component == ComponentType::Coordinator {
            return None;
        }
        let leaf = crate::tls::peer_certificates(request)?.first()?.to_vec();
        let (_, leader) = self.coordinator.leader()?;
        let channel = match self.channel(&leader).await {
            Ok(channel) => channel,
            Err(error) => {
                return Some(Err(Status::unavailable(format!(
                    "could not pass the request on to the leader at {}: {error:#}",
                    leader.endpoint
                ))));
            }
        };
        let mut passed = Request::new(request.get_ref().clone());
        passed
            .metadata_mut()
            .insert_bin(ON_BEHALF_OF_KEY, MetadataValue::from_bytes(&leaf));
        let meta = MetaClient::new(channel)
            .max_decoding_message_size(collective_proto::MESSAGE_BYTES_MAX)
            .max_encoding_message_size(collective_proto::MESSAGE_BYTES_MAX);
        tracing::debug!(caller = %caller.address, leader = %leader.endpoint, "passing a request on to the leader");
        Some(
            match tokio::time::timeout(FORWARD_WAIT_MAX, rpc(meta, passed)).await {
                Ok(Ok(response)) => Ok(Response::new(response.into_inner())),
                Ok(Err(status)) => Err(answer_of(status)),
                Err(_) => Err(Status::unavailable(format!(
                    "the leader at {} did not answer a request passed on to it within {FORWARD_WAIT_MAX:?}",
                    leader.endpoint
                ))),
            },
        )
    }

    async fn channel(&self, leader: &collective_raft::CoordinatorNode) -> anyhow::Result<Channel> {
        if let Some((endpoint, channel)) = self.leader.lock().unwrap_or_else(|e| e.into_inner()).as_ref()
            && *endpoint == leader.endpoint
        {
            return Ok(channel.clone());
        }
        let channel = self.coordinator.peers.connect_peer(leader).await?;
        *self.leader.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((leader.endpoint.clone(), channel.clone()));
        Ok(channel)
    }
}

/// The leader's error, as this coordinator's answer: its code and message, and the metadata a
/// client acts on (a redirect, a rejection code); nothing of the leader's transport.
fn answer_of(status: Status) -> Status {
    let mut answer = Status::new(status.code(), status.message().to_string());
    for key in [LEADER_ENDPOINT_KEY, REJECTION_CODE_KEY] {
        if let Some(value) = status.metadata().get(key) {
            answer.metadata_mut().insert(key, value.clone());
        }
    }
    answer
}
