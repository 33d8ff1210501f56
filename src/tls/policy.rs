//! The federation policy that runs after webpki: what name constraints cannot bind.

use rustls::pki_types::CertificateDer;

use crate::pki::{CaIdentity, Component, PeerIdentity, PkiError};

/// Which peers an endpoint admits, checked after the chain to the federation root verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    allowed: Vec<Component>,
    member: Option<String>,
}

impl Policy {
    /// Admits every component of every member of the federation.
    pub fn any_component() -> Policy {
        Policy {
            allowed: Component::ALL.to_vec(),
            member: None,
        }
    }

    /// Admits only the given components, from any member.
    pub fn components(allowed: &[Component]) -> Policy {
        Policy {
            allowed: allowed.to_vec(),
            member: None,
        }
    }

    /// The Raft policy: only coordinators of `member_domain` (the endpoint's own member).
    pub fn raft(member_domain: &str) -> Policy {
        Policy::components(&[Component::Coordinator]).same_member(member_domain)
    }

    /// Narrows the policy to peers of `member_domain`.
    pub fn same_member(mut self, member_domain: &str) -> Policy {
        self.member = Some(member_domain.to_ascii_lowercase());
        self
    }

    /// Checks an identity that already passed [`check_presented_chain`].
    pub fn check(&self, peer: &PeerIdentity) -> Result<(), PolicyViolation> {
        if !self.allowed.contains(&peer.component) {
            return Err(PolicyViolation::ComponentNotAllowed {
                address: peer.address.to_string(),
                component: peer.component,
                allowed: self
                    .allowed
                    .iter()
                    .map(|c| c.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        if let Some(member) = &self.member
            && peer.member_domain != *member
        {
            return Err(PolicyViolation::OtherMember {
                address: peer.address.to_string(),
                required: member.clone(),
            });
        }
        Ok(())
    }
}

/// What a client requires of the server it dials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerExpectation {
    /// The DNS name sent as SNI and matched against the server's SAN by webpki.
    pub server_name: String,
    /// Require this exact federated address, if set.
    pub address: Option<String>,
    /// Require the server to be one of these components and, optionally, of one member.
    pub policy: Policy,
}

impl ServerExpectation {
    /// Expects the process `address` (`coord-1@alice.home.collective`) playing `component`;
    /// the server name is derived from the address as its leaf's DNS SAN.
    pub fn address(address: &str, component: Component) -> Result<ServerExpectation, PkiError> {
        let parsed = crate::pki::FederatedAddress::parse(address)?;
        Ok(ServerExpectation {
            server_name: parsed.dns_name()?,
            address: Some(parsed.to_string()),
            policy: Policy::components(&[component]).same_member(parsed.domain()),
        })
    }

    /// Expects any server certified by the federation under `server_name`, with `policy`.
    pub fn named(server_name: &str, policy: Policy) -> ServerExpectation {
        ServerExpectation {
            server_name: server_name.to_owned(),
            address: None,
            policy,
        }
    }

    /// Checks an identity that already passed [`check_presented_chain`].
    pub fn check(&self, server: &PeerIdentity) -> Result<(), PolicyViolation> {
        if let Some(expected) = &self.address
            && server.address.to_string() != *expected
        {
            return Err(PolicyViolation::UnexpectedAddress {
                got: server.address.to_string(),
                expected: expected.clone(),
            });
        }
        self.policy.check(server)
    }
}

/// Why a verified chain still does not pass the federation policy.
#[derive(Debug, thiserror::Error)]
pub enum PolicyViolation {
    #[error("leaf certificate: {0}")]
    Leaf(PkiError),
    #[error("issuing member ca: {0}")]
    IssuingCa(PkiError),
    #[error("no presented intermediate is the leaf's issuer")]
    NoIssuingCa,
    #[error("{0} presented intermediates claim to be the leaf's issuer")]
    AmbiguousIssuingCa(usize),
    #[error("the leaf's issuer is not a member ca")]
    IssuerNotMemberCa,
    #[error("certificate of federation {got} presented to federation {expected}")]
    OtherFederation { got: String, expected: String },
    #[error("address {address} is not in issuing ca member domain {ca_member}")]
    AddressOutsideIssuer { address: String, ca_member: String },
    #[error("leaf has no dns subject alternative name")]
    NoDnsName,
    #[error("dns name {name} is not in member domain {member}")]
    DnsNameOutsideMember { name: String, member: String },
    #[error("{address} is a {component}, endpoint admits only: {allowed}")]
    ComponentNotAllowed {
        address: String,
        component: Component,
        allowed: String,
    },
    #[error("{address} is not of member {required}")]
    OtherMember { address: String, required: String },
    #[error("server is {got}, expected {expected}")]
    UnexpectedAddress { got: String, expected: String },
    #[error("certificate {serial} of {address} has been revoked")]
    Revoked { address: String, serial: String },
    #[error("the member ca of {member} that issued {address} has been removed from the trust store")]
    MemberCaRemoved { address: String, member: String },
    #[error("the member ca of {member} that issued {address} is not in the trust store")]
    UnknownMemberCa { address: String, member: String },
}

/// Checks a presented chain (already verified to the root by webpki) against the federation
/// rules every endpoint shares, and returns the leaf's identity.
///
/// The issuing CA is found among `intermediates` by subject; exactly one may match, so a peer
/// cannot add a forged intermediate with the same subject and other extensions for the policy
/// to read while webpki builds its path through the genuine one.
pub fn check_presented_chain(
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    federation_domain: &str,
) -> Result<PeerIdentity, PolicyViolation> {
    check_presented_chain_with_issuer(end_entity, intermediates, federation_domain).map(|(peer, _)| peer)
}

/// [`check_presented_chain`], also returning the DER of the issuing member CA (for the trust
/// store's removal check).
pub(crate) fn check_presented_chain_with_issuer<'a>(
    end_entity: &CertificateDer<'_>,
    intermediates: &'a [CertificateDer<'a>],
    federation_domain: &str,
) -> Result<(PeerIdentity, &'a CertificateDer<'a>), PolicyViolation> {
    let peer = PeerIdentity::from_der(end_entity).map_err(PolicyViolation::Leaf)?;
    let (_, leaf) = x509_parser::parse_x509_certificate(end_entity)
        .map_err(|e| PolicyViolation::Leaf(PkiError::Malformed(e.to_string())))?;
    let issuer_name = leaf.issuer().as_raw();
    let mut issuers = Vec::new();
    for der in intermediates {
        let (_, ca) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| PolicyViolation::IssuingCa(PkiError::Malformed(e.to_string())))?;
        if ca.subject().as_raw() == issuer_name {
            issuers.push(der);
        }
    }
    let (issuing, issuing_der) = match issuers.as_slice() {
        [] => return Err(PolicyViolation::NoIssuingCa),
        [one] => (
            CaIdentity::from_der(one).map_err(PolicyViolation::IssuingCa)?,
            *one,
        ),
        many => return Err(PolicyViolation::AmbiguousIssuingCa(many.len())),
    };
    let ca_member = issuing.member_domain.ok_or(PolicyViolation::IssuerNotMemberCa)?;
    for got in [&peer.federation_domain, &issuing.federation_domain] {
        if got != federation_domain {
            return Err(PolicyViolation::OtherFederation {
                got: got.clone(),
                expected: federation_domain.to_owned(),
            });
        }
    }
    // PeerIdentity::from_der already tied the address domain to the leaf's own member domain.
    if peer.member_domain != ca_member || peer.address.domain() != ca_member {
        return Err(PolicyViolation::AddressOutsideIssuer {
            address: peer.address.to_string(),
            ca_member,
        });
    }
    if peer.dns_names.is_empty() {
        return Err(PolicyViolation::NoDnsName);
    }
    for name in &peer.dns_names {
        if !crate::pki::is_within_domain(name, &ca_member) {
            return Err(PolicyViolation::DnsNameOutsideMember {
                name: name.clone(),
                member: ca_member,
            });
        }
    }
    Ok((peer, issuing_der))
}

