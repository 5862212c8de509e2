//! What the status function answers until abort and timeout records ship (the
//! next issue): the stack deploys and wires it today, so its package must exist,
//! but it says plainly that it does nothing yet instead of pretending.

use serde_json::{Value, json};

/// A Lambda error for direct invocations (state machines, EventBridge), and an
/// HTTP 501 for API Gateway proxy requests so that API clients see why.
pub fn respond(function: &str, event: &Value) -> Result<Value, String> {
    let message = format!("the {function} function is not implemented in Updraft {} yet", env!("CARGO_PKG_VERSION"));
    if event.get("httpMethod").is_some() {
        let body = json!({"code": "NOT_IMPLEMENTED", "message": message, "retryable": false});
        return Ok(json!({
            "statusCode": 501,
            "headers": {"content-type": "application/json"},
            "body": body.to_string(),
        }));
    }
    Err(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_requests_get_a_501_and_other_events_an_error() {
        let response = respond("api", &json!({"httpMethod": "POST", "path": "/v1/tasks"})).unwrap();
        assert_eq!(response["statusCode"], 501);
        assert!(response["body"].as_str().unwrap().contains("NOT_IMPLEMENTED"));
        let err = respond("node", &json!({"execution": "x"})).unwrap_err();
        assert!(err.contains("node function is not implemented"), "{err}");
    }
}
