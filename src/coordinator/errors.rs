//! The one table that maps errors to gRPC statuses, so clients can tell a refusal (final) from an
//! unavailable member (retry with the same request id).
//!
//! | what happened                               | gRPC status          | retry? |
//! |---------------------------------------------|----------------------|--------|
//! | invalid argument, unsupported schema        | INVALID_ARGUMENT     | no     |
//! | missing entry, unknown invite or node       | NOT_FOUND            | no     |
//! | entry or id already exists                  | ALREADY_EXISTS       | no     |
//! | wrong type, not empty, expired, exhausted,  | FAILED_PRECONDITION  | no     |
//! | revoked, version conflict, not initialized  |                      |        |
//! | caller not allowed                          | PERMISSION_DENIED    | no     |
//! | not the leader (metadata `leader-endpoint`) | UNAVAILABLE          | yes    |
//! | no leader, quorum lost, shutting down       | UNAVAILABLE          | yes    |
//! | storage failure on the coordinator          | INTERNAL             | no     |
//!
//! A refusal also carries the rejection code (`rejection-code` metadata), e.g. `not_found`.

use crate::client::{LEADER_ENDPOINT_KEY, REJECTION_CODE_KEY};
use collective_projections::Rejected;
use tonic::{Code, Status};

/// The status for a command the member's rules refused.
pub fn rejection_status(rejection: &Rejected) -> Status {
    let code = match normalize(&rejection.code).as_str() {
        "invalidargument" | "unsupportedschema" | "missingcommand" => Code::InvalidArgument,
        "notfound" => Code::NotFound,
        "alreadyexists" => Code::AlreadyExists,
        "permissiondenied" | "forbidden" => Code::PermissionDenied,
        _ => Code::FailedPrecondition,
    };
    let mut status = Status::new(code, rejection.message.clone());
    if let Ok(value) = rejection.code.parse() {
        status.metadata_mut().insert(REJECTION_CODE_KEY, value);
    }
    status
}

/// UNAVAILABLE with the leader's endpoint, so the client retries there.
pub fn not_leader(leader_endpoint: Option<&str>) -> Status {
    let message = match leader_endpoint {
        Some(endpoint) => format!("not the leader; the leader is at {endpoint}"),
        None => "no leader is known yet (election in progress or quorum lost); retry shortly".to_string(),
    };
    let mut status = Status::unavailable(message);
    if let Some(value) = leader_endpoint.and_then(|e| e.parse().ok()) {
        status.metadata_mut().insert(LEADER_ENDPOINT_KEY, value);
    }
    status
}

pub fn storage(error: impl std::fmt::Display) -> Status {
    tracing::error!(%error, "storage failure");
    Status::internal(format!("coordinator storage failure: {error}"))
}

fn normalize(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(code: &str) -> Rejected {
        Rejected {
            code: code.into(),
            message: format!("{code} happened"),
        }
    }

    #[test]
    fn rejections_map_to_final_statuses() {
        assert_eq!(rejection_status(&rejected("not_found")).code(), Code::NotFound);
        assert_eq!(rejection_status(&rejected("NotFound")).code(), Code::NotFound);
        assert_eq!(
            rejection_status(&rejected("already_exists")).code(),
            Code::AlreadyExists
        );
        assert_eq!(
            rejection_status(&rejected("invalid_argument")).code(),
            Code::InvalidArgument
        );
        assert_eq!(
            rejection_status(&rejected("directory_not_empty")).code(),
            Code::FailedPrecondition
        );
        let status = rejection_status(&rejected("not_a_directory"));
        assert_eq!(
            status
                .metadata()
                .get(REJECTION_CODE_KEY)
                .and_then(|v| v.to_str().ok()),
            Some("not_a_directory")
        );
        assert_eq!(status.message(), "not_a_directory happened");
    }

    #[test]
    fn redirects_name_the_leader() {
        let status = not_leader(Some("127.0.0.1:7401"));
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(
            status
                .metadata()
                .get(LEADER_ENDPOINT_KEY)
                .and_then(|v| v.to_str().ok()),
            Some("127.0.0.1:7401")
        );
        assert!(not_leader(None).metadata().get(LEADER_ENDPOINT_KEY).is_none());
    }
}
