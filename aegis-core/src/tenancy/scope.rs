//! `TenantScope` (a checked tenant identity plus its caller) and `TenantTx` (one short
//! transaction as the tenant's role, with the tenant's schema first on the search path).
//!
//! Only this module can build either. The role and search path are set with `SET LOCAL`
//! in the same round trip as `BEGIN`, so they end with the transaction: nothing of one
//! tenant's scope survives on a pooled connection.
//!
//! `SET ROLE` is a privilege boundary for the SQL AEGIS itself issues; it is not a sandbox
//! for arbitrary SQL (which could `RESET ROLE`), and no tenant-supplied SQL ever runs.

use std::fmt;

use serde::Serialize;
use sqlx::{PgConnection, Postgres, Transaction};

use super::{SqlIdent, TenantId, Tier};
use crate::db::{Database, DbError};

/// Who is acting, recorded in audit rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Caller {
    /// A platform operator (CLI user or operator key).
    Operator {
        /// Who: an OS user name or the operator key's label.
        name: String,
    },
    /// A tenant API key.
    ApiKey {
        /// The key's id.
        key_id: String,
    },
    /// AEGIS itself (a worker, a migration).
    System {
        /// Which component.
        component: String,
    },
}

impl Caller {
    /// An operator acting from the local shell, named after the OS user.
    pub fn local_operator() -> Self {
        let name = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .ok()
            .filter(|n| !n.is_empty())
            .or_else(crate::config::os_user_name)
            .unwrap_or_else(|| "unknown".into());
        Caller::Operator { name: format!("cli:{name}") }
    }

    /// AEGIS acting on its own.
    pub fn system(component: &str) -> Self {
        Caller::System { component: component.to_owned() }
    }
}

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Caller::Operator { name } => write!(f, "operator:{name}"),
            Caller::ApiKey { key_id } => write!(f, "api_key:{key_id}"),
            Caller::System { component } => write!(f, "system:{component}"),
        }
    }
}

/// A tenant that exists, checked, with the caller acting on it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct TenantScope {
    tenant: TenantId,
    tier: Tier,
    schema: SqlIdent,
    role: SqlIdent,
    schema_version: i32,
    caller: Caller,
    db: Database,
}

impl TenantScope {
    pub(super) fn new(
        db: Database,
        tenant: TenantId,
        tier: Tier,
        role: SqlIdent,
        schema_version: i32,
        caller: Caller,
    ) -> Self {
        let schema = tenant.schema();
        Self { tenant, tier, schema, role, schema_version, caller, db }
    }

    /// The tenant.
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    /// Its tier when the scope was made.
    pub fn tier(&self) -> Tier {
        self.tier
    }

    /// Who acts.
    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    /// The schema version of the tenant when the scope was made.
    pub fn schema_version(&self) -> i32 {
        self.schema_version
    }

    /// The owner-role pool, for platform maintenance of the tenant's schema (its indexes).
    pub(crate) fn db(&self) -> &Database {
        &self.db
    }

    /// Begins one short transaction as the tenant role. Never hold it across a network call.
    pub async fn begin(&self) -> Result<TenantTx, DbError> {
        let begin = format!(
            "BEGIN; SET LOCAL ROLE {}; SET LOCAL search_path = {}, ext",
            self.role.quoted(),
            self.schema.quoted()
        );
        #[allow(clippy::disallowed_methods)]
        let tx = self.db.pool().begin_with(begin).await?;
        Ok(TenantTx { tx, tenant: self.tenant.clone() })
    }
}

/// One short unit of work on one tenant's data. Dropping it rolls back.
#[derive(Debug)]
pub struct TenantTx {
    tx: Transaction<'static, Postgres>,
    tenant: TenantId,
}

impl TenantTx {
    /// The tenant this transaction belongs to.
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    /// The connection, for queries.
    pub fn conn(&mut self) -> &mut PgConnection {
        &mut self.tx
    }

    /// Commits.
    pub async fn commit(self) -> Result<(), DbError> {
        Ok(self.tx.commit().await?)
    }

    /// Rolls back.
    pub async fn rollback(self) -> Result<(), DbError> {
        Ok(self.tx.rollback().await?)
    }
}
