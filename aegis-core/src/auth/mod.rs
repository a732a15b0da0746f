//! Who is calling: tenant API keys now; users, sessions, OIDC and SAML later.
//!
//! An API key is 256 random bits shown once (`aegis_<base64url>`). It is looked up by its
//! first 12 characters (the prefix, unique) and checked against its SHA-256, compared in
//! constant time; the database never holds the key itself. Keys have scopes, an optional
//! expiry, a revocation time and a last-used time.

mod api_keys;

pub use api_keys::{ApiKeyInfo, ApiKeys, CreatedApiKey, NewApiKey, VerifiedKey, reveal};

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

use crate::{db::DbError, tenancy::TenancyError};

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// The OpenAI-compatible gateway under `/v1`.
    Gateway,
    /// The tenant API under `/api/tenants/{t}`.
    Api,
}

impl Scope {
    /// Its name as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Gateway => "gateway",
            Scope::Api => "api",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = AuthError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "gateway" => Ok(Scope::Gateway),
            "api" => Ok(Scope::Api),
            other => Err(AuthError::InvalidScope(other.escape_debug().to_string())),
        }
    }
}

/// An authentication failure.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Not a key AEGIS issued, or a wrong one.
    #[error("invalid API key")]
    InvalidKey,
    /// The key has expired.
    #[error("the API key has expired")]
    Expired,
    /// The key was revoked.
    #[error("the API key was revoked")]
    Revoked,
    /// No such key for this tenant.
    #[error("no API key `{0}` for this tenant")]
    NotFound(String),
    /// Unknown scope.
    #[error("unknown scope `{0}` (expected gateway or api)")]
    InvalidScope(String),
    /// A tenant problem (unknown tenant, bad id).
    #[error(transparent)]
    Tenancy(#[from] TenancyError),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for AuthError {
    fn from(err: sqlx::Error) -> Self {
        AuthError::Db(DbError::Sql(err))
    }
}

/// Compares two byte strings in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
