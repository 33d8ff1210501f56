//! Verifying tickets: what a node runs on every chunk call, without calling anyone.
//!
//! **Signer chains are verified once.** Every ticket carries its signer's certificate chain, and
//! the few coordinators of a member sign all of them, so a node would otherwise check the same
//! two certificate signatures (webpki, to the federation root) on every chunk call, beside the
//! ticket's own. A chain that passed is kept, by its exact bytes, with the window in which both
//! of its certificates are valid and the signer's key. Each later ticket from it still gets its
//! own signature checked, the window checked against the time, and the trust store asked about
//! removals and revocations: what can change about a chain while the process runs.
//!
//! **Tickets are verified once too.** A holder presents one ticket for every chunk of a plan
//! page (256 gets of one 1 GiB read, each ticket about 10 KiB), and nothing about its signature
//! or its body can change while its bytes stay the same. A ticket whose signature passed is
//! kept, under a hash of its bytes and its signer chain, decoded and with the hashes it covers
//! in a set: a later call skips the Ed25519 check and the decoding, and finds a chunk in the
//! set instead of scanning the list. Everything that depends on the time, the caller or the
//! trust store is still checked on every call.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use prost::Message;
use ring::signature::{ED25519, UnparsedPublicKey};
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::ClientCertVerifier;

use super::{
    CLOCK_SKEW_DEFAULT, SIGNER_CHAIN_LEN, TICKET_BODY_BYTES_MAX, TICKET_LIFETIME_MAX, TICKET_VERSION, Ticket,
    TicketBody, TicketError, TicketOp,
};
use crate::chunk_hash::ChunkHash;
use crate::pki::{Component, PeerIdentity};
use crate::tls::{FederationClientVerifier, Policy, TlsError, TrustStore};
use collective_proto::chunk_limits::{HASH_BYTES, HASHES_PER_REQUEST_MAX};

/// A node's ticket verifier: the federation root, and who this node is.
#[derive(Debug, Clone)]
pub struct TicketVerifier {
    /// The TLS layer's own client verifier (webpki to the root, then the federation policy),
    /// narrowed to coordinators of this node's member: a ticket's signer passes exactly the
    /// checks a Raft peer of this member passes.
    signers: Arc<FederationClientVerifier>,
    /// The store `signers` also consults, asked again for every chain taken from `chains`.
    trust: Option<TrustStore>,
    /// Signer chains that passed `signers`; see the module's notes.
    chains: Arc<Mutex<HashMap<blake3::Hash, Arc<Signer>>>>,
    /// Tickets whose signature passed; see the module's notes.
    tickets: Arc<Mutex<KeptTickets>>,
    node: String,
    member_domain: String,
    clock_skew: Duration,
}

/// Most signer chains kept: a member has a few coordinators, each renewing now and then; a
/// full cache is emptied and refilled.
const SIGNER_CHAINS_KEPT_MAX: usize = 64;

/// Most encoded ticket bytes kept: a plan page's ticket is about 10 KiB, so a few hundred
/// tickets; a full cache is emptied and refilled.
pub(super) const TICKET_BYTES_KEPT_MAX: usize = 4 * 1024 * 1024;

/// Tickets whose signature passed, by [`ticket_key`], and the encoded bytes they hold.
#[derive(Debug, Default)]
struct KeptTickets {
    by_key: HashMap<blake3::Hash, Arc<SignedBody>>,
    bytes: usize,
}

/// A ticket body under a good signature, decoded.
#[derive(Debug)]
struct SignedBody {
    body: TicketBody,
    /// The chunks `body` names (a hash of the wrong length names none).
    hashes: HashSet<[u8; HASH_BYTES]>,
}

