//! What members tell each other about certificates: revoked leaves and removed members.
//!
//! A member's log records its own revocations; the other members' listeners must refuse those
//! certificates too. Every coordinator therefore calls, about once a second
//! ([`EXCHANGE_INTERVAL`]), one coordinator of each other member it knows with `Federation.Exchange`,
//! carrying its member's revoked serials and coordinator endpoints, and takes the callee's in the
//! answer. A member's list is accepted only first-hand, from a certificate of a coordinator of
//! that member (the caller's, or the server's that the dial verified), so no member can revoke
//! another's certificates. Endpoints of further members travel as hints, so members that never
//! met (both invited by a third) find each other within a round or two.
//!
//! Member removals are signed with the federation root key ([`crate::pki::sign_removal`]) and so
//! travel through anyone: to other members and to the other coordinators of this member in the
//! same exchange, to storage nodes through `Revocations`. A coordinator keeps them in
//! `pki/member-removals.pb` so they outlive restarts. Learned lists live in memory only: the
//! member that owns a list serves it again within a second of a restart.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context;
use collective_events::decide::{ENDPOINT_BYTES_MAX, SERIAL_BYTES_MAX};
use collective_proto::api::{
    self, FederationExchange, MemberRemoval, MemberRevocations, federation_client::FederationClient,
};
use prost::Message;
use rustls::pki_types::CertificateDer;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use super::config::PeerMember;
use super::errors::storage;
use super::revocation::revoked_serials;
use super::state::Coordinator;
use crate::pki::{is_within_domain, sync_dir, verify_removal, write_atomic};
use crate::tls::TrustStore;
use crate::transport::caller;

/// How often a coordinator exchanges lists with each member it knows.
pub const EXCHANGE_INTERVAL: Duration = Duration::from_secs(1);
/// How long one exchange with one coordinator may take before the next endpoint is tried.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long the exchange with one member may take in a round, over all its endpoints: a round
/// waits for its slowest member, so an unreachable member must not delay the others' lists.
/// The next round starts from the endpoint after the one that failed.
const MEMBER_EXCHANGE_TIMEOUT: Duration = Duration::from_secs(2);
/// Most members one coordinator keeps track of; hints beyond are ignored.
pub const MEMBERS_MAX: usize = 256;
/// Most coordinator endpoints kept per member (each at most the log's `ENDPOINT_BYTES_MAX`).
pub const ENDPOINTS_PER_MEMBER_MAX: usize = 16;
/// Most revoked serials accepted in one member's list (20 bytes each at most: 4 MiB).
pub const SERIALS_PER_MEMBER_MAX: usize = 200_000;
/// Most removals one message may carry.
pub const REMOVALS_MAX: usize = 1_024;
/// Where removals are kept, in the coordinator's `pki/` directory.
const REMOVALS_FILE: &str = "member-removals.pb";
/// Removals are signed public statements: readable by all, written by the coordinator only.
const REMOVALS_FILE_MODE: u32 = 0o644;

/// The federation as one coordinator knows it.
pub struct Federation {
    own_member: String,
    federation_domain: String,
    root: CertificateDer<'static>,
    trust: TrustStore,
    removals_path: PathBuf,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    members: BTreeMap<String, Peer>,
    removals: BTreeMap<String, MemberRemoval>,
}

#[derive(Default)]
struct Peer {
    coordinators: Vec<String>,
    /// Whether one of its coordinators has told us its revoked serials (kept in the trust
    /// store, which enforces them).
    heard: bool,
    /// Index into `coordinators` to try first (the last one that answered).
    preferred: usize,
    /// When one of its coordinators last exchanged with this one, in either direction.
    last_exchange_unix_ms: Option<i64>,
}

