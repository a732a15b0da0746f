//! Errors as HTTP responses, in OpenAI's JSON error shape
//! (`{"error": {"message", "type", "param", "code"}}`) so OpenAI clients raise the right
//! exception. Database internals are never echoed.

use aegis_core::{
    agents::AgentError, audit::AuditError, auth::AuthError, knowledge::KnowledgeError, llm::ModelError,
    policy::meters::MeterError, tenancy::TenancyError,
};
use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::json;

/// An error answered to a client.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    code: String,
    message: String,
}

impl ApiError {
    /// An error with a status, OpenAI error type, code and message.
    pub fn new(status: StatusCode, kind: &'static str, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self { status, kind, code: code.into(), message: message.into() }
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", "invalid_request", message)
    }

    /// 401.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "authentication_error", "invalid_api_key", message)
    }

    /// 403.
    pub fn forbidden(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "permission_error", code, message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found_error", "not_found", message)
    }

    /// 500, logging the cause and telling the client nothing about it.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "internal_error", "internal error")
    }

    /// The body, also used inside streams.
    pub fn body(&self) -> serde_json::Value {
        json!({ "error": { "message": self.message, "type": self.kind, "param": null, "code": self.code } })
    }
}

/// Answers, in the same JSON shape as the handlers' errors, the errors axum writes itself
/// as plain text or with no body: a path, query or form that does not parse (400), a
/// wrong method (405), a body past its limit (413). Other responses pass untouched.
pub async fn json_errors(response: Response) -> Response {
    use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
    let status = response.status();
    let is_json = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 16 * 1024).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_owned();
    let message = if text.is_empty() { status.canonical_reason().unwrap_or("error").to_owned() } else { text };
    let (kind, code) = match status {
        StatusCode::NOT_FOUND => ("not_found_error", "not_found"),
        StatusCode::METHOD_NOT_ALLOWED => ("invalid_request_error", "method_not_allowed"),
        StatusCode::PAYLOAD_TOO_LARGE => ("invalid_request_error", "request_too_large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("invalid_request_error", "unsupported_media_type"),
        s if s.is_client_error() => ("invalid_request_error", "invalid_request"),
        _ => ("api_error", "internal_error"),
    };
    let mut answer = ApiError::new(status, kind, code, message).into_response();
    // Headers such as `Allow` and `WWW-Authenticate` stay.
    for (name, value) in &parts.headers {
        if name != CONTENT_TYPE && name != CONTENT_LENGTH {
            answer.headers_mut().insert(name.clone(), value.clone());
        }
    }
    answer
}

/// A route that does not exist.
pub async fn no_route(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    let path = uri.path();
    let hint = if path.contains("/documents/") {
        " (a document key holding `/` is sent with it encoded, `policies%2Frefunds.md`)"
    } else {
        ""
    };
    ApiError::not_found(format!("no route {method} {path}{hint}"))
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

impl From<ModelError> for ApiError {
    fn from(err: ModelError) -> Self {
        match err {
            // OpenAI answers a model it does not have with 404 `model_not_found`; a model
            // this tenant may not use is a 403 with the policy's reason.
            ModelError::Denied { reason: "unknown_alias", message, .. } => {
                ApiError::new(StatusCode::NOT_FOUND, "invalid_request_error", "model_not_found", message)
            }
            ModelError::Denied { reason, message, .. } => ApiError::forbidden(reason, message),
            ModelError::Quota(quota @ MeterError::Exceeded { .. }) => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "insufficient_quota",
                "insufficient_quota",
                quota.to_string(),
            ),
            ModelError::AllFailed(err) if err.is_bad_request() => ApiError::bad_request(err.to_string()),
            ModelError::AllFailed(err) => {
                ApiError::new(StatusCode::BAD_GATEWAY, "upstream_error", "all_providers_failed", err.to_string())
            }
            ModelError::Quota(other) => ApiError::internal(&other),
            ModelError::Db(db) => ApiError::internal(&db),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::InvalidKey | AuthError::Expired | AuthError::Revoked => ApiError::unauthorized(err.to_string()),
            AuthError::NotFound(_) => ApiError::not_found(err.to_string()),
            AuthError::InvalidScope(_) => ApiError::bad_request(err.to_string()),
            AuthError::Tenancy(t) => t.into(),
            AuthError::Db(db) => ApiError::internal(&db),
        }
    }
}

impl From<TenancyError> for ApiError {
    fn from(err: TenancyError) -> Self {
        match err {
            TenancyError::NotFound(_) => ApiError::not_found(err.to_string()),
            TenancyError::InvalidId { .. } | TenancyError::InvalidTier(_) => ApiError::bad_request(err.to_string()),
            other => ApiError::internal(&other),
        }
    }
}

impl From<KnowledgeError> for ApiError {
    fn from(err: KnowledgeError) -> Self {
        match err {
            KnowledgeError::NotFound(_) => ApiError::not_found(err.to_string()),
            KnowledgeError::Invalid(_) | KnowledgeError::UnsupportedFormat(_) | KnowledgeError::Extract { .. } => {
                ApiError::bad_request(err.to_string())
            }
            KnowledgeError::Model(m) => m.into(),
            KnowledgeError::EmbeddersMixed { .. } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "service_unavailable",
                "embedders_mixed",
                err.to_string(),
            ),
            other => ApiError::internal(&other),
        }
    }
}

impl From<AgentError> for ApiError {
    fn from(err: AgentError) -> Self {
        match err {
            AgentError::UnknownAgent(_) | AgentError::ConversationNotFound(_) => ApiError::not_found(err.to_string()),
            AgentError::Invalid(_) | AgentError::InvalidProfile { .. } => ApiError::bad_request(err.to_string()),
            AgentError::InProgress(_) => {
                ApiError::new(StatusCode::CONFLICT, "conflict_error", "in_progress", err.to_string())
            }
            AgentError::Conflict(_) => {
                ApiError::new(StatusCode::CONFLICT, "conflict_error", "source_id_reused", err.to_string())
            }
            AgentError::Model(m) => m.into(),
            AgentError::Knowledge(k) => k.into(),
            AgentError::Audit(a) => a.into(),
            AgentError::Db(db) => ApiError::internal(&db),
        }
    }
}

impl From<AuditError> for ApiError {
    fn from(err: AuditError) -> Self {
        match err {
            AuditError::RunNotFound(_) => ApiError::not_found(err.to_string()),
            AuditError::Db(db) => ApiError::internal(&db),
        }
    }
}
