//! Issuing tickets: what a coordinator runs once the member's rules allowed an operation.

use std::time::Duration;

use prost::Message;
use rand::RngCore;
use ring::signature::{Ed25519KeyPair, KeyPair};

use super::{NONCE_BYTES, TICKET_LIFETIME_MAX, TICKET_VERSION, Ticket, TicketBody, TicketError, TicketOp};
use crate::chunk_hash::ChunkHash;
use crate::pki::{CertBundle, Component};

/// What a ticket allows, as the coordinator decided it.
#[derive(Debug, Clone)]
pub struct TicketGrant<'a> {
    pub op: TicketOp,
    /// The chunks covered; for [`TicketOp::Has`], empty means every chunk.
    pub hashes: &'a [ChunkHash],
    /// Federated address of the caller that will present the ticket.
    pub holder: &'a str,
    /// Federated address of the node that will accept it.
    pub node: &'a str,
    /// The coordinator's clock, passed in so issuing stays testable.
    pub issued_at_unix_ms: u64,
    /// At most [`TICKET_LIFETIME_MAX`].
    pub lifetime: Duration,
}

/// Signs a ticket for `grant` with the key of `signer`, a coordinator's certificate bundle (its
/// leaf and member CA travel in the ticket, so the node can verify it alone).
pub fn issue(signer: &CertBundle, grant: &TicketGrant<'_>) -> Result<Ticket, TicketError> {
    let identity = signer.identity()?;
    if identity.component != Component::Coordinator {
        return Err(TicketError::SignerNotCoordinator {
            address: identity.address.to_string(),
            component: identity.component.to_string(),
        });
    }
    let lifetime_ms = u64::try_from(grant.lifetime.as_millis()).unwrap_or(u64::MAX);
    if lifetime_ms == 0 || grant.lifetime > TICKET_LIFETIME_MAX {
        return Err(TicketError::BadLifetime {
            lifetime_ms,
            max_ms: TICKET_LIFETIME_MAX.as_millis() as u64,
        });
    }
    let mut nonce = vec![0u8; NONCE_BYTES];
    rand::rng().fill_bytes(&mut nonce);
    let body = TicketBody {
        version: TICKET_VERSION,
        op: grant.op as i32,
        hashes: grant.hashes.iter().map(|h| h.as_bytes().to_vec()).collect(),
        holder: grant.holder.to_owned(),
        node: grant.node.to_owned(),
        member_domain: identity.member_domain,
        issued_at_unix_ms: grant.issued_at_unix_ms,
        expires_at_unix_ms: grant.issued_at_unix_ms.saturating_add(lifetime_ms),
        nonce,
    };
    sign_body(signer, &body)
}

/// Signs an arbitrary body with `signer`'s key, attaching its chain. [`issue`] is the normal
/// way; this one exists so tests can sign bodies that `issue` would never produce.
pub fn sign_body(signer: &CertBundle, body: &TicketBody) -> Result<Ticket, TicketError> {
    let key_der = signer.private_key_der()?;
    // rcgen writes PKCS#8 v2 (with the public key) for Ed25519; "maybe unchecked" also takes v1,
    // and the comparison with the certificate below is the check that matters.
    let key = Ed25519KeyPair::from_pkcs8_maybe_unchecked(key_der.secret_der())
        .map_err(|_| TicketError::SignerKeyMismatch)?;
    let cert = signer.cert_der()?;
    let (_, parsed) =
        x509_parser::parse_x509_certificate(&cert).map_err(|e| TicketError::ChainRefused(e.to_string()))?;
    if parsed.public_key().subject_public_key.data.as_ref() != key.public_key().as_ref() {
        return Err(TicketError::SignerKeyMismatch);
    }
    let body_bytes = body.encode_to_vec();
    let signature = key.sign(&super::signed_message(&body_bytes));
    let mut chain = vec![cert.to_vec()];
    chain.extend(signer.chain_der()?.into_iter().map(|c| c.to_vec()));
    Ok(Ticket {
        body: body_bytes,
        signature: signature.as_ref().to_vec(),
        signer_chain_der: chain,
    })
}
