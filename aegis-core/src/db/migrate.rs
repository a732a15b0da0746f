//! Migrations: the public set once per database, the tenant set in every tenant schema.
//! Each schema records its own versions in its own `schema_migrations` table (the truth),
//! mirrored into `public.tenants.schema_version`.
//!
//! Every migration runs in its own transaction together with its version row, so a run
//! stopped at any point resumes where it stopped. An advisory lock per schema keeps two
//! processes from migrating the same schema at once.

use std::{borrow::Cow, sync::Arc};

use futures::future::BoxFuture;
use sqlx::{Connection, Executor, PgConnection};

use super::{Database, DbError, MIN_PGVECTOR, version_at_least};
use crate::tenancy::{SqlIdent, TenantId};

/// One migration.
#[derive(Debug, Clone)]
pub struct Migration {
    /// Its version: strictly increasing within a set.
    pub version: i32,
    /// A short name.
    pub name: Cow<'static, str>,
    /// The SQL (several statements allowed). Tenant migrations use unqualified names: they
    /// run with `search_path = tenant_<id>, ext`.
    pub sql: Cow<'static, str>,
}

impl Migration {
    /// A stable checksum of the SQL (FNV-1a 64), recorded to detect edited migrations.
    pub fn checksum(&self) -> String {
        let hash =
            self.sql.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
        format!("{hash:016x}")
    }
}

/// An ordered set of migrations.
#[derive(Debug, Clone)]
pub struct MigrationSet {
    migrations: Arc<Vec<Migration>>,
}

macro_rules! migration {
    ($version:literal, $name:literal, $path:literal) => {
        Migration { version: $version, name: Cow::Borrowed($name), sql: Cow::Borrowed(include_str!($path)) }
    };
}

impl MigrationSet {
    /// Builds a set, checking that versions strictly increase.
    pub fn new(migrations: Vec<Migration>) -> Result<Self, DbError> {
        for pair in migrations.windows(2) {
            if pair[1].version <= pair[0].version {
                return Err(DbError::MigrationMismatch {
                    schema: "-".into(),
                    version: pair[1].version,
                    reason: "versions must strictly increase".into(),
                });
            }
        }
        Ok(Self { migrations: Arc::new(migrations) })
    }

    /// The platform set shipped in `migrations/public`.
    pub fn public() -> Self {
        Self {
            migrations: Arc::new(vec![
                migration!(1, "platform", "../../../migrations/public/0001_platform.sql"),
                migration!(2, "jobs", "../../../migrations/public/0002_jobs.sql"),
                migration!(3, "models", "../../../migrations/public/0003_models.sql"),
            ]),
        }
    }

    /// The per-tenant set shipped in `migrations/tenant`.
    pub fn tenant() -> Self {
        Self {
            migrations: Arc::new(vec![
                migration!(1, "settings", "../../../migrations/tenant/0001_settings.sql"),
                migration!(2, "knowledge", "../../../migrations/tenant/0002_knowledge.sql"),
                migration!(3, "agents", "../../../migrations/tenant/0003_agents.sql"),
                migration!(4, "kb_terms", "../../../migrations/tenant/0004_kb_terms.sql"),
                migration!(5, "chunk_storage", "../../../migrations/tenant/0005_chunk_storage.sql"),
                migration!(6, "halfvec_index", "../../../migrations/tenant/0006_halfvec_index.sql"),
                migration!(7, "history_is_append_only", "../../../migrations/tenant/0007_history_is_append_only.sql"),
                migration!(8, "document_recipe", "../../../migrations/tenant/0008_document_recipe.sql"),
                migration!(9, "inbound_history", "../../../migrations/tenant/0009_inbound_history.sql"),
                migration!(10, "folded_keywords", "../../../migrations/tenant/0010_folded_keywords.sql"),
                migration!(11, "cjk_bigrams", "../../../migrations/tenant/0011_cjk_bigrams.sql"),
            ]),
        }
    }

    /// The migrations, oldest first.
    pub fn migrations(&self) -> &[Migration] {
        &self.migrations
    }

    /// The newest version (0 when empty).
    pub fn latest(&self) -> i32 {
        self.migrations.last().map_or(0, |m| m.version)
    }

    /// A copy with `extra` appended (for tests and extensions).
    pub fn with(&self, extra: Migration) -> Result<Self, DbError> {
        let mut all = self.migrations.as_ref().clone();
        all.push(extra);
        Self::new(all)
    }
}

const VERSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)";

/// Applies the public set. Returns the versions applied now.
#[tracing::instrument(skip_all)]
pub async fn migrate_public(db: &Database, set: &MigrationSet) -> Result<Vec<i32>, DbError> {
    let mut conn = db.pool().acquire().await?;
    sqlx::query("SELECT pg_advisory_lock(hashtext('aegis:migrate:public'))").execute(&mut *conn).await?;
    let result = match apply_public(&mut conn, set).await {
        Ok(applied) => {
            warn_of_ascii_only_case_folding(&mut conn).await;
            require_pgvector(&mut conn).await.map(|()| applied)
        }
        Err(e) => Err(e),
    };
    let unlock = sqlx::query("SELECT pg_advisory_unlock(hashtext('aegis:migrate:public'))").execute(&mut *conn).await;
    let applied = result?;
    unlock?;
    Ok(applied)
}

