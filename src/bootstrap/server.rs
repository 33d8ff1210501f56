//! The bootstrap endpoint: a second listener of a coordinator, server-authenticated TLS only,
//! serving the `Bootstrap` service (invite redemption) and nothing else.
//!
//! Order of a redemption: rate limit by source address; look the invite up by the blake3 hash
//! of the presented secret and compare the hashes in constant time; refuse clearly if revoked,
//! expired or used up; check the name; sign the CSR's key; record `RedeemInvite` (whose `decide`
//! checks the invite again, atomically, and issues its grants in the same entry) and then
//! `IssueCertificate`. Both go through the member's leader like any client command, submitted
//! with this coordinator's own certificate. A certificate whose redemption is refused is dropped
//! before it leaves the process.

use super::code::{SECRET_BYTES, code_hash, fingerprint, hashes_equal};
use super::limiter::{Limiter, LimiterConfig, WRONG_CODE_DELAY};
use super::sign::{self, SignError};
use crate::client::{Client, ClientError};
use crate::coordinator::Coordinator;
use crate::coordinator::bootstrap::{ADMIN_LOCAL, LEAF_VALIDITY};
use crate::pki::{CertBundle, MEMBER_CA_VALIDITY};
use crate::profile::ProfileConfig;
use collective_events::pb::{self, command_envelope::Command};
use collective_events::{FederatedAddress, InviteView};
use collective_proto::bootstrap::{RedeemInviteRequest, RedeemInviteResponse, bootstrap_server::Bootstrap};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Instant;
use tonic::{Request, Response, Status};

/// Longest name a joiner may ask for, in bytes (a DNS label).
pub const NAME_BYTES_MAX: usize = 63;
/// Largest request the bootstrap endpoint decodes, in bytes: a CSR plus a little.
pub const BOOTSTRAP_MESSAGE_BYTES_MAX: usize = 16 * 1024;
/// Local parts a user invite may not take: the admin's, and the prefix of coordinators.
const RESERVED_LOCAL: &str = ADMIN_LOCAL;
const RESERVED_PREFIX: &str = "coord-";

/// What this coordinator can sign with, loaded from its `pki/` directory at start.
pub struct Signers {
    /// `member-ca.{crt,key}`: present on the first coordinator of a member (`up`, `coordinator init`).
    pub member_ca: Option<CertBundle>,
    /// `federation-ca.{crt,key}`: the root, present only where it was made and kept.
    pub root: Option<CertBundle>,
    pub root_pem: String,
}

impl Signers {
    pub fn load(pki: &std::path::Path, root_pem: &str) -> Signers {
        Signers {
            member_ca: CertBundle::read_from(pki, "member-ca").ok(),
            root: CertBundle::read_from(pki, "federation-ca").ok(),
            root_pem: root_pem.to_string(),
        }
    }
}

pub struct BootstrapService {
    coordinator: Arc<Coordinator>,
    limiter: Limiter,
    signers: Signers,
}

impl BootstrapService {
    pub fn new(coordinator: Arc<Coordinator>, limiter: LimiterConfig, signers: Signers) -> BootstrapService {
        BootstrapService {
            coordinator,
            limiter: Limiter::new(limiter),
            signers,
        }
    }
}

