//! Certificate rotation: leaves of coordinators and nodes renew themselves at two thirds of
//! their lifetime, signed by a coordinator that holds the member CA key, recorded in the log,
//! written to disk and put in force for the next handshakes without a restart.
//!
//! Keys: the member CA key lives only in the founding coordinator's `pki/member-ca.key` (and in
//! the admin profile). Every other process keeps its own leaf key and sends a signing request
//! (`RenewCertificate`) to the member's coordinators; the one holding the CA key signs for the
//! address, component and names of the certificate the caller authenticated with, so a renewal
//! can never widen what a key may do, and a revoked certificate cannot renew (its handshake is
//! refused). If the key holder is down, renewals wait for it; the third of the lifetime left
//! at renewal time is the margin for that outage.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use collective_events::pb::command_envelope::Command as PbCommand;
use collective_proto::api::{self, meta_client::MetaClient};
use tonic::{Request, Status};

use super::bootstrap::{COORDINATOR_BUNDLE, LEAF_VALIDITY};
use super::revocation::issue_command_for;
use super::state::Coordinator;
use crate::client::{Client, ClientError, RetryPolicy};
use crate::pki::{CertBundle, IssuedLeaf, LeafRequest, MemberCa, PeerIdentity, extra_sans};
use crate::profile::ProfileConfig;
use crate::tls::{IdentityHandle, TrustStore};
use crate::transport::{caller, connect_coordinator};

/// Environment variable overriding the lifetime of coordinator and node leaves, in seconds
/// (tests use a few seconds to watch several renewals).
pub const SERVICE_CERT_VALIDITY_ENV: &str = "COLLECTIVE_SERVICE_CERT_VALIDITY_SECS";
/// Shortest accepted override: below this, renewals could not keep up with expiry.
const SERVICE_CERT_VALIDITY_MIN: Duration = Duration::from_secs(3);
/// Pause before retrying a failed renewal.
const RENEW_RETRY_MAX: Duration = Duration::from_secs(30);
/// How long one recording of a certificate may retry (leader discovery included).
const RECORD_DEADLINE: Duration = Duration::from_secs(10);
/// Bytes of a signing request accepted by `RenewCertificate` (an Ed25519 CSR is ~200).
pub const CSR_BYTES_MAX: usize = 4096;

/// Lifetime of coordinator and node leaves: a year, or [`SERVICE_CERT_VALIDITY_ENV`].
pub fn service_leaf_validity() -> anyhow::Result<Duration> {
    let Some(secs) = crate::env::number::<u64>(SERVICE_CERT_VALIDITY_ENV)? else {
        return Ok(LEAF_VALIDITY);
    };
    let validity = Duration::from_secs(secs);
    anyhow::ensure!(
        validity >= SERVICE_CERT_VALIDITY_MIN,
        "{SERVICE_CERT_VALIDITY_ENV}={secs} is below the minimum of {} s",
        SERVICE_CERT_VALIDITY_MIN.as_secs()
    );
    Ok(validity)
}

/// What a coordinator holds of the member's PKI while it runs.
pub struct LivePki {
    /// Revoked leaves and removed member CAs, consulted by every handshake and request.
    pub trust: TrustStore,
    pub root_pem: String,
    /// The member CA with its key, on the coordinator that founded the member; `None` elsewhere.
    pub member_ca: Option<MemberCa>,
    /// Where this coordinator's own bundle is rewritten after each renewal.
    pub pki_dir: PathBuf,
    /// Other members' revocations and member removals (see `coordinator::federation`).
    pub federation: super::federation::Federation,
}

/// `RenewCertificate`: signs a new leaf for the caller's own identity and records it.
pub async fn renew_for_caller(
    coordinator: &Coordinator,
    request: Request<api::RenewCertificateRequest>,
) -> Result<api::RenewCertificateResponse, Status> {
    let who = caller(&request)?;
    if !who
        .member_domain
        .eq_ignore_ascii_case(&coordinator.config.member_domain)
    {
        return Err(Status::permission_denied(format!(
            "{} belongs to member {}; only its own member's ca renews it",
            who.address, who.member_domain
        )));
    }
    let leaf_der = crate::tls::peer_certificates(&request)
        .and_then(|certs| certs.first().cloned())
        .ok_or_else(|| Status::unauthenticated("no tls client certificate"))?;
    let csr = request.into_inner().csr_der;
    if csr.len() > CSR_BYTES_MAX {
        return Err(Status::invalid_argument(format!(
            "signing request of {} bytes exceeds {CSR_BYTES_MAX}",
            csr.len()
        )));
    }
    let Some(member_ca) = &coordinator.pki.member_ca else {
        return Err(Status::failed_precondition(format!(
            "coordinator {} holds no member ca key; renewals are signed by the coordinator that founded the member",
            coordinator.config.address
        )));
    };
    let identity =
        PeerIdentity::from_der(&leaf_der).map_err(|error| Status::unauthenticated(error.to_string()))?;
    let issued = sign(member_ca, &identity, &leaf_der, &csr).map_err(|error| match error {
        SignError::Request(reason) => Status::invalid_argument(reason),
        SignError::Internal(reason) => Status::internal(reason),
    })?;
    let log_index = record(coordinator, &issued_bundle_for_record(&issued))
        .await
        .map_err(|error| {
            Status::unavailable(format!("the renewed certificate was not recorded: {error:#}"))
        })?;
    tracing::info!(address = %identity.address, "renewed a certificate");
    Ok(api::RenewCertificateResponse {
        cert_pem: issued.cert_pem,
        chain_pem: issued.chain,
        log_index,
    })
}

