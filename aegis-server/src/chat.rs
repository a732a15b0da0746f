//! Agents over HTTP: `POST /api/tenants/{t}/chat` (JSON, or server-sent events with
//! `"stream": true` or `Accept: text/event-stream`), the team, conversations and their
//! history, a run's audit timeline, and the audit chain check.

use std::convert::Infallible;

use aegis_core::{
    agents::{ChatEvent, InboundMessage},
    audit,
};
use axum::{
    Json,
    extract::{Path, Query, State},
    http::HeaderMap,
    response::{IntoResponse, Response, Sse, sse::Event},
};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{AppState, error::ApiError, tenant_api::TenantAccess};

/// The body of `POST …/chat`.
#[derive(Debug, Deserialize)]
pub struct ChatBody {
    /// The message.
    pub message: String,
    /// Ask this agent.
    #[serde(default)]
    pub agent: Option<String>,
    /// Ask these agents as a boardroom (empty: the default seats).
    #[serde(default)]
    pub boardroom: Option<Vec<String>>,
    /// The conversation thread to continue (default: a new one).
    #[serde(default)]
    pub thread: Option<String>,
    /// The message's id, for safe retries (or the `Idempotency-Key` header).
    #[serde(default)]
    pub source_id: Option<String>,
    /// Who writes (default: the caller).
    #[serde(default)]
    pub sender: Option<String>,
    /// Answer as server-sent events.
    #[serde(default)]
    pub stream: bool,
}

/// `POST /api/tenants/{tenant}/chat`.
pub async fn chat(
    State(state): State<AppState>,
    access: TenantAccess,
    headers: HeaderMap,
    Json(body): Json<ChatBody>,
) -> Result<Response, ApiError> {
    let source_id = body
        .source_id
        .or_else(|| headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_owned))
        .unwrap_or_else(|| Uuid::now_v7().to_string());
    // Without a thread a message starts a conversation of its own, named after the message
    // so that a retry of it lands in the same one.
    let thread = body.thread.unwrap_or_else(|| format!("api-{source_id}"));
    let message = InboundMessage {
        channel: "api".into(),
        source_id,
        thread,
        sender: body.sender.unwrap_or_else(|| access.scope.caller().to_string()),
        text: body.message,
        agent: body.agent,
        boardroom: body.boardroom,
    };
    let wants_events = body.stream
        || headers.get("accept").and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/event-stream"));
    let agents = state.aegis.agents().clone();
    // The turn runs to its end even if the client goes away: its reply is stored either way,
    // and a retry with the same source id gets it.
    let scope = access.scope.clone();
    if !wants_events {
        let task = tokio::spawn(async move { agents.handle(&scope, &message, None).await });
        let reply = task.await.map_err(|e| ApiError::internal(&e))??;
        return Ok(Json(reply).into_response());
    }
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<ChatEvent>();
    let task = tokio::spawn(async move { agents.handle(&scope, &message, Some(tx)).await });
    let events = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (e, rx)) })
        .map(|event| Event::default().event(event.kind()).data(serde_json::to_string(&event).unwrap_or_default()));
    let end = futures::stream::once(async move {
        match task.await {
            Ok(Ok(reply)) => Event::default().event("done").data(serde_json::to_string(&reply).unwrap_or_default()),
            Ok(Err(err)) => Event::default().event("error").data(ApiError::from(err).body().to_string()),
            Err(err) => Event::default().event("error").data(ApiError::internal(&err).body().to_string()),
        }
    });
    Ok(Sse::new(events.chain(end).map(Ok::<_, Infallible>)).into_response())
}

/// `GET /api/tenants/{tenant}/agents`: the team with versions and tool notes.
pub async fn agents(State(state): State<AppState>, access: TenantAccess) -> Result<Json<Value>, ApiError> {
    let team = state.aegis.agents().team(&access.scope).await?;
    let rows: Vec<Value> = team
        .iter()
        .map(|a| json!({ "version": a.version, "profile": a.profile, "tool_notes": a.tools.notes }))
        .collect();
    Ok(Json(json!({ "agents": rows })))
}

/// `?limit=` of the conversation list.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    /// How many (default 50).
    pub limit: Option<i64>,
}

/// `GET /api/tenants/{tenant}/conversations`.
pub async fn conversations(
    State(state): State<AppState>,
    access: TenantAccess,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let list = state.aegis.agents().conversations(&access.scope, q.limit.unwrap_or(50)).await?;
    Ok(Json(json!({ "conversations": list })))
}

/// `GET /api/tenants/{tenant}/conversations/{id}`: participants and every message.
pub async fn conversation(
    State(state): State<AppState>,
    access: TenantAccess,
    Path((_, id)): Path<(String, Uuid)>,
) -> Result<Json<aegis_core::agents::ConversationHistory>, ApiError> {
    Ok(Json(state.aegis.agents().conversation(&access.scope, id).await?))
}

/// `GET /api/tenants/{tenant}/runs/{id}`: the run's whole timeline.
pub async fn run(access: TenantAccess, Path((_, id)): Path<(String, Uuid)>) -> Result<Json<audit::Timeline>, ApiError> {
    Ok(Json(audit::timeline(&access.scope, id).await?))
}

/// `GET /api/tenants/{tenant}/audit/verify`: the hash chain check.
pub async fn verify(access: TenantAccess) -> Result<Json<audit::ChainReport>, ApiError> {
    Ok(Json(audit::verify(&access.scope).await?))
}