#[tonic::async_trait]
impl Bootstrap for BootstrapService {
    async fn redeem_invite(
        &self,
        request: Request<RedeemInviteRequest>,
    ) -> Result<Response<RedeemInviteResponse>, Status> {
        let source = request
            .remote_addr()
            .map(|a| a.ip())
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        if let Err(throttled) = self.limiter.attempt(source, Instant::now()) {
            let retry_s = throttled.retry_after.as_secs() + 1;
            tracing::warn!(%source, retry_s, "invite attempt refused: too many attempts from this source");
            return Err(Status::resource_exhausted(format!(
                "too many invite attempts from {source}; retry in {retry_s} s"
            )));
        }
        let request = request.into_inner();
        if request.secret.len() != SECRET_BYTES {
            tracing::warn!(%source, "invite attempt with a malformed secret");
            tokio::time::sleep(WRONG_CODE_DELAY).await;
            return Err(Status::invalid_argument(format!(
                "the invite secret is {} bytes, not {SECRET_BYTES}: the code is damaged",
                request.secret.len()
            )));
        }
        let hash = code_hash(&request.secret);
        let invite = self
            .coordinator
            .store
            .with_view(|view| view.invite_by_code_hash(&hash))
            .map_err(|e| Status::internal(format!("coordinator storage failure: {e}")))?;
        // The lookup is by hash; the comparison of the hashes is constant-time all the same.
        let Some(invite) = invite.filter(|i| hashes_equal(&i.issued.code_hash, &hash)) else {
            tracing::warn!(%source, "invite attempt with an unknown code");
            tokio::time::sleep(WRONG_CODE_DELAY).await;
            return Err(Status::not_found(
                "no invite has this code (mistyped, or issued by another member)",
            ));
        };
        let id = hex(&invite.issued.invite_id);
        if let Err(status) = usable(&invite, crate::coordinator::now_unix_ms()) {
            tracing::warn!(%source, invite = %id, reason = %status.message(), "invite attempt refused");
            return Err(status);
        }
        let public_key =
            sign::csr_public_key(&request.csr_der).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let response = match invite.issued.kind() {
            pb::InviteKind::Member => {
                self.redeem_member(&invite, &request.name, &public_key, hash)
                    .await?
            }
            _ => self.redeem_user(&request.name, &public_key, hash).await?,
        };
        tracing::info!(%source, invite = %id, redeemer = %response.address, "invite redeemed");
        Ok(Response::new(response))
    }
}

impl BootstrapService {
    async fn redeem_user(
        &self,
        name: &str,
        public_key: &rcgen::PublicKey,
        hash: [u8; 32],
    ) -> Result<RedeemInviteResponse, Status> {
        let config = &self.coordinator.config;
        let address = self.user_address(name)?;
        let Some(member_ca) = &self.signers.member_ca else {
            return Err(Status::failed_precondition(
                "this coordinator holds no member CA key, so it cannot sign certificates; redeem at \
                 the bootstrap endpoint of the member's first coordinator (made by `up` or `coordinator init`)",
            ));
        };
        let signed = sign::sign_client(
            member_ca,
            &self.signers.root_pem,
            &address,
            public_key,
            LEAF_VALIDITY,
        )
        .map_err(sign_status)?;
        let events = self
            .submit(Command::RedeemInvite(pb::RedeemInvite {
                code_hash: hash.to_vec(),
                redeemer: address.clone(),
                certificate_serial: signed.serial.clone(),
            }))
            .await?;
        self.submit(Command::IssueCertificate(pb::IssueCertificate {
            serial: signed.serial.clone(),
            subject: address.clone(),
            component: pb::ComponentType::Client as i32,
            not_after_unix_ms: signed.not_after_unix_ms,
            fingerprint: fingerprint(&signed.cert_der).to_vec(),
        }))
        .await?;
        Ok(RedeemInviteResponse {
            certificate_pem: signed.cert_pem,
            chain_pem: vec![member_ca.cert_pem.clone()],
            root_ca_pem: self.signers.root_pem.clone(),
            address,
            member_domain: config.member_domain.clone(),
            federation_domain: config.federation_domain.clone(),
            coordinators: self.coordinator_endpoints(),
            grants: granted(&events),
            certificate_serial: signed.serial,
        })
    }

