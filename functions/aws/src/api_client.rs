//! A client of Updraft's HTTPS API: every request signed with SigV4 for the
//! `execute-api` service by the AWS SDK's own signer, with credentials from the
//! standard chain, and sent with the SDK's HTTP client (rustls).

use aws_config::SdkConfig;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4::SigningParams;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use aws_smithy_http_client::{Connector, tls};
use aws_smithy_runtime_api::client::http::HttpConnector;
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::byte_stream::ByteStream;
use std::time::{Duration, SystemTime};

/// API Gateway answers within 29 s; more than this is a network problem.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Why a request got no HTTP answer.
#[derive(Debug, thiserror::Error)]
pub enum ApiClientError {
    #[error("no AWS credentials: {0} (configure them as for the aws CLI: environment, profile or role)")]
    Credentials(String),
    #[error("no AWS region: set AWS_REGION or `region` in the config file")]
    NoRegion,
    #[error("the API endpoint {0:?} is not a URL like https://host/stage: {1}")]
    BadEndpoint(String, String),
    #[error("cannot sign the request: {0}")]
    Signing(String),
    #[error("cannot reach {url}: {message}")]
    Unreachable { url: String, message: String },
    #[error("{url} did not answer within {TIMEOUT:?}")]
    Timeout { url: String },
}

/// One HTTP answer.
#[derive(Debug, Clone)]
pub struct ApiAnswer {
    pub status: u16,
    pub body: Vec<u8>,
}

pub struct ApiClient {
    base: String,
    host: String,
    region: String,
    credentials: SharedCredentialsProvider,
    connector: Connector,
}

impl ApiClient {
    /// A client of the API at `endpoint` (the stage URL), signing for `region`
    /// (else the SDK configuration's) with the configuration's credentials.
    pub fn new(config: &SdkConfig, endpoint: &str, region: Option<&str>) -> Result<ApiClient, ApiClientError> {
        let base = endpoint.trim_end_matches('/').to_string();
        let uri: http::Uri = base
            .parse()
            .map_err(|e: http::uri::InvalidUri| ApiClientError::BadEndpoint(base.clone(), e.to_string()))?;
        let scheme_ok = matches!(uri.scheme_str(), Some("https") | Some("http"));
        let host = match uri.authority() {
            Some(authority) if scheme_ok => authority.to_string(),
            _ => return Err(ApiClientError::BadEndpoint(base, "it needs http(s):// and a host".into())),
        };
        let region = region.map(str::to_string).or_else(|| config.region().map(|r| r.to_string()));
        let credentials = config
            .credentials_provider()
            .ok_or_else(|| ApiClientError::Credentials("no credentials provider is configured".into()))?;
        let connector = Connector::builder()
            .tls_provider(Provider::Rustls(CryptoMode::AwsLc))
            .tls_context(tls::TlsContext::default())
            .build();
        Ok(ApiClient { base, host, region: region.ok_or(ApiClientError::NoRegion)?, credentials, connector })
    }

    pub fn endpoint(&self) -> &str {
        &self.base
    }

    /// Sends `method path?query` with a JSON `body`, signed; any HTTP status is an answer.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<ApiAnswer, ApiClientError> {
        let mut url = format!("{}{path}", self.base);
        if !query.is_empty() {
            let pairs: Vec<String> = query.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect();
            url = format!("{url}?{}", pairs.join("&"));
        }
        let body = body.unwrap_or_default();
        let credentials =
            self.credentials.provide_credentials().await.map_err(|e| ApiClientError::Credentials(e.to_string()))?;
        let identity = credentials.into();
        let params = SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("execute-api")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| ApiClientError::Signing(e.to_string()))?
            .into();
        let headers = [("host", self.host.as_str()), ("content-type", "application/json")];
        let signable = SignableRequest::new(method, &url, headers.iter().copied(), SignableBody::Bytes(&body))
            .map_err(|e| ApiClientError::Signing(e.to_string()))?;
        let (instructions, _signature) =
            sign(signable, &params).map_err(|e| ApiClientError::Signing(e.to_string()))?.into_parts();
        let mut request = http::Request::builder()
            .method(method)
            .uri(&url)
            .header("host", &self.host)
            .header("content-type", "application/json")
            .body(SdkBody::from(body))
            .map_err(|e| ApiClientError::BadEndpoint(url.clone(), e.to_string()))?;
        instructions.apply_to_request_http1x(&mut request);
        let request = HttpRequest::try_from(request).map_err(|e| ApiClientError::Signing(e.to_string()))?;
        let unreachable = |message: String| ApiClientError::Unreachable { url: url.clone(), message };
        let answer = tokio::time::timeout(TIMEOUT, self.connector.call(request))
            .await
            .map_err(|_| ApiClientError::Timeout { url: url.clone() })?
            .map_err(|e| unreachable(aws_sdk_s3::error::DisplayErrorContext(e).to_string()))?;
        let status = answer.status().as_u16();
        let body = ByteStream::new(answer.into_body()).collect().await.map_err(|e| unreachable(e.to_string()))?;
        Ok(ApiAnswer { status, body: body.into_bytes().to_vec() })
    }
}

/// Percent-encoding of a query component (RFC 3986 unreserved characters kept).
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_components_are_percent_encoded() {
        assert_eq!(encode("a b/c=d~"), "a%20b%2Fc%3Dd~");
    }

    #[test]
    fn endpoints_must_be_http_urls_and_a_region_is_required() {
        let config = SdkConfig::builder()
            .credentials_provider(SharedCredentialsProvider::new(aws_credential_types::Credentials::for_tests()))
            .build();
        assert!(matches!(
            ApiClient::new(&config, "ftp://x/live", Some("us-east-1")),
            Err(ApiClientError::BadEndpoint(..))
        ));
        assert!(matches!(
            ApiClient::new(&config, "not a url", Some("us-east-1")),
            Err(ApiClientError::BadEndpoint(..))
        ));
        assert!(matches!(ApiClient::new(&config, "https://x/live", None), Err(ApiClientError::NoRegion)));
        let client =
            ApiClient::new(&config, "https://abc.execute-api.us-east-1.amazonaws.com/live/", Some("us-east-1"))
                .unwrap();
        assert_eq!(
            (client.endpoint(), client.host.as_str()),
            ("https://abc.execute-api.us-east-1.amazonaws.com/live", "abc.execute-api.us-east-1.amazonaws.com")
        );
    }
}
