//! Provider errors, classified so the router knows whether to retry, fall back or stop.

use std::{fmt, time::Duration};

use serde::Serialize;

/// What kind of failure a provider call had.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// 429: too many requests.
    RateLimited,
    /// 5xx from the provider.
    ServerError,
    /// No answer in time.
    Timeout,
    /// Could not connect, or the connection broke.
    Connection,
    /// 401/403: bad or missing key.
    Auth,
    /// 400-class: the request itself is wrong.
    BadRequest,
    /// The prompt does not fit the model's context window.
    ContextTooLong,
    /// The provider answered with something that is not the protocol.
    Malformed,
    /// The provider is not configured here (missing key, disabled).
    NotConfigured,
}

impl ErrorClass {
    /// Worth retrying the same model.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorClass::RateLimited
                | ErrorClass::ServerError
                | ErrorClass::Timeout
                | ErrorClass::Connection
                | ErrorClass::Malformed
        )
    }

    /// Worth trying the next model of the chain (a bad request would fail everywhere).
    pub fn falls_back(self) -> bool {
        !matches!(self, ErrorClass::BadRequest)
    }

    /// Its name as stored in the ledger.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::RateLimited => "rate_limited",
            ErrorClass::ServerError => "server_error",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Connection => "connection",
            ErrorClass::Auth => "auth",
            ErrorClass::BadRequest => "bad_request",
            ErrorClass::ContextTooLong => "context_too_long",
            ErrorClass::Malformed => "malformed",
            ErrorClass::NotConfigured => "not_configured",
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed provider call.
#[derive(Debug, Clone, thiserror::Error, Serialize)]
#[error("{provider} model `{model}`: {class}{}: {message}", status.map(|s| format!(" (HTTP {s})")).unwrap_or_default())]
pub struct LlmError {
    /// The class.
    pub class: ErrorClass,
    /// The provider's name.
    pub provider: String,
    /// The provider model.
    pub model: String,
    /// The HTTP status, if one came back.
    pub status: Option<u16>,
    /// What the provider said (truncated).
    pub message: String,
    /// The provider's `Retry-After`, if any.
    #[serde(skip)]
    pub retry_after: Option<Duration>,
}

impl LlmError {
    /// An error of `class` for `provider`/`model`.
    pub fn new(class: ErrorClass, provider: &str, model: &str, message: impl Into<String>) -> Self {
        let mut message: String = message.into();
        if message.len() > 500 {
            let cut = (0..=500).rev().find(|i| message.is_char_boundary(*i)).unwrap_or(0);
            message.truncate(cut);
            message.push('…');
        }
        Self { class, provider: provider.into(), model: model.into(), status: None, message, retry_after: None }
    }

    /// Sets the HTTP status.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }
}
