//! `POST /v1/chat/completions`.

use std::convert::Infallible;

use aegis_core::{
    llm::{Target, types::ChatRequest},
    policy::Intent,
};
use axum::{
    Json,
    body::Bytes,
    extract::State,
    http::HeaderValue,
    response::{IntoResponse, Response, Sse, sse::Event},
};
use futures::StreamExt;

use super::GatewayCaller;
use crate::{AppState, error::ApiError};

/// Answers a chat completion, as JSON or as server-sent events.
pub async fn chat_completions(
    State(state): State<AppState>,
    caller: GatewayCaller,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: ChatRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("the body is not a chat completion request: {e}")))?;
    if request.messages.is_empty() {
        return Err(ApiError::bad_request("`messages` must not be empty"));
    }
    let target = Target::parse(&request.model, Intent::Chat).map_err(ApiError::bad_request)?;
    let models = state.aegis.models();
    if request.stream != Some(true) {
        let completion = models.complete(&caller.scope, &target, &request).await?;
        let mut response = Json(completion.response).into_response();
        annotate(&mut response, &completion.model, &completion.decision.id.to_string());
        return Ok(response);
    }
    let wants_usage = request.stream_options.as_ref().is_some_and(|o| o.include_usage);
    let (decision, stream) = models.stream(&caller.scope, &target, &request).await?;
    let model = stream.model().to_owned();
    let events = stream
        .filter_map(move |item| async move {
            match item {
                Ok(mut chunk) => {
                    // Only clients that asked for usage get the usage-only chunk.
                    if !wants_usage {
                        if chunk.choices.is_empty() {
                            return None;
                        }
                        chunk.usage = None;
                    }
                    Some(Event::default().data(serde_json::to_string(&chunk).unwrap_or_default()))
                }
                Err(err) => {
                    let body = ApiError::new(
                        axum::http::StatusCode::BAD_GATEWAY,
                        "upstream_error",
                        err.class.as_str(),
                        err.to_string(),
                    )
                    .body();
                    Some(Event::default().data(body.to_string()))
                }
            }
        })
        .chain(futures::stream::once(async { Event::default().data("[DONE]") }))
        .map(Ok::<_, Infallible>);
    let mut response = Sse::new(events).into_response();
    annotate(&mut response, &model, &decision.id.to_string());
    Ok(response)
}

fn annotate(response: &mut Response, model: &str, decision: &str) {
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(model) {
        headers.insert("x-aegis-model", v);
    }
    if let Ok(v) = HeaderValue::from_str(decision) {
        headers.insert("x-aegis-decision", v);
    }
}
