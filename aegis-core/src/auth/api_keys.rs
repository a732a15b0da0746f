//! Tenant API keys: create (shown once), list, revoke, verify (cached, and kept fresh in
//! the background while in use, so the gateway's request path costs no database round trip).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use base64::Engine;
use chrono::{DateTime, Utc};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{AuthError, Scope, constant_time_eq};
use crate::{
    db::Database,
    fresh_cache::FreshCache,
    tenancy::{Caller, TenancyError, TenantId, record_platform_audit},
};

const KEY_PREFIX: &str = "aegis_";
const LOOKUP_CHARS: usize = 12;
/// How long a verified key is trusted without asking the database again. Revocation in
/// another process takes effect within this time; in this process, at once.
const CACHE_TTL: Duration = Duration::from_secs(5);
/// A key used within this time is reloaded in the background before its entry goes stale.
const KEEP_FRESH_FOR: Duration = Duration::from_secs(600);
/// `last_used_at` is written at most this often per key.
const LAST_USED_EVERY: Duration = Duration::from_secs(60);

/// A key to create.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    /// Its tenant.
    pub tenant: TenantId,
    /// A label.
    pub name: String,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// When it stops working, if ever.
    pub expires_at: Option<DateTime<Utc>>,
}

/// A key just created: the only time its secret is available.
#[derive(Debug)]
pub struct CreatedApiKey {
    /// Its id.
    pub id: Uuid,
    /// The key itself.
    pub key: SecretString,
    /// Its public prefix.
    pub prefix: String,
}

/// A key as listed (no secret).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ApiKeyInfo {
    /// Id.
    pub id: Uuid,
    /// Tenant.
    pub tenant_id: String,
    /// Label.
    pub name: String,
    /// Public prefix.
    pub prefix: String,
    /// Scopes.
    pub scopes: Vec<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// Revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Last used (updated at most once a minute).
    pub last_used_at: Option<DateTime<Utc>>,
}

/// A key that checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedKey {
    /// Its id.
    pub id: Uuid,
    /// Its tenant.
    pub tenant: TenantId,
    /// Its scopes.
    pub scopes: Vec<Scope>,
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    prefix: String,
    id: Uuid,
    tenant_id: String,
    hash: Vec<u8>,
    scopes: Vec<String>,
    expires_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
struct Cached {
    hash: Vec<u8>,
    key: VerifiedKey,
    expires_at: Option<DateTime<Utc>>,
    revoked: bool,
}

impl KeyRow {
    /// The keys with these prefixes (a cache miss asks for one, a reload for many).
    async fn load(db: &Database, prefixes: &[String]) -> Result<Vec<KeyRow>, sqlx::Error> {
        sqlx::query_as(
            "SELECT prefix, id, tenant_id, hash, scopes, expires_at, revoked_at FROM public.api_keys \
             WHERE prefix = ANY($1)",
        )
        .bind(prefixes)
        .fetch_all(db.pool())
        .await
    }

    fn cached(self) -> Result<(String, Cached), AuthError> {
        let key = VerifiedKey {
            id: self.id,
            tenant: TenantId::parse(&self.tenant_id)?,
            scopes: self.scopes.iter().filter_map(|s| s.parse().ok()).collect(),
        };
        let cached = Cached { hash: self.hash, key, expires_at: self.expires_at, revoked: self.revoked_at.is_some() };
        Ok((self.prefix, cached))
    }
}

/// The API key service. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ApiKeys {
    db: Database,
    cache: FreshCache<String, Cached>,
    /// When each key's use was last written.
    use_written: Arc<Mutex<HashMap<String, Instant>>>,
}

fn hash(key: &str) -> Vec<u8> {
    Sha256::digest(key.as_bytes()).to_vec()
}

impl ApiKeys {
    /// The service over `db`.
    pub fn new(db: Database) -> Self {
        let reload = {
            let db = db.clone();
            move |prefixes: Vec<String>| {
                let db = db.clone();
                async move {
                    let rows = KeyRow::load(&db, &prefixes).await.ok()?;
                    Some(rows.into_iter().filter_map(|row| row.cached().ok()).collect())
                }
            }
        };
        let cache = FreshCache::new(CACHE_TTL, KEEP_FRESH_FOR, reload);
        Self { db, cache, use_written: Arc::default() }
    }