async fn apply_public(conn: &mut PgConnection, set: &MigrationSet) -> Result<Vec<i32>, DbError> {
    let public = SqlIdent::trusted("public");
    let mut applied_now = Vec::new();
    for migration in set.migrations() {
        let mut tx = conn.begin().await?;
        sqlx::query("SELECT set_config('search_path', 'public', true)").execute(&mut *tx).await?;
        tx.execute(VERSION_TABLE).await?;
        if apply_one(&mut tx, &public, migration).await? {
            applied_now.push(migration.version);
        }
        tx.commit().await?;
    }
    Ok(applied_now)
}

/// Warns when the database's character type folds only ASCII letters to lower case
/// (`C`, `POSIX`): full-text search then tells `ZÜRICH` from `Zürich`. The embedded
/// cluster is created with `C.UTF-8`; a database's character type is fixed when it is
/// created (`CREATE DATABASE … LC_CTYPE 'C.UTF-8' TEMPLATE template0`).
async fn warn_of_ascii_only_case_folding(conn: &mut PgConnection) {
    let ctype: Result<String, _> =
        sqlx::query_scalar("SELECT datctype FROM pg_database WHERE datname = current_database()")
            .fetch_one(&mut *conn)
            .await;
    if let Ok(ctype) = ctype
        && matches!(ctype.as_str(), "C" | "POSIX")
    {
        tracing::warn!(
            lc_ctype = %ctype,
            "this database folds only ASCII letters to lower case: keyword search will not match \
             ZÜRICH to Zürich; create the database with LC_CTYPE 'C.UTF-8' (or another UTF-8 locale) \
             and ingest again"
        );
    }
}

/// Fails clearly when the database's pgvector is older than [`MIN_PGVECTOR`], after trying
/// `ALTER EXTENSION vector UPDATE` (which works when the server has a newer pgvector and
/// this role owns the extension; the embedded cluster updates it as superuser at start).
async fn require_pgvector(conn: &mut PgConnection) -> Result<(), DbError> {
    let installed = || sqlx::query_scalar::<_, String>("SELECT extversion FROM pg_extension WHERE extname = 'vector'");
    let version = installed().fetch_one(&mut *conn).await?;
    if version_at_least(&version, MIN_PGVECTOR) {
        return Ok(());
    }
    let updated = match sqlx::raw_sql("ALTER EXTENSION vector UPDATE").execute(&mut *conn).await {
        Ok(_) => installed().fetch_one(&mut *conn).await?,
        Err(e) => {
            tracing::warn!(error = %e, "cannot update pgvector");
            version.clone()
        }
    };
    if version_at_least(&updated, MIN_PGVECTOR) {
        tracing::info!(from = %version, to = %updated, "updated pgvector");
        return Ok(());
    }
    let (major, minor) = MIN_PGVECTOR;
    Err(DbError::Unsupported(format!(
        "pgvector {updated} is installed in this database; AEGIS needs {major}.{minor} or newer \
         (install it on the server, then run `ALTER EXTENSION vector UPDATE` as the extension's owner)"
    )))
}

/// Applies `migration` in the schema the connection's search path points at, unless its
/// version is recorded there. Returns whether it ran.
fn apply_one<'a>(
    conn: &'a mut PgConnection,
    schema: &'a SqlIdent,
    migration: &'a Migration,
) -> BoxFuture<'a, Result<bool, DbError>> {
    Box::pin(async move {
        let recorded: Option<String> = sqlx::query_scalar("SELECT checksum FROM schema_migrations WHERE version = $1")
            .bind(migration.version)
            .fetch_optional(&mut *conn)
            .await?;
        if let Some(checksum) = recorded {
            if checksum != migration.checksum() {
                return Err(DbError::MigrationMismatch {
                    schema: schema.to_string(),
                    version: migration.version,
                    reason: "its SQL changed after it was applied".into(),
                });
            }
            return Ok(false);
        }
        conn.execute(migration.sql.as_ref()).await.map_err(|source| DbError::Migration {
            schema: schema.to_string(),
            version: migration.version,
            name: migration.name.to_string(),
            source,
        })?;
        sqlx::query("INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)")
            .bind(migration.version)
            .bind(migration.name.as_ref())
            .bind(migration.checksum())
            .execute(&mut *conn)
            .await?;
        Ok(true)
    })
}

/// The highest version recorded in the public schema (0 before any migration).
pub async fn public_version(db: &Database) -> Result<i32, DbError> {
    let exists: bool =
        sqlx::query_scalar("SELECT to_regclass('public.schema_migrations') IS NOT NULL").fetch_one(db.pool()).await?;
    if !exists {
        return Ok(0);
    }
    Ok(sqlx::query_scalar("SELECT COALESCE(max(version), 0) FROM public.schema_migrations")
        .fetch_one(db.pool())
        .await?)
}

