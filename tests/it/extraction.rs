//! Extraction on real files: fidelity against the generated corpus's ground truth
//! (bag-of-words token recall and precision, thresholds per format), a clear outcome for
//! every file of the real corpus under every PDF reader (through the child-process
//! isolation, as `aegis` runs it), the default reader handing PDFium what lopdf skips, and
//! a batch that finishes although one file's extractor never returns, and a digest of what
//! the extractors make of the corpus, tied to their version.

use std::{path::PathBuf, time::Duration};

use aegis_core::{
    config::default_cache_dir,
    knowledge::extract::{
        EXTRACTOR_VERSION, ExtractError, Format, Limits, PdfBackend, PdfConfig, PdfReader, extract, extract_with,
        isolate::{Isolation, extract_file},
        token_fidelity as fidelity,
    },
};
use aegis_it::aegis_bin;

fn corpus() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus");
    assert!(dir.is_dir(), "the shared corpus is missing at {}", dir.display());
    dir
}

#[test]
fn the_generated_corpus_is_extracted_faithfully() {
    // Thresholds: at least the seed's Python stack's recall (PDF 1.00, DOCX 0.98,
    // XLSX 1.00, PPTX 0.87) minus rounding. Precision is below 1 by design where AEGIS adds
    // structure: "Slide N:" labels and speaker notes in PPTX.
    let thresholds = [
        ("pdf", Format::Pdf, 0.99, 0.95),
        ("docx", Format::Docx, 0.99, 0.97),
        ("xlsx", Format::Xlsx, 0.99, 0.97),
        ("pptx", Format::Pptx, 0.98, 0.85),
    ];
    let mut report = Vec::new();
    for (dir, format, min_recall, min_precision) in thresholds {
        let mut files: Vec<PathBuf> = std::fs::read_dir(corpus().join("generated").join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == dir))
            .collect();
        files.sort();
        assert!(!files.is_empty());
        let (mut recall_sum, mut precision_sum) = (0.0, 0.0);
        for file in &files {
            let truth = std::fs::read_to_string(file.with_extension("txt")).unwrap();
            let extracted = extract(format, &std::fs::read(file).unwrap(), &Limits::default()).unwrap();
            let (recall, precision) = fidelity(&truth, &extracted.text());
            assert!(recall >= min_recall - 0.02, "{}: recall {recall:.3}", file.display());
            recall_sum += recall;
            precision_sum += precision;
        }
        let n = files.len() as f64;
        let (recall, precision) = (recall_sum / n, precision_sum / n);
        report.push(format!("{dir}: recall {recall:.3} precision {precision:.3} over {} files", files.len()));
        assert!(recall >= min_recall, "{dir}: mean recall {recall:.3} < {min_recall}");
        assert!(precision >= min_precision, "{dir}: mean precision {precision:.3} < {min_precision}");
    }
    eprintln!("{}", report.join("\n"));
}

/// The PDF reader `backend` resolves to (PDFium installed into the cache if need be).
/// What the extractors made of the corpus at [`EXTRACTOR_VERSION`]: a digest of every
/// section and note of the generated corpus and of the real corpus's readable files
/// (in-process, lopdf for PDFs). A change to an extractor's output must bump the version,
/// which is part of each document's recipe, or re-ingesting unchanged files would keep
/// what the old readers made of them.
const EXTRACTED_DIGEST: (u32, &str) = (9, "6ecb8fdd63d9ec55");

