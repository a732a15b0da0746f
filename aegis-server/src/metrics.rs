//! `/metrics` in Prometheus' text format, for the operator key only.

use axum::{extract::State, http::header, response::IntoResponse};

use crate::{AppState, error::ApiError, identity::Identity};

/// Counters of this process.
pub async fn metrics(State(state): State<AppState>, identity: Identity) -> Result<impl IntoResponse, ApiError> {
    if identity != Identity::Operator {
        return Err(ApiError::forbidden("operator_only", "metrics need the operator key"));
    }
    let models = state.aegis.models();
    let ledger = models.ledger();
    let body = format!(
        "# HELP aegis_provider_calls_unpriced_total Provider attempts that ended without usage (charged at their reservation, recorded unpriced).\n\
         # TYPE aegis_provider_calls_unpriced_total counter\n\
         aegis_provider_calls_unpriced_total {}\n\
         # HELP aegis_log_rows_lost_total Rows the batched writers could not write.\n\
         # TYPE aegis_log_rows_lost_total counter\n\
         aegis_log_rows_lost_total{{writer=\"provider_ledger\"}} {}\n\
         aegis_log_rows_lost_total{{writer=\"ai_audit_log\"}} {}\n",
        ledger.unpriced_calls(),
        ledger.lost_rows(),
        models.decisions_lost(),
    );
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body))
}
