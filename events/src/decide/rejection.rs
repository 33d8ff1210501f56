//! Why `decide` refused a command. A rejection is the caller's problem, never a fault of the
//! member: it is returned to the client and nothing is written to the event log.

use std::fmt;

/// What kind of refusal; the service layer maps each code to one gRPC status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RejectionCode {
    /// A field is malformed or out of range (bad path, bad address, wrong hash length, ...).
    InvalidArgument,
    /// The thing the command names does not exist.
    NotFound,
    /// The thing the command would create exists already.
    AlreadyExists,
    /// A path component that must be a directory is a file.
    NotADirectory,
    /// The target is a directory where a file is required.
    IsADirectory,
    /// A directory still has entries and the command was not recursive.
    DirectoryNotEmpty,
    /// The member is not in a state that allows the command (not initialized, last coordinator).
    FailedPrecondition,
    /// An invite's validity ended before the command was proposed.
    Expired,
    /// An invite has been used as many times as it allows.
    Exhausted,
    /// The invite or certificate has been revoked.
    Revoked,
    /// A compare-and-set saw another version than the caller expected.
    Conflict,
    /// The envelope's schema version is not one this binary understands.
    UnsupportedSchema,
    /// The envelope carries no command, or one from a newer schema this binary cannot read.
    MissingCommand,
}

impl RejectionCode {
    /// A stable snake_case name, for logs, JSON output and tests.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidArgument => "invalid_argument",
            Self::NotFound => "not_found",
            Self::AlreadyExists => "already_exists",
            Self::NotADirectory => "not_a_directory",
            Self::IsADirectory => "is_a_directory",
            Self::DirectoryNotEmpty => "directory_not_empty",
            Self::FailedPrecondition => "failed_precondition",
            Self::Expired => "expired",
            Self::Exhausted => "exhausted",
            Self::Revoked => "revoked",
            Self::Conflict => "conflict",
            Self::UnsupportedSchema => "unsupported_schema",
            Self::MissingCommand => "missing_command",
        }
    }
}

impl fmt::Display for RejectionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused command: a code for programs and a lowercase message, naming the path, address or
/// id at fault, for people.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Rejection {
    pub code: RejectionCode,
    pub message: String,
}

impl Rejection {
    pub fn new(code: RejectionCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(RejectionCode::InvalidArgument, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(RejectionCode::NotFound, message)
    }

    pub fn already_exists(message: impl Into<String>) -> Self {
        Self::new(RejectionCode::AlreadyExists, message)
    }

    pub fn failed_precondition(message: impl Into<String>) -> Self {
        Self::new(RejectionCode::FailedPrecondition, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_leads_with_the_stable_code_name() {
        let rejection = Rejection::not_found("'/a' does not exist");
        assert_eq!(rejection.to_string(), "not_found: '/a' does not exist");
        assert_eq!(
            RejectionCode::DirectoryNotEmpty.to_string(),
            "directory_not_empty"
        );
    }
}