#[test]
fn a_change_to_what_the_extractors_make_bumps_their_version() {
    let root = corpus();
    let manifest = std::fs::read_to_string(root.join("real/MANIFEST.tsv")).unwrap();
    let mut files: Vec<PathBuf> = manifest
        .lines()
        .skip(1)
        .filter(|line| !["MALFORMED", "ENCRYPTED", "LARGE"].iter().any(|kind| line.contains(kind)))
        .map(|line| root.join("real").join(line.split('\t').next().unwrap_or_default()))
        .collect();
    for dir in ["pdf", "docx", "xlsx", "pptx"] {
        let generated = std::fs::read_dir(root.join("generated").join(dir)).unwrap();
        files.extend(generated.map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == dir)));
    }
    files.sort();
    // FNV-1a 64 over each file's name and its extraction as JSON: stable across machines.
    let mut digest = 0xcbf2_9ce4_8422_2325_u64;
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let Some(format) = Format::detect(&name, &bytes) else { continue };
        let extracted = match extract(format, &bytes, &Limits::default()) {
            Ok(extracted) => serde_json::to_string(&extracted).unwrap(),
            Err(e) => e.to_string(),
        };
        for byte in name.bytes().chain(extracted.bytes()) {
            digest = (digest ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    let digest = format!("{digest:016x}");
    assert_eq!(
        (EXTRACTOR_VERSION, digest.as_str()),
        EXTRACTED_DIGEST,
        "what the extractors make of the {} corpus files changed: bump EXTRACTOR_VERSION (knowledge::extract) \
         and record ({}, \"{digest}\") in EXTRACTED_DIGEST; if the version was bumped already, record the digest",
        files.len(),
        EXTRACTOR_VERSION.max(EXTRACTED_DIGEST.0 + 1)
    );
}

fn pdf_reader(backend: PdfBackend) -> PdfReader {
    PdfConfig { backend, ..PdfConfig::default() }.resolve(&default_cache_dir()).expect("PDFium can be installed")
}

#[test]
fn two_threads_installing_pdfium_at_once_both_get_it() {
    // On a fresh machine the first PDFs of several tests (or of a server's concurrent
    // ingests) ask for PDFium at the same moment, in one process.
    let cache = std::env::temp_dir().join(format!("aegis-wheel-race-{}", uuid::Uuid::new_v4().simple()));
    let config = PdfConfig { backend: PdfBackend::Pdfium, ..PdfConfig::default() };
    let results: Vec<_> = std::thread::scope(|s| {
        let installs: Vec<_> = (0..2).map(|_| s.spawn(|| config.resolve(&cache))).collect();
        installs.into_iter().map(|t| t.join().unwrap()).collect()
    });
    for result in &results {
        assert!(matches!(result, Ok(PdfReader::Pdfium { library }) if library.is_file()), "{result:?}");
    }
    let leftovers: Vec<_> = std::fs::read_dir(&cache).unwrap().filter_map(Result::ok).map(|e| e.file_name()).collect();
    assert_eq!(leftovers.len(), 1, "one installation and no staging directories left: {leftovers:?}");
    std::fs::remove_dir_all(&cache).unwrap();
}

#[test]
fn pdfium_reads_the_generated_pdfs_faithfully() {
    let pdfium = pdf_reader(PdfBackend::Pdfium);
    let dir = corpus().join("generated/pdf");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pdf"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    for file in &files {
        let truth = std::fs::read_to_string(file.with_extension("txt")).unwrap();
        let extracted = extract_with(Format::Pdf, &std::fs::read(file).unwrap(), &Limits::default(), &pdfium).unwrap();
        let (recall, precision) = fidelity(&truth, &extracted.text());
        assert!(recall >= 0.99 && precision >= 0.95, "{}: recall {recall:.3} precision {precision:.3}", file.display());
        assert!(extracted.sections.iter().enumerate().all(|(i, s)| s.anchor.page == Some(i as u32 + 1)));
    }
}

