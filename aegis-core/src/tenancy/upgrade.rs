//! Upgrading every tenant schema: bounded parallelism, one tenant's failure reported
//! without stopping the others, and resumable (each migration commits with its version).

use futures::{StreamExt, stream};
use serde::Serialize;

use super::{TenancyError, TenantId, Tenants};
use crate::db::migrate;

/// How one tenant's upgrade went.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum TenantUpgrade {
    /// Already at the latest version: nothing ran.
    Current {
        /// The tenant.
        tenant: String,
        /// Its version.
        version: i32,
    },
    /// Upgraded.
    Upgraded {
        /// The tenant.
        tenant: String,
        /// Version before.
        from: i32,
        /// Version after.
        to: i32,
    },
    /// Failed; earlier migrations of this run stay applied.
    Failed {
        /// The tenant.
        tenant: String,
        /// The error.
        error: String,
    },
}

/// The result of upgrading every tenant.
#[derive(Debug, Clone, Serialize)]
pub struct UpgradeReport {
    /// The latest tenant version.
    pub latest: i32,
    /// One entry per tenant, by id.
    pub tenants: Vec<TenantUpgrade>,
}

impl UpgradeReport {
    /// Tenants that failed.
    pub fn failed(&self) -> usize {
        self.tenants.iter().filter(|t| matches!(t, TenantUpgrade::Failed { .. })).count()
    }

    /// Tenants upgraded in this run.
    pub fn upgraded(&self) -> usize {
        self.tenants.iter().filter(|t| matches!(t, TenantUpgrade::Upgraded { .. })).count()
    }
}

/// A tenant's schema version.
#[derive(Debug, Clone, Serialize)]
pub struct TenantVersion {
    /// The tenant.
    pub tenant: String,
    /// Its version.
    pub version: i32,
    /// The latest version this binary knows.
    pub latest: i32,
}

impl Tenants {
    /// Upgrades every tenant behind the latest version, `parallelism` at a time.
    #[tracing::instrument(skip_all)]
    pub async fn upgrade_all(&self, parallelism: usize) -> Result<UpgradeReport, TenancyError> {
        let latest = self.migrations.latest();
        let tenants = self.list().await?;
        let mut results: Vec<TenantUpgrade> = stream::iter(tenants)
            .map(|info| async move {
                if info.schema_version >= latest {
                    return TenantUpgrade::Current { tenant: info.id, version: info.schema_version };
                }
                let result = async {
                    let id = TenantId::parse(&info.id)?;
                    let role = self.role_of(&info)?;
                    Ok::<_, TenancyError>(migrate::migrate_tenant(&self.db, &id, &role, &self.migrations).await?)
                }
                .await;
                match result {
                    Ok((from, to)) if from >= to => TenantUpgrade::Current { tenant: info.id, version: to },
                    Ok((from, to)) => TenantUpgrade::Upgraded { tenant: info.id, from, to },
                    Err(err) => {
                        tracing::error!(tenant = %info.id, error = %err, "tenant migration failed");
                        TenantUpgrade::Failed { tenant: info.id, error: err.to_string() }
                    }
                }
            })
            .buffer_unordered(parallelism.max(1))
            .collect()
            .await;
        results.sort_by(|a, b| upgrade_tenant(a).cmp(upgrade_tenant(b)));
        Ok(UpgradeReport { latest, tenants: results })
    }

    /// Every tenant's recorded schema version.
    pub async fn versions(&self) -> Result<Vec<TenantVersion>, TenancyError> {
        let latest = self.migrations.latest();
        Ok(self
            .list()
            .await?
            .into_iter()
            .map(|t| TenantVersion { tenant: t.id, version: t.schema_version, latest })
            .collect())
    }
}

fn upgrade_tenant(u: &TenantUpgrade) -> &str {
    match u {
        TenantUpgrade::Current { tenant, .. }
        | TenantUpgrade::Upgraded { tenant, .. }
        | TenantUpgrade::Failed { tenant, .. } => tenant,
    }
}
