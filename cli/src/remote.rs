//! Where the HTTPS API is and how to talk to it: `--endpoint`, else
//! `UPDRAFT_ENDPOINT`, else the config file (`UPDRAFT_CONFIG`, default
//! `$UPDRAFT_HOME/config.toml`, `~/.updraft/config.toml` without one; written by
//! `updraft config init --stack NAME` or `updraft sandbox up`).
//! Every problem is one line that names the file and what to run.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use updraft_aws::api_client::{ApiAnswer, ApiClient};
use updraft_core::proto::api::ErrorResponse;

/// `~/.updraft/config.toml`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The API's stage URL.
    pub endpoint: String,
    /// The region requests are signed for; the AWS default region when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The stack the endpoint came from (for the record).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack: Option<String>,
    /// The AWS endpoint the stack lives behind (an emulator's); absent for AWS itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_endpoint_url: Option<String>,
    /// The stack's data bucket: local files given as launch inputs are uploaded there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_bucket: Option<String>,
    /// Defaults for --project and --domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Written by `updraft sandbox up`: requests are signed with the offline
    /// emulator's fixed test key, so the sandbox needs no AWS credentials.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sandbox: bool,
}

const INIT: &str = "run `updraft config init --stack NAME` (NAME: the stack `updraft deploy` created)";

/// `UPDRAFT_CONFIG`, else `config.toml` in the Updraft home (`UPDRAFT_HOME`, else `~/.updraft`),
/// so one `UPDRAFT_HOME` moves local runs and settings together.
pub fn config_path() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("UPDRAFT_CONFIG").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    if let Some(home) = std::env::var_os("UPDRAFT_HOME").filter(|h| !h.is_empty()) {
        return Ok(PathBuf::from(home).join("config.toml"));
    }
    let home = std::env::var_os("HOME").ok_or("HOME is not set: set UPDRAFT_CONFIG to the config file's path")?;
    Ok(Path::new(&home).join(".updraft").join("config.toml"))
}

/// The config file's settings; `None` when there is no file.
pub fn read_config(path: &Path) -> Result<Option<Config>, String> {
    let text = match updraft_aws::files::read_text_limited(path, 1024 * 1024, "config files are limited to") {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}; fix it or {INIT}", path.display())),
    };
    let config: Config = toml::from_str(&text).map_err(|e| {
        let problem = e.message().trim_end_matches('.');
        let line = e
            .span()
            .map(|span| text.as_bytes()[..span.start.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1);
        let place = line.map(|l| format!(" line {l}")).unwrap_or_default();
        format!("{}{place}: {problem}; fix it or {INIT} again", path.display())
    })?;
    if config.endpoint.trim().is_empty() {
        return Err(format!("{}: `endpoint` is empty; {INIT} again", path.display()));
    }
    Ok(Some(config))
}

pub fn write_config(path: &Path, config: &Config) -> Result<(), String> {
    let text = toml::to_string(config).map_err(|e| e.to_string())?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let header =
        "# Updraft's API endpoint (written by `updraft config init`; --endpoint and UPDRAFT_ENDPOINT override it).\n";
    // Written whole and renamed, so a reader never sees half a file.
    let partial = path.with_extension("toml.partial");
    std::fs::write(&partial, format!("{header}{text}"))
        .map_err(|e| format!("cannot write {}: {e}", partial.display()))?;
    std::fs::rename(&partial, path).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The endpoint and settings to use, from the flag, the environment or the file.
pub fn resolve(endpoint_flag: Option<&str>) -> Result<Config, String> {
    let path = config_path()?;
    let from_env = std::env::var("UPDRAFT_ENDPOINT").ok().filter(|e| !e.trim().is_empty());
    let explicit = endpoint_flag.map(str::to_string).or(from_env);
    // An explicit endpoint does not need the file, but a broken file is still reported.
    let file = match read_config(&path) {
        Ok(file) => file,
        Err(e) if explicit.is_none() => return Err(e),
        Err(_) => None,
    };
    match (explicit, file) {
        (Some(endpoint), file) => Ok(Config { endpoint, ..file.unwrap_or_default() }),
        (None, Some(file)) => Ok(file),
        (None, None) => Err(format!(
            "no API endpoint: {} does not exist; {INIT}, or pass --endpoint / set UPDRAFT_ENDPOINT",
            path.display()
        )),
    }
}

/// The key the offline emulator accepts (any key is; this one is its documented default).
pub const SANDBOX_KEY: (&str, &str) = ("testing", "testing");

/// AWS settings for the stack's services (its bucket): the stack's endpoint and
/// region from the config; a sandbox's fixed key, else the usual credentials.
pub async fn sdk_config(config: &Config) -> updraft_aws::config::SdkConfig {
    let sdk = updraft_aws::config::sdk_config(config.aws_endpoint_url.as_deref(), config.region.as_deref()).await;
    with_sandbox_key(config, sdk)
}

fn with_sandbox_key(config: &Config, sdk: updraft_aws::config::SdkConfig) -> updraft_aws::config::SdkConfig {
    if !config.sandbox {
        return sdk;
    }
    let key = aws_credential_types::Credentials::new(SANDBOX_KEY.0, SANDBOX_KEY.1, None, None, "updraft-sandbox");
    sdk.into_builder().credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(key)).build()
}