/// Applies every pending tenant migration inside the caller's transaction (used when a
/// tenant is created, so that creation is all or nothing). The tenant role gets row
/// rights on the new tables.
///
/// Returns a boxed `Send` future so that callers stay spawnable: rustc's higher-ranked
/// `Send` inference fails on `async fn`s that thread `&mut PgConnection` through several
/// awaits (and on `sqlx::raw_sql`, so multi-statement SQL goes through `Executor::execute`).
pub fn migrate_tenant_in_tx<'a>(
    conn: &'a mut PgConnection,
    tenant: &'a TenantId,
    role: &'a SqlIdent,
    set: &'a MigrationSet,
) -> BoxFuture<'a, Result<i32, DbError>> {
    Box::pin(async move {
        let schema = tenant.schema();
        for migration in set.migrations() {
            migrate_tenant_step(conn, tenant, &schema, role, migration).await?;
        }
        Ok(set.latest())
    })
}

/// Applies pending tenant migrations one transaction each; returns (from, to).
pub async fn migrate_tenant(
    db: &Database,
    tenant: &TenantId,
    role: &SqlIdent,
    set: &MigrationSet,
) -> Result<(i32, i32), DbError> {
    let schema = tenant.schema();
    let mut conn = db.pool().acquire().await?;
    sqlx::query("SELECT pg_advisory_lock(hashtext($1))")
        .bind(format!("aegis:migrate:{schema}"))
        .execute(&mut *conn)
        .await?;
    let result = async {
        let recorded = recorded_checksums(&mut conn, &schema).await?;
        verify_recorded(&schema, set, &recorded)?;
        let from = recorded.iter().map(|r| r.0).max().unwrap_or(0);
        for migration in set.migrations().iter().filter(|m| !recorded.iter().any(|r| r.0 == m.version)) {
            let mut tx = conn.begin().await?;
            migrate_tenant_step(&mut tx, tenant, &schema, role, migration).await?;
            tx.commit().await?;
        }
        Ok::<_, DbError>((from, set.latest().max(from)))
    }
    .await;
    let unlock = sqlx::query("SELECT pg_advisory_unlock(hashtext($1))")
        .bind(format!("aegis:migrate:{schema}"))
        .execute(&mut *conn)
        .await;
    let versions = result?;
    unlock?;
    Ok(versions)
}

fn migrate_tenant_step<'a>(
    conn: &'a mut PgConnection,
    tenant: &'a TenantId,
    schema: &'a SqlIdent,
    role: &'a SqlIdent,
    migration: &'a Migration,
) -> BoxFuture<'a, Result<(), DbError>> {
    Box::pin(async move {
        sqlx::query("SELECT set_config('search_path', $1, true)")
            .bind(format!("{}, ext", schema.quoted()))
            .execute(&mut *conn)
            .await?;
        conn.execute(VERSION_TABLE).await?;
        if !apply_one(conn, schema, migration).await? {
            return Ok(());
        }
        // Row rights on every table and sequence the migration made; none on the version table.
        let grants = format!(
            "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {s} TO {r}; \
             GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA {s} TO {r}; \
             REVOKE ALL ON {s}.schema_migrations FROM {r};",
            s = schema.quoted(),
            r = role.quoted()
        );
        conn.execute(grants.as_str()).await?;
        sqlx::query(
            "UPDATE public.tenants SET schema_version = $2, updated_at = now() WHERE id = $1 AND schema_version < $2",
        )
        .bind(tenant.as_str())
        .bind(migration.version)
        .execute(&mut *conn)
        .await?;
        Ok(())
    })
}

async fn recorded_checksums(conn: &mut PgConnection, schema: &SqlIdent) -> Result<Vec<(i32, String)>, DbError> {
    let table = format!("{}.schema_migrations", schema.quoted());
    let exists: bool =
        sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL").bind(&table).fetch_one(&mut *conn).await?;
    if !exists {
        return Ok(Vec::new());
    }
    let sql = format!("SELECT version, checksum FROM {table} ORDER BY version");
    Ok(sqlx::query_as(&sql).fetch_all(&mut *conn).await?)
}

/// Every recorded migration must be one this binary knows, with the same SQL.
fn verify_recorded(schema: &SqlIdent, set: &MigrationSet, recorded: &[(i32, String)]) -> Result<(), DbError> {
    for (version, checksum) in recorded {
        let mismatch = |reason: &str| DbError::MigrationMismatch {
            schema: schema.to_string(),
            version: *version,
            reason: reason.into(),
        };
        match set.migrations().iter().find(|m| m.version == *version) {
            None => return Err(mismatch("the schema has a migration this binary does not know (is it older?)")),
            Some(m) if m.checksum() != *checksum => return Err(mismatch("its SQL changed after it was applied")),
            Some(_) => {}
        }
    }
    Ok(())
}