    async fn redeem_member(
        &self,
        invite: &InviteView,
        name: &str,
        public_key: &rcgen::PublicKey,
        hash: [u8; 32],
    ) -> Result<RedeemInviteResponse, Status> {
        let config = &self.coordinator.config;
        let label = collective_events::address::parse_label(name)
            .map_err(|e| Status::invalid_argument(format!("member name {name:?}: {e}")))?;
        // An unnamed member invite would let its holder pick any name, including an existing
        // member's, and get a second CA for it: the federation's member list is not known here,
        // so only an invite naming the member is honoured (`invite generate --member NAME`).
        if invite.issued.member.is_empty() {
            return Err(Status::failed_precondition(
                "this member invite names no member; the admin must make one for a named member \
                 (`invite generate --member NAME`)",
            ));
        }
        if invite.issued.member != label {
            return Err(Status::invalid_argument(format!(
                "this member invite is for member {:?}, not {label:?}",
                invite.issued.member
            )));
        }
        let member_domain = format!("{label}.{}", config.federation_domain);
        if member_domain == config.member_domain {
            return Err(Status::invalid_argument(format!(
                "{member_domain} is the inviting member itself"
            )));
        }
        let Some(root) = &self.signers.root else {
            return Err(Status::failed_precondition(
                "this coordinator does not hold the federation root key, so it cannot sign a member CA; \
                 member invites are redeemed at a coordinator that keeps the root key \
                 (the first coordinator of `up` or `coordinator init`, not `federation init --ca-dir`)",
            ));
        };
        let signed = sign::sign_member_ca(root, &member_domain, public_key, MEMBER_CA_VALIDITY)
            .map_err(sign_status)?;
        let events = self
            .submit(Command::RedeemInvite(pb::RedeemInvite {
                code_hash: hash.to_vec(),
                redeemer: format!("{ADMIN_LOCAL}@{member_domain}"),
                certificate_serial: signed.serial.clone(),
            }))
            .await?;
        Ok(RedeemInviteResponse {
            certificate_pem: signed.cert_pem,
            chain_pem: Vec::new(),
            root_ca_pem: self.signers.root_pem.clone(),
            address: member_domain,
            member_domain: config.member_domain.clone(),
            federation_domain: config.federation_domain.clone(),
            coordinators: self.coordinator_endpoints(),
            grants: granted(&events),
            certificate_serial: signed.serial,
        })
    }

    /// `name@<member>`, refused if reserved or already certified; a random name if none given.
    fn user_address(&self, name: &str) -> Result<String, Status> {
        let config = &self.coordinator.config;
        let name = if name.is_empty() {
            format!("user-{}", hex(&rand::random::<[u8; 4]>()))
        } else {
            name.to_string()
        };
        if name.len() > NAME_BYTES_MAX {
            return Err(Status::invalid_argument(format!(
                "the name is {} bytes, more than {NAME_BYTES_MAX}",
                name.len()
            )));
        }
        let address = FederatedAddress::parse(&format!("{name}@{}", config.member_domain))
            .ok()
            .filter(FederatedAddress::is_principal)
            .ok_or_else(|| {
                Status::invalid_argument(format!(
                    "{name:?} is not a valid name (letters, digits, '-', '_', '.')"
                ))
            })?;
        let local = address.name().unwrap_or_default().to_string();
        if local == RESERVED_LOCAL || local.starts_with(RESERVED_PREFIX) {
            return Err(Status::invalid_argument(format!(
                "the name {local:?} is reserved; choose another with --name"
            )));
        }
        let address = address.to_string();
        let store = &self.coordinator.store;
        let storage = |e: collective_projections::StoreError| {
            Status::internal(format!("coordinator storage failure: {e}"))
        };
        let taken = store
            .certificates()
            .map_err(storage)?
            .iter()
            .any(|c| c.issued.as_ref().is_some_and(|i| i.subject == address))
            || store
                .nodes()
                .map_err(storage)?
                .iter()
                .any(|n| n.joined.as_ref().is_some_and(|j| j.address == address));
        if taken {
            return Err(Status::already_exists(format!(
                "{address} is already taken; choose another name with --name"
            )));
        }
        Ok(address)
    }

