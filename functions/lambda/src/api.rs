//! The HTTPS API's edge: request checks and the mapping of domain errors to
//! HTTP statuses with an `ErrorResponse` body that names the place and the fix,
//! and says whether sending the same request again can help.

use updraft_core::compile::{self, Compiled, Options};
use updraft_core::spec::Format;
use updraft_proto::api::{ErrorResponse, RegisterRequest};

/// Specs arrive in the request body; API Gateway caps bodies at 10 MB, and a
/// spec is text, so a much smaller limit catches mistakes (a dataset pasted in)
/// with a clear message.
pub const MAX_SPEC_BYTES: usize = 1024 * 1024;

/// An error answer: HTTP status and body.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub body: ErrorResponse,
}

impl ApiError {
    pub fn bad_request(code: &str, path: &str, message: impl Into<String>, hint: impl Into<String>) -> ApiError {
        ApiError {
            status: 400,
            body: ErrorResponse {
                code: code.into(),
                message: message.into(),
                path: path.into(),
                hint: hint.into(),
                retryable: false,
            },
        }
    }
}

/// Validates and compiles the spec of a register request. Nothing is written
/// before this has succeeded, so a bad spec leaves no partial registration.
pub fn compile_register_request(request: &RegisterRequest) -> Result<Compiled, Vec<ApiError>> {
    if request.version.trim().is_empty() {
        return Err(vec![ApiError::bad_request(
            "MissingVersion",
            "version",
            "a registration needs a version label",
            "pass --version, e.g. v1 or a git commit",
        )]);
    }
    if request.spec.len() > MAX_SPEC_BYTES {
        return Err(vec![ApiError::bad_request(
            "SpecTooLarge",
            "spec",
            format!("the spec is {} bytes; the limit is {MAX_SPEC_BYTES}", request.spec.len()),
            "keep data out of specs: pass datasets as file or dataframe inputs",
        )]);
    }
    let options = Options {
        project: non_empty(&request.project),
        domain: non_empty(&request.domain),
        version: request.version.clone(),
    };
    let format = Format::from_file_name(&request.file_name);
    compile::compile_text(&request.spec, format, &options).map_err(|diagnostics| {
        diagnostics
            .iter()
            .map(|d| {
                ApiError::bad_request("InvalidSpec", &d.path, d.message.clone(), d.hint.clone().unwrap_or_default())
            })
            .collect()
    })
}

fn non_empty(s: &str) -> Option<String> {
    (!s.trim().is_empty()).then(|| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(spec: &str) -> RegisterRequest {
        RegisterRequest {
            project: "demo".into(),
            version: "v1".into(),
            spec: spec.into(),
            file_name: "spec.yaml".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_valid_spec_compiles_with_the_request_namespace_and_version() {
        let compiled = compile_register_request(&request(
            "tasks:\n  t: {image: x, command: [t]}\nworkflows:\n  w:\n    nodes:\n      t: {task: t}\n",
        ))
        .unwrap();
        assert_eq!(compiled.project, "demo");
        assert_eq!(compiled.domain, "development");
        let id = compiled.tasks[0].id.clone().unwrap();
        assert_eq!((id.name.as_str(), id.version.as_str()), ("t", "v1"));
    }

    #[test]
    fn every_spec_problem_becomes_a_400_naming_its_path() {
        let errors =
            compile_register_request(&request("tasks:\n  t: {image: x, command: [t], retries: -1, cache: true}\n"))
                .unwrap_err();
        assert_eq!(errors.len(), 2);
        assert!(errors.iter().all(|e| e.status == 400 && !e.body.retryable && e.body.code == "InvalidSpec"));
        let paths: Vec<&str> = errors.iter().map(|e| e.body.path.as_str()).collect();
        assert_eq!(paths, ["tasks.t.cache", "tasks.t.retries"]);
        assert!(errors[0].body.hint.contains("version"));
    }

    #[test]
    fn missing_version_and_huge_specs_are_refused_first() {
        let mut no_version = request("tasks: {}");
        no_version.version.clear();
        assert_eq!(compile_register_request(&no_version).unwrap_err()[0].body.code, "MissingVersion");
        let huge = request(&"#".repeat(MAX_SPEC_BYTES + 1));
        let error = &compile_register_request(&huge).unwrap_err()[0];
        assert_eq!((error.status, error.body.code.as_str()), (400, "SpecTooLarge"));
    }
}
