//! Verifying tickets: what a node runs on every chunk call, without calling anyone.

use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use ring::signature::{ED25519, UnparsedPublicKey};
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::ClientCertVerifier;

use super::{
    CLOCK_SKEW_DEFAULT, SIGNER_CHAIN_LEN, TICKET_BODY_BYTES_MAX, TICKET_LIFETIME_MAX, TICKET_VERSION, Ticket,
    TicketBody, TicketError, TicketOp,
};
use crate::chunk_hash::ChunkHash;
use crate::pki::Component;
use crate::tls::{FederationClientVerifier, Policy, TlsError, TrustStore};
use collective_proto::chunk_limits::HASHES_PER_REQUEST_MAX;

/// A node's ticket verifier: the federation root, and who this node is.
#[derive(Debug, Clone)]
pub struct TicketVerifier {
    /// The TLS layer's own client verifier (webpki to the root, then the federation policy),
    /// narrowed to coordinators of this node's member: a ticket's signer passes exactly the
    /// checks a Raft peer of this member passes.
    signers: Arc<FederationClientVerifier>,
    node: String,
    member_domain: String,
    clock_skew: Duration,
}

/// A ticket that passed every check, for logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedTicket {
    pub signer: String,
    pub op: TicketOp,
    pub expires_at_unix_ms: u64,
    pub nonce: Vec<u8>,
}

impl TicketVerifier {
    /// A verifier for node `node` (`node-1@alice.home.collective`), trusting `root_der`.
    pub fn new(root_der: &CertificateDer<'_>, node: &str) -> Result<TicketVerifier, TlsError> {
        let node = crate::pki::FederatedAddress::parse(node)?;
        let member_domain = node.domain().to_owned();
        let policy = Policy::components(&[Component::Coordinator]).same_member(&member_domain);
        Ok(TicketVerifier {
            signers: FederationClientVerifier::builder(root_der, policy).build()?,
            node: node.to_string(),
            member_domain,
            clock_skew: CLOCK_SKEW_DEFAULT,
        })
    }

    /// Like [`TicketVerifier::new`], with signers also checked against the process's trust store:
    /// a ticket signed by a revoked coordinator certificate (or under a removed member CA) is
    /// refused from the moment the store learns of it, not when the ticket expires.
    pub fn with_trust_store(trust: &TrustStore, node: &str) -> Result<TicketVerifier, TlsError> {
        let mut verifier = TicketVerifier::new(trust.root_der(), node)?;
        let policy = Policy::components(&[Component::Coordinator]).same_member(&verifier.member_domain);
        verifier.signers = FederationClientVerifier::builder(trust.root_der(), policy)
            .with_trust_store(trust.clone())
            .build()?;
        Ok(verifier)
    }

    /// Replaces the tolerated clock difference between coordinators and this node.
    pub fn with_clock_skew(mut self, skew: Duration) -> TicketVerifier {
        self.clock_skew = skew;
        self
    }

    /// The node this verifier admits tickets for.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Checks that `ticket` lets `caller` (its mTLS address) run `op` on every one of `hashes`
    /// at this node at `now_unix_ms`.
    ///
    /// A Has call accepts a HAS ticket (with no hashes: any chunk) or a PUT ticket covering the
    /// hashes, so a writer can ask which of its chunks are already stored before uploading.
    pub fn verify(
        &self,
        ticket: &Ticket,
        op: TicketOp,
        caller: &str,
        hashes: &[ChunkHash],
        now_unix_ms: u64,
    ) -> Result<VerifiedTicket, TicketError> {
        let signer = self.verify_signer(ticket, now_unix_ms)?;
        let body = decode_body(&ticket.body)?;
        if body.member_domain != self.member_domain {
            return Err(TicketError::OtherMember {
                got: body.member_domain,
                expected: self.member_domain.clone(),
            });
        }
        if body.node != self.node {
            return Err(TicketError::Misdirected {
                got: body.node,
                expected: self.node.clone(),
            });
        }
        if body.holder != caller {
            return Err(TicketError::WrongHolder {
                holder: body.holder,
                caller: caller.to_owned(),
            });
        }
        self.check_times(&body, now_unix_ms)?;
        let allowed = TicketOp::try_from(body.op).unwrap_or(TicketOp::Unspecified);
        let op_ok = allowed == op || (op == TicketOp::Has && allowed == TicketOp::Put);
        if !op_ok || op == TicketOp::Unspecified {
            return Err(TicketError::WrongOp {
                allowed: allowed.as_str_name().to_owned(),
                requested: op.as_str_name().to_owned(),
            });
        }
        let any_hash = allowed == TicketOp::Has && body.hashes.is_empty();
        if !any_hash {
            for hash in hashes {
                if !body.hashes.iter().any(|h| h.as_slice() == hash.as_bytes()) {
                    return Err(TicketError::HashNotCovered(hash.to_hex()));
                }
            }
        }
        Ok(VerifiedTicket {
            signer,
            op: allowed,
            expires_at_unix_ms: body.expires_at_unix_ms,
            nonce: body.nonce,
        })
    }

