//! Known-answer searches over the shared corpus: `tests/fixtures/known-answers.json` holds
//! 131 queries, each with the document that answers it — exact sentences, words in another
//! order, headings, slide titles and speaker notes, table cells and rows, numbers, dates,
//! names, text in other scripts, words typed without their accents or in capitals, typos —
//! each checked to occur in that document alone when the set was made. The corpus is
//! ingested as a tenant would (its ground-truth files left out) and every query searched in
//! hybrid mode, the default.

use std::path::Path;

use aegis_core::knowledge::{SearchMode, SearchOptions};
use aegis_it::aegis;
use serde::Deserialize;

use super::{corpus, ingest_dir, tenant};

#[derive(Deserialize)]
struct KnownAnswer {
    id: String,
    category: String,
    query: String,
    documents: Vec<String>,
}

/// Copies `from` into `to`, leaving out the ground truth: a `.txt` beside a document of
/// the same name (the generated corpus's), `corpus.json` and the real corpus's manifest.
fn stage(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    let names: Vec<String> =
        std::fs::read_dir(from).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    for name in &names {
        let path = from.join(name);
        let stem = name.strip_suffix(".txt");
        let truth = stem
            .is_some_and(|stem| names.iter().any(|other| other != name && other.starts_with(&format!("{stem}."))))
            || ["corpus.json", "MANIFEST.tsv"].contains(&name.as_str());
        if path.is_dir() {
            stage(&path, &to.join(name));
        } else if !truth {
            std::fs::copy(&path, to.join(name)).unwrap();
        }
    }
}

#[tokio::test]
async fn the_shared_corpus_answers_known_questions() {
    let aegis = aegis().await;
    let scope = tenant(&aegis, "acme").await;
    let dir = std::env::temp_dir().join(format!("aegis-known-{}", uuid::Uuid::new_v4().simple()));
    for part in ["generated", "real"] {
        stage(&corpus().join(part), &dir.join(part));
    }
    ingest_dir(&aegis, &scope, &dir).await;
    std::fs::remove_dir_all(&dir).unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/known-answers.json");
    let known: Vec<KnownAnswer> = serde_json::from_str(&std::fs::read_to_string(fixture).unwrap()).unwrap();
    let options = SearchOptions { k: 5, mode: SearchMode::Hybrid, documents: None };
    let (mut first, mut top5, mut misses) = (0, 0, Vec::new());
    for q in &known {
        let hits = aegis.knowledge().search(&scope, &q.query, &options).await.unwrap();
        let rank = hits.iter().position(|h| q.documents.contains(&h.source_key));
        first += usize::from(rank == Some(0));
        top5 += usize::from(rank.is_some());
        if rank != Some(0) {
            let top = hits.first().map(|h| h.source_key.as_str()).unwrap_or("nothing");
            misses.push(format!("{} ({}) {:?}: rank {rank:?}, first {top}", q.id, q.category, q.query));
        }
    }
    let n = known.len();
    eprintln!("known answers: {first}/{n} first, {top5}/{n} in the top 5");
    // 129 of 131 first when the set was made (2026-12-07).
    assert!(first * 100 >= n * 95, "{first}/{n} first; misses:\n{}", misses.join("\n"));
    assert!(top5 * 100 >= n * 97, "{top5}/{n} in the top 5; misses:\n{}", misses.join("\n"));
}
