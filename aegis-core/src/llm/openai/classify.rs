//! Turning HTTP outcomes into classified [`LlmError`]s.

use std::time::Duration;

use crate::llm::{ErrorClass, LlmError};

/// Classifies a transport failure (no HTTP status).
pub fn transport(provider: &str, model: &str, err: &reqwest::Error) -> LlmError {
    let class = if err.is_timeout() {
        ErrorClass::Timeout
    } else if err.is_connect() || err.is_request() || err.is_body() {
        ErrorClass::Connection
    } else if err.is_decode() {
        ErrorClass::Malformed
    } else {
        ErrorClass::Connection
    };
    // reqwest's Display includes the URL but never the key.
    LlmError::new(class, provider, model, err.to_string())
}

/// Passes a 2xx response through; turns anything else into a classified error.
pub async fn check_status(
    provider: &str,
    model: &str,
    response: reqwest::Response,
) -> Result<reqwest::Response, LlmError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| Duration::from_secs_f64(s.min(300.0)));
    let body = response.text().await.unwrap_or_default();
    let mut err = LlmError::new(from_status(status.as_u16(), &body), provider, model, error_message(&body))
        .with_status(status.as_u16());
    err.retry_after = retry_after;
    Err(err)
}

/// The class of an HTTP error status, refined by the body.
pub fn from_status(status: u16, body: &str) -> ErrorClass {
    match status {
        401 | 403 => ErrorClass::Auth,
        408 => ErrorClass::Timeout,
        429 => ErrorClass::RateLimited,
        400 | 404 | 409 | 413 | 422 if mentions_context_length(body) => ErrorClass::ContextTooLong,
        413 => ErrorClass::ContextTooLong,
        400..=499 => ErrorClass::BadRequest,
        _ => ErrorClass::ServerError,
    }
}

fn mentions_context_length(body: &str) -> bool {
    let lower = body.to_ascii_lowercase();
    [
        "context_length_exceeded",
        "context length",
        "maximum context",
        "context window",
        "too many tokens",
        "prompt is too long",
    ]
    .iter()
    .any(|needle| lower.contains(needle))
}

/// The human part of an error body: OpenAI's `{"error": {"message": …}}` when present.
pub fn error_message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            let err = v.get("error")?;
            err.get("message").and_then(|m| m.as_str()).map(str::to_owned).or_else(|| err.as_str().map(str::to_owned))
        })
        .unwrap_or_else(|| body.chars().take(300).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified() {
        assert_eq!(from_status(429, ""), ErrorClass::RateLimited);
        assert_eq!(from_status(401, ""), ErrorClass::Auth);
        assert_eq!(from_status(503, ""), ErrorClass::ServerError);
        assert_eq!(from_status(400, r#"{"error":{"code":"context_length_exceeded"}}"#), ErrorClass::ContextTooLong);
        assert_eq!(
            from_status(400, r#"{"error":{"message":"This model's maximum context length is 8192 tokens"}}"#),
            ErrorClass::ContextTooLong
        );
        assert_eq!(from_status(400, r#"{"error":{"message":"bad temperature"}}"#), ErrorClass::BadRequest);
        assert_eq!(error_message(r#"{"error":{"message":"slow down"}}"#), "slow down");
        assert_eq!(error_message("<html>oops</html>"), "<html>oops</html>");
    }
}