/// A rustls error carrying a policy violation, so the reason reaches the handshake's error.
pub(crate) fn rustls_error(violation: PolicyViolation) -> rustls::Error {
    rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
        std::sync::Arc::new(violation),
    )))
}

/// A rustls error for a trust-store refusal. A revoked leaf gets rustls' own `Revoked`, so the
/// peer receives the `certificate_revoked` alert and can say so; the details (address, serial)
/// are logged here, on the side that knows them.
pub(crate) fn revocation_error(violation: PolicyViolation) -> rustls::Error {
    match violation {
        PolicyViolation::Revoked { .. } => {
            tracing::info!(reason = %violation, "refused a revoked certificate");
            rustls::Error::InvalidCertificate(rustls::CertificateError::Revoked)
        }
        other => rustls_error(other),
    }
}

/// A readable reason for a failed handshake: rustls prints the certificate error with `Debug`,
/// which would bury a policy violation's message in struct syntax.
pub(crate) fn describe_handshake_error(error: &std::io::Error) -> String {
    let Some(rustls_error) = error.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) else {
        return error.to_string();
    };
    describe_rustls_error(rustls_error)
}

/// A readable rustls error: a policy violation carried in `Other` by its message.
pub(crate) fn describe_rustls_error(rustls_error: &rustls::Error) -> String {
    match rustls_error {
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other)) => {
            format!("invalid peer certificate: {}", other.0)
        }
        other => other.to_string(),
    }
}
