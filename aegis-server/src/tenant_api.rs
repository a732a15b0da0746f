//! The tenant API under `/api/tenants/{t}`: every route requires an identity allowed on
//! `{t}` (an API key of that tenant with the `api` scope, or the operator key).

use aegis_core::{
    auth::Scope,
    policy::meters::{MeterUsage, PREMIUM_SPEND, Window},
    tenancy::{TenantId, TenantInfo, TenantScope},
};
use axum::{
    Json,
    extract::{FromRequestParts, Path, State},
    http::request::Parts,
};
use serde::Serialize;

use crate::{AppState, error::ApiError, identity::Identity};

/// A caller allowed on the tenant named in the path.
#[derive(Debug, Clone)]
pub struct TenantAccess {
    /// The scope for tenant work.
    pub scope: TenantScope,
}

impl FromRequestParts<AppState> for TenantAccess {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let identity = Identity::from_request_parts(parts, state).await?;
        let Path(params) = Path::<std::collections::HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        let raw = params.get("tenant").ok_or_else(|| ApiError::bad_request("no tenant in the path"))?;
        let tenant = TenantId::parse(raw)?;
        if !identity.allowed_on(&tenant, Scope::Api) {
            return Err(ApiError::forbidden(
                "tenant_forbidden",
                format!("this identity may not act on tenant `{tenant}`"),
            ));
        }
        let scope = state.aegis.tenants().scope(&tenant, identity.caller()).await?;
        Ok(Self { scope })
    }
}

/// `GET /api/tenants/{tenant}`.
pub async fn show_tenant(State(state): State<AppState>, access: TenantAccess) -> Result<Json<TenantInfo>, ApiError> {
    Ok(Json(state.aegis.tenants().get(access.scope.tenant()).await?))
}

/// Premium spend this month.
#[derive(Debug, Serialize)]
pub struct Usage {
    /// The meter.
    pub meter: &'static str,
    /// Its state.
    #[serde(flatten)]
    pub usage: MeterUsage,
}

/// `GET /api/tenants/{tenant}/usage`.
pub async fn usage(State(state): State<AppState>, access: TenantAccess) -> Result<Json<Usage>, ApiError> {
    let usage = state
        .aegis
        .models()
        .meters()
        .usage(access.scope.tenant().as_str(), PREMIUM_SPEND, Window::CalendarMonth)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    Ok(Json(Usage { meter: PREMIUM_SPEND, usage }))
}
