//! A process's own certificate, replaceable while it serves and dials: the renewed leaf applies
//! to the next handshake in both directions, established connections keep the old one.

use std::sync::{Arc, RwLock};

use rustls::client::ResolvesClientCert;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{SignatureScheme, crypto::ring::sign::any_supported_type};

use super::TlsError;
use crate::pki::{CertBundle, Component, PeerIdentity, PkiError};

/// Live identities of this process, by address and component (see
/// [`IdentityHandle::register_live`]); a handful at most (a coordinator, a node).
static LIVE: RwLock<Vec<(String, Component, IdentityHandle)>> = RwLock::new(Vec::new());

/// The current certificate bundle of a process; clones share it.
#[derive(Clone)]
pub struct IdentityHandle {
    current: Arc<RwLock<Current>>,
}

struct Current {
    bundle: CertBundle,
    identity: PeerIdentity,
    certified: Arc<CertifiedKey>,
}

impl std::fmt::Debug for IdentityHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let current = self.read();
        f.debug_struct("IdentityHandle")
            .field("address", &current.identity.address.to_string())
            .field("serial", &current.identity.serial_hex())
            .finish()
    }
}

impl IdentityHandle {
    /// A handle on `bundle`, a leaf with its key and member CA.
    pub fn new(bundle: CertBundle) -> Result<IdentityHandle, TlsError> {
        Ok(IdentityHandle {
            current: Arc::new(RwLock::new(Current::load(bundle)?)),
        })
    }

    /// The bundle in force now.
    pub fn bundle(&self) -> CertBundle {
        self.read().bundle.clone()
    }

    /// The identity of the leaf in force now.
    pub fn identity(&self) -> PeerIdentity {
        self.read().identity.clone()
    }

    /// Puts `bundle` in force for the next handshakes. It must be a leaf for the same address
    /// and component: a renewal, never a change of who this process is.
    pub fn replace(&self, bundle: CertBundle) -> Result<(), TlsError> {
        let next = Current::load(bundle)?;
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        if next.identity.address != current.identity.address
            || next.identity.component != current.identity.component
        {
            return Err(PkiError::Malformed(format!(
                "a renewal of {} ({}) may not become {} ({})",
                current.identity.address,
                current.identity.component,
                next.identity.address,
                next.identity.component
            ))
            .into());
        }
        *current = next;
        Ok(())
    }

    /// Makes this the live identity of its address in this process: client configurations
    /// later built from any static bundle of the same address and component (by code that
    /// took a snapshot of the certificate at start, such as a connection pool) present this
    /// handle's current leaf instead, so their redials survive renewals.
    pub fn register_live(&self) {
        let identity = self.identity();
        let mut live = LIVE.write().unwrap_or_else(|p| p.into_inner());
        live.retain(|(address, component, _)| {
            !(*address == identity.address.to_string() && *component == identity.component)
        });
        live.push((identity.address.to_string(), identity.component, self.clone()));
    }

    /// The live identity registered for the holder of `bundle`, if any.
    pub(crate) fn live_for(bundle: &CertBundle) -> Option<IdentityHandle> {
        let identity = bundle.identity().ok()?;
        let address = identity.address.to_string();
        let live = LIVE.read().unwrap_or_else(|p| p.into_inner());
        live.iter()
            .find(|(a, c, _)| *a == address && *c == identity.component)
            .map(|(_, _, handle)| handle.clone())
    }

    fn certified(&self) -> Arc<CertifiedKey> {
        Arc::clone(&self.read().certified)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Current> {
        // Replacement swaps one whole value; a poisoned lock still holds a whole one.
        self.current.read().unwrap_or_else(|p| p.into_inner())
    }
}

impl Current {
    fn load(bundle: CertBundle) -> Result<Current, TlsError> {
        let identity = bundle.identity()?;
        let key = any_supported_type(&bundle.private_key_der()?)?;
        let certified = Arc::new(CertifiedKey::new(bundle.presented_chain_der()?, key));
        certified.keys_match()?;
        Ok(Current {
            bundle,
            identity,
            certified,
        })
    }
}

impl ResolvesServerCert for IdentityHandle {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.certified())
    }
}

impl ResolvesClientCert for IdentityHandle {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.certified())
    }

    fn has_certs(&self) -> bool {
        true
    }
}
