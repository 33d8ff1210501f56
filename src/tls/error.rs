//! Errors of the TLS layer when building configurations and connecting.

use crate::pki::PkiError;

/// Failures to build a TLS configuration or to open a channel.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error("tls configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    #[error("invalid endpoint {endpoint:?}: {reason}")]
    InvalidEndpoint { endpoint: String, reason: String },
    #[error("invalid server name {0:?}")]
    InvalidServerName(String),
    #[error("certificate refused: {0}")]
    Refused(String),
    #[error(transparent)]
    Policy(#[from] super::PolicyViolation),
    #[error("connecting: {0}")]
    Transport(#[from] tonic::transport::Error),
}
