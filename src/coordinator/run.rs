//! A coordinator process: opens its store and Raft node, serves the metadata API and the Raft
//! transport on one mutual-TLS listener, founds the group on its first start if it is the
//! bootstrap coordinator, and shuts down cleanly on a signal.

use super::bootstrap::{COORDINATOR_BUNDLE, ROOT_CA_FILE};
use super::config::{CoordinatorConfig, Layout};
use super::federation::{self, Federation, FederationService};
use super::liveness::{self, Liveness};
use super::meta_service::{MetaService, now_unix_ms, propose};
use super::network::NetworkFactory;
use super::raft_service::RaftService;
use super::repair;
use super::revocation;
use super::rotation::{self, LivePki};
use super::state::Coordinator;
use crate::pki::{CertBundle, MemberCa};
use crate::tls::{self, IdentityHandle, Policy, ServerConfigHandle, TrustStore};
use crate::transport::{PeerContext, root_der};
use anyhow::Context;
use collective_events::pb::{self, command_envelope::Command};
use collective_projections::{META_MEMBER, Store};
use collective_proto::api::{federation_server::FederationServer, meta_server::MetaServer};
use collective_proto::raft::raft_server::RaftServer;
use collective_raft::{CoordinatorNode, SnapshotDir, open_raft};
use openraft::ServerState;
use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// How long the bootstrap coordinator waits to become leader of its new group.
const BOOTSTRAP_LEADER_WAIT: Duration = Duration::from_secs(30);

/// A started coordinator: the shared state and the server task.
pub struct Running {
    pub coordinator: Arc<Coordinator>,
    server: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
    watchdog: tokio::task::JoinHandle<()>,
    /// The bootstrap (invite) listener, if configured; stopped with the main server.
    pub bootstrap: Option<crate::bootstrap::BootstrapListener>,
}

impl Running {
    /// Waits for the server to stop (after `shutdown` resolved), then stops Raft.
    pub async fn finish(self) -> anyhow::Result<()> {
        let served = self.server.await.context("the server task panicked")?;
        self.watchdog.abort();
        if let Some(bootstrap) = &self.bootstrap {
            bootstrap.task.abort();
        }
        let _ = self.coordinator.raft.shutdown().await;
        served.context("the gRPC server failed")
    }
}

