//! Tickets: short-lived capabilities, signed by a coordinator of a member, that let a holder run
//! one kind of chunk operation on named chunks at one storage node. The node verifies a ticket
//! alone, without calling anyone: the signer's certificate chain to the federation root (the
//! same verifier the TLS layer runs), that the signer is a coordinator of the node's own member,
//! the Ed25519 signature, and then what the ticket says (node, holder, times, op, hashes).
//!
//! The signature covers `SIGNING_CONTEXT || 0x00 || body`, where `body` is the encoded
//! `TicketBody` carried as bytes in the ticket. The context string keeps a ticket signature from
//! ever being valid as anything else the coordinator's key signs (TLS 1.3 handshakes use their
//! own context strings), and carrying the signed bytes means no re-encoding stands between the
//! signer and the verifier.
//!
//! Tickets are bearer-bound, not single-use: a holder may use one ticket many times until it
//! expires, and nobody else can use it, because the node requires the caller's mTLS address to
//! equal the holder. The nonce makes each ticket distinct for logs and a later single-use rule.

mod error;
mod issue;
mod verify;

use std::time::Duration;

pub use collective_proto::ticket::{Ticket, TicketBody, TicketOp};
pub use error::TicketError;
pub use issue::{TicketGrant, issue, sign_body};
pub use verify::{TicketVerifier, VerifiedTicket};

/// The body format this code writes and the only one it accepts.
pub const TICKET_VERSION: u32 = 1;
/// Domain separation for ticket signatures.
pub const SIGNING_CONTEXT: &[u8] = b"collective.ticket.v1";
/// Longest lifetime (expires_at - issued_at) a node accepts; longer tickets are refused so a
/// leaked one cannot outlive a revocation by much.
pub const TICKET_LIFETIME_MAX: Duration = Duration::from_secs(3600);
/// Lifetime coordinators give tickets unless told otherwise.
pub const TICKET_LIFETIME_DEFAULT: Duration = Duration::from_secs(300);
/// How far apart the clocks of a coordinator and a node may be before tickets fail.
pub const CLOCK_SKEW_DEFAULT: Duration = Duration::from_secs(30);

/// Whether a node whose clock is `offset_ms` from a coordinator's refuses the tickets that
/// coordinator issues (beyond [`CLOCK_SKEW_DEFAULT`], the tolerance nodes run with).
pub fn clock_offset_refuses_tickets(offset_ms: i64) -> bool {
    offset_ms.unsigned_abs() > CLOCK_SKEW_DEFAULT.as_millis() as u64
}
/// Length of a ticket's random nonce, in bytes.
pub const NONCE_BYTES: usize = 16;
/// Largest encoded ticket body a node reads, in bytes: 4096 hashes of 34 encoded bytes each, and
/// room for the addresses.
pub const TICKET_BODY_BYTES_MAX: usize = 160 * 1024;
/// Certificates in a signer chain: the coordinator's leaf and its member CA.
pub const SIGNER_CHAIN_LEN: usize = 2;

/// The message an Ed25519 ticket signature covers.
pub(crate) fn signed_message(body: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(SIGNING_CONTEXT.len() + 1 + body.len());
    message.extend_from_slice(SIGNING_CONTEXT);
    message.push(0);
    message.extend_from_slice(body);
    message
}

#[cfg(test)]
mod tests;
