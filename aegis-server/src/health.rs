//! Liveness and readiness.

use axum::{Json, extract::State, http::StatusCode};
use serde::Serialize;

use crate::AppState;

/// Liveness: the process answers.
pub async fn healthz() -> &'static str {
    "ok"
}

/// What `/readyz` reports.
#[derive(Debug, Serialize)]
pub struct Readiness {
    /// Whether the database answered.
    pub database: bool,
    /// Whether the public migrations are all applied.
    pub migrations_current: bool,
}

/// Readiness: the database answers and the public migrations are current (503 otherwise).
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let database = state.aegis.db().ping().await.is_ok();
    let migrations_current = database && state.aegis.public_schema_current().await.unwrap_or(false);
    let status = if database && migrations_current { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(Readiness { database, migrations_current }))
}
