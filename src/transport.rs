//! How this crate's gRPC endpoints use the TLS layer: who a caller is, how a coordinator dials its
//! peers, and how a client dials a member's coordinators.
//!
//! Clients dial a `host:port` without knowing which coordinator listens there, so every
//! coordinator certificate also carries the DNS name `coordinators.<member domain>`, and clients
//! verify against that name and the policy "a coordinator of this member".

use crate::pki::{CertBundle, Component, PeerIdentity};
use crate::tls::{self, Policy, ServerExpectation};
use anyhow::Context;
use collective_events::pb::ComponentType;
use collective_raft::CoordinatorNode;
use rustls::pki_types::{CertificateDer, pem::PemObject};
use tonic::transport::Channel;

/// The DNS name every coordinator of `member_domain` answers to.
pub fn coordinators_dns_name(member_domain: &str) -> String {
    format!("coordinators.{member_domain}")
}

/// What a dial to a coordinator of `member_domain` whose address is not known in advance
/// accepts: a coordinator certificate of that member, answering to `coordinators.<member>`.
pub(crate) fn any_coordinator_of(member_domain: &str) -> ServerExpectation {
    ServerExpectation::named(
        &coordinators_dns_name(member_domain),
        Policy::components(&[Component::Coordinator]).same_member(member_domain),
    )
}

/// The verified identity of the caller of an RPC.
#[derive(Debug, Clone)]
pub struct Caller {
    pub address: String,
    pub member_domain: String,
    pub component: ComponentType,
}

/// Reads the caller's identity from its verified TLS certificate.
pub fn caller<T>(request: &tonic::Request<T>) -> Result<Caller, tonic::Status> {
    Ok(caller_of(tls::peer_identity(request)?))
}

fn caller_of(identity: PeerIdentity) -> Caller {
    let component = match identity.component {
        Component::Coordinator => ComponentType::Coordinator,
        Component::Node => ComponentType::Node,
        Component::Client => ComponentType::Client,
    };
    Caller {
        address: identity.address.to_string(),
        member_domain: identity.member_domain,
        component,
    }
}

/// The caller's identity, refused with `PERMISSION_DENIED` unless it belongs to `member_domain`.
pub fn member_caller<T>(request: &tonic::Request<T>, member_domain: &str) -> Result<Caller, tonic::Status> {
    in_member(caller(request)?, member_domain)
}

fn in_member(caller: Caller, member_domain: &str) -> Result<Caller, tonic::Status> {
    if !caller.member_domain.eq_ignore_ascii_case(member_domain) {
        return Err(tonic::Status::permission_denied(format!(
            "{} belongs to member {}, not to {member_domain}",
            caller.address, caller.member_domain
        )));
    }
    Ok(caller)
}

/// Metadata key with which a coordinator passing a request on to its leader names whom it acts
/// for: the leaf certificate (DER) that caller presented to it.
pub const ON_BEHALF_OF_KEY: &str = "on-behalf-of-bin";

/// Whom a request acts for: its caller, or, when the caller is a coordinator passing on someone
/// else's request (a follower forwarding to its leader for a client that cannot reach the
/// leader), the one named under [`ON_BEHALF_OF_KEY`]. The coordinator checked that one's chain,
/// validity and revocation in its own handshake. Only a coordinator may act for another, and
/// only for someone of its own member; anyone else's claim is refused.
pub fn acting_caller<T>(request: &tonic::Request<T>) -> Result<Caller, tonic::Status> {
    let caller = caller(request)?;
    let Some(leaf) = passed_on_leaf(request)? else {
        return Ok(caller);
    };
    if caller.component != ComponentType::Coordinator {
        return Err(tonic::Status::permission_denied(format!(
            "{} may not act for someone else: only a coordinator passes requests on",
            caller.address
        )));
    }
    let identity = PeerIdentity::from_der(&leaf).map_err(|error| {
        tonic::Status::unauthenticated(format!("the certificate a request was passed on for: {error}"))
    })?;
    in_member(caller_of(identity), &caller.member_domain)
}

/// [`acting_caller`], refused with `PERMISSION_DENIED` unless it belongs to `member_domain`.
pub fn acting_member_caller<T>(
    request: &tonic::Request<T>,
    member_domain: &str,
) -> Result<Caller, tonic::Status> {
    in_member(acting_caller(request)?, member_domain)
}

