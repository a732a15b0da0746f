//! `GET /v1/models`: the aliases the caller's tenant may use.

use axum::{Json, extract::State};
use serde_json::{Value, json};

use super::GatewayCaller;
use crate::AppState;

/// Lists the tenant's aliases in OpenAI's model-list shape.
pub async fn list_models(State(state): State<AppState>, caller: GatewayCaller) -> Json<Value> {
    let data: Vec<Value> = state
        .aegis
        .models()
        .aliases_for(caller.scope.tier)
        .into_iter()
        .map(|a| json!({ "id": a.alias, "object": "model", "created": 0, "owned_by": "aegis", "kind": a.kind, "description": a.description, "metered": a.metered }))
        .collect();
    Json(json!({ "object": "list", "data": data }))
}