    fn coordinator_endpoints(&self) -> Vec<String> {
        let mut endpoints = vec![self.coordinator.config.endpoint.clone()];
        if let Ok(records) = self.coordinator.store.coordinators() {
            for added in records.into_iter().filter_map(|r| r.added) {
                if !endpoints.contains(&added.endpoint) {
                    endpoints.push(added.endpoint);
                }
            }
        }
        endpoints
    }

    /// Submits a command as this coordinator, through whichever coordinator leads.
    async fn submit(&self, command: Command) -> Result<Vec<pb::EventEnvelope>, Status> {
        let config = &self.coordinator.config;
        let profile = ProfileConfig {
            address: config.address.clone(),
            member_domain: config.member_domain.clone(),
            federation_domain: config.federation_domain.clone(),
            coordinators: self.coordinator_endpoints(),
        };
        let mut client = Client::with_identity(
            profile,
            self.coordinator.peers.identity().clone(),
            self.signers.root_pem.clone(),
        );
        match client.submit(command).await {
            Ok(response) => Ok(response.events),
            Err(ClientError::Refused { code, message, .. }) => Err(Status::new(code, message)),
            Err(other) => Err(Status::unavailable(format!(
                "the member could not record the redemption: {other}"
            ))),
        }
    }
}

/// Refuses an invite that is revoked, expired or used up, with the reason.
fn usable(invite: &InviteView, now_unix_ms: i64) -> Result<(), Status> {
    let issued = &invite.issued;
    let id = hex(&issued.invite_id);
    if invite.revoked {
        return Err(Status::failed_precondition(format!(
            "invite {id} has been revoked"
        )));
    }
    if now_unix_ms >= issued.expires_at_unix_ms {
        return Err(Status::failed_precondition(format!(
            "invite {id} expired at {} (unix ms)",
            issued.expires_at_unix_ms
        )));
    }
    if invite.uses >= issued.max_uses {
        return Err(Status::failed_precondition(format!(
            "invite {id} has been used {} of {} times",
            invite.uses, issued.max_uses
        )));
    }
    Ok(())
}

/// The grants a redemption's entry issued.
fn granted(events: &[pb::EventEnvelope]) -> Vec<pb::GrantSpec> {
    events
        .iter()
        .filter_map(|e| match &e.event {
            Some(pb::event_envelope::Event::GrantIssued(g)) => g.grant.clone(),
            _ => None,
        })
        .collect()
}

fn sign_status(error: SignError) -> Status {
    match error {
        SignError::CsrTooLarge(_) | SignError::CsrMalformed(_) | SignError::CsrNotEd25519 => {
            Status::invalid_argument(error.to_string())
        }
        SignError::CaExpired => Status::failed_precondition(error.to_string()),
        SignError::Ca(_) | SignError::Sign(_) => {
            tracing::error!(%error, "signing for an invite failed");
            Status::internal(error.to_string())
        }
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn invite(uses: u32, max_uses: u32, expires: i64, revoked: bool) -> InviteView {
        InviteView {
            issued: pb::InviteIssued {
                invite_id: vec![0xab; 16],
                max_uses,
                expires_at_unix_ms: expires,
                ..Default::default()
            },
            uses,
            revoked,
        }
    }

    #[test]
    fn an_invite_is_usable_only_before_expiry_below_its_limit_and_unrevoked() {
        assert!(usable(&invite(0, 1, 100, false), 99).is_ok());
        let expired = usable(&invite(0, 1, 100, false), 100).unwrap_err();
        assert!(expired.message().contains("expired"));
        let used = usable(&invite(1, 1, 100, false), 0).unwrap_err();
        assert!(used.message().contains("used 1 of 1"));
        let revoked = usable(&invite(0, 1, 100, true), 0).unwrap_err();
        assert!(revoked.message().contains("revoked"));
        assert_eq!(revoked.code(), tonic::Code::FailedPrecondition);
    }
}