#[test]
fn the_default_reader_hands_pdfium_the_text_lopdf_cannot_reach() {
    let (pdfium, auto) = (pdf_reader(PdfBackend::Pdfium), pdf_reader(PdfBackend::Auto));
    assert!(matches!(auto, PdfReader::LopdfThenPdfium { .. }), "{auto:?}");
    let limits = Limits::default();
    // Text drawn inside form XObjects is read by the walk over lopdf's parse; forms that
    // draw themselves (a denial-of-service sample) stop it, and PDFium reads those.
    for (file, lopdf_reads) in [("GeoBase_NHNC1_Data_Model_UML_EN.pdf", true), ("issue-1113-evil-xobjects.pdf", false)]
    {
        let bytes = std::fs::read(corpus().join("real/pdf").join(file)).unwrap();
        let text = |reader: &PdfReader| extract_with(Format::Pdf, &bytes, &limits, reader).unwrap().text();
        let reference = text(&pdfium);
        let (lopdf_recall, _) = fidelity(&reference, &text(&PdfReader::Lopdf));
        let (auto_recall, _) = fidelity(&reference, &text(&auto));
        assert_eq!(lopdf_recall > 0.95, lopdf_reads, "{file}: lopdf alone found {lopdf_recall:.2} of PDFium's words");
        assert!(auto_recall > 0.95, "{file}: the default reader found only {auto_recall:.2} of PDFium's words");
    }
    // A plain document stays with lopdf: the same text as lopdf alone.
    let plain = std::fs::read(corpus().join("real/pdf/crazyones.pdf")).unwrap();
    let lopdf = extract_with(Format::Pdf, &plain, &limits, &PdfReader::Lopdf).unwrap();
    assert_eq!(extract_with(Format::Pdf, &plain, &limits, &auto).unwrap(), lopdf);
}

