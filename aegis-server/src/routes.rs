//! Every path and its handler.

use axum::{Router, routing::get};

use crate::{AppState, health};

/// The application's router.
pub fn router(state: AppState) -> Router {
    Router::new().route("/healthz", get(health::healthz)).route("/readyz", get(health::readyz)).with_state(state)
}