/// Starts the coordinator in `data_dir`; it serves until `shutdown` resolves.
pub async fn start(
    data_dir: &Path,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Running> {
    let config = CoordinatorConfig::load(data_dir)?;
    let layout = Layout::new(data_dir);
    let identity = CertBundle::read_from(&layout.pki(), COORDINATOR_BUNDLE).with_context(|| {
        format!(
            "reading the coordinator certificate in {}",
            layout.pki().display()
        )
    })?;
    let root_pem = std::fs::read_to_string(layout.pki().join(ROOT_CA_FILE))
        .with_context(|| format!("reading {}", layout.pki().join(ROOT_CA_FILE).display()))?;
    let root = root_der(&root_pem)?;
    // What changes while serving: revoked leaves (from the log), this coordinator's own leaf
    // (renewals). Verifiers and the request guard read both at every use.
    let trust = TrustStore::new(&root)?;
    let own = IdentityHandle::new(identity.clone())?;
    own.register_live();
    let peers = Arc::new(PeerContext::with_identity(own.clone(), &root_pem, trust.clone())?);
    let store = Store::open(layout.db()).with_context(|| format!("opening {}", layout.db().display()))?;
    // Revocations already in the log are in force before the first handshake.
    revocation::load(&store, &trust, &config.member_domain)?;
    // So are the member removals this coordinator kept.
    let federation = Federation::open(
        &config.member_domain,
        &trust,
        &layout.pki(),
        &config.federation_peers,
    )?;
    let raft = open_raft(
        config.id,
        &layout.root,
        store.clone(),
        raft_config()?,
        NetworkFactory::new(peers.clone()),
    )
    .await
    .context("starting raft")?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    // Any certificate of the federation may connect; each service then checks its own policy
    // (the Raft service admits only this member's coordinators).
    // Revocations are enforced by the request guard below rather than in the handshake: under
    // TLS 1.3 a client refused in the handshake learns no reason, and clients retry transport
    // failures; the guard refuses every request of a revoked certificate with the reason, at once.
    let verifier = tls::FederationClientVerifier::builder(&root, Policy::any_component()).build()?;
    let server_config = tls::server_config_with_identity(&own, verifier)?;
    let incoming = tls::tls_incoming(listener, ServerConfigHandle::new(server_config));
    let liveness = Liveness::from_env()?;
    let pki = LivePki {
        trust: trust.clone(),
        root_pem: root_pem.clone(),
        member_ca: load_member_ca(&layout.pki())?,
        pki_dir: layout.pki(),
        federation,
    };
    let coordinator = Arc::new(Coordinator::new(
        config.clone(),
        raft,
        store,
        peers,
        liveness,
        pki,
    ));
    let meta = MetaServer::new(MetaService::new(coordinator.clone()))
        .max_decoding_message_size(collective_proto::MESSAGE_BYTES_MAX)
        .max_encoding_message_size(collective_proto::MESSAGE_BYTES_MAX);
    let raft_rpc = RaftServer::new(RaftService::new(
        coordinator.clone(),
        SnapshotDir::open(&layout.root)?,
    ))
    .max_decoding_message_size(collective_proto::MESSAGE_BYTES_MAX)
    .max_encoding_message_size(collective_proto::MESSAGE_BYTES_MAX);
    let federation_rpc = FederationServer::new(FederationService::new(coordinator.clone()))
        .max_decoding_message_size(collective_proto::MESSAGE_BYTES_MAX)
        .max_encoding_message_size(collective_proto::MESSAGE_BYTES_MAX);
    let access = collective_proto::bootstrap::access_server::AccessServer::new(
        crate::bootstrap::access::AccessService::new(coordinator.clone()),
    );
    let bootstrap = match config.bootstrap_listen {
        Some(listen) => Some(
            crate::bootstrap::start(coordinator.clone(), listen, &layout.pki(), &identity, &root_pem).await?,
        ),
        None => None,
    };
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            // Every request, on new connections and on those opened before a revocation.
            .layer(tonic::service::InterceptorLayer::new(tls::RevocationGuard::new(
                trust,
            )))
            .add_service(meta)
            .add_service(raft_rpc)
            .add_service(federation_rpc)
            .add_service(access)
            .serve_with_incoming_shutdown(incoming, shutdown),
    );
    tracing::info!(id = config.id, address = %config.address, listen = %config.listen, "coordinator serving");
    if config.bootstrap {
        let coordinator = coordinator.clone();
        let root_pem = root_pem.clone();
        let data_dir = data_dir.to_path_buf();
        tokio::spawn(async move {
            if let Err(error) = found_group(&coordinator, &data_dir, &root_pem).await {
                tracing::error!(error = %format!("{error:#}"), "could not found the group");
            }
        });
    }
    // The leader's background duties, node liveness and chunk repair (both idle on followers),
    // and every coordinator's: the revocation list, the exchange with other members, and its own
    // certificate's renewal.
    let repair_interval = repair::interval_from_env()?;
    let gc = super::gc::GcConfig::from_env()?;
    let stall = crate::datapath::replica_stall_from_env()?;
    let watchdog = tokio::spawn({
        let coordinator = coordinator.clone();
        async move {
            tokio::join!(
                liveness::watch(coordinator.clone()),
                revocation::watch(coordinator.clone()),
                federation::exchange_loop(coordinator.clone()),
                rotation::keep_fresh(coordinator.clone()),
                repair::run(coordinator, repair_interval, gc, stall)
            );
        }
    });
    Ok(Running {
        coordinator,
        server,
        watchdog,
        bootstrap,
    })
}

