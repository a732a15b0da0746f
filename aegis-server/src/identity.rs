//! Who is calling: every request but health carries an identity, from
//! `Authorization: Bearer <token>` — the operator key from configuration, or a tenant API
//! key. Later sign-in methods (sessions, OIDC, SAML) add variants here.

use aegis_core::{
    auth::{Scope, constant_time_eq},
    tenancy::{Caller, TenantId},
};
use axum::{extract::FromRequestParts, http::request::Parts};
use secrecy::ExposeSecret;
use uuid::Uuid;

use crate::{AppState, error::ApiError};

/// A verified caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// The platform operator: allowed on every tenant.
    Operator,
    /// A tenant API key.
    ApiKey {
        /// The key's id.
        key_id: Uuid,
        /// Its tenant.
        tenant: TenantId,
        /// Its scopes.
        scopes: Vec<Scope>,
    },
}

impl Identity {
    /// Whether this identity may act on `tenant` with `scope`.
    pub fn allowed_on(&self, tenant: &TenantId, scope: Scope) -> bool {
        match self {
            Identity::Operator => true,
            Identity::ApiKey { tenant: own, scopes, .. } => own == tenant && scopes.contains(&scope),
        }
    }

    /// The caller recorded in audits.
    pub fn caller(&self) -> Caller {
        match self {
            Identity::Operator => Caller::Operator { name: "operator-key".into() },
            Identity::ApiKey { key_id, .. } => Caller::ApiKey { key_id: key_id.to_string() },
        }
    }
}

impl FromRequestParts<AppState> for Identity {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer <key>"))?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .ok_or_else(|| ApiError::unauthorized("expected Authorization: Bearer <key>"))?;
        if let Some(operator) = &state.aegis.config().secrets.operator_key
            && constant_time_eq(operator.expose_secret().as_bytes(), token.as_bytes())
        {
            return Ok(Identity::Operator);
        }
        let key = state.aegis.api_keys().verify(token).await?;
        Ok(Identity::ApiKey { key_id: key.id, tenant: key.tenant, scopes: key.scopes })
    }
}