/// The leaf certificate a coordinator named under [`ON_BEHALF_OF_KEY`], if any (not checked:
/// see [`acting_caller`]).
pub fn passed_on_leaf<T>(request: &tonic::Request<T>) -> Result<Option<Vec<u8>>, tonic::Status> {
    request
        .metadata()
        .get_bin(ON_BEHALF_OF_KEY)
        .map(|value| {
            value.to_bytes().map(|bytes| bytes.to_vec()).map_err(|_| {
                tonic::Status::invalid_argument(format!("{ON_BEHALF_OF_KEY} is not valid base64"))
            })
        })
        .transpose()
}

pub fn root_der(root_pem: &str) -> anyhow::Result<CertificateDer<'static>> {
    CertificateDer::from_pem_slice(root_pem.as_bytes())
        .context("the federation root certificate is not valid PEM")
}

/// What a coordinator needs to dial its peers: its own certificate (replaced by renewals) and
/// the federation root, with the trust store its peers' certificates are checked against.
pub struct PeerContext {
    identity: tls::IdentityHandle,
    root: CertificateDer<'static>,
    trust: Option<tls::TrustStore>,
}

impl PeerContext {
    pub fn new(identity: CertBundle, root_pem: &str) -> anyhow::Result<PeerContext> {
        Ok(PeerContext {
            identity: tls::IdentityHandle::new(identity)?,
            root: root_der(root_pem)?,
            trust: None,
        })
    }

    /// A context whose identity follows `identity` (renewals) and whose dials check `trust`.
    pub fn with_identity(
        identity: tls::IdentityHandle,
        root_pem: &str,
        trust: tls::TrustStore,
    ) -> anyhow::Result<PeerContext> {
        Ok(PeerContext {
            identity,
            root: root_der(root_pem)?,
            trust: Some(trust),
        })
    }

    /// This process's certificate bundle in force now (a coordinator signs tickets with it).
    pub fn identity(&self) -> CertBundle {
        self.identity.bundle()
    }

    /// The handle renewals replace the certificate through.
    pub fn identity_handle(&self) -> &tls::IdentityHandle {
        &self.identity
    }

    /// The federation root every peer's chain must reach.
    pub fn root(&self) -> &CertificateDer<'static> {
        &self.root
    }

    /// A lazily connected channel to `node`, which must present the certificate of exactly the
    /// coordinator named in the membership. Every redial presents this process's current leaf.
    pub async fn connect_peer(&self, node: &CoordinatorNode) -> anyhow::Result<Channel> {
        let expect = ServerExpectation::address(&node.address, Component::Coordinator)?;
        let server_name = tls::expected_server_name(&expect)?;
        let config =
            tls::client_config_with_identity(&self.identity, &self.root, expect, self.trust.as_ref())?;
        Ok(tls::connect_lazy_with_config(
            &node.endpoint,
            config,
            server_name,
        )?)
    }

    /// A lazily connected channel to `endpoint`, which must present the certificate of a
    /// coordinator of `member_domain` (any member of the federation, this one included).
    pub fn connect_member_coordinator(&self, endpoint: &str, member_domain: &str) -> anyhow::Result<Channel> {
        let expect = any_coordinator_of(member_domain);
        let server_name = tls::expected_server_name(&expect)?;
        let config =
            tls::client_config_with_identity(&self.identity, &self.root, expect, self.trust.as_ref())?;
        Ok(tls::connect_lazy_with_config(endpoint, config, server_name)?)
    }
}

/// Checks that `identity` chains to the federation root `root_pem`, with the verifier every
/// server runs. Under TLS 1.3 a server refuses a client certificate only after the client has
/// finished its handshake, and the refusal then reaches the caller as a bare "connection
/// closed"; checking first gives the user the actual reason.
pub fn verify_own_identity(identity: &CertBundle, root_pem: &str) -> anyhow::Result<()> {
    use rustls::server::danger::ClientCertVerifier;
    let verifier =
        tls::FederationClientVerifier::builder(&root_der(root_pem)?, Policy::any_component()).build()?;
    let chain = identity.presented_chain_der()?;
    let (leaf, intermediates) = chain
        .split_first()
        .context("the client certificate file is empty")?;
    verifier
        .verify_client_cert(leaf, intermediates, rustls::pki_types::UnixTime::now())
        .map_err(|error| {
            anyhow::anyhow!("this profile's certificate is not valid in the federation: {error}")
        })?;
    Ok(())
}

/// Connects a client to a coordinator of `member_domain` at `endpoint`.
pub async fn connect_coordinator(
    endpoint: &str,
    identity: &CertBundle,
    root_pem: &str,
    member_domain: &str,
) -> anyhow::Result<Channel> {
    let expect = any_coordinator_of(member_domain);
    Ok(tls::connect(endpoint, identity, &root_der(root_pem)?, expect).await?)
}