/// A one-page PDF in Helvetica drawing `content`.
fn pdf_drawing(content: &str) -> Vec<u8> {
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>"
            .to_owned(),
        format!("<< /Length {} >>\nstream\n{content}\nendstream", content.len()),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>".to_owned(),
    ];
    let mut pdf = String::from("%PDF-1.4\n");
    let mut offsets = Vec::new();
    for (i, object) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.push_str(&format!("{} 0 obj\n{object}\nendobj\n", i + 1));
    }
    let xref = pdf.len();
    pdf.push_str(&format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1));
    for offset in offsets {
        pdf.push_str(&format!("{offset:010} 00000 n \n"));
    }
    pdf.push_str(&format!("trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1));
    pdf.into_bytes()
}

/// Words placed apart by a move (an OCR layer places each word with `Tm`) or by a
/// fractional `TJ` offset (Distiller's) are read apart: lopdf's own text walk ran them
/// together, and the text walk AEGIS runs over lopdf's parse measures where each word ends.
#[test]
fn words_placed_by_moves_and_offsets_are_read_apart() {
    let words = "Opening hours of the Rotterdam warehouse are Monday to Friday from eight to six and \
                 deliveries after four are booked for the next working day by the logistics desk while \
                 returns are taken at the side gate until noon on Saturdays with the delivery note";
    let placed: String = words
        .split(' ')
        .enumerate()
        .map(|(i, w)| format!("1 0 0 1 {} {} Tm ({w}) Tj ", 72 + (i % 6) * 80, 700 - (i / 6) * 14))
        .collect();
    let offsets: String = words.split(' ').map(|w| format!("({w})-280.5")).collect();
    let limits = Limits::default();
    let auto = pdf_reader(PdfBackend::Auto);
    for (layout, content) in
        [("Tm", format!("BT /F1 11 Tf {placed}ET")), ("TJ", format!("BT /F1 11 Tf 72 700 Td [{offsets}]TJ ET"))]
    {
        let pdf = pdf_drawing(&content);
        for (reader, name) in [(&PdfReader::Lopdf, "lopdf"), (&auto, "the default reader")] {
            let read = extract_with(Format::Pdf, &pdf, &limits, reader).unwrap().text();
            let (recall, _) = fidelity(words, &read);
            assert!(recall > 0.99, "{layout}: {name} found {recall:.2} of the words: {read}");
        }
    }
}

#[tokio::test]
async fn a_legacy_excel_workbook_is_read_sheet_by_sheet() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/budget-2019.xls");
    let format = Format::detect("budget-2019.xls", &std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(format, Format::Xls);
    let isolation = Isolation::ChildProcess { program: aegis_bin(), args: vec!["extract-worker".into()] };
    let extracted = extract_file(&isolation, format, &path, &Limits::default(), &PdfReader::Lopdf).await.unwrap();
    let [budget, notes] = &extracted.sections[..] else { panic!("two sheets, one section each: {extracted:?}") };
    assert_eq!(budget.anchor.sheet.as_deref(), Some("Budget 2019"));
    assert_eq!(budget.anchor.range.as_deref(), Some("A1:C4"));
    assert_eq!(
        budget.text,
        "| Item | Amount | Due |\n| --- | --- | --- |\n| Rent Zürich office | 4200 | 2019-03-01 |\n\
         | Server lease | 1250.5 | 2019-03-15 |\n| Coffee | 87 | 2019-04-02 |"
    );
    assert_eq!(notes.anchor.sheet.as_deref(), Some("Notes"));
    assert!(notes.text.contains("Approved by the finance committee"), "{}", notes.text);
    let mut truncated = std::fs::read(&path).unwrap();
    truncated.truncate(truncated.len() / 3);
    let cut = std::env::temp_dir().join(format!("aegis-cut-{}.xls", uuid::Uuid::new_v4().simple()));
    std::fs::write(&cut, &truncated).unwrap();
    let result = extract_file(&isolation, Format::Xls, &cut, &Limits::default(), &PdfReader::Lopdf).await;
    assert!(matches!(result, Err(ExtractError::Malformed(_) | ExtractError::Crashed(_))), "{result:?}");
    std::fs::remove_file(&cut).unwrap();
}

#[tokio::test]
async fn legacy_word_and_powerpoint_files_are_read_in_the_child_process_whatever_their_name() {
    let original = std::fs::read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/doc/gen-docx-003-4p.doc"));
    let path = std::env::temp_dir().join(format!("aegis-doc-{}", uuid::Uuid::new_v4().simple()));
    std::fs::write(&path, original.unwrap()).unwrap();
    let format = Format::detect("download", &std::fs::read(&path).unwrap());
    assert_eq!(format, Some(Format::Doc), "an extensionless Word 97 file is sniffed from its streams");
    let isolation = Isolation::ChildProcess { program: aegis_bin(), args: vec!["extract-worker".into()] };
    let extracted = extract_file(&isolation, Format::Doc, &path, &Limits::default(), &PdfReader::Lopdf).await.unwrap();
    let truth = std::fs::read_to_string(corpus().join("generated/docx/gen-docx-003-4p.txt")).unwrap();
    let (recall, precision) = fidelity(&truth, &extracted.text());
    assert!(recall >= 0.99 && precision >= 0.99, "recall {recall}, precision {precision}");
    assert!(extracted.sections.iter().any(|s| !s.anchor.headings.is_empty()), "heading paths are kept");
    let deck = std::fs::read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/ppt/gen-pptx-004-6s.ppt"));
    std::fs::write(&path, deck.unwrap()).unwrap();
    assert_eq!(Format::detect("download", &std::fs::read(&path).unwrap()), Some(Format::Ppt));
    let extracted = extract_file(&isolation, Format::Ppt, &path, &Limits::default(), &PdfReader::Lopdf).await.unwrap();
    let slides: Vec<_> = extracted.sections.iter().filter(|s| s.anchor.part.is_none()).collect();
    assert_eq!(slides.len(), 6);
    assert_eq!(slides[1].text.lines().next(), Some("Slide 2: What Graph Channel Most"));
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn smartart_diagrams_and_charts_are_read_with_their_slide_or_document() {
    let real = corpus().join("real");
    let deck = std::fs::read(real.join("pptx/60810.pptx")).unwrap();
    let extracted = extract(Format::Pptx, &deck, &Limits::default()).unwrap();
    // Text that exists only in the deck's SmartArt data parts, not in any slide's shapes.
    for only_in_a_diagram in ["Ready in the short term", "Target our hiring to fill future gaps"] {
        let section = extracted.sections.iter().find(|s| s.text.contains(only_in_a_diagram));
        let section = section.unwrap_or_else(|| panic!("{only_in_a_diagram:?} is missing"));
        assert!(section.anchor.slide.is_some() && section.text.starts_with("Slide "), "{:?}", section.anchor);
    }
    let document = std::fs::read(real.join("docx/shp-inline-shape-access.docx")).unwrap();
    let extracted = extract(Format::Docx, &document, &Limits::default()).unwrap();
    let diagram = extracted.sections.iter().find(|s| s.anchor.part.as_deref() == Some("diagram"));
    assert_eq!(diagram.map(|s| s.text.as_str()), Some("foo\nbar\nbaz"), "{:?}", extracted.sections);
    // The document's chart: its series and category labels, each once.
    let chart = extracted.sections.iter().find(|s| s.anchor.part.as_deref() == Some("chart")).unwrap();
    assert_eq!(chart.text.matches("Category 1").count(), 1, "{}", chart.text);
    assert!(chart.text.contains("Series 3"), "{}", chart.text);
    // A slide's chart gives its title and axis titles with the slide.
    let deck = std::fs::read(real.join("pptx/stress021.pptx")).unwrap();
    let extracted = extract(Format::Pptx, &deck, &Limits::default()).unwrap();
    let slide = extracted.sections.iter().find(|s| s.anchor.slide == Some(33) && s.anchor.part.is_none()).unwrap();
    assert!(slide.text.contains("נפח תמיסת המצע"), "{}", slide.text);
}

#[tokio::test]
async fn every_real_file_gives_text_or_a_clear_error() {
    let root = corpus().join("real");
    let manifest = std::fs::read_to_string(root.join("MANIFEST.tsv")).unwrap();
    let isolation = Isolation::ChildProcess { program: aegis_bin(), args: vec!["extract-worker".into()] };
    let limits = Limits { timeout: Duration::from_secs(60), ..Limits::default() };
    let readers = [PdfReader::Lopdf, pdf_reader(PdfBackend::Auto), pdf_reader(PdfBackend::Pdfium)];
    let mut outcomes = Vec::new();
    for line in manifest.lines().skip(1) {
        let fields: Vec<&str> = line.split('\t').collect();
        let (file, notes) = (fields[0], fields[fields.len() - 1]);
        let path = root.join(file);
        let format = Format::detect(file, &[]).unwrap();
        let readers = if format == Format::Pdf { &readers[..] } else { &readers[..1] };
        for reader in readers {
            let result = extract_file(&isolation, format, &path, &limits, reader).await;
            match &result {
                Err(ExtractError::Timeout(_)) => panic!("{file}: {result:?}"),
                // A third-party parser's panic on a fuzzed file is that file's error.
                Err(ExtractError::Crashed(_)) if notes.starts_with("MALFORMED") => {}
                Err(ExtractError::Crashed(_)) => panic!("{file}: {result:?}"),
                Err(e) if notes.starts_with("ENCRYPTED") && !notes.contains("should open") => {
                    assert!(matches!(e, ExtractError::Encrypted(_)), "{file}: expected an encryption error, got {e}");
                }
                Ok(extracted) if notes.starts_with("ENCRYPTED") && !notes.contains("should open") => {
                    panic!("{file}: encrypted, yet extracted {} chars", extracted.chars())
                }
                Ok(extracted) => {
                    assert!(extracted.chars() > 0 || !extracted.notes.is_empty(), "{file}: empty without a note")
                }
                Err(e) => {
                    assert!(!notes.contains("basic") && !notes.starts_with("LARGE"), "{file} should extract: {e}")
                }
            }
            outcomes.push((file.to_owned(), result.map(|e| e.chars())));
        }
    }
    let ok = outcomes.iter().filter(|o| o.1.is_ok()).count();
    assert!(ok >= outcomes.len() * 3 / 4, "only {ok} of {} files extracted", outcomes.len());
    // Spot checks on files whose structure the seed lost.
    let text = |file: &str| {
        let format = Format::detect(file, &[]).unwrap();
        extract(format, &std::fs::read(root.join(file)).unwrap(), &Limits::default()).unwrap()
    };
    let tables = text("pptx/tbl-cell.pptx");
    assert!(tables.sections.iter().any(|s| s.text.starts_with('|')), "PPTX tables become markdown rows");
    let slides = text("pptx/test_slides.pptx");
    assert!(slides.sections[0].text.starts_with("Slide 1:"));
    let date = text("xlsx/date.xlsx");
    assert!(date.text().contains("20") && date.sections.iter().all(|s| s.anchor.sheet.is_some()));
    // The amplification file numbers its rows from 0, which the cell reader refuses: a note.
    let amplified = text("xlsx/poc-shared-strings.xlsx");
    assert!(amplified.notes.iter().any(|n| n.contains("not read")), "{:?}", amplified.notes);
    let chart = text("xlsx/chartsheet10.xlsx");
    assert!(chart.notes.iter().any(|n| n.contains("not a worksheet")), "{:?}", chart.notes);
}

#[tokio::test]
async fn a_batch_finishes_when_one_extractor_never_returns() {
    let marker = format!("aegis-hang-{}", uuid::Uuid::new_v4().simple());
    // A worker that spins forever on one file and extracts the others normally.
    let script = format!(
        ": {marker}; case \"$2\" in */hang.txt) while :; do :; done;; *) exec \"{}\" extract-worker \"$@\";; esac",
        aegis_bin().display()
    );
    let isolation = Isolation::ChildProcess { program: "/bin/sh".into(), args: vec!["-c".into(), script, "sh".into()] };
    let dir = std::env::temp_dir().join(&marker);
    std::fs::create_dir_all(&dir).unwrap();
    for name in ["a.txt", "hang.txt", "b.md"] {
        std::fs::write(dir.join(name), format!("# {name}\nsome text about {name}")).unwrap();
    }
    let limits = Limits { timeout: Duration::from_secs(2), ..Limits::default() };
    let started = std::time::Instant::now();
    let results =
        futures::future::join_all(["a.txt", "hang.txt", "b.md"].map(|name| {
            let (isolation, limits, path) = (isolation.clone(), limits.clone(), dir.join(name));
            async move {
                extract_file(&isolation, Format::detect(name, &[]).unwrap(), &path, &limits, &PdfReader::Lopdf).await
            }
        }))
        .await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(results[0].as_ref().unwrap().text().contains("a.txt"));
    assert_eq!(results[1].as_ref().unwrap_err(), &ExtractError::Timeout(2));
    assert!(results[2].as_ref().unwrap().text().contains("b.md"));
    // The spinning process was killed: the CPU is released.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let still_running = std::process::Command::new("pgrep").args(["-f", &marker]).output().unwrap();
    assert!(
        still_running.stdout.is_empty(),
        "the hung extractor still runs: {}",
        String::from_utf8_lossy(&still_running.stdout)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn the_extraction_child_runs_under_a_memory_limit() {
    let dir = std::env::temp_dir().join(format!("aegis-mem-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("big.txt");
    let line = "refund policy shipping order days customer return goods warranty invoice\n";
    std::fs::write(&path, line.repeat(40 * 1024 * 1024 / line.len())).unwrap();
    let isolation = Isolation::ChildProcess { program: aegis_bin(), args: vec!["extract-worker".into()] };
    let tight = Limits { max_memory_bytes: 64 * 1024 * 1024, ..Limits::default() };
    let err = extract_file(&isolation, Format::Text, &path, &tight, &PdfReader::Lopdf).await.unwrap_err();
    assert!(err.to_string().contains("memory limit of 64 MiB"), "{err}");
    let roomy = Limits { max_memory_bytes: 1024 * 1024 * 1024, ..Limits::default() };
    let ok = extract_file(&isolation, Format::Text, &path, &roomy, &PdfReader::Lopdf).await.unwrap();
    assert!(ok.text().len() > 10_000_000, "under a roomy limit the file extracts (capped at max_chars)");
    std::fs::remove_dir_all(&dir).unwrap();
}
