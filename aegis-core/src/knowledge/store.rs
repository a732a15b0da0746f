//! Documents and chunks in the tenant's schema. Every function runs inside a `TenantTx`.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{KnowledgeError, chunk::Chunk};

/// A stored document (its current version).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct DocumentInfo {
    /// Id.
    pub id: Uuid,
    /// Its source key (the path relative to the ingest root, or the upload's name).
    pub source_key: String,
    /// A title (the file name).
    pub title: String,
    /// Format.
    pub format: String,
    /// SHA-256 of the content.
    pub content_hash: String,
    /// How this version was made: extractor version, PDF reader, chunk sizes, embedding
    /// model (see `Knowledge::ingest_file`).
    pub recipe: String,
    /// Version, from 1.
    pub version: i32,
    /// Size.
    pub bytes: i64,
    /// Chunks.
    pub chunks: i32,
    /// Extraction notes.
    pub notes: serde_json::Value,
    /// First ingested.
    pub created_at: DateTime<Utc>,
    /// This version.
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str =
    "id, source_key, title, format, content_hash, recipe, version, bytes, chunks, notes, created_at, updated_at";

/// The document with `source_key`, if any.
pub async fn find(conn: &mut PgConnection, source_key: &str) -> Result<Option<DocumentInfo>, KnowledgeError> {
    let sql = format!("SELECT {COLUMNS} FROM documents WHERE source_key = $1");
    Ok(sqlx::query_as(&sql).bind(source_key).fetch_optional(conn).await?)
}

/// The source keys that start with `prefix`.
pub async fn keys_under(conn: &mut PgConnection, prefix: &str) -> Result<Vec<String>, KnowledgeError> {
    Ok(sqlx::query_scalar("SELECT source_key FROM documents WHERE starts_with(source_key, $1) ORDER BY source_key")
        .bind(prefix)
        .fetch_all(conn)
        .await?)
}

/// Every document, by source key.
pub async fn list(conn: &mut PgConnection) -> Result<Vec<DocumentInfo>, KnowledgeError> {
    let sql = format!("SELECT {COLUMNS} FROM documents ORDER BY source_key");
    Ok(sqlx::query_as(&sql).fetch_all(conn).await?)
}

/// Deletes documents (by ids or source keys) and their chunks, all their rows locked
/// before the statistics (in id order, so that two such deletions never wait on each
/// other in a circle). Returns the source keys deleted.
pub async fn delete_all(conn: &mut PgConnection, keys_or_ids: &[String]) -> Result<Vec<String>, KnowledgeError> {
    share_tokenisation(&mut *conn).await?;
    let ids: Vec<Uuid> = keys_or_ids.iter().filter_map(|k| Uuid::parse_str(k).ok()).collect();
    let docs: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT id, source_key FROM documents WHERE source_key = ANY($1) OR id = ANY($2) ORDER BY id FOR UPDATE",
    )
    .bind(keys_or_ids)
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    if docs.is_empty() {
        return Ok(Vec::new());
    }
    let (ids, keys): (Vec<Uuid>, Vec<String>) = docs.into_iter().unzip();
    let old = term_counts(&mut *conn, &ids).await?;
    sqlx::query("DELETE FROM documents WHERE id = ANY($1)").bind(&ids).execute(&mut *conn).await?;
    apply_terms(&mut *conn, &old, None).await?;
    Ok(keys)
}

/// The locks of knowledge writes, in the order they are taken, each held to the
/// transaction's end:
/// 1. the tenant's tokenisation (every `chunks.tsv` and the configuration that makes
///    it): shared by document writers, exclusive while the chunks are re-tokenised or
///    the statistics recounted, so that no chunk is written under a configuration being
///    replaced and a recount sees no write half done;
/// 2. the document's row;
/// 3. the lexeme statistics (`kb_terms`), exclusive, taken last and only for their
///    update: two ingests write their chunks (the slow part, with its HNSW inserts) at the
///    same time, and never update the same `kb_terms` rows in opposite orders.
async fn share_tokenisation(conn: &mut PgConnection) -> Result<(), KnowledgeError> {
    sqlx::query("SELECT pg_advisory_xact_lock_shared(hashtext('aegis.kb_tsv.' || current_schema()))")
        .execute(conn)
        .await?;
    Ok(())
}

