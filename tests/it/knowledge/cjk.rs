//! Keyword search in Chinese, Japanese and Korean, which write words without spaces between
//! them: a word is found inside the run that holds it (tenant migration 11 tokenises such
//! runs as overlapping character pairs), chunks stored before that migration included.

use aegis_core::{
    Aegis,
    db::migrate::MigrationSet,
    knowledge::{Hit, SearchMode},
    tenancy::Caller,
};
use aegis_it::{aegis, config_for, fresh_db};

use super::{ingest_dir, search, tenant, workdir};

const FILES: &[(&str, &str)] = &[
    ("zh.txt", "本公司的退款政策规定，客户可以在三十天内申请全额退款。我们使用PostgreSQL数据库。"),
    ("ja.txt", "明日は東京都庁舎に行きます。会議は午後三時からです。"),
    ("ko.txt", "서울에서 만나요. 회의는 오후 세 시에 시작합니다."),
    ("en.txt", "Nothing about any city here, only the refund policy in English."),
];

fn keys(hits: &[Hit]) -> Vec<&str> {
    hits.iter().map(|h| h.source_key.as_str()).collect()
}

/// A word of two characters or more is found inside a longer run, in every mode that
/// reads full text, and marked there in the span; Latin letters written
/// against CJK ones are a word of their own.
#[tokio::test]
async fn a_cjk_word_is_found_inside_the_run_that_holds_it() {
    let aegis = aegis().await;
    let scope = tenant(&aegis, "acme").await;
    let dir = workdir(FILES);
    ingest_dir(&aegis, &scope, &dir).await;
    for (query, key) in [
        ("退款", "zh.txt"),
        ("退款政策", "zh.txt"),
        ("数据库", "zh.txt"),
        ("PostgreSQL", "zh.txt"),
        ("東京都", "ja.txt"),
        ("会議", "ja.txt"),
        ("午後三時", "ja.txt"),
        ("서울", "ko.txt"),
        ("회의", "ko.txt"),
    ] {
        let hits = search(&aegis, &scope, query, SearchMode::Keyword).await;
        assert_eq!(keys(&hits), [key], "{query}: {hits:#?}");
        assert!(hits[0].span.contains("**"), "{query}: the run holding it is marked: {}", hits[0].span);
        let hybrid = search(&aegis, &scope, query, SearchMode::Hybrid).await;
        assert_eq!(hybrid.first().map(|h| h.source_key.as_str()), Some(key), "{query}: {hybrid:#?}");
        assert_eq!(hybrid[0].keyword_rank, Some(1), "{query}: found by its words, not only by the vector");
    }
    // Web-search syntax around runs: a negated run excludes the chunks holding it whole.
    let hits = search(&aegis, &scope, "会議 -東京都", SearchMode::Keyword).await;
    assert!(hits.is_empty(), "ja.txt holds 東京都: {hits:#?}");
    let hits = search(&aegis, &scope, "会議 -大阪", SearchMode::Keyword).await;
    assert_eq!(keys(&hits), ["ja.txt"], "{hits:#?}");
    let hits = search(&aegis, &scope, "東京-会議", SearchMode::Keyword).await;
    assert_eq!(keys(&hits), ["ja.txt"], "a hyphen against a run negates nothing: {hits:#?}");
    let hits = search(&aegis, &scope, "退款", SearchMode::Keyword).await;
    assert!(hits[0].span.contains("本公司的**退款**政策规定"), "the word within its run: {}", hits[0].span);
    assert!(hits[0].span.contains("全额**退款**"), "every run holding it: {}", hits[0].span);
    let hits = search(&aegis, &scope, "東京都", SearchMode::Hybrid).await;
    assert!(hits[0].span.contains("明日は**東京都**庁舎に行きます"), "{}", hits[0].span);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The characters of a query side by side in the text are its phrase: such a chunk comes
/// first and is flagged; the same characters in another order are not.
#[tokio::test]
async fn cjk_characters_side_by_side_are_the_phrase() {
    let aegis = aegis().await;
    let scope = tenant(&aegis, "acme").await;
    let mut files = FILES.to_vec();
    files.push(("scattered.txt", "政策很多。退款很少。政策和退款是两件事。"));
    let dir = workdir(&files);
    ingest_dir(&aegis, &scope, &dir).await;
    let hits = search(&aegis, &scope, "退款政策", SearchMode::Keyword).await;
    assert_eq!(keys(&hits), ["zh.txt", "scattered.txt"], "{hits:#?}");
    assert!(hits[0].phrase && !hits[1].phrase, "{hits:#?}");
    let hits = search(&aegis, &scope, "政策退款", SearchMode::Keyword).await;
    assert!(hits.iter().all(|h| !h.phrase), "no chunk holds 政策退款: {hits:#?}");
    assert!(keys(&hits).contains(&"scattered.txt"), "{hits:#?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Chunks stored under the earlier tokenisation (a run was one token) are re-tokenised by
/// the migration, with the lexeme statistics the keyword side reads.
#[tokio::test]
async fn chunks_stored_before_the_migration_are_re_tokenised_by_it() {
    let db = fresh_db().await;
    let before = MigrationSet::new(MigrationSet::tenant().migrations()[..10].to_vec()).unwrap();
    let old = Aegis::builder().config(config_for(&db)).tenant_migrations(before).build().await.unwrap();
    let scope = tenant(&old, "acme").await;
    let mut files = FILES.to_vec();
    // 부산에서 ("in Busan") stored decomposed, as conjoining jamo: `kb_fold` composes it.
    files.push(("ko-nfd.txt", "\u{1107}\u{116E}\u{1109}\u{1161}\u{11AB}\u{110B}\u{1166}\u{1109}\u{1165} meeting."));
    let dir = workdir(&files);
    ingest_dir(&old, &scope, &dir).await;
    for query in ["東京都", "부산"] {
        assert!(search(&old, &scope, query, SearchMode::Keyword).await.is_empty(), "{query}: one token per run before");
    }

    let new = Aegis::builder().config(config_for(&db)).build().await.unwrap();
    let report = new.migrate(2, &Caller::system("test")).await.unwrap();
    assert_eq!(report.tenants.failed(), 0, "{report:?}");
    let scope = new.tenants().scope(scope.tenant(), Caller::system("test")).await.unwrap();
    let hits = search(&new, &scope, "東京都", SearchMode::Keyword).await;
    assert_eq!(keys(&hits), ["ja.txt"], "{hits:#?}");
    let hits = search(&new, &scope, "부산", SearchMode::Keyword).await;
    assert_eq!(keys(&hits), ["ko-nfd.txt"], "decomposed Hangul is re-tokenised too: {hits:#?}");
    let (kept, counted) = super::term_counts(&new).await;
    assert_eq!(kept, counted, "the statistics follow the new tokens");
    let kept: Vec<&str> = kept.iter().map(|(lexeme, _)| lexeme.as_str()).collect();
    assert!(kept.contains(&"東京") && kept.contains(&"서울"), "{kept:?}");
    assert!(!kept.contains(&"明日は東京都庁舎に行きます"), "the old runs are gone: {kept:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
