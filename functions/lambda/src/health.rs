//! The health function: answers `GET /v1/health` through API Gateway with the
//! deployed version. It proves the whole path (API Gateway with IAM auth →
//! Lambda `provided.al2023` → a Rust bootstrap) before any real function ships.

use serde_json::{Value, json};

/// The one route this function serves.
pub const ROUTE: (&str, &str) = ("GET", "/v1/health");

/// An API Gateway (REST, Lambda proxy) response for any request.
pub fn respond(event: &Value) -> Value {
    let body = json!({
        "status": "ok",
        "service": "updraft",
        "version": env!("CARGO_PKG_VERSION"),
        // Echoed so that a caller can see which stage and route answered.
        "path": event.get("path").and_then(Value::as_str).unwrap_or("/"),
    });
    json!({
        "statusCode": 200,
        "headers": {"content-type": "application/json"},
        "body": body.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_with_the_version_as_a_proxy_response() {
        let response = respond(&json!({"path": "/v1/health", "httpMethod": "GET"}));
        assert_eq!(response["statusCode"], 200);
        let body: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
        assert_eq!(body["status"], "ok");
        assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(body["path"], "/v1/health");
    }
}
