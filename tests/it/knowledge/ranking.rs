//! Keyword ranking: every word before some, a phrase before every word, ties to the literal match; and the lexeme statistics it reads.

use aegis_core::{
    Aegis,
    knowledge::{IngestOutcome, SearchMode, SearchOptions},
};
use aegis_it::{aegis, config_for, fresh_db};

use super::{REFUNDS, SHIPPING, ingest_dir, search, tenant, term_counts, workdir};

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

/// Keyword search folds case beyond ASCII (the embedded cluster's LC_CTYPE is C.UTF-8):
/// a query in capitals finds German, Swedish, Greek and Cyrillic words written in lower
/// case, and the other way round.
#[tokio::test]
async fn keyword_search_folds_the_case_of_every_alphabet() {
    let aegis = aegis().await;
    let scope = tenant(&aegis, "acme").await;
    let dir = workdir(&[
        ("branches.txt", "Die Filiale in Zürich öffnet um neun; Ångström measured it. Σοφία runs the office in Киев."),
        ("other.txt", "Nothing about any city here."),
    ]);
    ingest_dir(&aegis, &scope, &dir).await;
    for query in ["ZÜRICH", "ÅNGSTRÖM", "ΣΟΦΊΑ", "КИЕВ", "zürich", "ÖFFNET"] {
        let hits = search(&aegis, &scope, query, SearchMode::Keyword).await;
        let keys: Vec<&str> = hits.iter().map(|h| h.source_key.as_str()).collect();
        assert_eq!(keys, ["branches.txt"], "{query}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Keyword search folds diacritics: a query typed without accents or vowel points finds
/// the words written with them, and the other way round; the span shows the text as
/// written, with the word marked.
#[tokio::test]
async fn keyword_search_folds_diacritics() {
    let aegis = aegis().await;
    let scope = tenant(&aegis, "acme").await;
    let dir = workdir(&[
        ("menu.txt", "Crème brûlée at the Café Müller in Zürich; Việt Nam coffee. حَبيبي"),
        ("plain.txt", "The Cafe Muller in Zurich serves plain creme."),
        ("other.txt", "Nothing about any café here except this one word."),
    ]);
    ingest_dir(&aegis, &scope, &dir).await;
    let keys = |hits: &[aegis_core::knowledge::Hit]| {
        let mut keys: Vec<String> = hits.iter().map(|h| h.source_key.clone()).collect();
        keys.sort();
        keys
    };
    for query in ["creme brulee", "Muller Zurich", "Viet Nam", "MÜLLER zürich", "حبيبي"] {
        let hits = search(&aegis, &scope, query, SearchMode::Keyword).await;
        assert!(keys(&hits).contains(&"menu.txt".to_owned()), "{query}: {hits:#?}");
    }
    let hits = search(&aegis, &scope, "Cafe Muller Zurich", SearchMode::Keyword).await;
    assert_eq!(
        keys(&hits[..2.min(hits.len())]),
        ["menu.txt", "plain.txt"],
        "either spelling has every word: {hits:#?}"
    );
    let hits = search(&aegis, &scope, "\"Café Müller\"", SearchMode::Keyword).await;
    assert_eq!(keys(&hits), ["menu.txt", "plain.txt"], "a quoted phrase folds too");
    let menu = hits.iter().find(|h| h.source_key == "menu.txt").unwrap();
    assert!(menu.span.contains("**Café** **Müller**"), "the span as written: {}", menu.span);
    // Typed without accents, the words are still marked where the text has them.
    let hits = search(&aegis, &scope, "brulee zurich", SearchMode::Keyword).await;
    let menu = hits.iter().find(|h| h.source_key == "menu.txt").unwrap();
    assert!(menu.span.contains("**brûlée**") && menu.span.contains("**Zürich**"), "{}", menu.span);
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

/// Common words that are seldom together: once the table's size is known (after
/// `ANALYZE`), the keyword side reads every chunk holding its three rarest words in one
/// index scan and sorts those with every word first; the sentence still comes first when
/// more chunks hold those three than the cap ranks.
#[tokio::test]
async fn common_words_seldom_together_are_read_in_one_scan_with_the_sentence_first() {
    let db = fresh_db().await;
    let mut config = config_for(&db);
    config.knowledge.keyword_candidates = 16;
    let aegis = Aegis::builder().config(config).build().await.unwrap();
    let scope = tenant(&aegis, "acme").await;
    let words = ["ledger", "forecast", "warehouse", "supplier", "invoice", "payment"];
    let mut files: Vec<(String, String)> = (0..30)
        .map(|i| {
            let some: Vec<&str> = words.iter().copied().filter(|w| *w != words[i % words.len()]).collect();
            (format!("filler-{i:02}.txt"), format!("{}. ", some.join(" then ")).repeat(3))
        })
        .collect();
    files.extend((0..16).map(|i| (format!("other-{i:02}.txt"), format!("Tea break number {i} at the canteen."))));
    let scrambled: Vec<&str> = words.iter().rev().copied().collect();
    files.push(("scrambled.txt".into(), format!("{}. ", scrambled.join(" or the ")).repeat(6)));
    let sentence = words.join(" ");
    files.push(("target.txt".into(), format!("Minutes of Tuesday. Agreed: {sentence}. Next meeting in May.")));
    let dir = workdir(&files.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect::<Vec<_>>());
    ingest_dir(&aegis, &scope, &dir).await;
    sqlx::query("ANALYZE tenant_acme.chunks").execute(aegis.db().pool()).await.unwrap();
    let options = SearchOptions { k: 8, mode: SearchMode::Keyword, documents: None };
    let plan = aegis.knowledge().explain_search(&scope, &sentence, &options).await.unwrap();
    assert!(plan[0].starts_with("keyword candidates: AllOfFew("), "{}", plan[0]);
    let (together,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM tenant_acme.chunks WHERE tsv @@ 'forecast & invoice & ledger'::tsquery")
            .fetch_one(aegis.db().pool())
            .await
            .unwrap();
    assert!(together > 16, "more chunks hold the three rarest words than the cap ranks: {together}");
    for mode in [SearchMode::Keyword, SearchMode::Hybrid] {
        let hits = search(&aegis, &scope, &sentence, mode).await;
        let first = hits.first().expect("hits");
        assert_eq!((first.source_key.as_str(), first.phrase), ("target.txt", true), "{mode:?}: {hits:#?}");
        assert!(hits.iter().any(|h| h.source_key == "scrambled.txt"), "{mode:?}: every word, in another order");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// More chunks than the cap ranks hold every word of the query, in other orders: the
/// chunk with them side by side is still among those ranked (the phrase is tested before
/// the cap, not only after it), and its span is where the phrase is, not the first place
/// one of its words is.
#[tokio::test]
async fn the_sentence_is_ranked_when_more_chunks_than_the_cap_hold_all_its_words() {
    let db = fresh_db().await;
    let mut config = config_for(&db);
    config.knowledge.keyword_candidates = 16;
    let aegis = Aegis::builder().config(config).build().await.unwrap();
    let scope = tenant(&aegis, "acme").await;
    let words = ["ledger", "forecast", "warehouse", "supplier"];
    let mut files: Vec<(String, String)> = (0..40)
        .map(|i| {
            let mut scrambled = words;
            scrambled.rotate_left(1 + i % 3);
            scrambled.swap(0, 1);
            (format!("filler-{i:02}.txt"), format!("{} were discussed.", scrambled.join(" and the ")))
        })
        .collect();
    files.extend((0..20).map(|i| (format!("other-{i:02}.txt"), format!("Tea break number {i} at the canteen."))));
    let filler = "Attendance was good and the room was warm. ".repeat(8);
    let sentence = words.join(" ");
    files.push((
        "target.txt".into(),
        format!("The forecast came late, and the supplier blamed the warehouse. {filler}Agreed: {sentence}. Next meeting in May."),
    ));
    let dir = workdir(&files.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect::<Vec<_>>());
    ingest_dir(&aegis, &scope, &dir).await;
    sqlx::query("ANALYZE tenant_acme.chunks").execute(aegis.db().pool()).await.unwrap();
    let options = SearchOptions { k: 8, mode: SearchMode::Keyword, documents: None };
    let plan = aegis.knowledge().explain_search(&scope, &sentence, &options).await.unwrap();
    assert!(plan[0].starts_with("keyword candidates: AllOfFew("), "{}", plan[0]);
    for mode in [SearchMode::Keyword, SearchMode::Hybrid] {
        let hits = search(&aegis, &scope, &sentence, mode).await;
        let first = hits.first().expect("hits");
        assert_eq!((first.source_key.as_str(), first.phrase), ("target.txt", true), "{mode:?}: {hits:#?}");
        assert!(first.span.contains("Agreed"), "{mode:?}: the span shows the phrase: {}", first.span);
    }
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
async fn lexeme_statistics_stay_exact_under_concurrent_writers() {
    let aegis = aegis().await;
    let scope = tenant(&aegis, "acme").await;
    let texts: Vec<(String, String)> = (0..12)
        .map(|i| {
            (
                format!("memo-{i:02}.md"),
                format!("# Memo {i}\n\n{}\n\nShared words: refund shipping order {i}.\n", REFUNDS),
            )
        })
        .collect();
    let files: Vec<(&str, &str)> = texts.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
    let dir = workdir(&files);
    // Three batches at once (each two files at a time) over the same words, then new
    // versions and deletions racing each other.
    let batch = |names: Vec<String>| {
        let (aegis, scope, dir) = (aegis.clone(), scope.clone(), dir.clone());
        tokio::spawn(async move {
            let files = names.iter().map(|n| (n.clone(), dir.join(n))).collect();
            aegis.knowledge().ingest_files(&scope, files, |_, _| {}).await
        })
    };
    let names: Vec<String> = texts.iter().map(|(n, _)| n.clone()).collect();
    let batches = [batch(names[0..4].to_vec()), batch(names[4..8].to_vec()), batch(names[8..12].to_vec())];
    for outcome in futures::future::join_all(batches).await.into_iter().flat_map(Result::unwrap) {
        assert!(matches!(outcome, IngestOutcome::Stored { .. }), "{outcome:?}");
    }
    for (name, text) in &texts[0..6] {
        std::fs::write(dir.join(name), text.replace("Perishable goods", "Opened software")).unwrap();
    }
    let rewrite = batch(names[0..6].to_vec());
    let deletions = names[6..12].iter().map(|n| {
        let (aegis, scope, n) = (aegis.clone(), scope.clone(), n.clone());
        tokio::spawn(async move { aegis.knowledge().delete(&scope, &n).await })
    });
    for deleted in futures::future::join_all(deletions).await {
        deleted.unwrap().unwrap();
    }
    for outcome in rewrite.await.unwrap() {
        assert!(matches!(outcome, IngestOutcome::Stored { version: 2, .. }), "{outcome:?}");
    }
    let (kept, counted) = term_counts(&aegis).await;
    assert_eq!(kept, counted);
    assert!(kept.iter().any(|(l, n)| l == "opened" && *n >= 6), "{kept:?}");
    assert!(!kept.iter().any(|(l, _)| l == "perishable"), "{kept:?}");
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
    assert!(plan.iter().any(|l| l.contains("($8 <> 'all few'::text)")), "{plan:?}");
    let again = aegis.knowledge().explain_search(&scope, "the opened software", &options).await.unwrap();
    assert!(again.iter().any(|l| l.contains("Execution Time")), "explaining twice on a pooled connection: {again:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
