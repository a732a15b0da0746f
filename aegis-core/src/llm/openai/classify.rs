//! Turning HTTP outcomes into classified [`LlmError`]s.

use std::time::Duration;

use bytes::Bytes;
use http::Response;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;

use super::transport::describe;
use crate::llm::{ErrorClass, LlmError};

/// Reads a whole body, at most `limit` bytes: a body that breaks off is a connection error,
/// a longer one is malformed.
pub async fn read_body(provider: &str, model: &str, body: Incoming, limit: usize) -> Result<Bytes, LlmError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(LlmError::new(
            ErrorClass::Malformed,
            provider,
            model,
            format!("the response is longer than {limit} bytes"),
        )),
        Err(e) => Err(LlmError::new(
            ErrorClass::Connection,
            provider,
            model,
            format!("the response broke off: {}", describe(e.as_ref())),
        )),
    }
}

/// The first `limit` bytes of a body (all of a shorter one, what came of one that broke off).
async fn read_prefix(mut body: Incoming, limit: usize) -> Vec<u8> {
    let mut bytes = Vec::new();
    while bytes.len() < limit
        && let Some(Ok(frame)) = body.frame().await
    {
        if let Ok(data) = frame.into_data() {
            bytes.extend_from_slice(&data[..data.len().min(limit - bytes.len())]);
        }
    }
    bytes
}

/// The most of an error response's body read for its message.
const MAX_ERROR_BODY_BYTES: usize = 64 << 10;

/// Passes a 2xx response through; turns anything else into a classified error.
pub async fn check_status(
    provider: &str,
    model: &str,
    response: Response<Incoming>,
) -> Result<Response<Incoming>, LlmError> {
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
    // Providers do not redirect API calls: a redirect means the base URL is not the
    // provider's (http:// for https://, a moved path). Not followed; the next model is tried.
    if status.is_redirection() {
        let to = response.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or("elsewhere");
        let message =
            format!("the provider redirected the call ({status}) to {to}: set its base URL to where it points");
        return Err(LlmError::new(ErrorClass::NotConfigured, provider, model, message).with_status(status.as_u16()));
    }
    let body = read_prefix(response.into_body(), MAX_ERROR_BODY_BYTES).await;
    let body = String::from_utf8_lossy(&body);
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
