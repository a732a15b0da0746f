//! The knowledge base end to end: ingest real files, search with citations in every mode,
//! filters, versions, deletion, tenant isolation, and an ingest killed mid-document. The
//! helpers here are shared by the submodules and by other test modules.

use std::path::{Path, PathBuf};

use aegis_core::{
    Aegis,
    knowledge::{IngestOutcome, SearchMode, SearchOptions, collect_files},
    tenancy::{Caller, NewTenant, TenantId, TenantScope, Tier},
};

mod cjk;
mod end_to_end;
mod formats;
mod known_answers;
mod ranking;
mod vectors;
mod versions;

pub(crate) fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus")
}

pub(crate) async fn tenant(aegis: &Aegis, id: &str) -> TenantScope {
    let id = TenantId::parse(id).unwrap();
    aegis
        .tenants()
        .create(&NewTenant { id: id.clone(), tier: Tier::Pro, name: None }, &Caller::system("test"))
        .await
        .unwrap();
    aegis.tenants().scope(&id, Caller::system("test")).await.unwrap()
}

pub(crate) fn workdir(files: &[(&str, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("aegis-kb-{}", uuid::Uuid::new_v4().simple()));
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

pub(crate) const REFUNDS: &str = "# Refund policy\n\nCustomers may return goods within 14 days of delivery for a full refund.\n\n## Exceptions\n\nPerishable goods and gift cards cannot be refunded.\n";

pub(crate) const SHIPPING: &str = "Shipping times\n\nOrders ship from the Rotterdam warehouse within two working days.\nExpress delivery to Zürich takes one day.\n";

pub(crate) async fn search(
    aegis: &Aegis,
    scope: &TenantScope,
    query: &str,
    mode: SearchMode,
) -> Vec<aegis_core::knowledge::Hit> {
    aegis.knowledge().search(scope, query, &SearchOptions { k: 5, mode, documents: None }).await.unwrap()
}

/// Ingests every file under `dir` as one batch.
pub(crate) async fn ingest_dir(aegis: &Aegis, scope: &TenantScope, dir: &Path) -> Vec<IngestOutcome> {
    let files = collect_files(&[dir.to_path_buf()]).unwrap();
    aegis.knowledge().ingest_files(scope, files, |_, _| {}).await
}

/// The lexeme statistics as kept, and as counted afresh from the chunks.
pub(crate) async fn term_counts(aegis: &Aegis) -> (Vec<(String, i32)>, Vec<(String, i32)>) {
    let pool = aegis.db().pool();
    let kept = sqlx::query_as("SELECT lexeme, chunks FROM tenant_acme.kb_terms WHERE chunks > 0 ORDER BY lexeme")
        .fetch_all(pool)
        .await
        .unwrap();
    let counted = sqlx::query_as(
        "SELECT u.lexeme, count(*)::int FROM tenant_acme.chunks c, unnest(c.tsv) u GROUP BY u.lexeme ORDER BY u.lexeme",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    (kept, counted)
}

/// The tenant `acme`'s vector index: its oid and definition, if it exists.
pub(crate) async fn vector_index(aegis: &Aegis) -> Option<(i64, String)> {
    index(aegis, "chunks_embedding_hnsw").await
}

/// The oid and definition of the index `name` of tenant `acme`, if it exists.
pub(crate) async fn index(aegis: &Aegis, name: &str) -> Option<(i64, String)> {
    sqlx::query_as(
        "SELECT c.oid::int8, pg_get_indexdef(c.oid) FROM pg_class c \
         WHERE c.oid = to_regclass('tenant_acme.' || $1)",
    )
    .bind(name)
    .fetch_optional(aegis.db().pool())
    .await
    .unwrap()
}
