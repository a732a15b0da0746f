//! Files in every format and encoding through ingest: read as what they hold, cited by their anchors.

use std::path::PathBuf;

use aegis_core::knowledge::{IngestOutcome, SearchMode};
use aegis_it::aegis;

use super::{corpus, ingest_dir, search, tenant, term_counts, workdir};

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
    let dir = fixtures_in_workdir(&[
        ("doc/harmless-clean.doc", "clean.doc"),
        ("doc/encrypted.doc", "locked.doc"),
        ("ppt/embedded-simple-2007.ppt", "objects.ppt"),
        ("odf/gen-pptx-004-6s.odp", "deck.odp"),
        ("odf/hdr-header-footer.odt", "sections.odt"),
        ("rtf/gen-docx-003-4p.rtf", "letter.doc"),
        ("mhtml/snapshot.mhtml", "remboursement.doc"),
        ("email/ppp-digest.eml", "digest.eml"),
        ("msg/delivery-failure.msg", "bounce"),
    ]);
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
    // A page Chromium saved as a single-file web page, under a Word name (as a wiki's
    // "export to Word" names its MHTML): the page's table, and its frame as a part.
    assert!(
        matches!(outcome("remboursement.doc"), IngestOutcome::Stored { notes, .. } if notes.iter().any(|n| n.contains("content is mhtml"))),
        "{outcomes:?}"
    );
    let hit = cited("Théière en fonte").await;
    assert_eq!(
        (hit.source_key.as_str(), hit.anchor.headings.clone()),
        ("remboursement.doc", vec!["Politique de remboursement".to_owned(), "Délais".to_owned()])
    );
    assert!(hit.text.contains("| Théière en fonte | 30 jours |"), "{}", hit.text);
    let hit = cited("Service client ouvert du lundi au vendredi").await;
    assert_eq!((hit.source_key.as_str(), hit.anchor.part.as_deref()), ("remboursement.doc", Some("frame.html")));
    // A mailing list's digest: its own text under its subject, each message in it a part.
    let hit = cited("Send Ppp mailing list submissions").await;
    assert_eq!(
        (hit.source_key.as_str(), hit.anchor.headings.clone()),
        ("digest.eml", vec!["Ppp digest, Vol 1 #2 - 5 msgs".to_owned()])
    );
    let hit = cited("[Ppp] testing #3").await;
    assert_eq!(
        (hit.source_key.as_str(), hit.anchor.part.as_deref(), hit.anchor.headings.clone()),
        ("digest.eml", Some("attachment message 3.eml, headers"), vec!["[Ppp] testing #3".to_owned()])
    );
    // An Outlook message saved without an extension: a message attached to it, and the
    // PDF attached to that one, each cited as the part it is.
    let hit = cited("I'm afraid I was not able to deliver your message").await;
    assert_eq!(
        (hit.source_key.as_str(), hit.anchor.headings.clone()),
        ("bounce", vec!["投递状态通知 (Failure Notice)".to_owned()])
    );
    let hit = cited("原始邮件").await;
    assert_eq!(hit.source_key, "bounce");
    assert_eq!(hit.anchor.part.as_deref(), Some("attachment default_attachment.eml"), "{hit:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn each_file_of_an_archive_is_a_document_of_its_own_and_goes_with_it() {
    let aegis = aegis().await;
    let scope = tenant(&aegis, "acme").await;
    let dir = fixtures_in_workdir(&[("zip/handbook.zip", "handbook.zip")]);
    std::fs::write(dir.join("broken.zip"), b"PK\x03\x04 cut short").unwrap();
    let statuses = |outcomes: &[IngestOutcome]| {
        let mut statuses: Vec<(String, &str)> =
            outcomes.iter().map(|o| (o.source_key().to_owned(), o.status())).collect();
        statuses.sort();
        statuses
    };
    let outcomes = ingest_dir(&aegis, &scope, &dir).await;
    assert_eq!(
        statuses(&outcomes),
        [
            ("broken.zip".to_owned(), "FAILED"),
            ("handbook.zip/handbook/logo.png".to_owned(), "FAILED"),
            ("handbook.zip/handbook/mail/digest.eml".to_owned(), "stored"),
            ("handbook.zip/handbook/minutes.docx".to_owned(), "stored"),
        ],
        "{outcomes:?}"
    );
    let hits = search(&aegis, &scope, "Warehouse ingestion café were", SearchMode::Hybrid).await;
    assert_eq!(hits[0].source_key, "handbook.zip/handbook/minutes.docx", "{:?}", hits[0]);
    assert_eq!(hits[0].anchor.part, None, "a document of its own, not a part");
    let hits = search(&aegis, &scope, "Send Ppp mailing list submissions", SearchMode::Hybrid).await;
    assert_eq!(hits[0].source_key, "handbook.zip/handbook/mail/digest.eml", "{:?}", hits[0]);
    assert_eq!(hits[0].anchor.headings, ["Ppp digest, Vol 1 #2 - 5 msgs"]);

    // A new version of the archive: the minutes as they were, the digest gone, a zip inside.
    let minutes = {
        let mut old = zip::ZipArchive::new(std::fs::File::open(dir.join("handbook.zip")).unwrap()).unwrap();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut old.by_name("handbook/minutes.docx").unwrap(), &mut bytes).unwrap();
        bytes
    };
    let zip_of = |files: &[(&str, &[u8])]| {
        let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, data) in files {
            out.start_file(*name, zip::write::SimpleFileOptions::default()).unwrap();
            std::io::Write::write_all(&mut out, data).unwrap();
        }
        out.finish().unwrap().into_inner()
    };
    let inner = zip_of(&[("minutes.txt", b"The board met in Lisbon on Tuesday.")]);
    std::fs::write(dir.join("handbook.zip"), zip_of(&[("handbook/minutes.docx", &minutes), ("old/2019.zip", &inner)]))
        .unwrap();
    std::fs::remove_file(dir.join("broken.zip")).unwrap();
    let outcomes = ingest_dir(&aegis, &scope, &dir).await;
    assert_eq!(
        statuses(&outcomes),
        [
            ("handbook.zip/handbook/mail/digest.eml".to_owned(), "removed"),
            ("handbook.zip/handbook/minutes.docx".to_owned(), "unchanged"),
            ("handbook.zip/old/2019.zip/minutes.txt".to_owned(), "stored"),
        ],
        "{outcomes:?}"
    );
    let keys =
        |docs: Vec<aegis_core::knowledge::DocumentInfo>| docs.into_iter().map(|d| d.source_key).collect::<Vec<_>>();
    assert_eq!(
        keys(aegis.knowledge().list(&scope).await.unwrap()),
        ["handbook.zip/handbook/minutes.docx", "handbook.zip/old/2019.zip/minutes.txt"]
    );
    let hits = search(&aegis, &scope, "board met in Lisbon", SearchMode::Keyword).await;
    assert_eq!(hits[0].source_key, "handbook.zip/old/2019.zip/minutes.txt");

    // Deleting the archive while it is ingested again: each side waits for the other's
    // rows, never in a circle, and the statistics stay exact.
    for _ in 0..3 {
        let ingest = ingest_dir(&aegis, &scope, &dir);
        let delete = aegis.knowledge().delete(&scope, "handbook.zip");
        let (outcomes, deleted) = tokio::join!(ingest, delete);
        assert!(!outcomes.iter().any(|o| matches!(o, IngestOutcome::Failed { .. })), "{outcomes:?}");
        assert!(matches!(deleted, Ok(()) | Err(aegis_core::knowledge::KnowledgeError::NotFound(_))), "{deleted:?}");
        let (kept, counted) = term_counts(&aegis).await;
        assert_eq!(kept, counted);
    }
    ingest_dir(&aegis, &scope, &dir).await;

    // Deleting the archive deletes the documents of its files.
    aegis.knowledge().delete(&scope, "handbook.zip").await.unwrap();
    assert!(aegis.knowledge().list(&scope).await.unwrap().is_empty());
    assert!(aegis.knowledge().delete(&scope, "handbook.zip").await.is_err(), "nothing left to delete");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn an_archive_upload_job_retries_while_its_files_fail_for_a_cause_that_may_pass() {
    use aegis_core::{
        jobs::{Job, JobHandler, Outcome},
        knowledge::queue::{IngestHandler, IngestJob},
        tenancy::Caller,
    };
    let aegis = aegis().await;
    let scope = tenant(&aegis, "acme").await;
    let dir = fixtures_in_workdir(&[("zip/handbook.zip", "upload.zip")]);
    let payload = IngestJob {
        tenant: scope.tenant().clone(),
        source_key: "handbook.zip".into(),
        path: dir.join("upload.zip"),
        caller: Caller::system("test"),
    };
    let job = Job {
        id: uuid::Uuid::now_v7(),
        queue: "kb.ingest".into(),
        source_key: "upload-1".into(),
        tenant_id: Some("acme".into()),
        payload: serde_json::to_value(&payload).unwrap(),
        status: "running".into(),
        attempts: 1,
        max_attempts: 3,
        last_error: None,
        result: None,
        created_at: chrono::Utc::now(),
        finished_at: None,
    };
    let handler = IngestHandler { knowledge: aegis.knowledge().clone(), tenants: aegis.tenants().clone() };
    // The tenant's role may not write chunks for a while: every file fails on the database.
    let grantees: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT grantee::text FROM information_schema.role_table_grants \
         WHERE table_schema = 'tenant_acme' AND table_name = 'chunks' AND privilege_type = 'INSERT' \
           AND grantee::text <> (SELECT tableowner FROM pg_tables WHERE schemaname = 'tenant_acme' AND tablename = 'chunks')",
    )
    .fetch_all(aegis.db().pool())
    .await
    .unwrap();
    assert!(!grantees.is_empty());
    let grant = |verb: &str| {
        grantees
            .iter()
            .map(|g| {
                format!("{verb} INSERT ON tenant_acme.chunks {} \"{g}\"", if verb == "GRANT" { "TO" } else { "FROM" })
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    sqlx::raw_sql(&grant("REVOKE")).execute(aegis.db().pool()).await.unwrap();
    match handler.handle(&job).await {
        Outcome::Retry(why) => assert!(why.contains("handbook.zip/"), "{why}"),
        other => panic!("a job to retry: {other:?}"),
    }
    assert!(dir.join("upload.zip").exists(), "the upload is kept for the retry");
    sqlx::raw_sql(&grant("GRANT")).execute(aegis.db().pool()).await.unwrap();
    match handler.handle(&job).await {
        Outcome::Done(Some(outcomes)) => {
            assert!(outcomes.to_string().contains("handbook.zip/handbook/minutes.docx"), "{outcomes}")
        }
        other => panic!("done: {other:?}"),
    }
    assert!(!dir.join("upload.zip").exists(), "the upload is removed once ingested");
    assert_eq!(aegis.knowledge().list(&scope).await.unwrap().len(), 2);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn spreadsheet_numbers_read_as_their_cells_format_them() {
    let aegis = aegis().await;
    let scope = tenant(&aegis, "acme").await;
    let dir = fixtures_in_workdir(&[("xlsx/price-list.xlsx", "prices.xlsx")]);
    let outcomes = ingest_dir(&aegis, &scope, &dir).await;
    assert!(matches!(outcomes.as_slice(), [IngestOutcome::Stored { .. }]), "{outcomes:?}");
    // Currency, percentages, thousands and scientific notation as Excel shows them; the
    // dates as ISO dates.
    let hits = search(&aegis, &scope, "Théière en fonte", SearchMode::Keyword).await;
    let hit = hits.first().unwrap_or_else(|| panic!("nothing found: {hits:?}"));
    assert_eq!(hit.anchor.sheet.as_deref(), Some("Price list"));
    assert!(
        hit.text.contains("| Théière en fonte | € 1,234.50 | 12.5% | 18,250 | -3.75% | 2021-03-01 | 6.02E+23 |"),
        "{}",
        hit.text
    );
    // An accounting format's negative and zero sections, and a format scaled by thousands.
    let hits = search(&aegis, &scope, "Quarter Revenue", SearchMode::Keyword).await;
    let hit = hits.first().unwrap_or_else(|| panic!("nothing found: {hits:?}"));
    assert!(hit.text.contains("| Q1 | $152,340.76 | 152k |"), "{}", hit.text);
    assert!(hit.text.contains("| Q2 | $(4,100.00) | -4k |"), "{}", hit.text);
    assert!(hit.text.contains("| Q3 | $- | 0k |"), "{}", hit.text);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A fresh work folder holding the repository's `tests/fixtures` files `(fixture, name)`,
/// each under its name.
fn fixtures_in_workdir(files: &[(&str, &str)]) -> PathBuf {
    let dir = workdir(&[]);
    std::fs::create_dir_all(&dir).unwrap();
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    for (fixture, name) in files {
        std::fs::copy(fixtures.join(fixture), dir.join(name)).unwrap();
    }
    dir
}