enum SignError {
    Request(String),
    Internal(String),
}

fn sign(
    member_ca: &MemberCa,
    identity: &PeerIdentity,
    leaf_der: &[u8],
    csr: &[u8],
) -> Result<IssuedLeaf, SignError> {
    let validity = service_leaf_validity().map_err(|e| SignError::Internal(format!("{e:#}")))?;
    let sans = extra_sans(leaf_der).map_err(|e| SignError::Request(e.to_string()))?;
    let sans: Vec<&str> = sans.iter().map(String::as_str).collect();
    member_ca
        .issue_leaf_for_csr(
            csr,
            &identity.address.to_string(),
            identity.component,
            validity,
            &sans,
        )
        .map_err(|e| match e {
            crate::pki::PkiError::BadCsr(reason) => SignError::Request(reason),
            other => SignError::Internal(other.to_string()),
        })
}

/// A keyless bundle carrying an issued leaf, for [`issue_command_for`] (which reads only the
/// certificate).
fn issued_bundle_for_record(issued: &IssuedLeaf) -> CertBundle {
    CertBundle {
        cert_pem: issued.cert_pem.clone(),
        key_pem: String::new(),
        chain: issued.chain.clone(),
    }
}

/// Records `bundle`'s leaf with `IssueCertificate` through the member's leader, as this
/// coordinator; an already recorded certificate is fine. Returns the log index (0 if it was
/// recorded before).
pub async fn record(coordinator: &Coordinator, bundle: &CertBundle) -> anyhow::Result<u64> {
    let mut client = member_client(coordinator);
    record_with(&mut client, bundle).await
}

/// Records `bundle`'s leaf through `client`; see [`record`].
pub async fn record_with(client: &mut Client, bundle: &CertBundle) -> anyhow::Result<u64> {
    let command = PbCommand::IssueCertificate(issue_command_for(bundle)?);
    match client.submit(command).await {
        Ok(response) => Ok(response.log_index),
        Err(ClientError::Refused {
            code: tonic::Code::AlreadyExists,
            ..
        }) => Ok(0),
        Err(error) => Err(error.into()),
    }
}

/// Records the certificates the member CA issued outside the log (`pki/issued/*.crt`, see
/// `bootstrap::remember_issued`) and deletes each file once its certificate is recorded.
pub async fn record_pending(coordinator: &Coordinator) -> anyhow::Result<()> {
    let dir = coordinator.pki.pki_dir.join(super::bootstrap::ISSUED_DIR);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error).with_context(|| format!("reading {}", dir.display())),
    };
    for entry in entries {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("crt") {
            continue;
        }
        let cert_pem =
            std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let bundle = CertBundle {
            cert_pem,
            key_pem: String::new(),
            chain: Vec::new(),
        };
        record(coordinator, &bundle)
            .await
            .with_context(|| format!("recording {}", path.display()))?;
        std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
    }
    Ok(())
}

/// A client of the member's coordinators acting as this coordinator, starting at itself.
fn member_client(coordinator: &Coordinator) -> Client {
    let config = &coordinator.config;
    Client::with_identity(
        ProfileConfig {
            address: config.address.clone(),
            member_domain: config.member_domain.clone(),
            federation_domain: config.federation_domain.clone(),
            coordinators: vec![config.endpoint.clone()],
        },
        coordinator.peers.identity(),
        coordinator.pki.root_pem.clone(),
    )
    .with_retry(RetryPolicy {
        deadline: RECORD_DEADLINE,
        ..RetryPolicy::default()
    })
}

