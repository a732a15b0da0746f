//! From files to cited hits: a folder through ingest and every search mode, and uploads over HTTP as queued jobs.

use std::{path::Path, time::Duration};

use aegis_core::{
    Aegis,
    knowledge::{IngestOutcome, SearchMode, SearchOptions},
    tenancy::{Caller, TenantId},
};
use aegis_it::{aegis, fresh_db};

use super::{REFUNDS, SHIPPING, corpus, ingest_dir, search, tenant, workdir};

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
        matches!(failed[0], IngestOutcome::Failed { source_key, error, .. } if source_key == "corpus/broken.pdf" && error.contains("malformed"))
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
async fn uploads_over_http_are_queued_ingested_and_searchable() {
    use aegis_core::auth::{NewApiKey, Scope, reveal};
    let db = fresh_db().await;
    let mut config = aegis_it::config_for(&db);
    config.workers.enabled = true;
    config.workers.poll_interval_ms = 50;
    config.data_dir = std::env::temp_dir().join(format!("aegis-kb-http-{}", db.name));
    config.knowledge.limits.max_file_bytes = 64 * 1024;
    let uploads = config.data_dir.join("uploads").join("acme");
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

    let handbook = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/zip/handbook.zip")).unwrap();
    let form = reqwest::multipart::Form::new()
        .text("source_key", "policies/refunds.md")
        .part("file", reqwest::multipart::Part::bytes(REFUNDS.as_bytes().to_vec()).file_name("refunds.md"))
        .part("file", reqwest::multipart::Part::bytes(b"%PDF-broken".to_vec()).file_name("../../uploads/broken.pdf"))
        .part("file", reqwest::multipart::Part::bytes(handbook.clone()).file_name("handbook.zip"));
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
    assert_eq!(statuses, ["done", "failed", "done"], "the broken PDF fails alone");
    assert_eq!(accepted[1]["source_key"], "broken.pdf", "a file name sent as a path is its last segment");
    let failed = get_json(format!("/api/tenants/acme/jobs/{}", jobs[1]), acme_key.clone()).await;
    assert!(failed["last_error"].as_str().unwrap().starts_with("broken.pdf: "), "{failed}");
    assert!(failed.get("payload").is_none(), "the server's upload path is its own: {failed}");
    // An upload past the limit (the file limit plus 1 MB for the form) is refused with 413,
    // and leaves no partial file behind; nothing of its form is queued, not even the small
    // file before it.
    let queued = async || -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM public.jobs WHERE queue = 'kb.ingest'")
            .fetch_one(aegis.db().pool())
            .await
            .unwrap()
    };
    let queued_before = queued().await;
    let huge = reqwest::multipart::Part::bytes(vec![b'a'; 1_300 * 1024]).file_name("huge.txt");
    let small = reqwest::multipart::Part::bytes(b"A small note before the huge file.".to_vec()).file_name("small.txt");
    let r = http
        .post(format!("{base}/api/tenants/acme/documents"))
        .bearer_auth(&acme_key)
        .multipart(reqwest::multipart::Form::new().part("file", small).part("file", huge))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let refused: serde_json::Value = r.json().await.unwrap();
    assert!(refused["error"]["message"].as_str().unwrap().contains("upload of huge.txt"), "{refused}");
    assert_eq!(queued().await, queued_before, "a form is queued whole or not at all");
    // So is a file of no format AEGIS reads: refused before anything is queued (415).
    let json = reqwest::multipart::Part::bytes(b"{\"a\": 1}".to_vec()).file_name("data.json");
    let note = reqwest::multipart::Part::bytes(b"A note.".to_vec()).file_name("note.txt");
    let r = http
        .post(format!("{base}/api/tenants/acme/documents"))
        .bearer_auth(&acme_key)
        .multipart(reqwest::multipart::Form::new().part("file", note).part("file", json))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let refused: serde_json::Value = r.json().await.unwrap();
    assert_eq!(refused["error"]["code"], "unsupported_format", "{refused}");
    assert_eq!(queued().await, queued_before);
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&uploads).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o700, "uploads are tenant data: the server's alone");
    let left: Vec<_> = std::fs::read_dir(&uploads).unwrap().collect();
    assert!(left.is_empty(), "the ingested uploads are removed, the refused one never kept: {left:?}");
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
    let keys: Vec<&str> = docs.as_array().unwrap().iter().map(|d| d["source_key"].as_str().unwrap()).collect();
    assert_eq!(
        keys,
        ["handbook.zip/handbook/mail/digest.eml", "handbook.zip/handbook/minutes.docx", "policies/refunds.md"],
        "an uploaded archive's files are documents of their own"
    );
    // Every error is OpenAI's JSON shape, those axum answers itself (a path, query or
    // form that does not parse, a wrong method, an unknown route) included.
    for (method, path, status, code) in [
        ("GET", "/api/tenants/acme/jobs/not-a-uuid", 400, "invalid_request"),
        ("GET", "/api/tenants/acme/search", 400, "invalid_request"),
        ("GET", "/api/tenants/acme/search?q=refund&k=-1", 400, "invalid_request"),
        ("GET", "/api/tenants/acme/search?q=refund&docs=x", 400, "invalid_request"),
        ("GET", "/api/tenants/acme/search?q=refund&doc=nope.md", 404, "not_found"),
        ("POST", "/api/tenants/acme/documents", 400, "invalid_request"),
        ("PATCH", "/api/tenants/acme/documents", 405, "method_not_allowed"),
        ("DELETE", "/api/tenants/acme/documents/policies/refunds.md", 404, "not_found"),
        ("GET", "/no/such/route", 404, "not_found"),
    ] {
        let r = http
            .request(method.parse().unwrap(), format!("{base}{path}"))
            .bearer_auth(&acme_key)
            .json(&serde_json::json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{method} {path}");
        let body: serde_json::Value = r.json().await.unwrap_or_else(|e| panic!("{method} {path}: not JSON: {e}"));
        assert_eq!(body["error"]["code"], code, "{method} {path}: {body}");
        assert!(!body["error"]["message"].as_str().unwrap().is_empty(), "{method} {path}: {body}");
    }
    let hits = get_json("/api/tenants/acme/search?q=refund&doc=policies%2Frefunds.md".into(), acme_key.clone()).await;
    assert!(hits.as_array().unwrap().iter().all(|h| h["source_key"] == "policies/refunds.md"), "`doc` filters too");
    let titles: Vec<&str> = docs.as_array().unwrap().iter().map(|d| d["title"].as_str().unwrap()).collect();
    assert_eq!(titles, ["digest.eml", "minutes.docx", "refunds.md"], "named by their keys, not the saved uploads");
    assert_eq!(hits[0]["title"], "refunds.md");
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
    let r = http
        .delete(format!("{base}/api/tenants/acme/documents/handbook.zip"))
        .bearer_auth(&acme_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204, "the archive's key deletes its files' documents");
    assert!(aegis.knowledge().list(&scope).await.unwrap().is_empty());
    shutdown.cancel();
}

