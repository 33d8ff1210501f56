//! Why a ticket could not be issued, or why a node refused one.

use crate::pki::PkiError;

/// Ticket failures. [`TicketError::is_unauthenticated`] separates "this ticket is not from
/// whom it claims" from "a genuine ticket that does not allow this".
#[derive(Debug, thiserror::Error)]
pub enum TicketError {
    #[error("ticket signer: {0}")]
    Signer(#[from] PkiError),
    #[error("ticket signer {address} is a {component}; only coordinators sign tickets")]
    SignerNotCoordinator { address: String, component: String },
    #[error("ticket signer key does not match its certificate")]
    SignerKeyMismatch,
    #[error("ticket signing failed")]
    Signing,
    #[error("ticket signer chain has {got} certificates, expected {expected} (leaf, member ca)")]
    ChainLength { got: usize, expected: usize },
    #[error("ticket signer certificate refused: {0}")]
    ChainRefused(String),
    #[error("ticket signature does not verify (forged or altered)")]
    BadSignature,
    #[error("ticket body is malformed: {0}")]
    Malformed(String),
    #[error("ticket version {got} is not supported (expected {expected})")]
    UnsupportedVersion { got: u32, expected: u32 },
    #[error("ticket is of member {got}, this node belongs to {expected}")]
    OtherMember { got: String, expected: String },
    #[error("ticket is for node {got}, this is {expected}")]
    Misdirected { got: String, expected: String },
    #[error("ticket is held by {holder}, the caller is {caller}")]
    WrongHolder { holder: String, caller: String },
    #[error(
        "ticket expired at {expires_at_unix_ms} by this node's clock (now {now_unix_ms}, skew allowed \
         {skew_ms} ms); a ticket refused as soon as it is issued means this node's clock is ahead \
         of the coordinators'"
    )]
    Expired {
        expires_at_unix_ms: u64,
        now_unix_ms: u64,
        skew_ms: u64,
    },
    #[error(
        "ticket is not valid before {issued_at_unix_ms} by this node's clock (now {now_unix_ms}, skew \
         allowed {skew_ms} ms): this node's clock is behind the issuing coordinator's"
    )]
    NotYetValid {
        issued_at_unix_ms: u64,
        now_unix_ms: u64,
        skew_ms: u64,
    },
    #[error("ticket lifetime {lifetime_ms} ms is not within 1 ms to {max_ms} ms")]
    BadLifetime { lifetime_ms: u64, max_ms: u64 },
    #[error("ticket allows {allowed}, not {requested}")]
    WrongOp { allowed: String, requested: String },
    #[error("ticket does not cover chunk {0}")]
    HashNotCovered(String),
    #[error("ticket names {got} hashes, at most {max} allowed")]
    TooManyHashes { got: usize, max: usize },
}

impl TicketError {
    /// True when the ticket could not be authenticated (forged, altered, bad signer); false
    /// when it is genuine but does not allow this call (expired, misdirected, wrong op...).
    pub fn is_unauthenticated(&self) -> bool {
        matches!(
            self,
            TicketError::Signer(_)
                | TicketError::SignerNotCoordinator { .. }
                | TicketError::SignerKeyMismatch
                | TicketError::ChainLength { .. }
                | TicketError::ChainRefused(_)
                | TicketError::BadSignature
                | TicketError::Malformed(_)
                | TicketError::UnsupportedVersion { .. }
        )
    }

    /// A short stable code for clients (`rejection-code` metadata): `expired` means "ask the
    /// coordinator for a new ticket", the rest are final.
    pub fn code(&self) -> &'static str {
        match self {
            TicketError::Expired { .. } => "ticket_expired",
            TicketError::NotYetValid { .. } => "ticket_not_yet_valid",
            TicketError::Misdirected { .. } => "ticket_misdirected",
            TicketError::WrongHolder { .. } => "ticket_wrong_holder",
            TicketError::WrongOp { .. } => "ticket_wrong_op",
            TicketError::HashNotCovered(_) => "ticket_hash_not_covered",
            TicketError::OtherMember { .. } => "ticket_other_member",
            _ if self.is_unauthenticated() => "ticket_unauthenticated",
            _ => "ticket_invalid",
        }
    }
}
