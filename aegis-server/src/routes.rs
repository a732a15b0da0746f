//! Every path and its handler.

use axum::{
    Router,
    routing::{get, post},
};

use crate::{AppState, gateway, health, metrics, tenant_api};

/// The application's router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::metrics))
        .route("/v1/chat/completions", post(gateway::chat_completions))
        .route("/v1/embeddings", post(gateway::embeddings))
        .route("/v1/models", get(gateway::list_models))
        .route("/api/tenants/{tenant}", get(tenant_api::show_tenant))
        .route("/api/tenants/{tenant}/usage", get(tenant_api::usage))
        .with_state(state)
}
