//! Mutual TLS for every connection of the federation, on rustls (ring provider only).
//!
//! Two layers of checks run in every handshake, in both directions: webpki verifies the chain
//! to the federation root (signatures, validity, name constraints, CRLs), then the federation
//! policy cross-checks what name constraints cannot bind: that the leaf's address and member
//! domain match the issuing member CA's, that its DNS SAN lies in that domain, and that its
//! component (and member) is one the endpoint admits.
//!
//! What changes while a process runs — revoked leaves, removed member CAs — lives in a
//! [`TrustStore`] that verifiers consult at every handshake and [`RevocationGuard`] at every
//! request; a process's own leaf lives in an [`IdentityHandle`] that renewals replace.
//!
//! tonic's built-in TLS has neither CRLs nor custom verifiers, so the server side is our own
//! acceptor ([`tls_incoming`]) fed to `Server::serve_with_incoming`, and the client side a
//! custom connector ([`connect`]).

pub mod bulk;
mod client;
mod client_verifier;
mod error;
mod guard;
mod identity;
mod incoming;
mod peer;
mod policy;
mod server;
mod server_verifier;
mod trust_store;
mod verdict;
mod verifier_builder;

pub use client::{
    CONNECT_TIMEOUT, client_config, client_config_with_identity, connect, connect_bulk, connect_lazy,
    connect_lazy_bulk, connect_lazy_with_config, connect_with_config, expected_server_name,
};
pub use client_verifier::{FederationClientVerifier, FederationClientVerifierBuilder};
pub use error::TlsError;
pub use guard::RevocationGuard;
pub use identity::IdentityHandle;
pub use incoming::{
    HANDSHAKE_TIMEOUT, HANDSHAKES_IN_FLIGHT_MAX, HandshakeRefused, IncomingOptions, TlsIncoming,
    tls_incoming, tls_incoming_bulk, tls_incoming_with,
};
pub use peer::{peer_certificates, peer_identity};
pub use policy::{Policy, PolicyViolation, ServerExpectation, check_presented_chain};
pub use server::{
    ServerConfigHandle, server_config, server_config_with_identity, server_config_with_verifier,
};
pub use server_verifier::{FederationServerVerifier, FederationServerVerifierBuilder};
pub use trust_store::TrustStore;
pub use verifier_builder::VerifierBuilder;

/// The one crypto provider of the process (ring), passed explicitly so nothing depends on a
/// process-wide default being installed.
///
/// AES-128-GCM is preferred over ring's default AES-256-GCM: both are TLS 1.3 suites with
/// 128-bit security against today's attacks, and chunk transfers spend a large share of their
/// CPU in the cipher (the profile in docs/benchmarks.md), where AES-128 takes 10 rounds to 14.
pub(crate) fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    use rustls::crypto::ring::cipher_suite;
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites = vec![
        cipher_suite::TLS13_AES_128_GCM_SHA256,
        cipher_suite::TLS13_AES_256_GCM_SHA384,
        cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
    ];
    std::sync::Arc::new(provider)
}

/// HTTP/2 flow-control windows of every channel and chunk listener, in bytes: wide enough that
/// a 4 MiB chunk streams without waiting for window updates (h2's default is 64 KiB).
pub const H2_STREAM_WINDOW_BYTES: u32 = 8 * 1024 * 1024;
pub const H2_CONNECTION_WINDOW_BYTES: u32 = 32 * 1024 * 1024;
/// Largest HTTP/2 frame every channel and chunk listener accepts (h2's default is 16 KiB): a
/// 1 MiB chunk message then travels as one DATA frame instead of 64, each of which the receiver
/// parses, copies and wakes a task for. Raising it on the client took a cold read's client CPU
/// down by about a fifth (docs/benchmarks.md).
pub const H2_FRAME_BYTES: u32 = 1024 * 1024 - 1;

/// Every HTTP/2 connection a client opens is pinged this often, idle or not, and closed when a
/// ping goes unanswered for [`H2_KEEPALIVE_TIMEOUT`]. A peer that vanished without closing its
/// connections (a host powered off, a partition) then fails the calls in flight within
/// seconds, and they are retried elsewhere, instead of waiting out TCP's retransmissions (about
/// a quarter of an hour). A ping costs a few dozen bytes; its answer needs no disk.
pub const H2_KEEPALIVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);
pub const H2_KEEPALIVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(4);

/// Only TLS 1.3: every peer is ours, and 1.3 encrypts the certificates in the handshake.
pub(crate) const PROTOCOL_VERSIONS: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

/// ALPN for gRPC over HTTP/2.
pub(crate) const ALPN_H2: &[u8] = b"h2";
