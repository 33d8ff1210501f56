//! How errors read at the command line: the chain of causes, with gRPC statuses shown as the
//! coordinator's own message rather than tonic's debug form.

/// `what failed: why` for an error and its causes.
pub fn render(error: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in error.chain() {
        let text = match cause.downcast_ref::<tonic::Status>() {
            Some(status) => describe_status(status),
            None => cause.to_string(),
        };
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

fn describe_status(status: &tonic::Status) -> String {
    format!("{}: {}", describe_code(status.code()), status.message())
}

/// A short human name for a gRPC status code.
pub fn describe_code(code: tonic::Code) -> &'static str {
    match code {
        tonic::Code::NotFound => "not found",
        tonic::Code::AlreadyExists => "already exists",
        tonic::Code::InvalidArgument => "invalid argument",
        tonic::Code::FailedPrecondition => "refused",
        tonic::Code::PermissionDenied => "permission denied",
        tonic::Code::Unauthenticated => "not authenticated",
        tonic::Code::Unavailable => "unavailable",
        tonic::Code::ResourceExhausted => "too large",
        _ => "failed",
    }
}
