//! Large imports build the search indexes once, at the end. Inserting a chunk into an
//! indexed table costs ~7 ms here, against ~0.7 ms per chunk for building the index after
//! the load (benches/README.md), so an import that adds many chunks to a tenant holding few
//! drops the tenant's HNSW index, loads, and rebuilds it; its GIN index too, whose posting
//! lists (without fast updates, tenant migration 4) are rewritten by every insert, a quarter of
//! a bulk import's time. A change of the text-search configuration, which rewrites every
//! chunk, does the same.
//!
//! While it runs, the importing process holds a session advisory lock for the tenant on a
//! connection of its own. If the process dies, the lock goes with the connection, and
//! [`repair_indexes`] — a periodic task of the server's worker, and the start of every
//! batch ingest of that tenant — rebuilds a missing index whose lock is free. Searches stay
//! correct meanwhile, only slower: without the indexes the planner scans exactly.

use sqlx::{ConnectOptions, Connection, Executor, PgConnection};

use crate::{
    db::{Database, DbError},
    tenancy::TenantId,
};

/// A rebuild re-reads every chunk of the tenant; it pays when the import adds at least
/// one chunk for every this many the tenant already holds (7 ms / 0.7 ms, less a margin).
const CHUNKS_PER_NEW_FILE: i64 = 9;

/// The tenant's search indexes, with how the latest tenant migration that defines each
/// makes it (HNSW: migration 6; GIN: migrations 2 and 4); keep in step. `{schema}` is the
/// tenant's quoted schema.
const INDEXES: [(&str, &str); 2] = [
    (
        "chunks_embedding_hnsw",
        "CREATE INDEX IF NOT EXISTS chunks_embedding_hnsw ON {schema}.chunks \
         USING hnsw ((embedding::ext.halfvec(768)) ext.halfvec_cosine_ops) WITH (m = 16, ef_construction = 64)",
    ),
    ("chunks_tsv", "CREATE INDEX IF NOT EXISTS chunks_tsv ON {schema}.chunks USING gin (tsv) WITH (fastupdate = off)"),
];

/// The session advisory lock an import of this tenant holds while its index is down.
pub fn bulk_lock_key(tenant: &TenantId) -> String {
    format!("aegis:kb:bulk:{tenant}")
}

/// A connection of its own (outside the pool, so a lock left held by an error is released
/// when it closes instead of travelling back into the pool) holding the lock. An index
/// build takes seconds by design: its statements are logged as slow at `info`, not at the
/// `warn` that would print over `aegis ingest`'s progress bar.
async fn try_lock(db: &Database, tenant: &TenantId) -> Result<Option<PgConnection>, DbError> {
    let options = (*db.pool().connect_options())
        .clone()
        .log_slow_statements(log::LevelFilter::Info, std::time::Duration::from_secs(1));
    let mut conn = PgConnection::connect_with(&options).await?;
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext($1))")
        .bind(bulk_lock_key(tenant))
        .fetch_one(&mut conn)
        .await?;
    if locked {
        Ok(Some(conn))
    } else {
        conn.close().await?;
        Ok(None)
    }
}

/// Builds the indexes missing on a locked connection, then closes it (which releases the
/// lock).
async fn build_and_close(mut conn: PgConnection, tenant: &TenantId) -> Result<(), DbError> {
    conn.execute("SET maintenance_work_mem = '512MB'").await?;
    let schema = tenant.schema().quoted();
    for (index, create) in INDEXES {
        let started = std::time::Instant::now();
        conn.execute(create.replace("{schema}", &schema).as_str()).await?;
        tracing::info!(%tenant, index, took_ms = started.elapsed().as_millis(), "built the index");
    }
    conn.close().await?;
    Ok(())
}

/// Whether the tenant has chunks and lacks one of its search indexes.
async fn missing_index(db: &Database, tenant: &TenantId) -> Result<bool, DbError> {
    let names: Vec<&str> = INDEXES.iter().map(|(name, _)| *name).collect();
    Ok(sqlx::query_scalar(
        "SELECT to_regclass(format('%I.chunks', $1::text)) IS NOT NULL \
            AND EXISTS (SELECT 1 FROM unnest($2::text[]) i WHERE to_regclass(format('%I.%I', $1::text, i)) IS NULL)",
    )
    .bind(tenant.schema().to_string())
    .bind(&names)
    .fetch_one(db.pool())
    .await?)
}

/// Whether the tenant holds at least `enough` chunks (counting no further).
async fn holds_at_least(db: &Database, tenant: &TenantId, enough: i64) -> Result<bool, DbError> {
    let sql = format!("SELECT count(*) FROM (SELECT 1 FROM {}.chunks LIMIT $1) c", tenant.schema().quoted());
    let held: i64 = sqlx::query_scalar(&sql).bind(enough).fetch_one(db.pool()).await?;
    Ok(held >= enough)
}

/// An import running with the tenant's index dropped.
#[derive(Debug)]
pub(crate) struct BulkImport {
    conn: PgConnection,
    tenant: TenantId,
}

