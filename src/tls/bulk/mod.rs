//! Bulk connections: the chunk service's links between clients and storage nodes, where every
//! chunk byte crosses TLS. rustls runs the handshake (with every verifier and policy of
//! [`super`]); once it is done, this module protects the records itself, through rustls's
//! kernel-connection API (made for kTLS), with fewer copies and system calls than rustls's own
//! record layer (see [`stream`]). Only TLS 1.3 is spoken.

mod handshake;
mod record;
mod stream;
#[cfg(test)]
mod tests;

pub use handshake::{accept, connect};
pub use stream::BulkStream;

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use tokio::net::TcpStream;

use crate::wire::SendTurns;

/// What tonic's server puts in each request's extensions for a bulk connection: the peer's
/// address, the certificate chain it presented (read through [`super::peer_certificates`]), and
/// the connection's turns to send chunks.
#[derive(Debug, Clone)]
pub struct BulkConnectInfo {
    pub remote_addr: Option<SocketAddr>,
    pub peer_certificates: Option<Arc<Vec<CertificateDer<'static>>>>,
    pub send_turns: SendTurns,
}

/// Chunk responses one connection sends at once (see [`SendTurns`]).
pub const CHUNKS_SENT_AT_ONCE: usize = 1;

impl tonic::transport::server::Connected for BulkStream<TcpStream> {
    type ConnectInfo = BulkConnectInfo;

    /// Called once per connection: tonic's server puts a clone in each of its requests.
    fn connect_info(&self) -> BulkConnectInfo {
        BulkConnectInfo {
            remote_addr: self.get_ref().peer_addr().ok(),
            peer_certificates: self.peer_certificates().cloned(),
            send_turns: SendTurns::new(CHUNKS_SENT_AT_ONCE),
        }
    }
}
