//! AWS SDK errors as one line, for every adapter and the CLI.

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// The service's code and message when there is one, the code alone for
/// answers without a body (HEAD requests: `NotFound`, `Forbidden`), else the
/// whole chain (a connection failure says where it tried to connect). Works
/// for every SDK client: they share smithy's `SdkError`.
pub fn describe<E, R>(e: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match (e.code(), e.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) if matches!(e, SdkError::ServiceError(_)) => code.to_string(),
        _ => DisplayErrorContext(e).to_string(),
    }
}
/// Whether the same call could succeed later: timeouts, dropped connections,
/// throttling and 5xx answers can pass; a 4xx answer (denied, missing, malformed)
/// or a request that could not even be built will not.
pub fn is_retryable<E>(e: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> bool
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    const THROTTLING: [&str; 6] = [
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "ProvisionedThroughputExceededException",
    ];
    match e {
        SdkError::ServiceError(s) => {
            s.raw().status().as_u16() >= 500 || e.code().is_some_and(|code| THROTTLING.contains(&code))
        }
        SdkError::ConstructionFailure(_) => false,
        _ => true,
    }
}

/// A failed SDK call as a port error: transient when a retry can help.
pub fn port_error<E>(
    what: &str,
    e: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> updraft_core::ports::PortError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    use updraft_core::ports::PortError;
    let message = format!("{what}: {}", describe(e));
    if is_retryable(e) { PortError::Transient(message) } else { PortError::Permanent(message) }
}
