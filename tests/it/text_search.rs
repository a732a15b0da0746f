//! The tenant's text-search configuration: a change re-tokenises every stored chunk in
//! place, keeps the lexeme statistics exact, rebuilds the vector index it dropped, applies
//! to later versions, and an unknown or hostile name changes nothing.

use aegis_core::knowledge::{KnowledgeError, SearchMode};
use aegis_it::aegis;

use super::knowledge::{REFUNDS, SHIPPING, ingest_dir, search, tenant, term_counts, vector_index, workdir};

#[tokio::test]
async fn a_new_text_search_configuration_retokenises_every_chunk_in_place() {
    let aegis = aegis().await;
    let scope = tenant(&aegis, "acme").await;
    let dir = workdir(&[("refunds.md", REFUNDS), ("shipping.txt", SHIPPING)]);
    ingest_dir(&aegis, &scope, &dir).await;
    let kb = aegis.knowledge();
    assert_eq!(kb.text_search_config(&scope).await.unwrap(), "simple");
    // `simple` neither stems nor drops stop words: "refunding" is in no chunk.
    assert!(search(&aegis, &scope, "refunding", SearchMode::Keyword).await.is_empty());
    let chunks: i64 =
        sqlx::query_scalar("SELECT count(*) FROM tenant_acme.chunks").fetch_one(aegis.db().pool()).await.unwrap();
    let index_before = vector_index(&aegis).await.expect("an index to begin with");

    let change = kb.set_text_search_config(&scope, "english").await.unwrap();
    assert_eq!((change.previous.as_str(), change.current.as_str()), ("simple", "english"));
    assert_eq!(i64::try_from(change.chunks).unwrap(), chunks, "every chunk is re-tokenised");
    let hits = search(&aegis, &scope, "refunding", SearchMode::Keyword).await;
    assert!(hits.iter().any(|h| h.source_key == "refunds.md"), "{hits:?}");
    let (kept, counted) = term_counts(&aegis).await;
    assert_eq!(kept, counted, "the lexeme statistics are recounted with the new tokens");
    assert!(kept.iter().any(|(l, _)| l == "refund"), "{kept:?}");
    assert!(!kept.iter().any(|(l, _)| l == "refunded" || l == "the" || l == "for"), "{kept:?}");
    // The index was dropped for the rewrite and built again, the same definition.
    let index_after = vector_index(&aegis).await.expect("the vector index is rebuilt");
    assert_ne!(index_before.0, index_after.0);
    assert_eq!(index_before.1, index_after.1);
    assert_eq!(
        search(&aegis, &scope, "warehouse in Rotterdam", SearchMode::Vector).await[0].source_key,
        "shipping.txt"
    );

    // A version written afterwards is tokenised by the new configuration too.
    std::fs::write(dir.join("returns.md"), "Returning customers were delighted by the service.").unwrap();
    kb.ingest_file(&scope, "returns.md", &dir.join("returns.md")).await.unwrap();
    let hits = search(&aegis, &scope, "delighting", SearchMode::Keyword).await;
    assert_eq!(hits.first().map(|h| h.source_key.as_str()), Some("returns.md"), "{hits:?}");
    let (kept, counted) = term_counts(&aegis).await;
    assert_eq!(kept, counted);

    // The same configuration again is nothing to do.
    assert_eq!(kb.set_text_search_config(&scope, "english").await.unwrap().chunks, 0);
    // Unknown, qualified or hostile names are refused and change nothing.
    for bad in ["klingon", "english; DROP TABLE chunks", "tenant_globex.english", "pg_catalog.english", " ", "e'"] {
        let err = kb.set_text_search_config(&scope, bad).await.unwrap_err();
        assert!(matches!(err, KnowledgeError::Invalid(_)), "{bad}: {err}");
    }
    let err = kb.set_text_search_config(&scope, "klingon").await.unwrap_err().to_string();
    assert!(err.contains("no text-search configuration `klingon`") && err.contains("english"), "{err}");
    assert_eq!(kb.text_search_config(&scope).await.unwrap(), "english");

    // And back: the stemmed forms no longer match.
    let back = kb.set_text_search_config(&scope, "simple").await.unwrap();
    assert_eq!((back.previous.as_str(), back.chunks), ("english", u64::try_from(chunks + 1).unwrap()));
    assert!(search(&aegis, &scope, "refunding", SearchMode::Keyword).await.is_empty());
    let (kept, counted) = term_counts(&aegis).await;
    assert_eq!(kept, counted);
    assert!(kept.iter().any(|(l, _)| l == "refunded"), "{kept:?}");

    // A change waits for a version being written (which holds the tokenisation lock
    // shared and tokenises with the configuration it read), then re-tokenises its chunks too.
    let mut writer = scope.begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock_shared(hashtext('aegis.kb_tsv.' || current_schema()))")
        .execute(writer.conn())
        .await
        .unwrap();
    let change = tokio::spawn({
        let (aegis, scope) = (aegis.clone(), scope.clone());
        async move { aegis.knowledge().set_text_search_config(&scope, "english").await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!change.is_finished(), "the change waits for the writer");
    sqlx::query(
        "INSERT INTO chunks (id, document_id, version, ordinal, text, anchor, tsv, embedding, embedding_model) \
         SELECT gen_random_uuid(), document_id, version, 9999, 'Refunding late orders', anchor, \
                to_tsvector('simple', 'Refunding late orders'), embedding, embedding_model \
         FROM chunks WHERE text LIKE '%Rotterdam%'",
    )
    .execute(writer.conn())
    .await
    .unwrap();
    writer.commit().await.unwrap();
    assert_eq!(change.await.unwrap().unwrap().chunks, u64::try_from(chunks + 2).unwrap());
    let stale: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM tenant_acme.chunks WHERE tsv IS DISTINCT FROM to_tsvector('english', tenant_acme.kb_fold(text))",
    )
    .fetch_one(aegis.db().pool())
    .await
    .unwrap();
    assert_eq!(stale, 0, "no chunk keeps tokens of the old configuration");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn the_text_search_configuration_from_the_shell() {
    let db = aegis_it::fresh_db().await;
    let url = db.url.as_str();
    let run = |args: &[&str]| aegis_it::aegis_ok(url, &[], args);
    run(&["tenant", "create", "acme", "--tier", "pro"]);
    let dir = workdir(&[("refunds.md", REFUNDS)]);
    run(&["ingest", "acme", dir.to_str().unwrap()]);
    assert_eq!(run(&["docs", "text-search", "acme"]).trim(), "simple");
    let out = run(&["docs", "text-search", "acme", "english"]);
    assert!(out.contains("simple → english") && out.contains("chunks re-tokenised"), "{out}");
    let hits: serde_json::Value =
        serde_json::from_str(&run(&["search", "acme", "refunding", "--mode", "keyword", "--json"])).unwrap();
    assert_eq!(hits[0]["source_key"], "refunds.md");
    let refused = aegis_it::aegis_output(url, &[], &["docs", "text-search", "acme", "klingon"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("no text-search configuration `klingon`"));
    assert_eq!(run(&["docs", "text-search", "acme"]).trim(), "english");
    std::fs::remove_dir_all(&dir).unwrap();
}