impl Federation {
    /// The federation seen from a coordinator of `own_member`: the peers from its configuration
    /// and the removals it kept, which take effect in `trust` at once.
    pub fn open(
        own_member: &str,
        trust: &TrustStore,
        pki_dir: &Path,
        seeds: &[PeerMember],
    ) -> anyhow::Result<Federation> {
        let federation = Federation {
            own_member: own_member.to_ascii_lowercase(),
            federation_domain: trust.federation_domain().to_string(),
            root: trust.root_der().clone(),
            trust: trust.clone(),
            removals_path: pki_dir.join(REMOVALS_FILE),
            state: Mutex::new(State::default()),
        };
        for seed in seeds {
            federation.learn_endpoints(&seed.member_domain, &seed.coordinators);
        }
        let kept = match std::fs::read(&federation.removals_path) {
            Ok(bytes) => {
                FederationExchange::decode(bytes.as_slice())
                    .with_context(|| format!("{} is corrupt", federation.removals_path.display()))?
                    .removals
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(error) => {
                return Err(error).with_context(|| format!("reading {}", federation.removals_path.display()));
            }
        };
        for removal in kept {
            verify_removal(&federation.root, &removal).with_context(|| {
                format!(
                    "{} holds a removal that does not verify",
                    federation.removals_path.display()
                )
            })?;
            federation.enforce_removal(&removal);
            federation
                .lock()
                .removals
                .insert(removal.member_domain.clone(), removal);
        }
        Ok(federation)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether `member` names another member of this federation.
    fn is_other_member(&self, member: &str) -> bool {
        member != self.own_member
            && is_within_domain(member, &self.federation_domain)
            && member != self.federation_domain
            && member.len() <= ENDPOINT_BYTES_MAX
    }

    /// Records where `member`'s coordinators listen (a hint: a dial still verifies who answers).
    fn learn_endpoints(&self, member: &str, endpoints: &[String]) {
        let member = member.to_ascii_lowercase();
        if !self.is_other_member(&member) {
            return;
        }
        let mut state = self.lock();
        if !state.members.contains_key(&member) && state.members.len() >= MEMBERS_MAX {
            return;
        }
        let peer = state.members.entry(member).or_default();
        for endpoint in endpoints {
            if peer.coordinators.len() >= ENDPOINTS_PER_MEMBER_MAX {
                break;
            }
            if !endpoint.is_empty()
                && endpoint.len() <= ENDPOINT_BYTES_MAX
                && !peer.coordinators.contains(endpoint)
            {
                peer.coordinators.push(endpoint.clone());
            }
        }
    }

    /// Takes `list` as `member`'s own, first-hand word on its revoked certificates.
    fn accept_list(&self, member: &str, list: &MemberRevocations) -> Result<(), Status> {
        if !list.member_domain.eq_ignore_ascii_case(member) {
            return Err(Status::permission_denied(format!(
                "a coordinator of {member} may only speak for {member}, not for {}",
                list.member_domain
            )));
        }
        if list.serials.len() > SERIALS_PER_MEMBER_MAX {
            return Err(Status::invalid_argument(format!(
                "{} revoked serials for {member}, more than the limit of {SERIALS_PER_MEMBER_MAX}",
                list.serials.len()
            )));
        }
        if list
            .serials
            .iter()
            .any(|s| s.is_empty() || s.len() > SERIAL_BYTES_MAX)
        {
            return Err(Status::invalid_argument(format!(
                "a revoked serial of {member} is empty or longer than {} bytes",
                SERIAL_BYTES_MAX
            )));
        }
        let member = member.to_ascii_lowercase();
        if !self.is_other_member(&member) {
            return Ok(());
        }
        self.learn_endpoints(&member, &list.coordinators);
        let serials: BTreeSet<Vec<u8>> = list.serials.iter().cloned().collect();
        let revoked = serials.len();
        if self.trust.set_revoked(&member, serials) {
            tracing::info!(member = %member, revoked, "another member's revocation list updated");
        }
        if let Some(peer) = self.lock().members.get_mut(&member) {
            peer.heard = true;
            peer.last_exchange_unix_ms = Some(crate::coordinator::now_unix_ms());
        }
        Ok(())
    }

    /// Verifies and enforces a removal; returns whether it was new here. A member's own
    /// coordinators keep and pass on its removal but do not refuse themselves.
    pub fn accept_removal(&self, removal: &MemberRemoval) -> Result<bool, Status> {
        verify_removal(&self.root, removal).map_err(|error| Status::invalid_argument(error.to_string()))?;
        // One critical section from the check to the file: two removals arriving together
        // can neither both count as new nor overwrite each other's file with an older set.
        // Removals are rare; the wait for the fsync is short.
        let mut state = self.lock();
        if state.removals.contains_key(&removal.member_domain) {
            return Ok(false);
        }
        self.enforce_removal(removal);
        state
            .removals
            .insert(removal.member_domain.clone(), removal.clone());
        let encoded = FederationExchange {
            removals: state.removals.values().cloned().collect(),
            ..Default::default()
        }
        .encode_to_vec();
        write_atomic(&self.removals_path, &encoded, REMOVALS_FILE_MODE)
            .and_then(|()| sync_dir(self.removals_path.parent().unwrap_or(Path::new("."))))
            .map_err(|error| Status::internal(format!("keeping the removal: {error}")))?;
        drop(state);
        tracing::warn!(
            member = %removal.member_domain,
            reason = %removal.reason,
            "member removed from the federation; its certificates are refused"
        );
        Ok(true)
    }

    fn enforce_removal(&self, removal: &MemberRemoval) {
        if removal.member_domain != self.own_member {
            self.trust.remove_member(&removal.member_domain);
        }
    }

    /// Takes in an exchange message from a coordinator of `sender`.
    fn absorb(&self, sender: &str, message: &FederationExchange) -> Result<(), Status> {
        if message.removals.len() > REMOVALS_MAX || message.known.len() > MEMBERS_MAX {
            return Err(Status::invalid_argument(format!(
                "an exchange carries at most {REMOVALS_MAX} removals and {MEMBERS_MAX} members"
            )));
        }
        for removal in &message.removals {
            self.accept_removal(removal)?;
        }
        if let Some(own) = &message.own
            && !sender.eq_ignore_ascii_case(&self.own_member)
        {
            self.accept_list(sender, own)?;
        }
        for hint in &message.known {
            self.learn_endpoints(&hint.member_domain, &hint.coordinators);
        }
        Ok(())
    }

    /// The message this coordinator sends (and answers with): `own` plus what it knows.
    fn outgoing(&self, own: MemberRevocations) -> FederationExchange {
        let state = self.lock();
        FederationExchange {
            own: Some(own),
            known: state
                .members
                .iter()
                .map(|(member, peer)| MemberRevocations {
                    member_domain: member.clone(),
                    serials: Vec::new(),
                    coordinators: peer.coordinators.clone(),
                })
                .collect(),
            removals: state.removals.values().cloned().collect(),
        }
    }

    /// Other members' lists learned so far, and every removal: what storage nodes enforce.
    pub fn for_nodes(&self) -> (Vec<MemberRevocations>, Vec<MemberRemoval>) {
        let (heard, removals) = {
            let state = self.lock();
            let heard: Vec<String> = state
                .members
                .iter()
                .filter(|(_, peer)| peer.heard)
                .map(|(member, _)| member.clone())
                .collect();
            (heard, state.removals.values().cloned().collect())
        };
        let lists = heard
            .into_iter()
            .map(|member| MemberRevocations {
                serials: self.trust.revoked(&member).into_iter().collect(),
                member_domain: member,
                coordinators: Vec::new(),
            })
            .collect();
        (lists, removals)
    }

    /// The other members for `status`: those exchanged with or configured, and those removed.
    pub fn status_view(&self) -> Vec<api::FederationMember> {
        let state = self.lock();
        let mut view: BTreeMap<&String, api::FederationMember> = state
            .members
            .iter()
            .map(|(member, peer)| {
                let entry = api::FederationMember {
                    member_domain: member.clone(),
                    coordinators: peer.coordinators.clone(),
                    revoked: peer.heard.then(|| self.trust.revoked(member).len() as u64),
                    last_exchange_unix_ms: peer.last_exchange_unix_ms,
                    removed: false,
                };
                (member, entry)
            })
            .collect();
        for member in state.removals.keys() {
            view.entry(member)
                .or_insert_with(|| api::FederationMember {
                    member_domain: member.clone(),
                    ..Default::default()
                })
                .removed = true;
        }
        view.into_values().collect()
    }

    /// Each other member with its endpoints, the preferred one first.
    fn targets(&self) -> Vec<(String, Vec<String>)> {
        self.lock()
            .members
            .iter()
            .filter(|(_, peer)| !peer.coordinators.is_empty())
            .map(|(member, peer)| {
                let mut endpoints = peer.coordinators.clone();
                let first = peer.preferred % endpoints.len();
                endpoints.rotate_left(first);
                (member.clone(), endpoints)
            })
            .collect()
    }

    fn prefer(&self, member: &str, endpoint: &str) {
        if let Some(peer) = self.lock().members.get_mut(member)
            && let Some(index) = peer.coordinators.iter().position(|e| e == endpoint)
        {
            peer.preferred = index;
        }
    }

    /// After a failed round with `member`: start the next one from its next endpoint.
    fn skip_preferred(&self, member: &str) {
        if let Some(peer) = self.lock().members.get_mut(member)
            && !peer.coordinators.is_empty()
        {
            peer.preferred = (peer.preferred + 1) % peer.coordinators.len();
        }
    }
}

/// This member's list, first-hand from the projections, with its coordinators' endpoints.
fn own_list(coordinator: &Coordinator) -> Result<MemberRevocations, Status> {
    let mut coordinators = vec![coordinator.config.endpoint.clone()];
    for (_, node) in own_peers(coordinator) {
        if !coordinators.contains(&node) {
            coordinators.push(node);
        }
    }
    Ok(MemberRevocations {
        member_domain: coordinator.config.member_domain.clone(),
        serials: revoked_serials(&coordinator.store)
            .map_err(storage)?
            .into_iter()
            .collect(),
        coordinators,
    })
}

/// The other coordinators of this member, by address, with their endpoints.
fn own_peers(coordinator: &Coordinator) -> Vec<(String, String)> {
    let metrics = coordinator.metrics();
    metrics
        .membership_config
        .membership()
        .nodes()
        .filter(|(id, _)| **id != coordinator.id())
        .map(|(_, node)| (node.address.clone(), node.endpoint.clone()))
        .collect()
}

/// `Federation` over gRPC.
pub struct FederationService {
    coordinator: Arc<Coordinator>,
}

impl FederationService {
    pub fn new(coordinator: Arc<Coordinator>) -> FederationService {
        FederationService { coordinator }
    }
}

#[tonic::async_trait]
impl api::federation_server::Federation for FederationService {
    async fn exchange(
        &self,
        request: Request<FederationExchange>,
    ) -> Result<Response<FederationExchange>, Status> {
        let caller = caller(&request)?;
        if caller.component != collective_events::pb::ComponentType::Coordinator {
            return Err(Status::permission_denied(format!(
                "{} is not a coordinator; only coordinators exchange revocation lists",
                caller.address
            )));
        }
        let federation = &self.coordinator.pki.federation;
        federation.absorb(&caller.member_domain, request.get_ref())?;
        let own = own_list(&self.coordinator)?;
        Ok(Response::new(federation.outgoing(own)))
    }

    async fn publish_removal(
        &self,
        request: Request<MemberRemoval>,
    ) -> Result<Response<api::PublishRemovalResponse>, Status> {
        let caller = caller(&request)?;
        let new = self
            .coordinator
            .pki
            .federation
            .accept_removal(request.get_ref())?;
        tracing::info!(by = %caller.address, member = %request.get_ref().member_domain, new, "member removal published");
        Ok(Response::new(api::PublishRemovalResponse { new }))
    }
}

/// Exchanges lists with every member known and with this member's other coordinators, once per
/// [`EXCHANGE_INTERVAL`], while the process lives.
pub async fn exchange_loop(coordinator: Arc<Coordinator>) {
    let mut channels: HashMap<(String, String), Channel> = HashMap::new();
    loop {
        tokio::time::sleep(EXCHANGE_INTERVAL).await;
        let federation = &coordinator.pki.federation;
        let reader = coordinator.clone();
        let own = match tokio::task::spawn_blocking(move || own_list(&reader)).await {
            Ok(Ok(own)) => own,
            Ok(Err(error)) => {
                tracing::warn!(error = %error.message(), "reading this member's revocations failed");
                continue;
            }
            Err(error) => {
                tracing::warn!(%error, "the revocation reader panicked");
                continue;
            }
        };
        let message = federation.outgoing(own);
        let own_member = coordinator.config.member_domain.clone();
        let mut targets = federation.targets();
        // The other coordinators of this member: removals reach them this way too.
        for (_, endpoint) in own_peers(&coordinator) {
            targets.push((own_member.clone(), vec![endpoint]));
        }
        let calls = targets.into_iter().map(|(member, endpoints)| {
            let mut dialed = Vec::new();
            for endpoint in &endpoints {
                let key = (member.clone(), endpoint.clone());
                let channel = match channels.get(&key) {
                    Some(channel) => Some(channel.clone()),
                    None => match coordinator.peers.connect_member_coordinator(endpoint, &member) {
                        Ok(channel) => {
                            channels.insert(key, channel.clone());
                            Some(channel)
                        }
                        Err(error) => {
                            tracing::debug!(%endpoint, error = %format!("{error:#}"), "cannot dial");
                            None
                        }
                    },
                };
                dialed.extend(channel.map(|channel| (endpoint.clone(), channel)));
            }
            let message = message.clone();
            async move {
                match tokio::time::timeout(MEMBER_EXCHANGE_TIMEOUT, exchange_with(&member, dialed, message))
                    .await
                {
                    Ok(answered) => (member, answered),
                    Err(_) => {
                        let late = anyhow::anyhow!("no endpoint answered within {MEMBER_EXCHANGE_TIMEOUT:?}");
                        (member, Err(late))
                    }
                }
            }
        });
        for (member, answered) in futures::future::join_all(calls).await {
            match answered {
                Ok((endpoint, answer)) => {
                    federation.prefer(&member, &endpoint);
                    if let Err(error) = federation.absorb(&member, &answer) {
                        tracing::warn!(%member, %endpoint, error = %error.message(), "refused an exchange answer");
                    }
                }
                Err(error) => {
                    federation.skip_preferred(&member);
                    tracing::debug!(%member, error = %format!("{error:#}"), "exchange failed");
                }
            }
        }
    }
}

/// One exchange with a member: its endpoints in turn until one answers.
async fn exchange_with(
    member: &str,
    endpoints: Vec<(String, Channel)>,
    message: FederationExchange,
) -> anyhow::Result<(String, FederationExchange)> {
    let mut last = anyhow::anyhow!("no endpoint of {member} could be dialed");
    for (endpoint, channel) in endpoints {
        let mut client = FederationClient::new(channel)
            .max_decoding_message_size(collective_proto::MESSAGE_BYTES_MAX)
            .max_encoding_message_size(collective_proto::MESSAGE_BYTES_MAX);
        match tokio::time::timeout(EXCHANGE_TIMEOUT, client.exchange(message.clone())).await {
            Ok(Ok(answer)) => return Ok((endpoint, answer.into_inner())),
            Ok(Err(status)) => last = anyhow::anyhow!("{endpoint}: {}", status.message()),
            Err(_) => last = anyhow::anyhow!("{endpoint}: no answer within {EXCHANGE_TIMEOUT:?}"),
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{FederationCa, sign_removal};

    fn federation(root: &FederationCa, dir: &Path) -> (Federation, TrustStore) {
        let trust = TrustStore::new(root.cert_der()).expect("trust store");
        let seeds = [PeerMember {
            member_domain: "bob.home.collective".into(),
            coordinators: vec!["127.0.0.1:1".into()],
        }];
        let federation = Federation::open("alice.home.collective", &trust, dir, &seeds).expect("open");
        (federation, trust)
    }

    fn list(member: &str, serials: &[&[u8]]) -> MemberRevocations {
        MemberRevocations {
            member_domain: member.into(),
            serials: serials.iter().map(|s| s.to_vec()).collect(),
            coordinators: vec!["127.0.0.1:2".into()],
        }
    }

    #[test]
    fn lists_are_taken_only_first_hand() {
        let root = FederationCa::init("home.collective").expect("root");
        let dir = tempfile::tempdir().expect("dir");
        let (federation, trust) = federation(&root, dir.path());
        let from_bob = FederationExchange {
            own: Some(list("bob.home.collective", &[b"\x01"])),
            ..Default::default()
        };
        federation
            .absorb("bob.home.collective", &from_bob)
            .expect("first hand");
        assert!(trust.revoked("bob.home.collective").contains(b"\x01".as_slice()));

        // Carol cannot speak for Bob, nor can anyone speak for Alice to Alice.
        let error = federation
            .absorb("carol.home.collective", &from_bob)
            .expect_err("second hand");
        assert_eq!(error.code(), tonic::Code::PermissionDenied);
        let about_alice = FederationExchange {
            own: Some(list("alice.home.collective", &[b"\x02"])),
            ..Default::default()
        };
        federation
            .absorb("alice.home.collective", &about_alice)
            .expect("ignored");
        assert!(trust.revoked("alice.home.collective").is_empty());
        // Hints add endpoints, never serials.
        let hint = FederationExchange {
            known: vec![list("carol.home.collective", &[b"\x03"])],
            ..Default::default()
        };
        federation.absorb("bob.home.collective", &hint).expect("hint");
        assert!(trust.revoked("carol.home.collective").is_empty());
        let members: Vec<String> = federation.targets().into_iter().map(|(m, _)| m).collect();
        assert_eq!(members, ["bob.home.collective", "carol.home.collective"]);
    }

    #[test]
    fn a_failed_round_starts_the_next_from_the_next_endpoint() {
        let root = FederationCa::init("home.collective").expect("root");
        let dir = tempfile::tempdir().expect("dir");
        let (federation, _) = federation(&root, dir.path());
        federation.learn_endpoints("bob.home.collective", &["127.0.0.1:2".to_string()]);
        let order = || federation.targets().remove(0).1;
        assert_eq!(order(), ["127.0.0.1:1", "127.0.0.1:2"]);
        federation.skip_preferred("bob.home.collective");
        assert_eq!(order(), ["127.0.0.1:2", "127.0.0.1:1"]);
        federation.skip_preferred("bob.home.collective");
        assert_eq!(order(), ["127.0.0.1:1", "127.0.0.1:2"]);
        federation.prefer("bob.home.collective", "127.0.0.1:2");
        assert_eq!(order(), ["127.0.0.1:2", "127.0.0.1:1"]);
    }

    #[test]
    fn removals_verify_persist_and_spare_the_own_member() {
        let root = FederationCa::init("home.collective").expect("root");
        let dir = tempfile::tempdir().expect("dir");
        {
            let (federation, trust) = federation(&root, dir.path());
            let bob = sign_removal(&root.bundle(), "bob.home.collective", "gone", 1).expect("sign");
            assert!(federation.accept_removal(&bob).expect("valid"));
            assert!(!federation.accept_removal(&bob).expect("again"));
            assert!(trust.member_removed("bob.home.collective"));
            let alice = sign_removal(&root.bundle(), "alice.home.collective", "", 1).expect("sign");
            assert!(federation.accept_removal(&alice).expect("valid"));
            assert!(!trust.member_removed("alice.home.collective"));

            let mut forged = sign_removal(&root.bundle(), "carol.home.collective", "", 1).expect("sign");
            forged.member_domain = "dave.home.collective".into();
            let error = federation.accept_removal(&forged).expect_err("forged");
            assert_eq!(error.code(), tonic::Code::InvalidArgument);
            assert!(!trust.member_removed("dave.home.collective"));
        }
        let (reopened, trust) = federation(&root, dir.path());
        assert!(
            trust.member_removed("bob.home.collective"),
            "kept across restarts"
        );
        assert_eq!(reopened.for_nodes().1.len(), 2);
    }
}