/// The member CA with its key, if this coordinator's data directory holds it (the founder's).
fn load_member_ca(pki: &Path) -> anyhow::Result<Option<MemberCa>> {
    if !pki.join("member-ca.key").exists() {
        return Ok(None);
    }
    let bundle = CertBundle::read_from(pki, "member-ca")?;
    Ok(Some(MemberCa::load(&bundle.cert_pem, &bundle.key_pem)?))
}

/// Runs a coordinator until SIGINT or SIGTERM.
pub async fn run(data_dir: &Path) -> anyhow::Result<()> {
    let running = start(data_dir, shutdown_signal()).await?;
    let config = &running.coordinator.config;
    errln!(
        "coordinator {} ({}) listening on {}",
        config.id,
        config.address,
        config.listen
    );
    running.finish().await
}

/// Initializes a new group with this coordinator as its only voter (once, ever) and records the
/// member's founding events. Safe to repeat after a crash at any point: initialization is
/// skipped when done, and the founding commands carry fixed request ids, so they apply once.
async fn found_group(coordinator: &Coordinator, data_dir: &Path, root_pem: &str) -> anyhow::Result<()> {
    let config = &coordinator.config;
    // A restart of a founded group (possibly led by another coordinator now) has nothing to
    // do but record certificates issued while it was down (an admin profile rewritten by `up`).
    if coordinator.store.meta(META_MEMBER)?.is_some() {
        return rotation::record_pending(coordinator).await;
    }
    if !coordinator.raft.is_initialized().await? {
        let node = CoordinatorNode::new(config.address.clone(), config.endpoint.clone());
        coordinator
            .raft
            .initialize(BTreeMap::from([(config.id, node)]))
            .await?;
    }
    coordinator
        .raft
        .wait(Some(BOOTSTRAP_LEADER_WAIT))
        .state(ServerState::Leader, "found the group")
        .await?;
    let member_ca = CertBundle::read_from(&Layout::new(data_dir).pki(), "member-ca")?;
    let root = root_der(root_pem)?.to_vec();
    let member = crate::pki::MemberCa::load(&member_ca.cert_pem, &member_ca.key_pem)?;
    let founding = [
        Command::InitializeMember(pb::InitializeMember {
            federation_domain: config.federation_domain.clone(),
            member_domain: config.member_domain.clone(),
            root_ca_der: root,
            member_ca_der: member.cert_der().to_vec(),
        }),
        Command::AddCoordinator(pb::AddCoordinator {
            raft_id: config.id,
            address: config.address.clone(),
            endpoint: config.endpoint.clone(),
        }),
    ];
    for (n, command) in founding.into_iter().enumerate() {
        let envelope = pb::CommandEnvelope {
            schema_version: collective_events::SCHEMA_VERSION,
            actor: config.address.clone(),
            request_id: founding_request_id(&config.member_domain, n),
            proposed_at_unix_ms: now_unix_ms(),
            command: Some(command),
        };
        propose(coordinator, envelope)
            .await
            .map_err(|status| anyhow::anyhow!("{}", status.message()))?;
    }
    tracing::info!(member = %config.member_domain, "member initialized");
    rotation::record_pending(coordinator).await
}

/// A request id fixed by the member and the founding step, so a repeated founding is a retry.
fn founding_request_id(member_domain: &str, step: usize) -> Vec<u8> {
    let digest = blake3::hash(format!("collective founding {member_domain} {step}").as_bytes());
    digest.as_bytes()[..16].to_vec()
}

fn raft_config() -> anyhow::Result<openraft::Config> {
    let mut config = collective_raft::default_config()?;
    // Operators (and tests) may tune snapshotting without a rebuild.
    if let Some(n) = crate::env::number::<u64>("COLLECTIVE_SNAPSHOT_EVERY_ENTRIES")? {
        config.snapshot_policy = openraft::SnapshotPolicy::LogsSinceLast(n);
    }
    if let Some(n) = crate::env::number::<u64>("COLLECTIVE_LOGS_KEPT_BEHIND_SNAPSHOT")? {
        config.max_in_snapshot_log_to_keep = n;
    }
    Ok(config.validate()?)
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
    tracing::info!("shutting down");
}