/// Takes the tenant's tokenisation exclusively (lock 1 of [`share_tokenisation`]): no
/// document is written until the transaction ends, and none is being written.
pub(super) async fn lock_tokenisation(conn: &mut PgConnection) -> Result<(), KnowledgeError> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('aegis.kb_tsv.' || current_schema()))").execute(conn).await?;
    Ok(())
}

/// How many chunks of a document hold each lexeme: what removing them takes out of the
/// statistics.
struct TermCounts {
    lexemes: Vec<String>,
    chunks: Vec<i32>,
}

async fn term_counts(conn: &mut PgConnection, documents: &[Uuid]) -> Result<TermCounts, KnowledgeError> {
    let (lexemes, chunks): (Vec<String>, Vec<i32>) = sqlx::query_as(
        "SELECT COALESCE(array_agg(lexeme), '{}'), COALESCE(array_agg(n), '{}') FROM \
         (SELECT u.lexeme, count(*)::int AS n FROM chunks c, unnest(c.tsv) u \
          WHERE c.document_id = ANY($1) GROUP BY u.lexeme) d",
    )
    .bind(documents)
    .fetch_one(conn)
    .await?;
    Ok(TermCounts { lexemes, chunks })
}

/// Under the statistics lock (lock 3 of [`share_tokenisation`]): takes `removed` out of
/// the statistics and adds the chunks document `added` now holds.
async fn apply_terms(conn: &mut PgConnection, removed: &TermCounts, added: Option<Uuid>) -> Result<(), KnowledgeError> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('aegis.kb_terms.' || current_schema()))")
        .execute(&mut *conn)
        .await?;
    if !removed.lexemes.is_empty() {
        sqlx::query(
            "UPDATE kb_terms t SET chunks = GREATEST(0, t.chunks - d.n) \
             FROM unnest($1::text[], $2::int[]) AS d(lexeme, n) WHERE t.lexeme = d.lexeme",
        )
        .bind(&removed.lexemes)
        .bind(&removed.chunks)
        .execute(&mut *conn)
        .await?;
    }
    if let Some(document) = added {
        count_terms(conn, document).await?;
    }
    Ok(())
}

/// Adds a document's current chunks to the lexeme statistics.
async fn count_terms(conn: &mut PgConnection, document: Uuid) -> Result<(), KnowledgeError> {
    sqlx::query(
        "INSERT INTO kb_terms (lexeme, chunks) \
         SELECT u.lexeme, count(*) FROM chunks c, unnest(c.tsv) u WHERE c.document_id = $1 GROUP BY u.lexeme \
         ON CONFLICT (lexeme) DO UPDATE SET chunks = kb_terms.chunks + EXCLUDED.chunks",
    )
    .bind(document)
    .execute(conn)
    .await?;
    Ok(())
}

/// Recounts the lexeme statistics from every chunk (after a bulk load that bypassed
/// [`write_version`]).
pub async fn recount_terms(conn: &mut PgConnection) -> Result<(), KnowledgeError> {
    lock_tokenisation(&mut *conn).await?;
    sqlx::query("DELETE FROM kb_terms").execute(&mut *conn).await?;
    sqlx::query("INSERT INTO kb_terms (lexeme, chunks) SELECT u.lexeme, count(*) FROM chunks c, unnest(c.tsv) u GROUP BY u.lexeme")
        .execute(conn)
        .await?;
    Ok(())
}

