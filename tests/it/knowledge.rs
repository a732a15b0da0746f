//! The knowledge base end to end: ingest real files, search with citations in every mode,
//! filters, versions, deletion, tenant isolation, and an ingest killed mid-document.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use aegis_core::{
    Aegis,
    knowledge::{IngestOutcome, SearchMode, SearchOptions, collect_files},
    tenancy::{Caller, NewTenant, TenantId, TenantScope, Tier},
};
use aegis_it::{aegis, aegis_bin, config_for, fresh_db};

fn corpus() -> PathBuf {
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

#[tokio::test]
async fn ingest_then_search_with_citations() {
    let aegis = aegis().await;
    let scope = tenant(&aegis, "acme").await;
    let dir = workdir(&[("policies/refunds.md", REFUNDS), ("shipping.txt", SHIPPING)]);
    for file in [
        "pdf/gen-pdf-001-2p.pdf",
        "xlsx/gen-xlsx-000-10r.xlsx",
        "pptx/gen-pptx-001-2s.pptx",
        "docx/gen-docx-001-2p.docx",
    ] {
        let target = dir.join("corpus").join(Path::new(file).file_name().unwrap());
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(corpus().join("generated").join(file), target).unwrap();
    }
    std::fs::write(dir.join("corpus/broken.pdf"), b"%PDF-1.4 not really").unwrap();
    let outcomes = ingest_dir(&aegis, &scope, &dir).await;
    assert_eq!(outcomes.len(), 7);
    let failed: Vec<_> = outcomes.iter().filter(|o| matches!(o, IngestOutcome::Failed { .. })).collect();
    assert_eq!(failed.len(), 1, "only the broken file fails: {outcomes:?}");
    assert!(
        matches!(failed[0], IngestOutcome::Failed { source_key, error } if source_key == "corpus/broken.pdf" && error.contains("malformed"))
    );

    // Hybrid: the refund question finds the policy, cited by heading path.
    let hits = search(&aegis, &scope, "how many days to return goods for a refund", SearchMode::Hybrid).await;
    assert_eq!(hits[0].source_key, "policies/refunds.md");
    assert_eq!(hits[0].anchor.headings, ["Refund policy"]);
    assert!(hits[0].span.contains("**refund**") || hits[0].span.contains("**days**"), "{}", hits[0].span);
    assert!(hits[0].vector_rank.is_some() && hits[0].keyword_rank.is_some());
    // Keyword-only and vector-only.
    let hits = search(&aegis, &scope, "Rotterdam", SearchMode::Keyword).await;
    assert_eq!(hits[0].source_key, "shipping.txt");
    assert!(hits.iter().all(|h| h.vector_rank.is_none()));
    let hits = search(&aegis, &scope, "perishable goods gift cards", SearchMode::Vector).await;
    assert_eq!(hits[0].source_key, "policies/refunds.md");
    assert_eq!(hits[0].anchor.headings, ["Refund policy", "Exceptions"]);
    // Citations carry page, slide and sheet anchors.
    let hits = search(&aegis, &scope, "Could_1 What_2 Under_3", SearchMode::Keyword).await;
    assert_eq!(hits[0].anchor.sheet.as_deref(), Some("All1"));
    assert!(hits[0].anchor.range.as_deref().unwrap().starts_with('A'));
    assert!(hits[0].text.starts_with("| Could_1 |"));
    let hits = search(&aegis, &scope, "21701 Größe", SearchMode::Keyword).await;
    assert!(hits.iter().any(|h| h.anchor.slide == Some(1) && h.text.starts_with("Slide 1:")));
    let docs = aegis.knowledge().list(&scope).await.unwrap();
    assert_eq!(docs.len(), 6);
    let pdf = docs.iter().find(|d| d.source_key == "corpus/gen-pdf-001-2p.pdf").unwrap();
    assert!(pdf.chunks > 1);
    let hits = aegis
        .knowledge()
        .search(
            &scope,
            "document",
            &SearchOptions { k: 3, mode: SearchMode::Hybrid, documents: Some(vec![pdf.source_key.clone()]) },
        )
        .await
        .unwrap();
    assert_eq!(hits.len(), 3, "a filtered search still returns k hits when k exist");
    assert!(hits.iter().all(|h| h.source_key == pdf.source_key && h.anchor.page.is_some()));

    // Another tenant sees nothing of this one.
    let other = tenant(&aegis, "globex").await;
    assert!(search(&aegis, &other, "refund", SearchMode::Hybrid).await.is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}

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

#[tokio::test]
async fn text_files_in_legacy_encodings_are_read_as_their_authors_wrote_them() {
    let aegis = aegis().await;
    let scope = tenant(&aegis, "acme").await;
    let japanese = "この文書は会社の就業規則について説明します。従業員は毎日九時に出勤します。";
    let files: [(&str, &'static encoding_rs::Encoding, String); 3] = [
        ("menu.txt", encoding_rs::WINDOWS_1252, "Le café de la gare: crème brûlée, 4,50 €.\n".into()),
        ("rules.csv", encoding_rs::SHIFT_JIS, format!("規則,説明\n出勤,{japanese}\n")),
        (
            "contract.html",
            encoding_rs::WINDOWS_1251,
            "<html><head><meta charset=\"windows-1251\"></head><body><p>Договор поставки</p></body></html>".into(),
        ),
    ];
    let dir = workdir(&[]);
    std::fs::create_dir_all(&dir).unwrap();
    for (name, encoding, text) in &files {
        std::fs::write(dir.join(name), encoding.encode(text).0).unwrap();
    }
    let outcomes = ingest_dir(&aegis, &scope, &dir).await;
    let notes = |key: &str| match outcomes
        .iter()
        .find(|o| matches!(o, IngestOutcome::Stored { source_key, .. } if source_key == key))
    {
        Some(IngestOutcome::Stored { notes, .. }) => notes.clone(),
        other => panic!("{key} was not stored: {other:?} in {outcomes:?}"),
    };
    assert!(notes("menu.txt").iter().any(|n| n.contains("windows-1252")), "a guess is noted");
    assert!(notes("rules.csv").iter().any(|n| n.contains("Shift_JIS")), "a guess is noted");
    assert!(notes("contract.html").is_empty(), "a declared encoding needs no note");

    let hits = search(&aegis, &scope, "café brûlée", SearchMode::Keyword).await;
    assert_eq!(hits[0].source_key, "menu.txt");
    assert!(hits[0].text.contains("crème brûlée, 4,50 €"), "{}", hits[0].text);
    let hits = search(&aegis, &scope, "Договор", SearchMode::Keyword).await;
    assert_eq!(hits[0].source_key, "contract.html");
    let hits = search(&aegis, &scope, japanese, SearchMode::Hybrid).await;
    assert_eq!(hits[0].source_key, "rules.csv");
    assert!(hits[0].text.contains(japanese), "{}", hits[0].text);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_file_is_read_as_what_it_holds_whatever_its_name() {
    let aegis = aegis().await;
    let scope = tenant(&aegis, "acme").await;
    let dir = workdir(&[]);
    std::fs::create_dir_all(&dir).unwrap();
    let generated = corpus().join("generated");
    std::fs::copy(generated.join("xlsx/gen-xlsx-000-10r.xlsx"), dir.join("budget")).unwrap();
    std::fs::copy(generated.join("docx/gen-docx-001-2p.docx"), dir.join("minutes.pdf")).unwrap();
    std::fs::copy(generated.join("pdf/gen-pdf-001-2p.pdf"), dir.join("scan.docx")).unwrap();
    std::fs::write(dir.join("archive.docx"), b"PK\x03\x04 not an office package").unwrap();
    let outcomes = ingest_dir(&aegis, &scope, &dir).await;
    let outcome =
        |key: &str| outcomes.iter().find(|o| o.source_key() == key).unwrap_or_else(|| panic!("{key}: {outcomes:?}"));
    for (key, note) in
        [("budget", None), ("minutes.pdf", Some("content is docx")), ("scan.docx", Some("content is pdf"))]
    {
        match outcome(key) {
            IngestOutcome::Stored { chunks, notes, .. } => {
                assert!(*chunks > 0, "{key}");
                assert_eq!(
                    note.is_some_and(|n| notes.iter().any(|x| x.contains(n))),
                    note.is_some(),
                    "{key}: {notes:?}"
                );
            }
            other => panic!("{key} was not stored: {other:?}"),
        }
    }
    assert!(
        matches!(outcome("archive.docx"), IngestOutcome::Failed { error, .. } if error.contains("zip")),
        "a zip that is no Office package fails with its extractor's error: {outcomes:?}"
    );
    let hits = search(&aegis, &scope, "Could_1 What_2 Under_3", SearchMode::Keyword).await;
    assert_eq!(hits[0].source_key, "budget");
    assert!(hits[0].anchor.sheet.is_some(), "read as a workbook: {:?}", hits[0].anchor);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn legacy_and_opendocument_files_are_ingested_and_cited_like_the_rest() {
    let aegis = aegis().await;
    let scope = tenant(&aegis, "acme").await;
    let dir = workdir(&[]);
    std::fs::create_dir_all(&dir).unwrap();
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    for (fixture, name) in [
        ("doc/harmless-clean.doc", "clean.doc"),
        ("doc/encrypted.doc", "locked.doc"),
        ("ppt/embedded-simple-2007.ppt", "objects.ppt"),
        ("odf/gen-pptx-004-6s.odp", "deck.odp"),
        ("odf/hdr-header-footer.odt", "sections.odt"),
        ("rtf/gen-docx-003-4p.rtf", "letter.doc"),
    ] {
        std::fs::copy(fixtures.join(fixture), dir.join(name)).unwrap();
    }
    let outcomes = ingest_dir(&aegis, &scope, &dir).await;
    let outcome =
        |key: &str| outcomes.iter().find(|o| o.source_key() == key).unwrap_or_else(|| panic!("{key}: {outcomes:?}"));
    assert!(
        matches!(outcome("locked.doc"), IngestOutcome::Failed { error, .. } if error.contains("encrypted")),
        "{outcomes:?}"
    );
    assert!(
        matches!(outcome("letter.doc"), IngestOutcome::Stored { notes, .. } if notes.iter().any(|n| n.contains("content is rtf"))),
        "an RTF file named .doc is read as RTF: {outcomes:?}"
    );
    let cited = |query: &'static str| {
        let (aegis, scope) = (&aegis, &scope);
        async move {
            let hits = search(aegis, scope, query, SearchMode::Hybrid).await;
            hits.into_iter().next().unwrap_or_else(|| panic!("nothing found for {query:?}"))
        }
    };
    let hit = cited("harmless test document").await;
    assert_eq!((hit.source_key.as_str(), hit.anchor.headings.clone()), ("clean.doc", vec!["Test".to_owned()]));
    let hit = cited("simple harmless ASCII text file").await;
    assert_eq!((hit.source_key.as_str(), hit.anchor.slide), ("objects.ppt", Some(1)));
    let hit = cited("Budget at Noor will work own audit the take and customer jalapeño up well").await;
    assert_eq!(
        (hit.source_key.as_str(), hit.anchor.slide, hit.anchor.part.as_deref()),
        ("deck.odp", Some(1), Some("notes"))
    );
    let hit = cited("Header for section").await;
    assert_eq!((hit.source_key.as_str(), hit.anchor.part.as_deref()), ("sections.odt", Some("header")));
    let hit = cited("Through another fallback with ingestion under there to has great could his their up 60736").await;
    assert_eq!(
        (hit.source_key.as_str(), hit.anchor.headings.clone()),
        ("letter.doc", vec!["Tenant Been Each Good".to_owned()])
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_chunk_with_every_word_of_the_query_comes_first_in_keyword_search() {
    let aegis = aegis().await;
    let scope = tenant(&aegis, "acme").await;
    let common = "The customer will take the audit and work up the budget well, and the audit will take work. ";
    let dir = workdir(&[
        ("minutes.txt", &common.repeat(12)),
        ("note.txt", "Budget at Noor will work own audit the take and customer jalapeño up well."),
    ]);
    ingest_dir(&aegis, &scope, &dir).await;
    let query = "Budget at Noor will work own audit the take and customer jalapeño up well";
    let hits = search(&aegis, &scope, query, SearchMode::Keyword).await;
    let keys: Vec<&str> = hits.iter().map(|h| h.source_key.as_str()).collect();
    assert_eq!(keys, ["note.txt", "minutes.txt"], "the sentence itself, then the chunk with many of its words");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Someone pastes a sentence they remember, every word of it common in the tenant's
/// documents: with a candidate cap below the chunks holding its rarest words, the chunk
/// with every word is still ranked, and the one with them side by side comes first in
/// both modes, before a chunk holding them all many times over in another order.
#[tokio::test]
async fn a_pasted_sentence_comes_first_even_when_all_its_words_are_common() {
    let db = fresh_db().await;
    let mut config = config_for(&db);
    config.knowledge.keyword_candidates = 4;
    let aegis = Aegis::builder().config(config).build().await.unwrap();
    let scope = tenant(&aegis, "acme").await;
    let words = ["ledger", "forecast", "warehouse", "supplier", "invoice", "payment"];
    let mut files: Vec<(String, String)> = (0..10)
        .map(|i| {
            let some: Vec<&str> = words.iter().copied().filter(|w| *w != words[i % words.len()]).collect();
            (format!("filler-{i:02}.txt"), format!("{}. ", some.join(" then ")).repeat(3))
        })
        .collect();
    let scrambled: Vec<&str> = words.iter().rev().copied().collect();
    files.push(("scrambled.txt".into(), format!("{}. ", scrambled.join(" or the ")).repeat(6)));
    let sentence = words.join(" ");
    files.push(("target.txt".into(), format!("Minutes of Tuesday. Agreed: {sentence}. Next meeting in May.")));
    let dir = workdir(&files.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect::<Vec<_>>());
    ingest_dir(&aegis, &scope, &dir).await;
    for mode in [SearchMode::Keyword, SearchMode::Hybrid] {
        let hits = search(&aegis, &scope, &sentence, mode).await;
        let first = hits.first().expect("hits");
        assert_eq!((first.source_key.as_str(), first.phrase), ("target.txt", true), "{mode:?}: {hits:#?}");
        assert!(hits[1..].iter().all(|h| !h.phrase), "{mode:?}: only the target holds the phrase");
        assert!(hits.iter().any(|h| h.source_key == "scrambled.txt"), "{mode:?}: every word, in another order");
    }
    let hits = search(&aegis, &scope, "supplier payment forecast", SearchMode::Hybrid).await;
    assert!(!hits.is_empty() && hits.iter().all(|h| !h.phrase), "no chunk holds these words side by side");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Fused scores tie whenever the two lists' best hits differ (each 1/61): the chunk that
/// holds the word asked for then comes before a vector neighbour that does not.
#[tokio::test]
async fn a_tie_between_the_lists_goes_to_the_chunk_holding_the_word() {
    let aegis = aegis().await;
    let scope = tenant(&aegis, "acme").await;
    let neighbours = ["Rotterdamse", "Rotterdammer", "Rotterdamsche", "Rotterdams", "Rotterdamer", "Rotterdamm"];
    let mut files: Vec<(String, String)> = (0..30)
        .map(|i| (format!("area-{i:02}.txt"), format!("{} haven {}", neighbours[i % 6], neighbours[(i + 1) % 6])))
        .collect();
    files.push((
        "zz-memo.txt".into(),
        "Quarterly memo: invoices, payroll, pensions, audits, budgets, forecasts, suppliers, \
         contracts, ledgers, receipts and the move of the archive to Rotterdam next spring."
            .into(),
    ));
    let dir = workdir(&files.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect::<Vec<_>>());
    ingest_dir(&aegis, &scope, &dir).await;
    let hits = search(&aegis, &scope, "Rotterdam", SearchMode::Hybrid).await;
    let memo = hits.iter().find(|h| h.source_key == "zz-memo.txt").expect("the memo is found");
    assert_eq!((memo.keyword_rank, memo.vector_rank), (Some(1), None), "the case this test is about: {hits:#?}");
    assert_eq!(hits[0].score, hits[1].score, "a tie at the top: {hits:#?}");
    assert_eq!(hits[0].source_key, "zz-memo.txt", "{hits:#?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn lexeme_statistics_follow_every_version_and_deletion() {
    let aegis = aegis().await;
    let scope = tenant(&aegis, "acme").await;
    let dir = workdir(&[("refunds.md", REFUNDS), ("shipping.txt", SHIPPING)]);
    ingest_dir(&aegis, &scope, &dir).await;
    let (kept, counted) = term_counts(&aegis).await;
    assert!(kept.iter().any(|(l, n)| l == "refund" && *n >= 1), "{kept:?}");
    assert_eq!(kept, counted);
    std::fs::write(dir.join("refunds.md"), REFUNDS.replace("Perishable goods", "Opened software")).unwrap();
    aegis.knowledge().ingest_file(&scope, "refunds.md", &dir.join("refunds.md")).await.unwrap();
    let (kept, counted) = term_counts(&aegis).await;
    assert_eq!(kept, counted);
    assert!(!kept.iter().any(|(l, _)| l == "perishable"), "a replaced version's lexemes are forgotten");
    aegis.knowledge().delete(&scope, "shipping.txt").await.unwrap();
    let (kept, counted) = term_counts(&aegis).await;
    assert_eq!(kept, counted);
    // A keyword search ranks only the chunks of the query's rarest words, and finds them.
    let hits = search(&aegis, &scope, "the opened software", SearchMode::Keyword).await;
    assert!(hits[0].text.contains("Opened software"), "{hits:?}");
    let options = SearchOptions { k: 5, mode: SearchMode::Hybrid, documents: None };
    let plan = aegis.knowledge().explain_search(&scope, "the opened software", &options).await.unwrap();
    assert!(plan[0].starts_with("keyword candidates: AnyOf"), "{plan:?}");
    assert!(plan.iter().any(|l| l.contains("Execution Time")), "{plan:?}");
    // The plan explained is the generic one production runs: the query's values stay
    // parameters (a plan made for the bound values would show them as constants).
    assert!(plan.iter().any(|l| l.contains("<=> ($1)::halfvec(768)")), "{plan:?}");
    assert!(plan.iter().any(|l| l.contains("CASE $8 WHEN 'phrase'")), "{plan:?}");
    let again = aegis.knowledge().explain_search(&scope, "the opened software", &options).await.unwrap();
    assert!(again.iter().any(|l| l.contains("Execution Time")), "explaining twice on a pooled connection: {again:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn the_vector_top_k_is_answered_by_the_half_precision_hnsw_index() {
    let aegis = aegis().await;
    let scope = tenant(&aegis, "acme").await;
    let dir = workdir(&[("refunds.md", REFUNDS), ("shipping.txt", SHIPPING)]);
    ingest_dir(&aegis, &scope, &dir).await;
    let query = pgvector::Vector::from(aegis_core::llm::offline::OfflineEmbedder::embed_one("refund policy"));
    let mut tx = scope.begin().await.unwrap();
    sqlx::query("SET LOCAL enable_seqscan = off").execute(tx.conn()).await.unwrap();
    let distance = aegis_core::knowledge::INDEXED_DISTANCE;
    let top_k = format!("SELECT c.id FROM chunks c ORDER BY {distance} LIMIT 5");
    let plan: Vec<String> =
        sqlx::query_scalar(&format!("EXPLAIN {top_k}")).bind(&query).fetch_all(tx.conn()).await.unwrap();
    assert!(plan.iter().any(|l| l.contains("Index Scan using chunks_embedding_hnsw")), "{plan:?}");
    let nearest: Vec<uuid::Uuid> = sqlx::query_scalar(&top_k).bind(&query).fetch_all(tx.conn()).await.unwrap();
    tx.commit().await.unwrap();
    let hits = search(&aegis, &scope, "refund policy", SearchMode::Vector).await;
    assert_eq!(hits.first().map(|h| h.chunk_id), nearest.first().copied(), "{hits:?}");
    assert!(hits[0].text.contains("Refund policy"), "{hits:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn vectors_of_another_embedding_model_are_never_compared() {
    let aegis = aegis().await;
    let scope = tenant(&aegis, "acme").await;
    let dir = workdir(&[("refunds.md", REFUNDS), ("shipping.txt", SHIPPING)]);
    ingest_dir(&aegis, &scope, &dir).await;
    // Chunks embedded by another model, each holding exactly the query's own vector: were
    // they compared, they would be the nearest of all.
    let query = "refund policy";
    let twin = pgvector::Vector::from(aegis_core::llm::offline::OfflineEmbedder::embed_one(query));
    let foreign = uuid::Uuid::now_v7();
    let mut tx = scope.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO documents (id, source_key, title, format, content_hash, version, bytes, chunks, created_at, updated_at) \
         VALUES ($1, 'foreign.md', 'foreign', 'markdown', 'f', 1, 0, 3, now(), now())",
    )
    .bind(foreign)
    .execute(tx.conn())
    .await
    .unwrap();
    for ordinal in 0..3 {
        sqlx::query(
            "INSERT INTO chunks (id, document_id, version, ordinal, text, anchor, tsv, embedding, embedding_model) \
             VALUES ($1, $2, 1, $3, 'unrelated words', '{}', to_tsvector('simple', 'unrelated words'), $4, 'other-model-v1')",
        )
        .bind(uuid::Uuid::now_v7())
        .bind(foreign)
        .bind(ordinal)
        .bind(&twin)
        .execute(tx.conn())
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    for mode in [SearchMode::Vector, SearchMode::Hybrid] {
        let hits =
            aegis.knowledge().search(&scope, query, &SearchOptions { k: 3, mode, documents: None }).await.unwrap();
        assert_eq!(hits.len(), 3, "k hits of the query's model when k exist ({mode:?}): {hits:?}");
        assert!(hits.iter().all(|h| h.document_id != foreign), "{mode:?}: {hits:?}");
        assert!(hits[0].text.contains("Refund policy"), "{mode:?}: {hits:?}");
    }
    // With more chunks of the query's model than the vector list holds, the one-model
    // index scan fills the list itself (no exact rescan) and still keeps to its model.
    let long: String =
        (0..700).map(|i| format!("Parcel {i} leaves warehouse {} on day {}. ", i % 17, i % 30)).collect();
    std::fs::write(dir.join("parcels.txt"), long).unwrap();
    aegis.knowledge().ingest_file(&scope, "parcels.txt", &dir.join("parcels.txt")).await.unwrap();
    for mode in [SearchMode::Vector, SearchMode::Hybrid] {
        let hits =
            aegis.knowledge().search(&scope, query, &SearchOptions { k: 3, mode, documents: None }).await.unwrap();
        assert_eq!(hits.len(), 3, "{mode:?}: {hits:?}");
        assert!(hits.iter().all(|h| h.document_id != foreign), "{mode:?}: {hits:?}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The tenant `acme`'s vector index: its oid and definition, if it exists.
pub(crate) async fn vector_index(aegis: &Aegis) -> Option<(i64, String)> {
    sqlx::query_as(
        "SELECT c.oid::int8, pg_get_indexdef(c.oid) FROM pg_class c \
         WHERE c.oid = to_regclass('tenant_acme.chunks_embedding_hnsw')",
    )
    .fetch_optional(aegis.db().pool())
    .await
    .unwrap()
}

#[tokio::test]
async fn a_bulk_import_builds_the_vector_index_at_the_end_and_a_lost_index_is_rebuilt() {
    let db = fresh_db().await;
    let mut config = aegis_it::config_for(&db);
    config.knowledge.bulk_import_files = 3;
    let aegis = Aegis::builder().config(config).build().await.unwrap();
    let scope = tenant(&aegis, "acme").await;
    let (migrated, definition) = vector_index(&aegis).await.expect("the migrations made the index");

    // Two files are below the threshold: the index is updated in place.
    let small = workdir(&[("refunds.md", REFUNDS), ("shipping.txt", SHIPPING)]);
    ingest_dir(&aegis, &scope, &small).await;
    assert_eq!(vector_index(&aegis).await.map(|(oid, _)| oid), Some(migrated));

    // Three files into a tenant holding few chunks: dropped, loaded, built once at the end.
    let bulk = workdir(&[
        ("invoices.txt", "Invoices are due within 30 days."),
        ("lisbon.txt", "The Lisbon office opens at nine."),
        ("support.txt", "Support answers in four hours."),
    ]);
    let outcomes = ingest_dir(&aegis, &scope, &bulk).await;
    assert!(outcomes.iter().all(|o| matches!(o, IngestOutcome::Stored { .. })), "{outcomes:?}");
    let (rebuilt, rebuilt_definition) = vector_index(&aegis).await.expect("rebuilt after the import");
    assert_ne!(rebuilt, migrated, "the index was dropped and built again");
    assert_eq!(rebuilt_definition, definition, "the same index as the migration's");
    let hits = search(&aegis, &scope, "when does the Lisbon office open", SearchMode::Vector).await;
    assert!(hits.iter().any(|h| h.text.contains("Lisbon")), "{hits:?}");

    // An import that died left the index missing: the repair waits while an import holds
    // the tenant's lock, then rebuilds it.
    sqlx::raw_sql("DROP INDEX tenant_acme.chunks_embedding_hnsw").execute(aegis.db().pool()).await.unwrap();
    let key = aegis_core::knowledge::bulk::bulk_lock_key(scope.tenant());
    let mut holder = aegis.db().pool().acquire().await.unwrap().detach();
    sqlx::query("SELECT pg_advisory_lock(hashtext($1))").bind(&key).execute(&mut holder).await.unwrap();
    assert!(aegis_core::knowledge::bulk::repair_indexes(aegis.db()).await.unwrap().is_empty());
    assert!(vector_index(&aegis).await.is_none());
    sqlx::Connection::close(holder).await.unwrap();
    let repaired = aegis_core::knowledge::bulk::repair_indexes(aegis.db()).await.unwrap();
    assert_eq!(repaired, vec![scope.tenant().clone()]);
    assert_eq!(vector_index(&aegis).await.map(|(_, d)| d), Some(definition));
    assert!(aegis_core::knowledge::bulk::repair_indexes(aegis.db()).await.unwrap().is_empty(), "nothing left to do");
    std::fs::remove_dir_all(&small).unwrap();
    std::fs::remove_dir_all(&bulk).unwrap();
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

#[tokio::test]
async fn uploads_over_http_are_queued_ingested_and_searchable() {
    use aegis_core::auth::{NewApiKey, Scope, reveal};
    let db = fresh_db().await;
    let mut config = aegis_it::config_for(&db);
    config.workers.enabled = true;
    config.workers.poll_interval_ms = 50;
    config.data_dir = std::env::temp_dir().join(format!("aegis-kb-http-{}", db.name));
    let aegis = Aegis::builder().config(config).build().await.unwrap();
    let scope = tenant(&aegis, "acme").await;
    tenant(&aegis, "globex").await;
    let key = |t: &str| NewApiKey {
        tenant: TenantId::parse(t).unwrap(),
        name: "t".into(),
        scopes: vec![Scope::Api],
        expires_at: None,
    };
    let acme_key = reveal(&aegis.api_keys().create(&key("acme"), &Caller::system("test")).await.unwrap()).to_owned();
    let globex_key =
        reveal(&aegis.api_keys().create(&key("globex"), &Caller::system("test")).await.unwrap()).to_owned();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = tokio_util::sync::CancellationToken::new();
    tokio::spawn(aegis_server::launch_with_listener(aegis.clone(), listener, shutdown.clone()));
    let http = reqwest::Client::new();
    let get_json = |path: String, key: String| {
        let (http, url) = (http.clone(), format!("{base}{path}"));
        async move { aegis_it::get_json(&http, &url, &key).await }
    };

    let form = reqwest::multipart::Form::new()
        .text("source_key", "policies/refunds.md")
        .part("file", reqwest::multipart::Part::bytes(REFUNDS.as_bytes().to_vec()).file_name("refunds.md"))
        .part("file", reqwest::multipart::Part::bytes(b"%PDF-broken".to_vec()).file_name("broken.pdf"));
    let r = http
        .post(format!("{base}/api/tenants/acme/documents"))
        .bearer_auth(&acme_key)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let accepted: serde_json::Value = r.json().await.unwrap();
    assert_eq!(accepted[0]["source_key"], "policies/refunds.md");
    let jobs: Vec<String> =
        accepted.as_array().unwrap().iter().map(|a| a["job_id"].as_str().unwrap().to_owned()).collect();
    let mut statuses = Vec::new();
    for job in &jobs {
        let mut status = String::new();
        for _ in 0..200 {
            let body = get_json(format!("/api/tenants/acme/jobs/{job}"), acme_key.clone()).await;
            status = body["status"].as_str().unwrap_or_default().to_owned();
            if status == "done" || status == "failed" || status == "dead" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        statuses.push(status);
    }
    assert_eq!(statuses, ["done", "failed"], "the broken PDF fails alone");
    // Other tenants' keys see neither the job nor the documents.
    assert_eq!(
        http.get(format!("{base}/api/tenants/acme/jobs/{}", jobs[0]))
            .bearer_auth(&globex_key)
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        http.get(format!("{base}/api/tenants/globex/jobs/{}", jobs[0]))
            .bearer_auth(&globex_key)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let hits = get_json("/api/tenants/acme/search?q=refund%20within%20days&k=3".into(), acme_key.clone()).await;
    assert_eq!(hits[0]["source_key"], "policies/refunds.md");
    assert_eq!(hits[0]["anchor"]["headings"][0], "Refund policy");
    let docs = get_json("/api/tenants/acme/documents".into(), acme_key.clone()).await;
    assert_eq!(docs.as_array().unwrap().len(), 1);
    // The text-search configuration: read and changed with the tenant's key only.
    assert_eq!(get_json("/api/tenants/acme/text-search".into(), acme_key.clone()).await["config"], "simple");
    let put = |key: &str, config: &str| {
        http.put(format!("{base}/api/tenants/acme/text-search"))
            .bearer_auth(key)
            .json(&serde_json::json!({ "config": config }))
            .send()
    };
    assert_eq!(put(&globex_key, "english").await.unwrap().status(), 403);
    let refused = put(&acme_key, "klingon").await.unwrap();
    assert_eq!(refused.status(), 400);
    let refused: serde_json::Value = refused.json().await.unwrap();
    assert!(
        refused["error"]["message"].as_str().unwrap().contains("no text-search configuration `klingon`"),
        "{refused}"
    );
    let changed = put(&acme_key, "english").await.unwrap();
    assert_eq!(changed.status(), 200);
    let changed: serde_json::Value = changed.json().await.unwrap();
    assert_eq!((changed["previous"].as_str(), changed["current"].as_str()), (Some("simple"), Some("english")));
    assert!(changed["chunks"].as_u64().unwrap() >= 1, "{changed}");
    let hits = get_json("/api/tenants/acme/search?q=refunding&mode=keyword".into(), acme_key.clone()).await;
    assert_eq!(hits[0]["source_key"], "policies/refunds.md", "stemmed by the new configuration");
    let r = http
        .delete(format!("{base}/api/tenants/acme/documents/policies%2Frefunds.md"))
        .bearer_auth(&acme_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(aegis.knowledge().list(&scope).await.unwrap().is_empty());
    shutdown.cancel();
}
