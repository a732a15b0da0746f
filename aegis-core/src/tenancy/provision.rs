//! Creating and deleting tenants. Both are one transaction: PostgreSQL's DDL (schemas,
//! roles, grants, tables) is transactional, so a failure at any step leaves nothing behind.

use chrono::Utc;
use sqlx::Executor;

use super::{Caller, NewTenant, TenancyError, TenantId, TenantInfo, Tenants, record_platform_audit};
use crate::db::{DbError, migrate};

impl Tenants {
    /// Creates schema `tenant_<id>`, role `<prefix>_t_<id>` with row rights on that schema
    /// only, and runs the tenant migrations — all or nothing.
    #[tracing::instrument(skip_all, fields(tenant = %new.id))]
    pub async fn create(&self, new: &NewTenant, caller: &Caller) -> Result<TenantInfo, TenancyError> {
        let id = &new.id;
        let schema = id.schema();
        let role = self.prefix.tenant_role(id);
        let now = Utc::now();
        let mut tx = self.db.begin_platform().await?;
        let inserted = sqlx::query(
            "INSERT INTO public.tenants (id, name, tier, schema_name, role_name, schema_version, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, 0, $6, $6) ON CONFLICT (id) DO NOTHING",
        )
        .bind(id.as_str())
        .bind(new.name.as_deref().unwrap_or(id.as_str()))
        .bind(new.tier.as_str())
        .bind(schema.as_str())
        .bind(role.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(TenancyError::AlreadyExists(id.to_string()));
        }
        let role_taken: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
            .bind(role.as_str())
            .fetch_one(&mut *tx)
            .await?;
        if role_taken {
            return Err(TenancyError::RoleExists(role.to_string()));
        }
        // Identifiers come from TenantId / InstallationPrefix: [a-z0-9_] only, and quoted.
        let ddl = format!(
            "CREATE SCHEMA {s}; \
             CREATE ROLE {r} NOLOGIN NOINHERIT; \
             GRANT {r} TO CURRENT_USER WITH INHERIT FALSE, SET TRUE; \
             GRANT USAGE ON SCHEMA {s} TO {r}; \
             ALTER DEFAULT PRIVILEGES IN SCHEMA {s} GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {r}; \
             ALTER DEFAULT PRIVILEGES IN SCHEMA {s} GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO {r};",
            s = schema.quoted(),
            r = role.quoted()
        );
        tx.execute(ddl.as_str()).await.map_err(DbError::from)?;
        migrate::migrate_tenant_in_tx(&mut tx, id, &role, &self.migrations).await?;
        record_platform_audit(
            &mut tx,
            caller,
            "tenant.create",
            Some(id),
            serde_json::json!({ "tier": new.tier, "schema": schema.as_str(), "role": role.as_str() }),
        )
        .await?;
        tx.commit().await.map_err(DbError::from)?;
        self.get(id).await
    }

    /// Drops the tenant's schema (all its data), its role and its platform rows. Refuses
    /// unless `confirmed`.
    #[tracing::instrument(skip_all, fields(tenant = %id))]
    pub async fn delete(&self, id: &TenantId, confirmed: bool, caller: &Caller) -> Result<(), TenancyError> {
        if !confirmed {
            return Err(TenancyError::NotConfirmed(id.to_string()));
        }
        let info = self.get(id).await?;
        let role = self.role_of(&info)?;
        let mut tx = self.db.begin_platform().await?;
        let deleted =
            sqlx::query("DELETE FROM public.tenants WHERE id = $1").bind(id.as_str()).execute(&mut *tx).await?;
        if deleted.rows_affected() == 0 {
            return Err(TenancyError::NotFound(id.to_string()));
        }
        // Append-only platform rows carry the tenant id without a foreign key.
        for delete in [
            "DELETE FROM public.ai_audit_log WHERE tenant_id = $1",
            "DELETE FROM public.provider_ledger WHERE tenant_id = $1",
            "DELETE FROM public.usage_reservations WHERE tenant_id = $1",
            "DELETE FROM public.usage_meters WHERE tenant_id = $1",
        ] {
            sqlx::query(delete).bind(id.as_str()).execute(&mut *tx).await?;
        }
        let ddl =
            format!("DROP SCHEMA IF EXISTS {} CASCADE; DROP ROLE IF EXISTS {};", id.schema().quoted(), role.quoted());
        tx.execute(ddl.as_str()).await.map_err(DbError::from)?;
        record_platform_audit(&mut tx, caller, "tenant.delete", Some(id), serde_json::json!({ "tier": info.tier }))
            .await?;
        tx.commit().await.map_err(DbError::from)?;
        Ok(())
    }
}