/// A signer chain that passed every check but the trust store's.
#[derive(Debug)]
struct Signer {
    identity: PeerIdentity,
    /// The leaf's subject public key (Ed25519).
    public_key: Vec<u8>,
    /// When both certificates of the chain are valid (inclusive, as webpki counts).
    valid_from: SystemTime,
    valid_until: SystemTime,
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
            trust: None,
            chains: Arc::default(),
            tickets: Arc::default(),
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
        verifier.trust = Some(trust.clone());
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
        let (signer, signed) = self.signed_body(ticket, now_unix_ms)?;
        let body = &signed.body;
        if body.member_domain != self.member_domain {
            return Err(TicketError::OtherMember {
                got: body.member_domain.clone(),
                expected: self.member_domain.clone(),
            });
        }
        if body.node != self.node {
            return Err(TicketError::Misdirected {
                got: body.node.clone(),
                expected: self.node.clone(),
            });
        }
        if body.holder != caller {
            return Err(TicketError::WrongHolder {
                holder: body.holder.clone(),
                caller: caller.to_owned(),
            });
        }
        self.check_times(body, now_unix_ms)?;
        let allowed = TicketOp::try_from(body.op).unwrap_or(TicketOp::Unspecified);
        let op_ok = allowed == op || (op == TicketOp::Has && allowed == TicketOp::Put);
        if !op_ok || op == TicketOp::Unspecified {
            return Err(TicketError::WrongOp {
                allowed: allowed.as_str_name().to_owned(),
                requested: op.as_str_name().to_owned(),
            });
        }
        let any_hash = allowed == TicketOp::Has && body.hashes.is_empty();
        if !any_hash && let Some(hash) = hashes.iter().find(|h| !signed.hashes.contains(h.as_bytes())) {
            return Err(TicketError::HashNotCovered(hash.to_hex()));
        }
        Ok(VerifiedTicket {
            signer,
            op: allowed,
            expires_at_unix_ms: body.expires_at_unix_ms,
            nonce: body.nonce.clone(),
        })
    }

    /// How many signer chains are kept.
    #[cfg(test)]
    pub(super) fn signer_chains_kept(&self) -> usize {
        self.chains.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// How many tickets are kept.
    #[cfg(test)]
    pub(super) fn tickets_kept(&self) -> usize {
        self.tickets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .by_key
            .len()
    }

    /// Verifies the chain to the root and that policy (or finds it verified before), then the
    /// signature (or finds this very ticket verified before); returns the signer and the body.
    fn signed_body(
        &self,
        ticket: &Ticket,
        now_unix_ms: u64,
    ) -> Result<(String, Arc<SignedBody>), TicketError> {
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
        let chain = chain_key(leaf, member_ca);
        let signer = self.signer(&chain, leaf, member_ca, now_unix_ms)?;
        let signer_address = signer.identity.address.to_string();
        let key = ticket_key(&chain, ticket);
        let kept = self
            .tickets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .by_key
            .get(&key)
            .cloned();
        if let Some(signed) = kept {
            return Ok((signer_address, signed));
        }
        UnparsedPublicKey::new(&ED25519, &signer.public_key)
            .verify(&super::signed_message(&ticket.body), &ticket.signature)
            .map_err(|_| TicketError::BadSignature)?;
        let body = decode_body(&ticket.body)?;
        let hashes = body
            .hashes
            .iter()
            .filter_map(|h| <[u8; HASH_BYTES]>::try_from(h.as_slice()).ok())
            .collect();
        let signed = Arc::new(SignedBody { body, hashes });
        let mut kept = self.tickets.lock().unwrap_or_else(|p| p.into_inner());
        if kept.bytes + ticket.body.len() > TICKET_BYTES_KEPT_MAX {
            *kept = KeptTickets::default();
        }
        kept.bytes += ticket.body.len();
        kept.by_key.insert(key, Arc::clone(&signed));
        Ok((signer_address, signed))
    }

    /// The signer of the chain `leaf`, `member_ca` (kept under `key`, see [`chain_key`]) at
    /// `now_unix_ms`: kept from an earlier check if its window covers that time and the trust
    /// store still admits it, else verified whole.
    fn signer(
        &self,
        key: &blake3::Hash,
        leaf: &[u8],
        member_ca: &[u8],
        now_unix_ms: u64,
    ) -> Result<Arc<Signer>, TicketError> {
        let now = SystemTime::UNIX_EPOCH + Duration::from_millis(now_unix_ms);
        let kept = self
            .chains
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned();
        if let Some(signer) = kept
            && (signer.valid_from..=signer.valid_until).contains(&now)
        {
            if let Some(trust) = &self.trust {
                trust
                    .check(&signer.identity, member_ca)
                    .map_err(|violation| TicketError::ChainRefused(violation.to_string()))?;
            }
            return Ok(signer);
        }
        let signer = Arc::new(self.verify_chain(leaf, member_ca, now_unix_ms)?);
        let mut chains = self.chains.lock().unwrap_or_else(|p| p.into_inner());
        if chains.len() >= SIGNER_CHAINS_KEPT_MAX {
            chains.clear();
        }
        chains.insert(*key, Arc::clone(&signer));
        Ok(signer)
    }

    /// Every check of the chain: webpki to the root, the federation policy, the trust store.
    fn verify_chain(&self, leaf: &[u8], member_ca: &[u8], now_unix_ms: u64) -> Result<Signer, TicketError> {
        let leaf_der = CertificateDer::from(leaf);
        let intermediates = [CertificateDer::from(member_ca)];
        let now = UnixTime::since_unix_epoch(Duration::from_millis(now_unix_ms));
        self.signers
            .verify_client_cert(&leaf_der, &intermediates, now)
            .map_err(|e| TicketError::ChainRefused(describe(&e)))?;
        let refused = |e: x509_parser::nom::Err<x509_parser::error::X509Error>| {
            TicketError::ChainRefused(e.to_string())
        };
        let (_, leaf_cert) = x509_parser::parse_x509_certificate(leaf).map_err(refused)?;
        let (_, ca_cert) = x509_parser::parse_x509_certificate(member_ca).map_err(refused)?;
        let identity = PeerIdentity::from_der(leaf).map_err(TicketError::Signer)?;
        let from = |cert: &x509_parser::certificate::X509Certificate<'_>| {
            SystemTime::from(cert.validity().not_before.to_datetime())
        };
        let until = |cert: &x509_parser::certificate::X509Certificate<'_>| {
            SystemTime::from(cert.validity().not_after.to_datetime())
        };
        Ok(Signer {
            public_key: leaf_cert.public_key().subject_public_key.data.to_vec(),
            valid_from: from(&leaf_cert).max(from(&ca_cert)),
            valid_until: until(&leaf_cert).min(until(&ca_cert)),
            identity,
        })
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

/// The key a signer chain is kept under: both certificates.
fn chain_key(leaf: &[u8], member_ca: &[u8]) -> blake3::Hash {
    length_prefixed_hash(&[leaf, member_ca])
}

/// The key a ticket is kept under: its signer chain's key, its signature and its body.
fn ticket_key(chain: &blake3::Hash, ticket: &Ticket) -> blake3::Hash {
    length_prefixed_hash(&[chain.as_bytes(), &ticket.signature, &ticket.body])
}

/// blake3 of `parts`, each prefixed with its length, so that no two lists of parts collide.
fn length_prefixed_hash(parts: &[&[u8]]) -> blake3::Hash {
    let mut hasher = blake3::Hasher::new();
    for part in parts {
        hasher.update(&(part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    hasher.finalize()
}

/// rustls formats certificate errors with `Debug`; unwrap our policy violation's own message.
fn describe(error: &rustls::Error) -> String {
    match error {
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other)) => other.0.to_string(),
        other => other.to_string(),
    }
}
