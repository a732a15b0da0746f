//! Tenants: ids and tiers, provisioning (schema + role + migrations, all or nothing),
//! listing, tier changes, deletion, and the [`TenantScope`] through which tenant data is
//! reached.

mod ids;
mod provision;
mod scope;
mod upgrade;

pub use ids::{InstallationPrefix, MAX_TENANT_ID_LEN, RESERVED_IDS, SqlIdent, TenantId, Tier};
pub use scope::{Caller, TenantScope, TenantTx};
pub use upgrade::{TenantUpgrade, TenantVersion, UpgradeReport};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::db::{Database, DbError, migrate::MigrationSet};

/// A tenant operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum TenancyError {
    /// The id is not a valid tenant id.
    #[error("invalid tenant id `{id}`: {reason}")]
    InvalidId {
        /// The rejected id (escaped).
        id: String,
        /// Why.
        reason: String,
    },
    /// The tier is unknown.
    #[error("unknown tier `{0}` (expected free, trial, pro, business or enterprise)")]
    InvalidTier(String),
    /// The installation prefix is invalid.
    #[error("invalid installation prefix `{0}`: use 1-20 characters a-z, 0-9 and `_`, starting with a letter")]
    InvalidPrefix(String),
    /// No such tenant.
    #[error("tenant `{0}` does not exist")]
    NotFound(String),
    /// The tenant exists already.
    #[error("tenant `{0}` already exists")]
    AlreadyExists(String),
    /// A role with the tenant's role name exists already (another installation with the
    /// same prefix on this cluster, or a leftover).
    #[error(
        "role `{0}` already exists in this PostgreSQL cluster: set database.installation_prefix to a prefix unique to this installation"
    )]
    RoleExists(String),
    /// Deletion was not confirmed.
    #[error("deleting tenant `{0}` drops all its data: confirm explicitly")]
    NotConfirmed(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for TenancyError {
    fn from(err: sqlx::Error) -> Self {
        TenancyError::Db(DbError::Sql(err))
    }
}

/// A tenant as the platform records it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct TenantInfo {
    /// Its id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Tier.
    #[sqlx(try_from = "String")]
    pub tier: TierColumn,
    /// Its schema.
    pub schema_name: String,
    /// Its role.
    pub role_name: String,
    /// Migration version of its schema.
    pub schema_version: i32,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// A tier read from the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct TierColumn(pub Tier);

impl TryFrom<String> for TierColumn {
    type Error = TenancyError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Ok(TierColumn(value.parse()?))
    }
}

/// What to create.
#[derive(Debug, Clone)]
pub struct NewTenant {
    /// The id.
    pub id: TenantId,
    /// The tier.
    pub tier: Tier,
    /// A display name (defaults to the id).
    pub name: Option<String>,
}

/// The tenant service. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Tenants {
    db: Database,
    prefix: InstallationPrefix,
    migrations: MigrationSet,
}

const SELECT_TENANT: &str =
    "SELECT id, name, tier, schema_name, role_name, schema_version, created_at, updated_at FROM public.tenants";

impl Tenants {
    /// A service over `db`, naming roles with `prefix` and migrating with `migrations`.
    pub fn new(db: Database, prefix: InstallationPrefix, migrations: MigrationSet) -> Self {
        Self { db, prefix, migrations }
    }

    /// The installation prefix in use.
    pub fn prefix(&self) -> &InstallationPrefix {
        &self.prefix
    }

    /// Every tenant, by id.
    #[tracing::instrument(skip_all)]
    pub async fn list(&self) -> Result<Vec<TenantInfo>, TenancyError> {
        let sql = format!("{SELECT_TENANT} ORDER BY id");
        Ok(sqlx::query_as(&sql).fetch_all(self.db.pool()).await?)
    }

    /// One tenant.
    #[tracing::instrument(skip_all, fields(tenant = %id))]
    pub async fn get(&self, id: &TenantId) -> Result<TenantInfo, TenancyError> {
        let sql = format!("{SELECT_TENANT} WHERE id = $1");
        sqlx::query_as(&sql)
            .bind(id.as_str())
            .fetch_optional(self.db.pool())
            .await?
            .ok_or_else(|| TenancyError::NotFound(id.to_string()))
    }

    /// The tenants among `ids` that exist, in no particular order.
    pub async fn get_many(&self, ids: &[TenantId]) -> Result<Vec<TenantInfo>, TenancyError> {
        let ids: Vec<&str> = ids.iter().map(TenantId::as_str).collect();
        let sql = format!("{SELECT_TENANT} WHERE id = ANY($1)");
        Ok(sqlx::query_as(&sql).bind(&ids).fetch_all(self.db.pool()).await?)
    }

    /// A scope on an existing tenant for `caller`.
    pub async fn scope(&self, id: &TenantId, caller: Caller) -> Result<TenantScope, TenancyError> {
        let info = self.get(id).await?;
        Ok(TenantScope::new(
            self.db.clone(),
            id.clone(),
            info.tier.0,
            self.role_of(&info)?,
            info.schema_version,
            caller,
        ))
    }

    fn role_of(&self, info: &TenantInfo) -> Result<SqlIdent, TenancyError> {
        let id = TenantId::parse(&info.id)?;
        let role = self.prefix.tenant_role(&id);
        // The stored name is authoritative; it only differs if the prefix changed since.
        if role.as_str() == info.role_name {
            Ok(role)
        } else {
            let stored_prefix = info.role_name.strip_suffix(&format!("_t_{}", info.id)).unwrap_or_default();
            Ok(InstallationPrefix::parse(stored_prefix)?.tenant_role(&id))
        }
    }

    /// Changes a tenant's tier (recorded in `platform_audit`).
    #[tracing::instrument(skip_all, fields(tenant = %id))]
    pub async fn set_tier(&self, id: &TenantId, tier: Tier, caller: &Caller) -> Result<TenantInfo, TenancyError> {
        let mut tx = self.db.begin_platform().await?;
        let old: Option<String> = sqlx::query_scalar("SELECT tier FROM public.tenants WHERE id = $1 FOR UPDATE")
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        let old = old.ok_or_else(|| TenancyError::NotFound(id.to_string()))?;
        sqlx::query("UPDATE public.tenants SET tier = $2, updated_at = $3 WHERE id = $1")
            .bind(id.as_str())
            .bind(tier.as_str())
            .bind(Utc::now())
            .execute(&mut *tx)
            .await?;
        record_platform_audit(
            &mut tx,
            caller,
            "tenant.set_tier",
            Some(id),
            serde_json::json!({ "from": old, "to": tier }),
        )
        .await?;
        tx.commit().await.map_err(DbError::from)?;
        self.get(id).await
    }
}

/// Writes one operator action to `public.platform_audit`.
pub fn record_platform_audit<'a>(
    conn: &'a mut sqlx::PgConnection,
    caller: &'a Caller,
    action: &'a str,
    tenant: Option<&'a TenantId>,
    detail: serde_json::Value,
) -> futures::future::BoxFuture<'a, Result<(), DbError>> {
    Box::pin(async move {
        sqlx::query(
            "INSERT INTO public.platform_audit (id, at, actor, action, tenant_id, detail) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(uuid::Uuid::now_v7())
        .bind(Utc::now())
        .bind(caller.to_string())
        .bind(action)
        .bind(tenant.map(TenantId::as_str))
        .bind(detail)
        .execute(conn)
        .await?;
        Ok(())
    })
}
