//! Every path and its handler.

use axum::{
    Router,
    extract::DefaultBodyLimit,
    routing::{delete, get, post},
};

use crate::{AppState, chat, documents, error, gateway, health, metrics, tenant_api};

/// The application's router.
pub fn router(state: AppState) -> Router {
    let upload_limit = usize::try_from(state.aegis.config().knowledge.limits.max_file_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(1024 * 1024);
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::metrics))
        .route("/v1/chat/completions", post(gateway::chat_completions))
        .route("/v1/embeddings", post(gateway::embeddings))
        .route("/v1/models", get(gateway::list_models))
        .route("/api/tenants/{tenant}", get(tenant_api::show_tenant))
        .route("/api/tenants/{tenant}/usage", get(tenant_api::usage))
        .route(
            "/api/tenants/{tenant}/documents",
            get(documents::list).post(documents::upload).layer(DefaultBodyLimit::max(upload_limit)),
        )
        .route("/api/tenants/{tenant}/documents/{document}", delete(documents::delete))
        .route("/api/tenants/{tenant}/search", get(documents::search))
        .route("/api/tenants/{tenant}/text-search", get(documents::text_search).put(documents::set_text_search))
        .route("/api/tenants/{tenant}/jobs/{id}", get(documents::job))
        .route("/api/tenants/{tenant}/chat", post(chat::chat))
        .route("/api/tenants/{tenant}/agents", get(chat::agents))
        .route("/api/tenants/{tenant}/conversations", get(chat::conversations))
        .route("/api/tenants/{tenant}/conversations/{id}", get(chat::conversation))
        .route("/api/tenants/{tenant}/runs/{id}", get(chat::run))
        .route("/api/tenants/{tenant}/audit/verify", get(chat::verify))
        .fallback(error::no_route)
        .layer(axum::middleware::map_response(error::json_errors))
        .with_state(state)
}
