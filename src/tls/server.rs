//! Server TLS configuration, and a handle to swap it at runtime (new CRL, rotated certificate).

use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls::pki_types::CertificateDer;

use super::client_verifier::FederationClientVerifier;
use super::{ALPN_H2, IdentityHandle, PROTOCOL_VERSIONS, Policy, TlsError, provider};
use crate::pki::CertBundle;

/// A server configuration requiring client certificates chained to `root_der` that pass
/// `policy`, presenting `identity` (leaf plus member CA), with ALPN `h2` for gRPC.
pub fn server_config(
    identity: &CertBundle,
    root_der: &CertificateDer<'_>,
    policy: Policy,
) -> Result<Arc<ServerConfig>, TlsError> {
    let verifier = FederationClientVerifier::builder(root_der, policy).build()?;
    server_config_with_verifier(identity, verifier)
}

/// Like [`server_config`] with a verifier built by the caller (e.g. with CRLs).
pub fn server_config_with_verifier(
    identity: &CertBundle,
    verifier: Arc<FederationClientVerifier>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(PROTOCOL_VERSIONS)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(identity.presented_chain_der()?, identity.private_key_der()?)?;
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    // Bulk connections (`tls::bulk`) take the traffic secrets over once the handshake is done.
    config.enable_secret_extraction = true;
    Ok(Arc::new(config))
}

/// A server configuration presenting whatever `identity` holds at each handshake (so a renewed
/// leaf applies without a restart), verifying clients with `verifier`.
pub fn server_config_with_identity(
    identity: &IdentityHandle,
    verifier: Arc<FederationClientVerifier>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(PROTOCOL_VERSIONS)?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(identity.clone()));
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    // Bulk connections (`tls::bulk`) take the traffic secrets over once the handshake is done.
    config.enable_secret_extraction = true;
    Ok(Arc::new(config))
}

/// The server configuration in force; each new connection takes the current one, so a
/// replacement applies to the next handshake without restarting the listener.
#[derive(Clone, Debug)]
pub struct ServerConfigHandle {
    current: Arc<RwLock<Arc<ServerConfig>>>,
}

impl ServerConfigHandle {
    pub fn new(config: Arc<ServerConfig>) -> ServerConfigHandle {
        ServerConfigHandle {
            current: Arc::new(RwLock::new(config)),
        }
    }

    /// The configuration for the next handshake.
    pub fn current(&self) -> Arc<ServerConfig> {
        // A poisoned lock only means a writer panicked between two pointer writes; the
        // pointer itself is always whole, so keep serving with it.
        match self.current.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Replaces the configuration; connections already established keep theirs.
    pub fn replace(&self, config: Arc<ServerConfig>) {
        match self.current.write() {
            Ok(mut guard) => *guard = config,
            Err(poisoned) => *poisoned.into_inner() = config,
        }
    }
}