/// A signed client of the configured API.
pub async fn client(config: &Config) -> Result<ApiClient, String> {
    // The API endpoint is not an AWS service endpoint: AWS_ENDPOINT_URL is not applied to it.
    let sdk = with_sandbox_key(config, updraft_aws::config::sdk_config(None, None).await);
    ApiClient::new(&sdk, &config.endpoint, config.region.as_deref()).map_err(|e| e.to_string())
}

/// The exit status of a refusal: a 400 (the request's content was wrong: an
/// invalid spec or input) is a usage error, as `updraft validate` gives; any
/// other refusal is a failure.
pub fn refusal_exit(answer: &ApiAnswer) -> std::process::ExitCode {
    let code = if answer.status == 400 { crate::exit::USAGE } else { crate::exit::FAILED };
    std::process::ExitCode::from(code)
}

/// A refusal from the API, printed as `updraft validate` prints problems.
pub fn describe_refusal(answer: &ApiAnswer) -> String {
    let error = serde_json::from_slice::<ErrorResponse>(&answer.body).ok().filter(|e| !e.code.is_empty());
    let Some(error) = error else {
        // API Gateway's own answers ({"message": ...}) and anything else.
        let text = String::from_utf8_lossy(&answer.body);
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_string))
            .unwrap_or_else(|| text.chars().take(500).collect());
        let hint = if answer.status == 403 {
            "\n  hint: check your AWS credentials and that they may call this API"
        } else {
            ""
        };
        return format!("error: HTTP {}: {message}{hint}", answer.status);
    };
    let mut lines = Vec::new();
    if error.diagnostics.is_empty() {
        lines.push(format!("error: {}{}", place(&error.path), error.message));
        if !error.hint.is_empty() {
            lines.push(format!("  hint: {}", error.hint));
        }
    }
    for d in &error.diagnostics {
        lines.push(format!("error: {}{}", place(&d.path), d.message));
        if !d.hint.is_empty() {
            lines.push(format!("  hint: {}", d.hint));
        }
    }
    if error.retryable {
        lines.push("  (the same request can succeed if sent again)".into());
    }
    lines.join("\n")
}

fn place(path: &str) -> String {
    if path.is_empty() { String::new() } else { format!("{path}: ") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_files_round_trip_and_problems_name_the_file_and_line() {
        let dir = std::env::temp_dir().join(format!("updraft-config-{}", std::process::id()));
        let path = dir.join("config.toml");
        assert_eq!(read_config(&path), Ok(None));
        let config =
            Config { endpoint: "https://x/live".into(), region: Some("eu-west-1".into()), ..Default::default() };
        write_config(&path, &config).unwrap();
        assert_eq!(read_config(&path), Ok(Some(config)));
        std::fs::write(&path, "endpoint = \"https://x/live\"\nregoin = \"eu\"\n").unwrap();
        let error = read_config(&path).unwrap_err();
        assert!(error.contains("config.toml line 2") && error.contains("regoin"), "{error}");
        assert!(error.contains("updraft config init --stack"), "{error}");
        std::fs::write(&path, "endpoint = [").unwrap();
        assert!(read_config(&path).unwrap_err().contains("config.toml line 1"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn refusals_print_every_diagnostic_with_its_hint() {
        let body = r#"{"code":"InvalidSpec","message":"2 problems","path":"tasks.t",
            "diagnostics":[{"path":"tasks.t.cache","message":"needs a version","hint":"add cache_version"},
                           {"path":"tasks.t.retries","message":"negative"}]}"#;
        let text = describe_refusal(&ApiAnswer { status: 400, body: body.into() });
        assert_eq!(
            text,
            "error: tasks.t.cache: needs a version\n  hint: add cache_version\nerror: tasks.t.retries: negative"
        );
        let gateway = describe_refusal(&ApiAnswer {
            status: 403,
            body: br#"{"message":"Missing Authentication Token"}"#.to_vec(),
        });
        assert!(gateway.starts_with("error: HTTP 403: Missing Authentication Token\n  hint:"), "{gateway}");
    }
}