#[tokio::test]
async fn the_shell_ingests_a_folder_and_with_prune_mirrors_it() {
    let db = aegis_it::fresh_db().await;
    let url = db.url.as_str();
    let run = |args: &[&str]| aegis_it::aegis_ok(url, &[], args);
    run(&["tenant", "create", "acme", "--tier", "pro"]);
    let dir = super::workdir(&[("refunds.md", REFUNDS), ("shipping.txt", super::SHIPPING)]);
    let out = run(&["ingest", "acme", dir.to_str().unwrap()]);
    assert!(out.contains("2 files: 2 stored, 0 unchanged, 0 failed"), "{out}");
    std::fs::remove_file(dir.join("shipping.txt")).unwrap();
    // Without --prune a document of a file gone from the folder stays; with it, it goes.
    let out = run(&["ingest", "acme", dir.to_str().unwrap()]);
    assert!(out.contains("1 files: 0 stored, 1 unchanged, 0 failed"), "{out}");
    assert!(run(&["docs", "list", "acme"]).contains("shipping.txt"));
    let out = run(&["ingest", "acme", dir.to_str().unwrap(), "--prune"]);
    assert!(out.contains("removed shipping.txt: not among the files ingested"), "{out}");
    assert!(out.contains("1 files: 0 stored, 1 unchanged, 0 failed, 1 removed"), "{out}");
    let listed = run(&["docs", "list", "acme"]);
    assert!(listed.contains("refunds.md") && !listed.contains("shipping.txt"), "{listed}");
    // An empty folder would prune everything: refused.
    let empty = super::workdir(&[]);
    std::fs::create_dir_all(&empty).unwrap();
    let refused = aegis_it::aegis_output(url, &[], &["ingest", "acme", empty.to_str().unwrap(), "--prune"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--prune would delete every document"));
    assert!(run(&["docs", "list", "acme"]).contains("refunds.md"));
    std::fs::remove_dir_all(&empty).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}
