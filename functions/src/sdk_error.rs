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