    /// Creates a key; its secret is returned once and never stored.
    pub async fn create(&self, new: &NewApiKey, caller: &Caller) -> Result<CreatedApiKey, AuthError> {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let key = format!("{KEY_PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes));
        let prefix = key[KEY_PREFIX.len()..KEY_PREFIX.len() + LOOKUP_CHARS].to_owned();
        let id = Uuid::now_v7();
        let scopes: Vec<&str> = new.scopes.iter().map(|s| s.as_str()).collect();
        let mut tx = self.db.begin_platform().await?;
        let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM public.tenants WHERE id = $1)")
            .bind(new.tenant.as_str())
            .fetch_one(&mut *tx)
            .await?;
        if !exists {
            return Err(TenancyError::NotFound(new.tenant.to_string()).into());
        }
        sqlx::query(
            "INSERT INTO public.api_keys (id, tenant_id, name, prefix, hash, scopes, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(id)
        .bind(new.tenant.as_str())
        .bind(&new.name)
        .bind(&prefix)
        .bind(hash(&key))
        .bind(&scopes)
        .bind(Utc::now())
        .bind(new.expires_at)
        .execute(&mut *tx)
        .await?;
        let detail = serde_json::json!({ "key_id": id, "name": new.name, "prefix": prefix, "scopes": scopes });
        record_platform_audit(&mut tx, caller, "apikey.create", Some(&new.tenant), detail).await?;
        tx.commit().await.map_err(crate::db::DbError::from)?;
        Ok(CreatedApiKey { id, key: SecretString::from(key), prefix })
    }

    /// A tenant's keys, newest first.
    pub async fn list(&self, tenant: &TenantId) -> Result<Vec<ApiKeyInfo>, AuthError> {
        Ok(sqlx::query_as(
            "SELECT id, tenant_id, name, prefix, scopes, created_at, expires_at, revoked_at, last_used_at \
             FROM public.api_keys WHERE tenant_id = $1 ORDER BY created_at DESC",
        )
        .bind(tenant.as_str())
        .fetch_all(self.db.pool())
        .await?)
    }

    /// Revokes a key (idempotent). Takes effect at once in this process.
    pub async fn revoke(&self, tenant: &TenantId, key_id: Uuid, caller: &Caller) -> Result<(), AuthError> {
        let mut tx = self.db.begin_platform().await?;
        let prefix: Option<String> = sqlx::query_scalar(
            "UPDATE public.api_keys SET revoked_at = COALESCE(revoked_at, $3) WHERE id = $1 AND tenant_id = $2 RETURNING prefix",
        )
        .bind(key_id)
        .bind(tenant.as_str())
        .bind(Utc::now())
        .fetch_optional(&mut *tx)
        .await?;
        let prefix = prefix.ok_or_else(|| AuthError::NotFound(key_id.to_string()))?;
        record_platform_audit(&mut tx, caller, "apikey.revoke", Some(tenant), serde_json::json!({ "key_id": key_id }))
            .await?;
        tx.commit().await.map_err(crate::db::DbError::from)?;
        self.cache.remove(&prefix);
        Ok(())
    }

    /// Checks a presented key.
    pub async fn verify(&self, presented: &str) -> Result<VerifiedKey, AuthError> {
        let prefix = presented
            .strip_prefix(KEY_PREFIX)
            .and_then(|rest| rest.get(..LOOKUP_CHARS))
            .ok_or(AuthError::InvalidKey)?
            .to_owned();
        let presented_hash = hash(presented);
        let entry = self.entry(&prefix).await?;
        if !constant_time_eq(&entry.hash, &presented_hash) {
            return Err(AuthError::InvalidKey);
        }
        if entry.revoked {
            return Err(AuthError::Revoked);
        }
        if entry.expires_at.is_some_and(|at| at <= Utc::now()) {
            return Err(AuthError::Expired);
        }
        self.touch(&prefix, entry.key.id);
        Ok(entry.key)
    }

    /// The cached entry of `prefix`, loaded when missing or stale.
    async fn entry(&self, prefix: &str) -> Result<Cached, AuthError> {
        let prefix = prefix.to_owned();
        let load = || async {
            let row = KeyRow::load(&self.db, std::slice::from_ref(&prefix)).await?.into_iter().next();
            row.map(|row| row.cached().map(|(_, cached)| cached)).transpose()
        };
        self.cache.get(&prefix, load).await?.ok_or(AuthError::InvalidKey)
    }

    /// Records use, at most once a minute per key, off the request path.
    fn touch(&self, prefix: &str, id: Uuid) {
        let due = self.use_written.lock().ok().is_some_and(|mut written| {
            if written.get(prefix).is_some_and(|t| t.elapsed() < LAST_USED_EVERY) {
                return false;
            }
            if written.len() > 100_000 {
                written.retain(|_, t| t.elapsed() < LAST_USED_EVERY);
            }
            written.insert(prefix.to_owned(), Instant::now());
            true
        });
        if due {
            let db = self.db.clone();
            tokio::spawn(async move {
                let _ = sqlx::query("UPDATE public.api_keys SET last_used_at = $2 WHERE id = $1")
                    .bind(id)
                    .bind(Utc::now())
                    .execute(db.pool())
                    .await;
            });
        }
    }
}

/// Exposes a created key's secret (for printing it once).
pub fn reveal(key: &CreatedApiKey) -> &str {
    key.key.expose_secret()
}
