//! The OpenAI-compatible gateway under `/v1`: chat completions (streamed or not),
//! embeddings and the model list, each under the calling tenant's policy. `model` is an
//! alias or `intent:<name>`; a disallowed alias is refused with its reason (403), never
//! silently downgraded.

mod chat;
mod embeddings;
mod models;

pub use chat::chat_completions;
pub use embeddings::embeddings;
pub use models::list_models;

use aegis_core::{auth::Scope, llm::CallScope, tenancy::TenantId};
use axum::{extract::FromRequestParts, http::request::Parts};

use crate::{AppState, error::ApiError, identity::Identity};

/// The tenant header an operator key uses to act for a tenant on the gateway.
pub const TENANT_HEADER: &str = "x-aegis-tenant";

/// A caller allowed on the gateway, with its tenant's tier.
#[derive(Debug, Clone)]
pub struct GatewayCaller {
    /// For policy and audit.
    pub scope: CallScope,
}

impl FromRequestParts<AppState> for GatewayCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let identity = Identity::from_request_parts(parts, state).await?;
        let tenant = match &identity {
            Identity::ApiKey { tenant, .. } => tenant.clone(),
            Identity::Operator => {
                let raw = parts.headers.get(TENANT_HEADER).and_then(|v| v.to_str().ok()).ok_or_else(|| {
                    ApiError::bad_request(format!("the operator key needs a `{TENANT_HEADER}` header"))
                })?;
                TenantId::parse(raw)?
            }
        };
        if !identity.allowed_on(&tenant, Scope::Gateway) {
            return Err(ApiError::forbidden("scope", "this key may not use the gateway"));
        }
        let tier = state.tiers.tier(&tenant).await?;
        Ok(Self {
            scope: CallScope { tenant: tenant.to_string(), tier, caller: identity.caller().to_string(), run_id: None },
        })
    }
}
