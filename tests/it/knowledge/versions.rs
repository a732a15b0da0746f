//! Versions: identical content is a no-op, a new version replaces its chunks atomically, and neither a provider failover nor a killed process leaves a mix.

use std::time::Duration;

use aegis_core::{
    Aegis,
    knowledge::{IngestOutcome, SearchMode, SearchOptions, collect_files},
    tenancy::{Caller, TenantId},
};
use aegis_it::{aegis, aegis_bin, config_for, fresh_db};

use super::{REFUNDS, search, tenant, workdir};

#[tokio::test]
async fn versions_replace_their_chunks_and_identical_content_is_a_no_op() {
    let aegis = aegis().await;
    let scope = tenant(&aegis, "acme").await;
    let dir = workdir(&[("refunds.md", REFUNDS)]);
    let path = dir.join("refunds.md");
    let first = aegis.knowledge().ingest_file(&scope, "refunds.md", &path).await.unwrap();
    assert!(matches!(first, IngestOutcome::Stored { version: 1, .. }));
    let again = aegis.knowledge().ingest_file(&scope, "refunds.md", &path).await.unwrap();
    assert!(matches!(again, IngestOutcome::Unchanged { version: 1, .. }), "{again:?}");
    std::fs::write(&path, REFUNDS.replace("14 days", "30 days")).unwrap();
    let second = aegis.knowledge().ingest_file(&scope, "refunds.md", &path).await.unwrap();
    assert!(matches!(second, IngestOutcome::Stored { version: 2, .. }), "{second:?}");
    let hits = search(&aegis, &scope, "within 14 days", SearchMode::Keyword).await;
    assert!(hits.iter().all(|h| !h.text.contains("14 days")), "old chunks are gone");
    let hits = search(&aegis, &scope, "30 days", SearchMode::Keyword).await;
    assert!(hits[0].text.contains("30 days"));
    aegis.knowledge().delete(&scope, "refunds.md").await.unwrap();
    assert!(search(&aegis, &scope, "refund", SearchMode::Hybrid).await.is_empty());
    assert!(aegis.knowledge().delete(&scope, "refunds.md").await.is_err());
    let bad = aegis.knowledge().search(&scope, "  ", &SearchOptions::default()).await;
    assert!(bad.is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The test provider's models, with the embedding chain [`alpha/e1` (remote, 768), offline].
fn remote_embedder_first(config: &mut aegis_core::config::Config, provider: &aegis_it::provider::TestProvider) {
    config.models = aegis_it::test_models(provider);
    let mut embedder = config.models.models["alpha/m1"].clone();
    embedder.name = "e1".into();
    embedder.kind = aegis_core::llm::config::ModelKind::Embedding;
    embedder.dimensions = Some(768);
    config.models.models.insert("alpha/e1".into(), embedder);
    config.models.aliases.get_mut("embed").unwrap().models.insert(0, "alpha/e1".into());
}

#[tokio::test]
async fn a_failover_between_the_batches_of_one_document_stores_nothing() {
    let provider = aegis_it::provider::TestProvider::start().await;
    let db = fresh_db().await;
    let mut config = config_for(&db);
    remote_embedder_first(&mut config, &provider);
    config.knowledge.embed_batch = 1;
    let aegis = Aegis::builder().config(config).build().await.unwrap();
    let scope = tenant(&aegis, "acme").await;
    let dir = workdir(&[("refunds.md", REFUNDS)]);
    let path = dir.join("refunds.md");
    let v1 = aegis.knowledge().ingest_file(&scope, "refunds.md", &path).await.unwrap();
    assert!(matches!(v1, IngestOutcome::Stored { version: 1, chunks: 2.., .. }), "{v1:?}");
    // The next version's first batch is embedded by e1, the rest by the offline fallback.
    std::fs::write(&path, REFUNDS.replace("14 days", "30 days")).unwrap();
    let down = aegis_it::provider::Reply::Status(503, "down".into());
    provider.push("e1", std::iter::once(aegis_it::provider::Reply::text("ok", 1, 0)).chain(vec![down; 8]));
    let err = aegis.knowledge().ingest_file(&scope, "refunds.md", &path).await.unwrap_err();
    assert!(matches!(err, aegis_core::knowledge::KnowledgeError::EmbeddersMixed { .. }), "{err}");
    assert!(err.to_string().contains("`e1`, then by `aegis-offline-hash-768-v1`"), "{err}");
    let docs = aegis.knowledge().list(&scope).await.unwrap();
    assert_eq!(docs[0].version, 1, "the old version stays");
    let hits = search(&aegis, &scope, "within 14 days", SearchMode::Keyword).await;
    assert!(hits[0].text.contains("14 days"), "its chunks too: {hits:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn the_same_bytes_are_remade_when_chunking_or_the_embedding_model_changes() {
    let provider = aegis_it::provider::TestProvider::start().await;
    let db = fresh_db().await;
    let build = |tune: &dyn Fn(&mut aegis_core::config::Config)| {
        let mut config = config_for(&db);
        tune(&mut config);
        Aegis::builder().config(config).build()
    };
    let long: String = (0..400).map(|i| format!("Clause {i} binds the buyer to term {}. ", i % 13)).collect();
    let dir = workdir(&[("terms.txt", &long)]);
    let path = dir.join("terms.txt");
    let ingest = |aegis: Aegis| {
        let path = path.clone();
        async move {
            let id = TenantId::parse("acme").unwrap();
            let scope = aegis.tenants().scope(&id, Caller::system("test")).await.unwrap();
            aegis.knowledge().ingest_file(&scope, "terms.txt", &path).await.unwrap()
        }
    };
    let first = build(&|_| {}).await.unwrap();
    tenant(&first, "acme").await;
    let stored = |outcome: &IngestOutcome| match outcome {
        IngestOutcome::Stored { version, chunks, .. } => Some((*version, *chunks)),
        _ => None,
    };
    let v1 = ingest(first.clone()).await;
    let (_, chunks_v1) = stored(&v1).unwrap_or_else(|| panic!("{v1:?}"));
    assert!(matches!(ingest(first.clone()).await, IngestOutcome::Unchanged { version: 1, .. }));

    // Smaller chunks: the same bytes make a new version with more chunks, once.
    let small = build(&|c| c.knowledge.chunking.target_tokens = 80).await.unwrap();
    let v2 = ingest(small.clone()).await;
    let (version, chunks_v2) = stored(&v2).unwrap_or_else(|| panic!("{v2:?}"));
    assert_eq!(version, 2);
    assert!(chunks_v2 > chunks_v1, "{chunks_v2} chunks of 80 tokens, {chunks_v1} of 320");
    assert!(matches!(ingest(small.clone()).await, IngestOutcome::Unchanged { version: 2, .. }));

    // Another embedding model: remade, and every stored vector is the new model's.
    let remote = build(&|c| {
        c.knowledge.chunking.target_tokens = 80;
        remote_embedder_first(c, &provider);
    })
    .await
    .unwrap();
    let v3 = ingest(remote.clone()).await;
    assert_eq!(stored(&v3).map(|(v, _)| v), Some(3), "{v3:?}");
    assert!(matches!(ingest(remote.clone()).await, IngestOutcome::Unchanged { version: 3, .. }));
    let id = TenantId::parse("acme").unwrap();
    let scope = remote.tenants().scope(&id, Caller::system("test")).await.unwrap();
    let mut tx = scope.begin().await.unwrap();
    let models: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT embedding_model FROM chunks").fetch_all(tx.conn()).await.unwrap();
    let recipe: String = sqlx::query_scalar("SELECT recipe FROM documents").fetch_one(tx.conn()).await.unwrap();
    assert_eq!(models.len(), 1, "{models:?}");
    assert!(recipe.ends_with(&format!("vectors by {}", models[0])), "{recipe}");
    assert!(!models[0].contains("hash"), "{models:?}");

    // A version stored before recipes were kept is remade on its next ingest.
    sqlx::query("UPDATE documents SET recipe = ''").execute(tx.conn()).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(stored(&ingest(remote.clone()).await).map(|(v, _)| v), Some(4));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn folders_whose_files_would_share_a_source_key_are_refused_before_any_ingest() {
    let a = workdir(&[("faq.md", "a"), ("only-a.md", "a")]);
    let b = workdir(&[("faq.md", "b")]);
    let err = collect_files(&[a.clone(), b.clone()]).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("would both be `faq.md`"), "{err}");
    // The same file named twice is one file.
    let files = collect_files(&[a.join("faq.md"), a.join("faq.md"), b.clone()]);
    assert!(files.is_err(), "faq.md from a and from b still collide");
    let files = collect_files(&[a.clone(), a.clone()]).unwrap();
    assert_eq!(files.len(), 2, "{files:?}");
    for dir in [a, b] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

/// Every document's chunks match its row: same version, same count.
async fn consistent(url: &str) -> Vec<(String, i32, i32)> {
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    let rows: Vec<(String, i32, i32, i64, i64)> = sqlx::query_as(
        "SELECT d.source_key, d.version, d.chunks, count(c.id), count(c.id) FILTER (WHERE c.version = d.version) \
         FROM tenant_acme.documents d LEFT JOIN tenant_acme.chunks c ON c.document_id = d.id GROUP BY d.id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    for (key, _, chunks, count, current) in &rows {
        assert_eq!(i64::from(*chunks), *count, "{key}: a mix of versions or a partial version");
        assert_eq!(count, current, "{key}: chunks of another version");
    }
    rows.into_iter().map(|(k, v, c, _, _)| (k, v, c)).collect()
}

#[tokio::test]
async fn an_ingest_killed_mid_document_leaves_the_old_or_the_new_version() {
    let db = fresh_db().await;
    let cli = |args: &[&str]| {
        let mut cmd = std::process::Command::new(aegis_bin());
        cmd.arg("--database-url").arg(&db.url).args(args);
        cmd
    };
    assert!(cli(&["tenant", "create", "acme", "--tier", "pro"]).status().unwrap().success());
    let big: String =
        (0..40_000).map(|i| format!("Line {i} about invoices, suppliers and the ledger number {}.\n", i * 7)).collect();
    let dir = workdir(&[("big.txt", &big)]);
    let dir_arg = dir.to_string_lossy().to_string();
    let mut killed_midway = 0;
    for (round, delay_ms) in [150u64, 400, 800, 1500].into_iter().enumerate() {
        if round == 2 {
            // From now on a new version replaces an existing one.
            std::fs::write(dir.join("big.txt"), big.replace("ledger", "journal")).unwrap();
        }
        let mut child = cli(&["ingest", "acme", &dir_arg])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        if child.try_wait().unwrap().is_none() {
            killed_midway += 1;
        }
        let _ = child.kill();
        let _ = child.wait();
        consistent(&db.url).await;
    }
    assert!(killed_midway > 0, "no ingest was interrupted; make the file bigger");
    assert!(cli(&["ingest", "acme", &dir_arg]).status().unwrap().success());
    let docs = consistent(&db.url).await;
    assert_eq!(docs.len(), 1);
    assert!(docs[0].2 > 100);
    std::fs::remove_dir_all(&dir).unwrap();
}