/// Keeps this coordinator's own leaf recorded and fresh while the process lives.
pub async fn keep_fresh(coordinator: Arc<Coordinator>) {
    let handle = coordinator.peers.identity_handle().clone();
    let mut recorded_serial: Option<Vec<u8>> = None;
    let mut failures = 0u32;
    loop {
        let current = handle.identity();
        if recorded_serial.as_ref() != Some(&current.serial) {
            // The founding coordinator's first tries fail until the member is initialized.
            match record(&coordinator, &handle.bundle()).await {
                Ok(_) => recorded_serial = Some(current.serial.clone()),
                Err(error) => tracing::debug!(error = %format!("{error:#}"), "recording own certificate"),
            }
        }
        let wait = until(current.renew_at());
        let pause = if recorded_serial.as_ref() != Some(&current.serial) {
            wait.min(Duration::from_secs(1))
        } else {
            wait
        };
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
            continue;
        }
        match renew_own(&coordinator).await {
            Ok(_) => failures = 0,
            Err(error) => {
                failures += 1;
                tracing::warn!(error = %format!("{error:#}"), failures, "renewing the coordinator certificate failed");
                tokio::time::sleep(retry_pause(&current, failures)).await;
            }
        }
    }
}

/// Renews this coordinator's leaf: signs it here if this coordinator holds the member CA key,
/// else asks its peers; then records it, saves it and puts it in force.
async fn renew_own(coordinator: &Coordinator) -> anyhow::Result<PeerIdentity> {
    let handle = coordinator.peers.identity_handle();
    let current = handle.bundle();
    let request = LeafRequest::new()?;
    let issued = match &coordinator.pki.member_ca {
        Some(member_ca) => {
            let leaf_der = current.cert_der()?;
            let identity = PeerIdentity::from_der(&leaf_der)?;
            let issued = sign(member_ca, &identity, &leaf_der, request.csr_der()).map_err(|e| match e {
                SignError::Request(reason) | SignError::Internal(reason) => anyhow::anyhow!(reason),
            })?;
            record(coordinator, &issued_bundle_for_record(&issued)).await?;
            issued
        }
        None => {
            let endpoints: Vec<String> = coordinator
                .metrics()
                .membership_config
                .membership()
                .nodes()
                .filter(|(id, _)| **id != coordinator.id())
                .map(|(_, node)| node.endpoint.clone())
                .collect();
            request_renewal(
                &endpoints,
                &current,
                &coordinator.pki.root_pem,
                &coordinator.config.member_domain,
                request.csr_der(),
            )
            .await?
        }
    };
    let renewed = request.into_bundle(issued)?;
    install(&coordinator.pki.pki_dir, COORDINATOR_BUNDLE, handle, renewed).await
}

/// Saves `renewed` as `<dir>/<name>.*` and puts it in force in `handle`.
pub async fn install(
    dir: &Path,
    name: &str,
    handle: &IdentityHandle,
    renewed: CertBundle,
) -> anyhow::Result<PeerIdentity> {
    let identity = renewed.identity()?;
    let (dir, name_owned, bundle) = (dir.to_path_buf(), name.to_string(), renewed.clone());
    tokio::task::spawn_blocking(move || bundle.write_to(&dir, &name_owned))
        .await
        .context("the certificate writer panicked")??;
    handle.replace(renewed)?;
    tracing::info!(
        address = %identity.address,
        serial = %identity.serial_hex(),
        "certificate renewed and in force"
    );
    Ok(identity)
}

/// Asks the coordinators at `endpoints`, in turn, to sign `csr_der` for the holder of
/// `current`; the first that holds the member CA key answers.
pub async fn request_renewal(
    endpoints: &[String],
    current: &CertBundle,
    root_pem: &str,
    member_domain: &str,
    csr_der: &[u8],
) -> anyhow::Result<IssuedLeaf> {
    let mut errors = Vec::new();
    for endpoint in endpoints {
        let answer = async {
            let channel = connect_coordinator(endpoint, current, root_pem, member_domain).await?;
            let response = MetaClient::new(channel)
                .renew_certificate(api::RenewCertificateRequest {
                    csr_der: csr_der.to_vec(),
                })
                .await
                .map_err(|status| anyhow::anyhow!("{}", status.message()))?;
            anyhow::Ok(response.into_inner())
        }
        .await;
        match answer {
            Ok(response) => {
                return Ok(IssuedLeaf {
                    cert_pem: response.cert_pem,
                    chain: response.chain_pem,
                });
            }
            Err(error) => errors.push(format!("{endpoint}: {error:#}")),
        }
    }
    anyhow::bail!("no coordinator renewed the certificate ({})", errors.join("; "))
}