/// What a new version carries.
pub struct NewVersion<'a> {
    /// Source key.
    pub source_key: &'a str,
    /// Title.
    pub title: &'a str,
    /// Format.
    pub format: &'a str,
    /// Content hash.
    pub content_hash: &'a str,
    /// How it was made.
    pub recipe: &'a str,
    /// Size.
    pub bytes: i64,
    /// Notes.
    pub notes: &'a [String],
    /// Chunks with their vectors and the model that made them.
    pub chunks: &'a [(Chunk, Vec<f32>, String)],
}

/// Writes a new version and replaces the chunks, in the caller's transaction (so a reader
/// sees the old version or the new one, never a mix). Returns (id, version).
pub async fn write_version(conn: &mut PgConnection, new: &NewVersion<'_>) -> Result<(Uuid, i32), KnowledgeError> {
    share_tokenisation(&mut *conn).await?;
    let now = Utc::now();
    let (id, version): (Uuid, i32) = sqlx::query_as(
        "INSERT INTO documents (id, source_key, title, format, content_hash, recipe, version, bytes, chunks, notes, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $10, 1, $6, $7, $8, $9, $9) \
         ON CONFLICT (source_key) DO UPDATE SET title = EXCLUDED.title, format = EXCLUDED.format, \
           content_hash = EXCLUDED.content_hash, recipe = EXCLUDED.recipe, version = documents.version + 1, bytes = EXCLUDED.bytes, \
           chunks = EXCLUDED.chunks, notes = EXCLUDED.notes, updated_at = EXCLUDED.updated_at \
         RETURNING id, version",
    )
    .bind(Uuid::now_v7())
    .bind(new.source_key)
    .bind(new.title)
    .bind(new.format)
    .bind(new.content_hash)
    .bind(new.bytes)
    .bind(i32::try_from(new.chunks.len()).unwrap_or(i32::MAX))
    .bind(sqlx::types::Json(new.notes))
    .bind(now)
    .bind(new.recipe)
    .fetch_one(&mut *conn)
    .await?;
    let old = term_counts(&mut *conn, &[id]).await?;
    sqlx::query("DELETE FROM chunks WHERE document_id = $1").bind(id).execute(&mut *conn).await?;
    for batch in new.chunks.chunks(200) {
        let ids: Vec<Uuid> = batch.iter().map(|_| Uuid::now_v7()).collect();
        let ordinals: Vec<i32> = batch.iter().map(|(c, _, _)| i32::try_from(c.ordinal).unwrap_or(i32::MAX)).collect();
        let texts: Vec<&str> = batch.iter().map(|(c, _, _)| c.text.as_str()).collect();
        let anchors: Vec<serde_json::Value> =
            batch.iter().map(|(c, _, _)| serde_json::to_value(&c.anchor).unwrap_or_default()).collect();
        let vectors: Vec<pgvector::Vector> = batch.iter().map(|(_, v, _)| pgvector::Vector::from(v.clone())).collect();
        let models: Vec<&str> = batch.iter().map(|(_, _, m)| m.as_str()).collect();
        sqlx::query(
            "INSERT INTO chunks (id, document_id, version, ordinal, text, anchor, tsv, embedding, embedding_model) \
             SELECT u.id, $1, $2, u.ordinal, u.text, u.anchor, to_tsvector(cfg.cfg, kb_fold(u.text)), u.embedding, u.model \
             FROM UNNEST($3::uuid[], $4::int[], $5::text[], $6::jsonb[], $7::vector[], $8::text[]) \
               AS u(id, ordinal, text, anchor, embedding, model), \
             (SELECT COALESCE((SELECT value #>> '{}' FROM settings WHERE key = 'kb.text_search_config'), 'simple')::regconfig AS cfg) cfg",
        )
        .bind(id)
        .bind(version)
        .bind(&ids)
        .bind(&ordinals)
        .bind(&texts)
        .bind(&anchors)
        .bind(&vectors)
        .bind(&models)
        .execute(&mut *conn)
        .await?;
    }
    apply_terms(&mut *conn, &old, Some(id)).await?;
    Ok((id, version))
}
