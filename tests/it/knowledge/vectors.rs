//! The vector side: the half-precision HNSW index in use, models never compared across, and the index built once after a bulk import.

use aegis_core::{
    Aegis,
    knowledge::{IngestOutcome, SearchMode, SearchOptions},
};
use aegis_it::{aegis, fresh_db};

use super::{REFUNDS, SHIPPING, index, ingest_dir, search, tenant, vector_index, workdir};

/// pgvector's top-k query ordered by the expression the HNSW index answers
/// (`knowledge::INDEXED_DISTANCE`, checked below), as a literal so that `EXPLAIN` can be
/// put before it without building SQL at run time.
macro_rules! top_k {
    () => {
        "SELECT c.id FROM chunks c ORDER BY c.embedding::halfvec(768) <=> $1::halfvec(768) LIMIT 5"
    };
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
    assert!(top_k!().contains(aegis_core::knowledge::INDEXED_DISTANCE), "the expression production orders by");
    let plan: Vec<String> =
        sqlx::query_scalar(concat!("EXPLAIN ", top_k!())).bind(&query).fetch_all(tx.conn()).await.unwrap();
    assert!(plan.iter().any(|l| l.contains("Index Scan using chunks_embedding_hnsw")), "{plan:?}");
    let nearest: Vec<uuid::Uuid> = sqlx::query_scalar(top_k!()).bind(&query).fetch_all(tx.conn()).await.unwrap();
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

#[tokio::test]
async fn one_large_document_into_a_near_empty_tenant_builds_the_indexes_after_its_write() {
    let db = fresh_db().await;
    let mut config = aegis_it::config_for(&db);
    config.knowledge.bulk_import_chunks = 5;
    let aegis = Aegis::builder().config(config).build().await.unwrap();
    let scope = tenant(&aegis, "acme").await;
    let (migrated, definition) = vector_index(&aegis).await.unwrap();
    let (migrated_gin, _) = index(&aegis, "chunks_tsv").await.unwrap();
    let chapters: String = (1..=12)
        .map(|n| {
            format!(
                "# Chapter {n}\n\n{}\n\n",
                format!("Section {n} of the warehouse manual covers pallet {n}. ").repeat(300)
            )
        })
        .collect();
    let dir = workdir(&[("manual.md", &chapters), ("note.txt", "A short note.")]);
    let outcomes = ingest_dir(&aegis, &scope, &dir).await;
    let chunks = outcomes.iter().find_map(|o| match o {
        IngestOutcome::Stored { source_key, chunks, .. } if source_key == "manual.md" => Some(*chunks),
        _ => None,
    });
    assert!(chunks.unwrap() >= 5, "{outcomes:?}");
    let (rebuilt, rebuilt_definition) = vector_index(&aegis).await.expect("rebuilt after the write");
    assert_ne!(rebuilt, migrated, "dropped for the large document and built again");
    assert_eq!(rebuilt_definition, definition);
    assert_ne!(index(&aegis, "chunks_tsv").await.unwrap().0, migrated_gin);
    let hits = search(&aegis, &scope, "pallet 7 of the warehouse manual", SearchMode::Hybrid).await;
    assert_eq!(hits[0].source_key, "manual.md", "{hits:?}");
    // A document of one chapter is large enough too, but the tenant now holds more than
    // nine times its chunks: the indexes are updated in place.
    let chapter = chapters.split("# Chapter 2").next().unwrap().replace("pallet", "crate");
    std::fs::write(dir.join("chapter.md"), chapter).unwrap();
    let outcome = aegis.knowledge().ingest_file(&scope, "chapter.md", &dir.join("chapter.md")).await.unwrap();
    assert!(matches!(outcome, IngestOutcome::Stored { chunks: 5.., .. }), "{outcome:?}");
    assert_eq!(vector_index(&aegis).await.map(|(oid, _)| oid), Some(rebuilt));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_bulk_import_builds_the_search_indexes_at_the_end_and_a_lost_index_is_rebuilt() {
    let db = fresh_db().await;
    let mut config = aegis_it::config_for(&db);
    config.knowledge.bulk_import_files = 3;
    let aegis = Aegis::builder().config(config).build().await.unwrap();
    let scope = tenant(&aegis, "acme").await;
    let (migrated, definition) = vector_index(&aegis).await.expect("the migrations made the index");
    let (migrated_gin, gin_definition) = index(&aegis, "chunks_tsv").await.expect("and the GIN index");
    assert!(gin_definition.contains("fastupdate=off"), "{gin_definition}");

    // Two files are below the threshold: the index is updated in place.
    let small = workdir(&[("refunds.md", REFUNDS), ("shipping.txt", SHIPPING)]);
    ingest_dir(&aegis, &scope, &small).await;
    assert_eq!(vector_index(&aegis).await.map(|(oid, _)| oid), Some(migrated));
    assert_eq!(index(&aegis, "chunks_tsv").await.map(|(oid, _)| oid), Some(migrated_gin));

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
    let (rebuilt_gin, rebuilt_gin_definition) = index(&aegis, "chunks_tsv").await.expect("the GIN index too");
    assert_ne!(rebuilt_gin, migrated_gin, "the GIN index was dropped and built again");
    assert_eq!(rebuilt_gin_definition, gin_definition);
    let hits = search(&aegis, &scope, "invoices due", SearchMode::Keyword).await;
    assert!(hits.iter().any(|h| h.text.contains("30 days")), "{hits:?}");
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
    // The GIN index alone missing is repaired the same way.
    sqlx::raw_sql("DROP INDEX tenant_acme.chunks_tsv").execute(aegis.db().pool()).await.unwrap();
    assert_eq!(aegis_core::knowledge::bulk::repair_indexes(aegis.db()).await.unwrap(), vec![scope.tenant().clone()]);
    assert_eq!(index(&aegis, "chunks_tsv").await.map(|(_, d)| d), Some(gin_definition));
    std::fs::remove_dir_all(&small).unwrap();
    std::fs::remove_dir_all(&bulk).unwrap();
}