impl BulkImport {
    /// Drops the indexes for an import of `files` files when that pays: at least `min_files`
    /// (0 never), the tenant holding fewer than [`CHUNKS_PER_NEW_FILE`] chunks per new file,
    /// and no other import of the tenant holding the lock. `None` otherwise.
    pub(crate) async fn begin(
        db: &Database,
        tenant: &TenantId,
        files: usize,
        min_files: usize,
    ) -> Result<Option<Self>, DbError> {
        Self::begin_if_few(db, tenant, (files, min_files), &format!("a bulk import of {files} files")).await
    }

    /// Drops the indexes for one document of `chunks` chunks when that pays: at least
    /// `min_chunks` (0 never), the tenant holding fewer than [`CHUNKS_PER_NEW_FILE`] times
    /// as many, and no import of the tenant holding the lock (a batch that dropped them
    /// already holds it). `None` otherwise.
    pub(crate) async fn begin_for_document(
        db: &Database,
        tenant: &TenantId,
        chunks: usize,
        min_chunks: usize,
    ) -> Result<Option<Self>, DbError> {
        Self::begin_if_few(db, tenant, (chunks, min_chunks), &format!("a document of {chunks} chunks")).await
    }

    /// Drops the indexes for `what`, of `count` files or chunks, when `count` reaches
    /// `min` (0 never) and the tenant holds fewer than [`CHUNKS_PER_NEW_FILE`] chunks per
    /// one of them.
    async fn begin_if_few(
        db: &Database,
        tenant: &TenantId,
        (count, min): (usize, usize),
        what: &str,
    ) -> Result<Option<Self>, DbError> {
        if min == 0 || count < min {
            return Ok(None);
        }
        let enough = i64::try_from(count).unwrap_or(i64::MAX).saturating_mul(CHUNKS_PER_NEW_FILE);
        if holds_at_least(db, tenant, enough).await? {
            return Ok(None);
        }
        Self::drop_index(db, tenant, what).await
    }

    /// Drops the indexes for a statement that rewrites every chunk of the tenant (updating a
    /// row re-inserts it into the index at the per-chunk insert cost): when the tenant holds
    /// chunks and no import holds the lock. `None` otherwise; an import holding the lock
    /// has the indexes down already, or waits for the rewrite to rebuild it.
    pub(crate) async fn begin_rewrite(db: &Database, tenant: &TenantId) -> Result<Option<Self>, DbError> {
        let any: bool =
            sqlx::query_scalar(&format!("SELECT EXISTS (SELECT 1 FROM {}.chunks)", tenant.schema().quoted()))
                .fetch_one(db.pool())
                .await?;
        if !any {
            return Ok(None);
        }
        Self::drop_index(db, tenant, "a rewrite of every chunk").await
    }

    /// Takes the tenant's lock and drops its index for `what`; `None` when another holds
    /// the lock.
    async fn drop_index(db: &Database, tenant: &TenantId, what: &str) -> Result<Option<Self>, DbError> {
        let Some(mut conn) = try_lock(db, tenant).await? else { return Ok(None) };
        let schema = tenant.schema().quoted();
        for (index, _) in INDEXES {
            conn.execute(format!("DROP INDEX IF EXISTS {schema}.{index}").as_str()).await?;
        }
        tracing::info!(%tenant, "search indexes dropped for {what}; they are rebuilt at the end");
        Ok(Some(Self { conn, tenant: tenant.clone() }))
    }

    /// Rebuilds the indexes and releases the lock.
    pub(crate) async fn finish(self) -> Result<(), DbError> {
        build_and_close(self.conn, &self.tenant).await
    }
}

/// Rebuilds the search indexes of `tenant` if one is missing and no import holds the lock.
/// Returns whether it built one.
pub async fn repair_index(db: &Database, tenant: &TenantId) -> Result<bool, DbError> {
    if !missing_index(db, tenant).await? {
        return Ok(false);
    }
    let Some(conn) = try_lock(db, tenant).await? else { return Ok(false) };
    tracing::warn!(%tenant, "a search index is missing (an import ended early): rebuilding it");
    build_and_close(conn, tenant).await?;
    Ok(true)
}

/// [`repair_index`] for every tenant. Returns the tenants whose index it rebuilt.
pub async fn repair_indexes(db: &Database) -> Result<Vec<TenantId>, DbError> {
    let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM public.tenants ORDER BY id").fetch_all(db.pool()).await?;
    let mut rebuilt = Vec::new();
    for id in ids {
        let Ok(tenant) = TenantId::parse(&id) else { continue };
        if repair_index(db, &tenant).await? {
            rebuilt.push(tenant);
        }
    }
    Ok(rebuilt)
}

/// The server worker's periodic [`repair_indexes`].
#[derive(Debug, Clone)]
pub struct IndexRepair(pub Database);

#[async_trait::async_trait]
impl crate::jobs::PeriodicTask for IndexRepair {
    fn name(&self) -> &str {
        "kb.index_repair"
    }

    async fn run(&self) {
        if let Err(error) = repair_indexes(&self.0).await {
            tracing::warn!(%error, "search index repair failed");
        }
    }
}
