//! `POST /v1/embeddings`.

use aegis_core::{
    llm::{
        Target,
        config::EMBEDDING_DIMENSIONS,
        types::{EmbeddingData, EmbeddingRequest, EmbeddingResponse},
    },
    policy::Intent,
};
use axum::{Json, body::Bytes, extract::State};

use super::GatewayCaller;
use crate::{AppState, error::ApiError};

/// The longest batch accepted in one request.
const MAX_INPUTS: usize = 2048;

/// Embeds one text or a list, under the tenant's embedding policy.
pub async fn embeddings(
    State(state): State<AppState>,
    caller: GatewayCaller,
    body: Bytes,
) -> Result<Json<EmbeddingResponse>, ApiError> {
    let request: EmbeddingRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("the body is not an embeddings request: {e}")))?;
    if let Some(d) = request.dimensions
        && d != EMBEDDING_DIMENSIONS
    {
        return Err(ApiError::bad_request(format!("`dimensions` must be {EMBEDDING_DIMENSIONS}")));
    }
    if request.encoding_format.as_deref().is_some_and(|f| f != "float") {
        return Err(ApiError::bad_request("only `encoding_format: float` is supported"));
    }
    let texts = request.input.texts();
    if texts.is_empty() || texts.len() > MAX_INPUTS {
        return Err(ApiError::bad_request(format!("`input` must hold 1 to {MAX_INPUTS} texts")));
    }
    let target = Target::parse(&request.model, Intent::Embedding).map_err(ApiError::bad_request)?;
    let (_, embeddings) = state.aegis.models().embed(&caller.scope, &target, &texts).await?;
    let data = embeddings
        .vectors
        .into_iter()
        .enumerate()
        .map(|(i, embedding)| EmbeddingData {
            object: "embedding".into(),
            index: u32::try_from(i).unwrap_or(u32::MAX),
            embedding,
        })
        .collect();
    Ok(Json(EmbeddingResponse { object: "list".into(), data, model: embeddings.model, usage: embeddings.usage }))
}
