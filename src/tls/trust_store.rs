//! The runtime trust store: the federation root, the member CAs known or removed, and the
//! revoked leaves, changed while listeners run and consulted by every handshake.
//!
//! webpki verifies signatures and validity against the root, which never changes while a
//! process runs. What does change — a member CA removed from the federation, a leaf revoked in a
//! member's log — lives here, behind a lock that verifiers read on each handshake, so a change
//! takes effect at the next handshake without rebuilding any TLS configuration.
//!
//! Revocation is a deny-list of serial numbers per member domain rather than CRLs: a CRL must be
//! signed with the member CA key, which only the coordinator that founded the member holds, while
//! every coordinator applies the member's log and every node trusts its coordinators. A signed
//! CRL would add value where the distributor is not trusted (revocations gossiped to other
//! members); the verifier builders keep their CRL support for that.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::ClientCertVerifier;

use super::policy::{PolicyViolation, describe_rustls_error};
use super::{FederationClientVerifier, Policy, TlsError};
use crate::pki::{CaIdentity, FINGERPRINT_BYTES, PeerIdentity, PkiError, fingerprint};

type Fingerprint = [u8; FINGERPRINT_BYTES];

/// A shared, mutable trust store; clones share one state.
#[derive(Clone)]
pub struct TrustStore {
    root: CertificateDer<'static>,
    federation_domain: String,
    state: Arc<RwLock<TrustState>>,
}

#[derive(Debug, Default)]
struct TrustState {
    /// Member CAs added by [`TrustStore::add_member_ca`], by fingerprint.
    known: BTreeMap<Fingerprint, CaIdentity>,
    /// Member CAs removed: their leaves are refused even though the root signed them.
    removed: BTreeMap<Fingerprint, String>,
    /// Members removed from the federation (signed removals): every CA of theirs is refused.
    removed_members: BTreeSet<String>,
    /// Refuse member CAs that were never added (closed federation); off by default, where any
    /// member CA the root signed is accepted unless removed.
    require_known: bool,
    /// Revoked leaf serials per issuing member domain.
    revoked: BTreeMap<String, BTreeSet<Vec<u8>>>,
}

impl std::fmt::Debug for TrustStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.read();
        f.debug_struct("TrustStore")
            .field("federation_domain", &self.federation_domain)
            .field("known_member_cas", &state.known.len())
            .field("removed_member_cas", &state.removed.len())
            .field(
                "revoked",
                &state.revoked.values().map(BTreeSet::len).sum::<usize>(),
            )
            .finish()
    }
}

impl TrustStore {
    /// A store trusting the federation root `root_der`, with no member CA removed and nothing
    /// revoked.
    pub fn new(root_der: &CertificateDer<'_>) -> Result<TrustStore, TlsError> {
        let root = CaIdentity::from_der(root_der)?;
        if root.member_domain.is_some() {
            return Err(PkiError::Malformed("a member ca is not a federation root".into()).into());
        }
        Ok(TrustStore {
            root: root_der.clone().into_owned(),
            federation_domain: root.federation_domain,
            state: Arc::new(RwLock::new(TrustState::default())),
        })
    }