    /// Verifies the chain to the root and that policy, then the signature; returns the signer.
    fn verify_signer(&self, ticket: &Ticket, now_unix_ms: u64) -> Result<String, TicketError> {
        let [leaf, member_ca] = ticket.signer_chain_der.as_slice() else {
            return Err(TicketError::ChainLength {
                got: ticket.signer_chain_der.len(),
                expected: SIGNER_CHAIN_LEN,
            });
        };
        if ticket.body.len() > TICKET_BODY_BYTES_MAX {
            return Err(TicketError::Malformed(format!(
                "body of {} bytes exceeds {TICKET_BODY_BYTES_MAX}",
                ticket.body.len()
            )));
        }
        let leaf = CertificateDer::from(leaf.as_slice());
        let intermediates = [CertificateDer::from(member_ca.as_slice())];
        let now = UnixTime::since_unix_epoch(Duration::from_millis(now_unix_ms));
        self.signers
            .verify_client_cert(&leaf, &intermediates, now)
            .map_err(|e| TicketError::ChainRefused(describe(&e)))?;
        let (_, cert) = x509_parser::parse_x509_certificate(&leaf)
            .map_err(|e| TicketError::ChainRefused(e.to_string()))?;
        let public_key = UnparsedPublicKey::new(&ED25519, cert.public_key().subject_public_key.data.as_ref());
        public_key
            .verify(&super::signed_message(&ticket.body), &ticket.signature)
            .map_err(|_| TicketError::BadSignature)?;
        let identity = crate::pki::PeerIdentity::from_der(&leaf).map_err(TicketError::Signer)?;
        Ok(identity.address.to_string())
    }

    fn check_times(&self, body: &TicketBody, now_unix_ms: u64) -> Result<(), TicketError> {
        let skew_ms = u64::try_from(self.clock_skew.as_millis()).unwrap_or(u64::MAX);
        let max_ms = u64::try_from(TICKET_LIFETIME_MAX.as_millis()).unwrap_or(u64::MAX);
        let lifetime_ms = body.expires_at_unix_ms.saturating_sub(body.issued_at_unix_ms);
        if body.expires_at_unix_ms <= body.issued_at_unix_ms || lifetime_ms > max_ms {
            return Err(TicketError::BadLifetime { lifetime_ms, max_ms });
        }
        if now_unix_ms.saturating_add(skew_ms) < body.issued_at_unix_ms {
            return Err(TicketError::NotYetValid {
                issued_at_unix_ms: body.issued_at_unix_ms,
                now_unix_ms,
                skew_ms,
            });
        }
        if now_unix_ms > body.expires_at_unix_ms.saturating_add(skew_ms) {
            return Err(TicketError::Expired {
                expires_at_unix_ms: body.expires_at_unix_ms,
                now_unix_ms,
                skew_ms,
            });
        }
        Ok(())
    }
}

fn decode_body(bytes: &[u8]) -> Result<TicketBody, TicketError> {
    let body = TicketBody::decode(bytes).map_err(|e| TicketError::Malformed(e.to_string()))?;
    if body.version != TICKET_VERSION {
        return Err(TicketError::UnsupportedVersion {
            got: body.version,
            expected: TICKET_VERSION,
        });
    }
    if body.hashes.len() > HASHES_PER_REQUEST_MAX {
        return Err(TicketError::TooManyHashes {
            got: body.hashes.len(),
            max: HASHES_PER_REQUEST_MAX,
        });
    }
    Ok(body)
}

/// rustls formats certificate errors with `Debug`; unwrap our policy violation's own message.
fn describe(error: &rustls::Error) -> String {
    match error {
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other)) => other.0.to_string(),
        other => other.to_string(),
    }
}
