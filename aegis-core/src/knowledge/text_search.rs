//! The tenant's text-search configuration: the `settings` key `kb.text_search_config`
//! (default `simple`, which neither stems nor drops stop words, for CJK and right-to-left
//! text). Every chunk's `tsvector`, the lexeme statistics and the keyword side of every
//! search use it.
//!
//! A change re-tokenises every stored chunk and recounts the lexeme statistics in the same
//! transaction as the setting, holding the tenant's tokenisation lock exclusively (every
//! version and deletion holds it shared, `store`): a search sees the old tokens or the new
//! ones, never a mix, and an ingest running meanwhile writes its chunks before the change
//! (and is re-tokenised by it) or after it (with the new configuration). Updating a row
//! re-inserts it into the search indexes at the per-chunk insert cost, so they are dropped
//! for the change and rebuilt after it, as a bulk import does ([`super::bulk`]); searches
//! scan exactly meanwhile.

use serde::Serialize;

use super::{Knowledge, KnowledgeError, bulk::BulkImport, store};
use crate::tenancy::TenantScope;

/// The settings key.
const KEY: &str = "kb.text_search_config";

/// The configuration of a tenant that never chose one.
pub const DEFAULT_TEXT_SEARCH_CONFIG: &str = "simple";

/// What a change of configuration did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TextSearchChange {
    /// The configuration before.
    pub previous: String,
    /// The configuration now.
    pub current: String,
    /// Chunks re-tokenised (0 when the configuration was already this one).
    pub chunks: u64,
}

impl Knowledge {
    /// The tenant's text-search configuration.
    pub async fn text_search_config(&self, scope: &TenantScope) -> Result<String, KnowledgeError> {
        let mut tx = scope.begin().await?;
        let current = current(tx.conn()).await?;
        tx.commit().await?;
        Ok(current)
    }

    /// Sets the tenant's text-search configuration to `name` (one of PostgreSQL's, e.g.
    /// `english`, `german`, `simple`), re-tokenising every stored chunk. An unknown name
    /// is refused and changes nothing.
    pub async fn set_text_search_config(
        &self,
        scope: &TenantScope,
        name: &str,
    ) -> Result<TextSearchChange, KnowledgeError> {
        let name = name.trim();
        // Unqualified names only: they resolve through the tenant's search path, and a
        // qualified one could only name another schema's objects.
        if name.is_empty() || name.len() > 63 || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(KnowledgeError::Invalid(format!(
                "`{name}` is not a text-search configuration name (letters, digits and `_`)"
            )));
        }
        let mut tx = scope.begin().await?;
        let known: Option<String> = sqlx::query_scalar(
            "SELECT oid::regconfig::text FROM pg_ts_config WHERE cfgname = $1 AND pg_ts_config_is_visible(oid)",
        )
        .bind(name)
        .fetch_optional(tx.conn())
        .await?;
        let Some(canonical) = known else {
            let names: Vec<String> = sqlx::query_scalar(
                "SELECT cfgname::text FROM pg_ts_config WHERE pg_ts_config_is_visible(oid) ORDER BY 1",
            )
            .fetch_all(tx.conn())
            .await?;
            return Err(KnowledgeError::Invalid(format!(
                "no text-search configuration `{name}`; PostgreSQL has {}",
                names.join(", ")
            )));
        };
        let previous = current(tx.conn()).await?;
        tx.commit().await?;
        if canonical == previous {
            return Ok(TextSearchChange { previous, current: canonical, chunks: 0 });
        }
        let bulk = match BulkImport::begin_rewrite(scope.db(), scope.tenant()).await {
            Ok(bulk) => bulk,
            Err(error) => {
                tracing::warn!(tenant = %scope.tenant(), %error, "re-tokenising with the search indexes in place");
                None
            }
        };
        let changed = retokenise(scope, &canonical).await;
        if let Some(bulk) = bulk
            && let Err(error) = bulk.finish().await
        {
            tracing::error!(tenant = %scope.tenant(), %error, "cannot rebuild the search indexes; the repair task retries");
        }
        let (previous, chunks) = changed?;
        Ok(TextSearchChange { previous, current: canonical, chunks })
    }
}

/// The configuration in the tenant's settings.
async fn current(conn: &mut sqlx::PgConnection) -> Result<String, KnowledgeError> {
    Ok(sqlx::query_scalar("SELECT COALESCE((SELECT value #>> '{}' FROM settings WHERE key = $1), $2)")
        .bind(KEY)
        .bind(DEFAULT_TEXT_SEARCH_CONFIG)
        .fetch_one(conn)
        .await?)
}

/// The change itself, in one transaction: the setting, every chunk's `tsvector`, the
/// lexeme statistics. Returns the configuration before and the chunks re-tokenised.
async fn retokenise(scope: &TenantScope, config: &str) -> Result<(String, u64), KnowledgeError> {
    let mut tx = scope.begin().await?;
    store::lock_tokenisation(tx.conn()).await?;
    let previous = current(tx.conn()).await?;
    sqlx::query(
        "INSERT INTO settings (key, value, updated_at) VALUES ($1, to_jsonb($2::text), now()) \
         ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at",
    )
    .bind(KEY)
    .bind(config)
    .execute(tx.conn())
    .await?;
    let chunks = sqlx::query("UPDATE chunks SET tsv = to_tsvector($1::regconfig, kb_fold(text))")
        .bind(config)
        .execute(tx.conn())
        .await?
        .rows_affected();
    store::recount_terms(tx.conn()).await?;
    tx.commit().await?;
    tracing::info!(tenant = %scope.tenant(), from = %previous, to = %config, chunks, "text-search configuration changed");
    Ok((previous, chunks))
}