    pub fn root_der(&self) -> &CertificateDer<'static> {
        &self.root
    }

    pub fn federation_domain(&self) -> &str {
        &self.federation_domain
    }

    /// Adds (or re-admits, after a removal) a member CA of this federation.
    pub fn add_member_ca(&self, ca_der: &CertificateDer<'_>) -> Result<CaIdentity, TlsError> {
        let ca = CaIdentity::from_der(ca_der)?;
        if ca.member_domain.is_none() {
            return Err(PkiError::Malformed("a federation root is not a member ca".into()).into());
        }
        if ca.federation_domain != self.federation_domain {
            return Err(TlsError::Policy(PolicyViolation::OtherFederation {
                got: ca.federation_domain,
                expected: self.federation_domain.clone(),
            }));
        }
        let print = fingerprint(ca_der);
        let mut state = self.write();
        state.removed.remove(&print);
        state.known.insert(print, ca.clone());
        Ok(ca)
    }

    /// Removes every member CA of `member_domain` (known ones, and `also` if given): their leaves
    /// are refused from the next handshake and the next request on. Returns how many CAs the
    /// removal covers.
    pub fn remove_member_ca(&self, member_domain: &str, also: Option<&CertificateDer<'_>>) -> usize {
        let member = member_domain.to_ascii_lowercase();
        let mut state = self.write();
        let prints: Vec<Fingerprint> = state
            .known
            .iter()
            .filter(|(_, ca)| ca.member_domain.as_deref() == Some(member.as_str()))
            .map(|(print, _)| *print)
            .chain(also.map(|der| fingerprint(der)))
            .collect();
        for print in &prints {
            state.known.remove(print);
            state.removed.insert(*print, member.clone());
        }
        state.removed.values().filter(|m| **m == member).count()
    }

    /// Removes the member `member_domain` from the federation: leaves of any CA of that member
    /// domain, known or not, are refused from the next handshake and request on. Returns
    /// whether the member was not removed already.
    pub fn remove_member(&self, member_domain: &str) -> bool {
        self.write()
            .removed_members
            .insert(member_domain.to_ascii_lowercase())
    }

    /// Whether `member_domain` was removed with [`TrustStore::remove_member`].
    pub fn member_removed(&self, member_domain: &str) -> bool {
        self.read()
            .removed_members
            .contains(&member_domain.to_ascii_lowercase())
    }

    /// Admits only member CAs added with [`TrustStore::add_member_ca`] (`true`), or every member
    /// CA the root signed unless removed (`false`, the default).
    pub fn require_known_member_cas(&self, required: bool) {
        self.write().require_known = required;
    }

    /// The member CAs added, by member domain.
    pub fn member_cas(&self) -> Vec<CaIdentity> {
        self.read().known.values().cloned().collect()
    }

    /// Revokes one leaf of `member_domain`'s CA.
    pub fn revoke(&self, member_domain: &str, serial: &[u8]) {
        self.write()
            .revoked
            .entry(member_domain.to_ascii_lowercase())
            .or_default()
            .insert(serial.to_vec());
    }

    /// Replaces the revoked serials of `member_domain` with `serials` (the member's whole list,
    /// as its log records it). Returns whether anything changed.
    pub fn set_revoked(&self, member_domain: &str, serials: BTreeSet<Vec<u8>>) -> bool {
        let member = member_domain.to_ascii_lowercase();
        let mut state = self.write();
        let current = state.revoked.entry(member).or_default();
        if *current == serials {
            return false;
        }
        *current = serials;
        true
    }

    /// The revoked serials of `member_domain`.
    pub fn revoked(&self, member_domain: &str) -> BTreeSet<Vec<u8>> {
        self.read()
            .revoked
            .get(&member_domain.to_ascii_lowercase())
            .cloned()
            .unwrap_or_default()
    }

    /// Checks a leaf already verified to the root (and its issuing CA) against the removals
    /// and revocations in force now.
    pub fn check(&self, leaf: &PeerIdentity, issuing_ca_der: &[u8]) -> Result<(), PolicyViolation> {
        let state = self.read();
        let print = fingerprint(issuing_ca_der);
        let removed = state
            .removed
            .get(&print)
            .or_else(|| state.removed_members.get(&leaf.member_domain));
        if let Some(member) = removed {
            return Err(PolicyViolation::MemberCaRemoved {
                address: leaf.address.to_string(),
                member: member.clone(),
            });
        }
        if state.require_known && !state.known.contains_key(&print) {
            return Err(PolicyViolation::UnknownMemberCa {
                address: leaf.address.to_string(),
                member: leaf.member_domain.clone(),
            });
        }
        let revoked = state
            .revoked
            .get(&leaf.member_domain)
            .is_some_and(|serials| serials.contains(&leaf.serial));
        if revoked {
            return Err(PolicyViolation::Revoked {
                address: leaf.address.to_string(),
                serial: leaf.serial_hex(),
            });
        }
        Ok(())
    }

    /// Validates a presented chain (leaf first, then its member CA) as a listener admitting any
    /// component would, at `now`: chain to the root, federation policy, then this store.
    pub fn validate(&self, chain: &[CertificateDer<'_>], now: UnixTime) -> Result<PeerIdentity, TlsError> {
        let (leaf, intermediates) = chain
            .split_first()
            .ok_or_else(|| PkiError::Malformed("empty certificate chain".into()))?;
        let verifier = FederationClientVerifier::builder(&self.root, Policy::any_component())
            .with_trust_store(self.clone())
            .build()?;
        verifier
            .verify_client_cert(leaf, intermediates, now)
            .map_err(|error| TlsError::Refused(describe_rustls_error(&error)))?;
        Ok(PeerIdentity::from_der(leaf)?)
    }

    fn read(&self) -> RwLockReadGuard<'_, TrustState> {
        // A writer that panicked left whole collections behind (each write is one insert or
        // replace); keep serving from them rather than failing every handshake.
        self.state.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, TrustState> {
        self.state
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
