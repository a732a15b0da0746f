//! `POST /v1/embeddings`.

use aegis_core::{
    llm::{Target, config::EMBEDDING_DIMENSIONS, types::EmbeddingRequest},
    policy::Intent,
};
use axum::{Json, body::Bytes, extract::State};
use base64::Engine;
use serde_json::{Value, json};

use super::GatewayCaller;
use crate::{AppState, error::ApiError};

/// The longest batch accepted in one request.
const MAX_INPUTS: usize = 2048;

/// Embeds one text or a list, under the tenant's embedding policy. Vectors come back as
/// float arrays, or with `encoding_format: base64` as little-endian f32 bytes in base64 (as
/// OpenAI does, and as the official clients ask by default).
pub async fn embeddings(
    State(state): State<AppState>,
    caller: GatewayCaller,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let request: EmbeddingRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("the body is not an embeddings request: {e}")))?;
    if let Some(d) = request.dimensions
        && d != EMBEDDING_DIMENSIONS
    {
        return Err(ApiError::bad_request(format!("`dimensions` must be {EMBEDDING_DIMENSIONS}")));
    }
    let base64 = match request.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!("unknown `encoding_format` `{other}` (float or base64)")));
        }
    };
    let texts = request.input.texts();
    if texts.is_empty() || texts.len() > MAX_INPUTS {
        return Err(ApiError::bad_request(format!("`input` must hold 1 to {MAX_INPUTS} texts")));
    }
    let target = Target::parse(&request.model, Intent::Embedding).map_err(ApiError::bad_request)?;
    let (_, embeddings) = state.aegis.models().embed(&caller.scope, &target, &texts).await?;
    let data: Vec<Value> = embeddings
        .vectors
        .iter()
        .enumerate()
        .map(|(index, vector)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(vector)
            };
            json!({ "object": "embedding", "index": index, "embedding": embedding })
        })
        .collect();
    let usage = embeddings.usage.map_or_else(
        || {
            let tokens: usize = texts.iter().map(|t| t.split_whitespace().count()).sum();
            json!({ "prompt_tokens": tokens, "total_tokens": tokens })
        },
        |u| json!({ "prompt_tokens": u.prompt_tokens, "total_tokens": u.total_tokens }),
    );
    Ok(Json(json!({ "object": "list", "data": data, "model": embeddings.model, "usage": usage })))
}