/// Fetches the member's revoked serials from the first of `endpoints` that answers.
pub async fn fetch_revocations(
    endpoints: &[String],
    identity: &CertBundle,
    root_pem: &str,
    member_domain: &str,
) -> anyhow::Result<api::RevocationsResponse> {
    let mut errors = Vec::new();
    for endpoint in endpoints {
        let answer = async {
            let channel = connect_coordinator(endpoint, identity, root_pem, member_domain).await?;
            let response = MetaClient::new(channel)
                .max_decoding_message_size(collective_proto::MESSAGE_BYTES_MAX)
                .revocations(api::RevocationsRequest {})
                .await
                .map_err(|status| anyhow::anyhow!("{}", status.message()))?;
            anyhow::Ok(response.into_inner())
        }
        .await;
        match answer {
            Ok(response) => return Ok(response),
            Err(error) => errors.push(format!("{endpoint}: {error:#}")),
        }
    }
    anyhow::bail!("no coordinator sent the revocation list ({})", errors.join("; "))
}

/// Time from now until `at`, zero if past.
pub fn until(at: SystemTime) -> Duration {
    at.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO)
}

/// Pause after `failures` failed renewals of `current`: doubling from a second, at most
/// [`RENEW_RETRY_MAX`] and at most a tenth of the time left, so short-lived leaves retry often.
pub fn retry_pause(current: &PeerIdentity, failures: u32) -> Duration {
    let backoff = Duration::from_secs(1u64 << failures.min(5)).min(RENEW_RETRY_MAX);
    let left = until(current.not_after) / 10;
    backoff.min(left.max(Duration::from_millis(200)))
}

/// Where a process other than a coordinator (a storage node) gets its certificates renewed and
/// its revocation list from.
#[derive(Debug, Clone)]
pub struct MemberEndpoints {
    /// Coordinator endpoints, tried in order.
    pub coordinators: Vec<String>,
    pub member_domain: String,
    pub root_pem: String,
}

/// Renews `handle`'s leaf through the member's coordinators at two thirds of its lifetime,
/// saving each renewal as `<dir>/<name>.*`, until `stop` turns true.
pub async fn renew_loop(
    handle: IdentityHandle,
    dir: PathBuf,
    name: String,
    member: MemberEndpoints,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut failures = 0u32;
    loop {
        let current = handle.identity();
        let mut pause = until(current.renew_at());
        if pause.is_zero() {
            match renew_through(&handle, &dir, &name, &member).await {
                Ok(_) => {
                    failures = 0;
                    continue;
                }
                Err(error) => {
                    failures += 1;
                    tracing::warn!(error = %format!("{error:#}"), failures, "renewing the certificate failed");
                    pause = retry_pause(&current, failures);
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
    }
}

async fn renew_through(
    handle: &IdentityHandle,
    dir: &Path,
    name: &str,
    member: &MemberEndpoints,
) -> anyhow::Result<PeerIdentity> {
    let request = LeafRequest::new()?;
    let issued = request_renewal(
        &member.coordinators,
        &handle.bundle(),
        &member.root_pem,
        &member.member_domain,
        request.csr_der(),
    )
    .await?;
    install(dir, name, handle, request.into_bundle(issued)?).await
}

/// Puts a coordinator's `Revocations` answer into a storage node's `trust`: the member's own
/// list, the lists the coordinator learned from other members, and the member removals whose
/// root signature verifies (a node's own member is never removed from under it).
fn apply_revocations(trust: &TrustStore, own_member: &str, answer: api::RevocationsResponse) {
    let mut lists = vec![(own_member.to_string(), answer.serials)];
    lists.extend(
        answer
            .members
            .into_iter()
            .filter(|list| !list.member_domain.eq_ignore_ascii_case(own_member))
            .map(|list| (list.member_domain, list.serials)),
    );
    for (member, serials) in lists {
        if trust.set_revoked(&member, serials.into_iter().collect()) {
            let count = trust.revoked(&member).len();
            tracing::info!(%member, revoked = count, "revocation list updated");
        }
    }
    for removal in answer.removals {
        if removal.member_domain.eq_ignore_ascii_case(own_member) {
            continue;
        }
        match crate::pki::verify_removal(trust.root_der(), &removal) {
            Ok(()) => {
                if trust.remove_member(&removal.member_domain) {
                    tracing::warn!(member = %removal.member_domain, "member removed from the federation");
                }
            }
            Err(error) => tracing::warn!(%error, "ignoring a member removal that does not verify"),
        }
    }
}

/// Polls the member's coordinators every `interval` for the revoked serials and puts them in
/// `trust`, until `stop` turns true: how storage nodes learn revocations.
pub async fn revocation_sync_loop(
    handle: IdentityHandle,
    trust: TrustStore,
    member: MemberEndpoints,
    interval: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let fetched = fetch_revocations(
            &member.coordinators,
            &handle.bundle(),
            &member.root_pem,
            &member.member_domain,
        )
        .await;
        match fetched {
            Ok(list) => apply_revocations(&trust, &member.member_domain, list),
            Err(error) => {
                tracing::warn!(error = %format!("{error:#}"), "fetching the revocation list failed")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
    }
}
