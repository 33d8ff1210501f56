//! Revocation on a coordinator: who may record and revoke certificates, the trust store kept in
//! step with the member's log, and the revocation list served to storage nodes.
//!
//! Every coordinator applies the log, so each one derives the revoked serials from its own
//! certificates projection and swaps them into the trust store its listener consults at every
//! handshake and every request: a revocation takes effect on a coordinator as soon as it has
//! applied the `CertificateRevoked` entry (plus one [`REVOCATION_SYNC_INTERVAL`] at most).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use collective_events::pb::{self, ComponentType, command_envelope::Command as PbCommand};
use collective_projections::{Store, StoreError};
use collective_proto::api;
use tonic::{Request, Status};

use super::bootstrap::ADMIN_LOCAL;
use super::errors::storage;
use super::state::Coordinator;
use crate::pki::{CertBundle, Component, PeerIdentity, fingerprint};
use crate::tls::TrustStore;
use crate::transport::Caller;

/// How often a coordinator compares its applied log index with the one its revoked set was
/// read at; the bound on revocation latency beyond replication.
pub const REVOCATION_SYNC_INTERVAL: Duration = Duration::from_millis(250);

/// The serials of the member's revoked certificates, from the projections.
pub fn revoked_serials(store: &Store) -> Result<BTreeSet<Vec<u8>>, StoreError> {
    Ok(store
        .certificates()?
        .into_iter()
        .filter(|record| record.revoked)
        .filter_map(|record| record.issued.map(|issued| issued.serial))
        .collect())
}

/// Loads the revoked serials into `trust`; returns whether the set changed.
pub fn load(store: &Store, trust: &TrustStore, member_domain: &str) -> Result<bool, StoreError> {
    Ok(trust.set_revoked(member_domain, revoked_serials(store)?))
}

/// Keeps the coordinator's trust store in step with its applied log, while the process lives.
pub async fn watch(coordinator: Arc<Coordinator>) {
    let mut seen_applied = None;
    loop {
        tokio::time::sleep(REVOCATION_SYNC_INTERVAL).await;
        let applied = coordinator.metrics().last_applied.map(|log_id| log_id.index);
        if applied == seen_applied {
            continue;
        }
        let store = coordinator.store.clone();
        let trust = coordinator.pki.trust.clone();
        let member = coordinator.config.member_domain.clone();
        let loaded = tokio::task::spawn_blocking(move || load(&store, &trust, &member)).await;
        match loaded {
            Ok(Ok(changed)) => {
                seen_applied = applied;
                if changed {
                    let count = coordinator
                        .pki
                        .trust
                        .revoked(&coordinator.config.member_domain)
                        .len();
                    tracing::info!(revoked = count, "revocation list updated");
                }
            }
            Ok(Err(error)) => tracing::warn!(%error, "reading revoked certificates failed"),
            Err(error) => tracing::warn!(%error, "the revocation task panicked"),
        }
    }
}

/// `Revocations`: the member's revoked serials, as this coordinator's projections know them,
/// with what it learned from other members (`coordinator::federation`).
pub fn revocations(coordinator: &Coordinator) -> Result<api::RevocationsResponse, Status> {
    let serials = revoked_serials(&coordinator.store).map_err(storage)?;
    let (members, removals) = coordinator.pki.federation.for_nodes();
    Ok(api::RevocationsResponse {
        member_domain: coordinator.config.member_domain.clone(),
        serials: serials.into_iter().collect(),
        members,
        removals,
    })
}

/// Certificate commands arriving through `Submit`:
///
/// - `RevokeCertificate` only from the member's admin client certificate (`admin@<member>`): a
///   user's, node's or coordinator's key must not be able to cut others off;
/// - `IssueCertificate` from a coordinator of the member (which records the renewals it signs),
///   or from anyone recording exactly the certificate it presented in this very connection
///   (processes record their own certificates when they start).
pub fn authorize_certificate_command<T>(
    request: &Request<T>,
    caller: &Caller,
    command: Option<&PbCommand>,
) -> Result<(), Status> {
    match command {
        Some(PbCommand::RevokeCertificate(_)) => {
            let admin = format!("{ADMIN_LOCAL}@{}", caller.member_domain);
            if caller.component != ComponentType::Client || !caller.address.eq_ignore_ascii_case(&admin) {
                return Err(Status::permission_denied(format!(
                    "{} may not revoke certificates; only the member's admin ({admin}) may",
                    caller.address
                )));
            }
            Ok(())
        }
        Some(PbCommand::IssueCertificate(issue)) => {
            if caller.component == ComponentType::Coordinator {
                return Ok(());
            }
            let own = own_certificate_record(request)?;
            if own != *issue {
                return Err(Status::permission_denied(format!(
                    "{} may only record its own certificate (serial {})",
                    caller.address,
                    hex(&own.serial)
                )));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The `IssueCertificate` that records the certificate the caller presented.
/// For a request a coordinator passed on, the certificate its caller presented there.
fn own_certificate_record<T>(request: &Request<T>) -> Result<pb::IssueCertificate, Status> {
    let leaf = match crate::transport::passed_on_leaf(request)? {
        Some(leaf) => leaf,
        None => crate::tls::peer_certificates(request)
            .and_then(|certs| certs.first().map(|leaf| leaf.to_vec()))
            .ok_or_else(|| Status::unauthenticated("no tls client certificate"))?,
    };
    let identity = PeerIdentity::from_der(&leaf)
        .map_err(|error| Status::unauthenticated(format!("client certificate: {error}")))?;
    Ok(issue_command(&identity, &leaf))
}

/// The `IssueCertificate` recording the leaf `der` whose identity is `identity`.
pub fn issue_command(identity: &PeerIdentity, der: &[u8]) -> pb::IssueCertificate {
    let not_after_unix_ms = identity
        .not_after
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    pb::IssueCertificate {
        serial: identity.serial.clone(),
        subject: identity.address.to_string(),
        component: component_type(identity.component) as i32,
        not_after_unix_ms,
        fingerprint: fingerprint(der).to_vec(),
    }
}

/// The `IssueCertificate` recording `bundle`'s leaf.
pub fn issue_command_for(bundle: &CertBundle) -> anyhow::Result<pb::IssueCertificate> {
    let der = bundle.cert_der()?;
    Ok(issue_command(&PeerIdentity::from_der(&der)?, &der))
}

fn component_type(component: Component) -> ComponentType {
    match component {
        Component::Coordinator => ComponentType::Coordinator,
        Component::Node => ComponentType::Node,
        Component::Client => ComponentType::Client,
    }
}

/// Lowercase hex, as `cert revoke` accepts and errors print serials.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
