//! The one table mapping a node's errors to gRPC statuses.
//!
//! | what happened                                     | gRPC status         | retry?            |
//! |---------------------------------------------------|---------------------|-------------------|
//! | ticket forged, altered, bad signer or chain       | UNAUTHENTICATED     | no                |
//! | ticket genuine but expired, misdirected, wrong    | PERMISSION_DENIED   | with a new ticket |
//! | holder, wrong op, chunk not covered               |                     |                   |
//! | malformed request, oversized or truncated stream, | INVALID_ARGUMENT    | no                |
//! | content not matching its hash, chunk too large    |                     |                   |
//! | chunk not stored here                             | NOT_FOUND           | other replica     |
//! | chunk damaged: failed verification, or unreadable | DATA_LOSS           | other replica     |
//! | range outside the chunk                           | OUT_OF_RANGE        | no                |
//! | no data directory has room, disk full             | RESOURCE_EXHAUSTED  | other node        |
//! | every data directory failed (out of service)      | UNAVAILABLE         | other node        |
//! | any other IO failure on the node                  | INTERNAL            | other replica     |
//! | replicate: no source delivered a good copy (each  | UNAVAILABLE         | other sources     |
//! | source's failure named in the message)            |                     |                   |
//!
//! Ticket refusals carry a `rejection-code` (e.g. `ticket_expired`), as coordinator refusals do.

use tonic::Status;

use super::StoreError;
use crate::client::REJECTION_CODE_KEY;
use crate::ticket::TicketError;

pub fn ticket_status(error: &TicketError) -> Status {
    let message = error.to_string();
    let mut status = if error.is_unauthenticated() {
        Status::unauthenticated(message)
    } else {
        Status::permission_denied(message)
    };
    if let Ok(value) = error.code().parse() {
        status.metadata_mut().insert(REJECTION_CODE_KEY, value);
    }
    status
}

pub fn store_status(error: &StoreError) -> Status {
    let message = error.to_string();
    match error {
        StoreError::NotFound(_) => Status::not_found(message),
        StoreError::Corrupt { .. } => Status::data_loss(message),
        StoreError::TooLarge { .. }
        | StoreError::Overrun { .. }
        | StoreError::Truncated { .. }
        | StoreError::HashMismatch { .. } => Status::invalid_argument(message),
        StoreError::OutOfRange { .. } => Status::out_of_range(message),
        StoreError::Full { .. } | StoreError::DiskFull { .. } => Status::resource_exhausted(message),
        StoreError::NoWorkingDir(_) => Status::unavailable(message),
        StoreError::Io { .. } | StoreError::Config(_) => {
            tracing::error!(error = %message, "chunk store failure");
            Status::internal(message)
        }
    }
}
