//! Extraction: a file becomes sections of text, each with an anchor saying where it came
//! from (page, slide, sheet and cell range, heading path). One trait, one implementation
//! per format; [`extract`] picks by format and contains failures: a parser's panic becomes
//! that file's error. For hard isolation (a parser that never returns, or overflows its
//! stack) run extraction in a child process: see [`isolate`].

#[cfg(feature = "office-docs")]
mod archive;
#[cfg(feature = "office-docs")]
mod doc;
#[cfg(feature = "office-docs")]
mod docx;
mod email;
mod encoding;
mod html;
pub mod isolate;
#[cfg(feature = "office-docs")]
mod legacy_sheets;
mod mhtml;
#[cfg(feature = "office-docs")]
mod msg;
#[cfg(feature = "office-docs")]
mod odf;
#[cfg(feature = "office-docs")]
mod ole;
#[cfg(feature = "office-docs")]
mod ooxml;
mod outline;
#[cfg(feature = "office-docs")]
mod pdf;
mod pdf_reader;
#[cfg(feature = "pdfium")]
mod pdfium;
#[cfg(feature = "office-docs")]
mod ppt;
#[cfg(feature = "office-docs")]
mod pptx;
mod rtf;
#[cfg(feature = "office-docs")]
mod salvage;
mod text;
#[cfg(feature = "office-docs")]
mod xlsx;

use std::{fmt, path::Path, time::Duration};

pub use pdf_reader::{PdfBackend, PdfConfig, PdfReader};
use serde::{Deserialize, Serialize};

/// The version of what the extractors make of a file. Bump it when a change to any
/// extractor alters its output, so that re-ingesting unchanged files re-extracts them.
pub const EXTRACTOR_VERSION: u32 = 5;

/// A document format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// PDF.
    Pdf,
    /// Word (docx, docm).
    Docx,
    /// Legacy Word (doc, Word 97–2003).
    Doc,
    /// Excel (xlsx, xlsm, and the binary xlsb).
    Xlsx,
    /// Legacy Excel (xls, BIFF8).
    Xls,
    /// OpenDocument spreadsheet (ods).
    Ods,
    /// OpenDocument text (odt).
    Odt,
    /// OpenDocument presentation (odp).
    Odp,
    /// PowerPoint (pptx, pptm).
    Pptx,
    /// Legacy PowerPoint (ppt, PowerPoint 97–2003).
    Ppt,
    /// Rich Text Format.
    Rtf,
    /// Plain text.
    Text,
    /// Markdown.
    Markdown,
    /// Comma-separated values.
    Csv,
    /// HTML.
    Html,
    /// MHTML web archive (a "single file web page"; also what Word, Excel and web
    /// applications' exports write under `.doc` and `.xls` names).
    Mhtml,
    /// An email message (`.eml`, a maildir file), its attachments read by their formats.
    Email,
    /// An Outlook message (`.msg`), its attachments read by their formats.
    Msg,
    /// A zip archive of documents, each read by its format.
    Zip,
}

impl Format {
    /// Whether its files are zip files (Office Open XML, OpenDocument, zip archives).
    pub fn is_zip_package(self) -> bool {
        matches!(
            self,
            Format::Docx | Format::Xlsx | Format::Pptx | Format::Ods | Format::Odt | Format::Odp | Format::Zip
        )
    }

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Pdf => "pdf",
            Format::Docx => "docx",
            Format::Doc => "doc",
            Format::Xlsx => "xlsx",
            Format::Xls => "xls",
            Format::Ods => "ods",
            Format::Odt => "odt",
            Format::Odp => "odp",
            Format::Pptx => "pptx",
            Format::Ppt => "ppt",
            Format::Rtf => "rtf",
            Format::Text => "text",
            Format::Markdown => "markdown",
            Format::Csv => "csv",
            Format::Html => "html",
            Format::Mhtml => "mhtml",
            Format::Email => "email",
            Format::Msg => "msg",
            Format::Zip => "zip",
        }
    }

    /// The format of a file (`bytes` is all of it): what its content shows where it has
    /// a signature — a PDF header, an Office package's main part, a compound file's
    /// Word, Excel or PowerPoint stream — else its extension. A file named for one format but holding
    /// another is read as what it holds; a zip that is no Office package, an encrypted
    /// OOXML package (a compound file) and the rest go by the name, so that their
    /// extractor gives the error. A file without an extension (`README`, `NOTICE`, a
    /// download saved without one) whose bytes are text is read as text, or as HTML if it
    /// starts like a page; so is a page saved under an Office name (`report.xls`, a web
    /// application's "export to Excel").
    pub fn detect(name: &str, bytes: &[u8]) -> Option<Format> {
        let by_name = Self::from_extension(name);
        let head = &bytes[..bytes.len().min(1024)];
        // The header may follow a little junk (readers accept it within 1,024 bytes), but a
        // text file that merely mentions "%PDF-" stays text.
        let text_named = matches!(by_name, Some(Format::Text | Format::Markdown | Format::Csv | Format::Html));
        if head.starts_with(b"%PDF-") || (!text_named && head.windows(5).any(|w| w == b"%PDF-")) {
            return Some(Format::Pdf);
        }
        if head.trim_ascii_start().starts_with(b"{\\rtf") {
            return Some(Format::Rtf);
        }
        // An email or a web archive under any name but a plain-text one (a maildir file
        // has none; Confluence's "export to Word" is a web archive named `.doc`, Excel's
        // single-file web page one named `.xls`). A message's header block can run past
        // 1 KB of `Received` lines.
        if !matches!(by_name, Some(Format::Text | Format::Markdown | Format::Csv)) {
            if email::looks_like_email(&bytes[..bytes.len().min(8192)]) {
                return Some(Format::Email);
            }
            if mhtml::looks_like_mhtml(head) {
                return Some(Format::Mhtml);
            }
        }
        // An OpenDocument file stores its media type first, uncompressed, as `mimetype`.
        if bytes.starts_with(b"PK\x03\x04") && bytes.get(30..38) == Some(b"mimetype") {
            let names = |kind: &[u8]| head.windows(kind.len()).any(|w| w == kind);
            for (kind, format) in [
                (b"opendocument.spreadsheet".as_slice(), Format::Ods),
                (b"opendocument.text", Format::Odt),
                (b"opendocument.presentation", Format::Odp),
            ] {
                if names(kind) {
                    return Some(format);
                }
            }
        }
        #[cfg(feature = "office-docs")]
        if bytes.starts_with(b"PK\x03\x04")
            && let Some(format) = ooxml::sniff(bytes)
        {
            return Some(format);
        }
        // A zip that is no Office package, saved without an extension, is an archive.
        #[cfg(feature = "office-docs")]
        if bytes.starts_with(b"PK\x03\x04") && by_name.is_none() && Path::new(name).extension().is_none() {
            return Some(Format::Zip);
        }
        #[cfg(feature = "office-docs")]
        if bytes.starts_with(ole::MAGIC)
            && let Some(format) = ole::sniff(bytes)
        {
            return Some(format);
        }
        let binary_named = by_name.is_some() && !text_named && by_name != Some(Format::Rtf);
        if (binary_named || Path::new(name).extension().is_none()) && encoding::looks_like_text(bytes) {
            // A web page saved under an Office name (a report "exported to Excel").
            if looks_like_html(head) {
                return Some(Format::Html);
            }
            if by_name.is_none() {
                return Some(Format::Text);
            }
        }
        by_name
    }

    /// The format a file's extension names, if any.
    pub fn from_extension(name: &str) -> Option<Format> {
        let ext = Path::new(name).extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("pdf") => Some(Format::Pdf),
            Some("docx" | "docm" | "dotx" | "dotm") => Some(Format::Docx),
            Some("doc" | "dot") => Some(Format::Doc),
            Some("xlsx" | "xlsm" | "xltx" | "xltm" | "xlsb") => Some(Format::Xlsx),
            Some("xls" | "xlt") => Some(Format::Xls),
            Some("ods" | "ots") => Some(Format::Ods),
            Some("odt" | "ott") => Some(Format::Odt),
            Some("odp" | "otp") => Some(Format::Odp),
            Some("pptx" | "pptm" | "potx" | "potm" | "ppsx" | "ppsm") => Some(Format::Pptx),
            Some("ppt" | "pps" | "pot") => Some(Format::Ppt),
            Some("rtf") => Some(Format::Rtf),
            Some("txt" | "text" | "log" | "rst" | "adoc" | "asciidoc" | "org") => Some(Format::Text),
            Some("md" | "markdown") => Some(Format::Markdown),
            Some("csv" | "tsv") => Some(Format::Csv),
            Some("html" | "htm" | "xhtml") => Some(Format::Html),
            Some("mht" | "mhtml") => Some(Format::Mhtml),
            Some("eml") => Some(Format::Email),
            Some("msg") => Some(Format::Msg),
            Some("zip") => Some(Format::Zip),
            _ => None,
        }
    }
}

/// Whether a file's first bytes open an HTML page (`<!DOCTYPE html`, `<html`, `<head`,
/// `<body`, `<meta`, `<table`, after white space and a UTF-8 byte-order mark).
fn looks_like_html(head: &[u8]) -> bool {
    let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head).trim_ascii_start();
    let opens = |tag: &[u8]| head.get(..tag.len()).is_some_and(|h| h.eq_ignore_ascii_case(tag));
    [b"<!doctype html".as_slice(), b"<html", b"<head", b"<body", b"<meta", b"<table"].into_iter().any(opens)
}

/// The error for `bytes` that are not the `container` a reader expects, saying what they
/// hold instead when their first bytes tell ([`what_it_holds`]).
#[cfg_attr(not(feature = "office-docs"), allow(dead_code))] // the binary formats' readers
pub(crate) fn not_a(container: &str, bytes: &[u8]) -> ExtractError {
    let holds = what_it_holds(bytes).map(|what| format!(": it is {what}")).unwrap_or_default();
    ExtractError::Malformed(format!("not {container}{holds}"))
}

/// What a file that is not what its reader expects holds, when its first bytes say
/// (for that reader's error): a ZIP archive, a PDF, an HTML page, a MIME web archive or
/// plain text.
#[cfg_attr(not(feature = "office-docs"), allow(dead_code))] // the binary formats' readers
fn what_it_holds(bytes: &[u8]) -> Option<&'static str> {
    let head = &bytes[..bytes.len().min(1024)];
    if head.starts_with(b"PK\x03\x04") {
        Some("a ZIP archive")
    } else if head.starts_with(b"%PDF-") {
        Some("a PDF")
    } else if mhtml::looks_like_mhtml(head) {
        Some("a MIME web archive (MHTML, a \"single file web page\")")
    } else if looks_like_html(head) {
        Some("an HTML page")
    } else if encoding::looks_like_text(bytes) {
        Some("plain text")
    } else {
        None
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a section came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    /// 1-based page (PDF).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<u32>,
    /// 1-based slide (PPTX).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slide: Option<u32>,
    /// Sheet name (XLSX).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sheet: Option<String>,
    /// Cell range (`A1:F50`) or row range (`rows 1-50`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<String>,
    /// Headings above the section, outermost first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headings: Vec<String>,
    /// A part of the document other than its body (`notes`, `header`, `footnotes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<String>,
}

impl fmt::Display for Anchor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(p) = self.page {
            parts.push(format!("page {p}"));
        }
        if let Some(s) = self.slide {
            parts.push(format!("slide {s}"));
        }
        if let Some(s) = &self.sheet {
            parts.push(format!("sheet {s}"));
        }
        if let Some(r) = &self.range {
            parts.push(r.clone());
        }
        if !self.headings.is_empty() {
            parts.push(self.headings.join(" › "));
        }
        if let Some(p) = &self.part {
            parts.push(p.clone());
        }
        f.write_str(&parts.join(", "))
    }
}

/// What a section holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SectionKind {
    /// Prose.
    Text,
    /// A table as markdown rows (`| a | b |`), one row per line.
    Table,
}

/// A piece of a document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Section {
    /// Where it came from.
    pub anchor: Anchor,
    /// Prose or table.
    pub kind: SectionKind,
    /// The text.
    pub text: String,
}

/// A document's extracted content.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extracted {
    /// Sections in reading order.
    pub sections: Vec<Section>,
    /// Things a reader should know (an image-only page, a truncated sheet).
    pub notes: Vec<String>,
}

impl Extracted {
    /// Characters of text in all sections.
    pub fn chars(&self) -> usize {
        self.sections.iter().map(|s| s.text.chars().count()).sum()
    }

    /// All text, sections separated by blank lines.
    pub fn text(&self) -> String {
        self.sections.iter().map(|s| s.text.as_str()).collect::<Vec<_>>().join("\n\n")
    }
}

/// Why a file could not be extracted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum ExtractError {
    /// Larger than the limit.
    #[error("the file is too large ({0})")]
    TooLarge(String),
    /// Password-protected or encrypted.
    #[error("the file is encrypted or password-protected: {0}")]
    Encrypted(String),
    /// Not a valid file of its format.
    #[error("the file is malformed: {0}")]
    Malformed(String),
    /// A compressed package that would expand past the limits.
    #[error("the package would expand too much (zip bomb guard): {0}")]
    ZipBomb(String),
    /// A format AEGIS does not read (or one compiled out).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// Extraction took longer than the limit.
    #[error("extraction took longer than {0} s and was stopped")]
    Timeout(u64),
    /// The parser crashed.
    #[error("the parser crashed: {0}")]
    Crashed(String),
}

/// Limits on one file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Limits {
    /// Largest file accepted.
    pub max_file_bytes: u64,
    /// Largest total uncompressed size of a package (OOXML).
    pub max_uncompressed_bytes: u64,
    /// Largest compression ratio of a package entry.
    pub max_ratio: u64,
    /// Most characters kept from one document.
    pub max_chars: usize,
    /// Most spreadsheet cells read.
    pub max_cells: usize,
    /// Hard time limit per file (enforced by killing the child process).
    pub timeout: Duration,
    /// Address-space limit of the extraction child process, in bytes.
    pub max_memory_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_file_bytes: 100 * 1024 * 1024,
            max_uncompressed_bytes: 512 * 1024 * 1024,
            max_ratio: 200,
            max_chars: 20_000_000,
            max_cells: 2_000_000,
            timeout: Duration::from_secs(60),
            max_memory_bytes: 2 * 1024 * 1024 * 1024,
        }
    }
}

/// Turns one format's bytes into sections.
pub trait Extractor: Send + Sync {
    /// Extracts; must not panic on any input (a panic is still caught by [`extract`]).
    fn extract(&self, bytes: &[u8], limits: &Limits) -> Result<Extracted, ExtractError>;
}

#[cfg(feature = "pdfium")]
fn pdfium(library: &Path) -> Result<Box<dyn Extractor>, ExtractError> {
    Ok(Box::new(pdfium::Pdfium { library: library.to_path_buf() }))
}

#[cfg(not(feature = "pdfium"))]
fn pdfium(library: &Path) -> Result<Box<dyn Extractor>, ExtractError> {
    Err(ExtractError::Unsupported(format!(
        "PDFium (`{}`) needs the `pdfium` feature, which this build lacks",
        library.display()
    )))
}

fn extractor_for(format: Format, pdf: &PdfReader) -> Result<Box<dyn Extractor>, ExtractError> {
    Ok(match (format, pdf) {
        (Format::Pdf, PdfReader::Pdfium { library }) => return pdfium(library),
        #[cfg(feature = "office-docs")]
        (Format::Pdf, PdfReader::LopdfThenPdfium { library }) => {
            Box::new(pdf::Pdf { fallback: Some(pdfium(library)?) })
        }
        _ => extractor_of(format)?,
    })
}

fn extractor_of(format: Format) -> Result<Box<dyn Extractor>, ExtractError> {
    Ok(match format {
        Format::Text => Box::new(text::PlainText),
        Format::Markdown => Box::new(text::Markdown),
        Format::Csv => Box::new(text::Csv),
        Format::Html => Box::new(html::Html),
        Format::Mhtml => Box::new(mhtml::Mhtml),
        Format::Email => Box::new(email::Email),
        #[cfg(feature = "office-docs")]
        Format::Msg => Box::new(msg::Msg),
        #[cfg(feature = "office-docs")]
        Format::Zip => Box::new(archive::Archive),
        Format::Rtf => Box::new(rtf::Rtf),
        #[cfg(feature = "office-docs")]
        Format::Pdf => Box::new(pdf::Pdf { fallback: None }),
        #[cfg(feature = "office-docs")]
        Format::Docx => Box::new(docx::Docx),
        #[cfg(feature = "office-docs")]
        Format::Doc => Box::new(doc::Doc),
        #[cfg(feature = "office-docs")]
        Format::Xlsx => Box::new(xlsx::Xlsx),
        #[cfg(feature = "office-docs")]
        Format::Xls => Box::new(legacy_sheets::Xls),
        #[cfg(feature = "office-docs")]
        Format::Ods => Box::new(legacy_sheets::Ods),
        #[cfg(feature = "office-docs")]
        Format::Odt => Box::new(odf::Odt),
        #[cfg(feature = "office-docs")]
        Format::Odp => Box::new(odf::Odp),
        #[cfg(feature = "office-docs")]
        Format::Pptx => Box::new(pptx::Pptx),
        #[cfg(feature = "office-docs")]
        Format::Ppt => Box::new(ppt::Ppt),
        #[cfg(not(feature = "office-docs"))]
        other => return Err(ExtractError::Unsupported(format!("{other} needs the `office-docs` feature"))),
    })
}

/// Extracts in this process (PDFs with lopdf), turning a panic into
/// [`ExtractError::Crashed`]. It cannot stop a parser that never returns, nor survive a
/// stack overflow: use [`isolate`] for untrusted files.
pub fn extract(format: Format, bytes: &[u8], limits: &Limits) -> Result<Extracted, ExtractError> {
    extract_with(format, bytes, limits, &PdfReader::Lopdf)
}

/// [`extract`] with PDFs read by `pdf`. A crash inside PDFium (C++) is not a panic and
/// takes the process down: run it in a child process ([`isolate`]) for untrusted files.
pub fn extract_with(format: Format, bytes: &[u8], limits: &Limits, pdf: &PdfReader) -> Result<Extracted, ExtractError> {
    if bytes.len() as u64 > limits.max_file_bytes {
        return Err(ExtractError::TooLarge(format!("{} bytes, limit {}", bytes.len(), limits.max_file_bytes)));
    }
    let extractor = extractor_for(format, pdf)?;
    let mut extracted = match caught(|| extractor.extract(bytes, limits)) {
        #[cfg(feature = "office-docs")]
        Err(error) if format.is_zip_package() => {
            match salvage::damaged_entries(bytes, limits).or_else(|| salvage::truncated_zip(bytes, limits)) {
                Some(salvaged) => {
                    // The file's own error stands when the rebuilt package does not read either.
                    let mut extracted = caught(|| extractor.extract(&salvaged.bytes, limits)).map_err(|_| error)?;
                    extracted.notes.insert(0, salvaged.note);
                    extracted
                }
                None => return Err(error),
            }
        }
        result => result?,
    };
    cap_chars(&mut extracted, limits.max_chars);
    extracted.sections.retain(|s| !s.text.trim().is_empty());
    if extracted.sections.is_empty() && extracted.notes.is_empty() {
        extracted.notes.push("no text found".into());
    }
    Ok(extracted)
}

/// `extract`'s result, with a panic turned into [`ExtractError::Crashed`].
fn caught(extract: impl FnOnce() -> Result<Extracted, ExtractError>) -> Result<Extracted, ExtractError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(extract)).unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        Err(ExtractError::Crashed(message))
    })
}

/// Runs `read` one level deeper in the nesting `depth` counts on this thread (a message
/// attached to a message, an archive inside an archive, each read by a nested call), or
/// fails past `max` levels — `what` names them — so that a hostile file cannot nest
/// readers until the stack overflows.
fn nested<T>(
    depth: &'static std::thread::LocalKey<std::cell::Cell<u32>>,
    max: u32,
    what: &str,
    read: impl FnOnce() -> Result<T, ExtractError>,
) -> Result<T, ExtractError> {
    /// Puts the level back however `read` ends, a caught panic included.
    struct Restore(&'static std::thread::LocalKey<std::cell::Cell<u32>>, u32);
    impl Drop for Restore {
        fn drop(&mut self) {
            self.0.set(self.1);
        }
    }
    let level = depth.get();
    if level >= max {
        return Err(ExtractError::Malformed(format!("{what} more than {max} deep")));
    }
    let _restore = Restore(depth, level);
    depth.set(level + 1);
    read()
}

/// Adds what a file inside another gave (an attachment, a file of an archive), each of its
/// sections a part labelled `label` (its own parts kept after it: `attachment a.docx,
/// footnotes`), its notes labelled so.
fn add_as_part(extracted: &mut Extracted, label: &str, read: Extracted) {
    extracted.notes.extend(read.notes.into_iter().map(|note| format!("{label}: {note}")));
    for mut section in read.sections {
        section.anchor.part = Some(match section.anchor.part.take() {
            Some(inner) => format!("{label}, {inner}"),
            None => label.to_owned(),
        });
        extracted.sections.push(section);
    }
}

/// The result of reading one part of a file that can be done without: a damaged part
/// (`Malformed`) becomes the note `what` makes of its error and `None`, so that the rest
/// of the file is still read; any other error (a bomb, a limit) still fails the file.
#[cfg(feature = "office-docs")]
fn or_note<T>(
    result: Result<T, ExtractError>,
    notes: &mut Vec<String>,
    what: impl FnOnce(&str) -> String,
) -> Result<Option<T>, ExtractError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(ExtractError::Malformed(e)) => {
            notes.push(what(&e));
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// A test file under the repository's `tests/fixtures` (`path` such as `doc/letter.doc`).
#[cfg(test)]
pub(crate) fn fixture(path: &str) -> Vec<u8> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
    std::fs::read(root.join(path)).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

/// A file of the shared corpus (`path` such as `real/docx/footnotes.docx`).
#[cfg(test)]
pub(crate) fn corpus(path: &str) -> Vec<u8> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus");
    std::fs::read(root.join(path)).unwrap_or_else(|e| panic!("corpus file {path}: {e}"))
}

/// A slide's sections as the legacy PowerPoint and OpenDocument readers lay them out:
/// `Slide N: <title>` with the bodies under it, each table, then the speaker notes.
#[cfg(feature = "office-docs")]
fn slide_sections(
    number: u32,
    title: &str,
    bodies: &[String],
    tables: Vec<Vec<Vec<String>>>,
    notes: &[String],
) -> Vec<Section> {
    let anchor = Anchor { slide: Some(number), ..Anchor::default() };
    let mut text = format!("Slide {number}: {title}").trim_end().to_owned();
    for body in bodies {
        text.push('\n');
        text.push_str(body);
    }
    let mut sections = Vec::new();
    // A slide with no text (a picture, a blank) gives no section of its label alone.
    if !title.trim().is_empty() || !bodies.is_empty() {
        sections.push(Section { anchor: anchor.clone(), kind: SectionKind::Text, text });
    }
    sections.extend(tables.into_iter().map(|table| Section {
        anchor: anchor.clone(),
        kind: SectionKind::Table,
        text: markdown_table(&table),
    }));
    if !notes.is_empty() {
        sections.push(Section {
            anchor: Anchor { part: Some("notes".into()), ..anchor },
            kind: SectionKind::Text,
            text: format!("Slide {number} notes:\n{}", notes.join("\n")),
        });
    }
    sections
}

/// Keeps at most `max` characters, noting the cut.
fn cap_chars(extracted: &mut Extracted, max: usize) {
    let mut total = 0usize;
    let mut cut_at = None;
    for (i, section) in extracted.sections.iter_mut().enumerate() {
        let chars = section.text.chars().count();
        if total + chars > max {
            let keep = max - total;
            let byte = section.text.char_indices().nth(keep).map_or(section.text.len(), |(b, _)| b);
            section.text.truncate(byte);
            cut_at = Some(i + 1);
            break;
        }
        total += chars;
    }
    if let Some(keep) = cut_at {
        extracted.sections.truncate(keep);
        extracted.notes.push(format!("text truncated at {max} characters"));
    }
}

/// Appends one markdown table row of `width` cells (missing ones empty); `|` and newlines
/// inside cells are escaped.
fn push_markdown_row<S: AsRef<str>>(out: &mut String, cells: &[S], width: usize) {
    out.push('|');
    for i in 0..width {
        out.push(' ');
        for c in cells.get(i).map_or("", AsRef::as_ref).trim().chars() {
            match c {
                '|' => out.push_str("\\|"),
                '\n' | '\r' => out.push(' '),
                c => out.push(c),
            }
        }
        out.push_str(" |");
    }
}

/// A markdown table: the first row, a separator, then the rest, every row as wide as the
/// widest.
pub(crate) fn markdown_table<S: AsRef<str>>(rows: &[Vec<S>]) -> String {
    let Some(first) = rows.first() else { return String::new() };
    let width = rows.iter().map(Vec::len).max().unwrap_or(0).max(1);
    let cells: usize = rows.iter().flatten().map(|c| c.as_ref().len() + 3).sum();
    let mut out = String::with_capacity(cells + rows.len() * (width * 3 + 2) + width * 6);
    push_markdown_row(&mut out, first, width);
    out.push_str("\n|");
    for _ in 0..width {
        out.push_str(" --- |");
    }
    for row in &rows[1..] {
        out.push('\n');
        push_markdown_row(&mut out, row, width);
    }
    out
}

/// Token recall and precision of `got` against `truth`: lowercased runs of letters and
/// digits compared as multisets. The fidelity measure of the tests and benchmarks.
pub fn token_fidelity(truth: &str, got: &str) -> (f64, f64) {
    fn tokens(text: &str) -> std::collections::HashMap<String, usize> {
        let mut counts = std::collections::HashMap::new();
        for t in text.split(|c: char| !c.is_alphanumeric()).filter(|t| !t.is_empty()) {
            *counts.entry(t.to_lowercase()).or_insert(0) += 1;
        }
        counts
    }
    let (t, g) = (tokens(truth), tokens(got));
    let common: usize = t.iter().map(|(k, n)| (*n).min(*g.get(k).unwrap_or(&0))).sum();
    (common as f64 / t.values().sum::<usize>().max(1) as f64, common as f64 / g.values().sum::<usize>().max(1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_detected() {
        for format in [
            Format::Pdf,
            Format::Docx,
            Format::Doc,
            Format::Xlsx,
            Format::Xls,
            Format::Ods,
            Format::Odt,
            Format::Odp,
            Format::Pptx,
            Format::Ppt,
            Format::Rtf,
            Format::Text,
            Format::Markdown,
            Format::Csv,
            Format::Html,
        ] {
            let name = serde_json::to_value(format).unwrap();
            assert_eq!(name.as_str(), Some(format.as_str()), "the child process is told a format by its name");
        }
        assert_eq!(Format::detect("a/Report.PDF", b""), Some(Format::Pdf));
        assert_eq!(Format::detect("x.docm", b""), Some(Format::Docx));
        assert_eq!(Format::detect("noext", b"%PDF-1.7"), Some(Format::Pdf));
        assert_eq!(Format::detect("image.png", b"\x89PNG"), None);
        assert_eq!(Format::detect("saved.docx", b"%PDF-1.4\n..."), Some(Format::Pdf), "the content wins");
        assert_eq!(Format::detect("download.bin", b"\r\n\r\n%PDF-1.4"), Some(Format::Pdf));
        assert_eq!(Format::detect("notes.txt", b"Every file starts with %PDF-1.7"), Some(Format::Text));
        assert_eq!(Format::detect("old.doc.docx", b"\xD0\xCF\x11\xE0"), Some(Format::Docx), "its extractor explains");
        assert_eq!(Format::detect("Budget.XLS", b"\xD0\xCF\x11\xE0"), Some(Format::Xls));
        let ods = b"PK\x03\x04\x14\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x08\0\0\0mimetypeapplication/vnd.oasis.opendocument.spreadsheet";
        assert_eq!(Format::detect("stock", ods), Some(Format::Ods));
    }

    #[test]
    fn a_file_without_an_extension_is_read_by_its_content() {
        assert_eq!(Format::detect("docs/README", b"AEGIS\n=====\n\nAgents for businesses.\n"), Some(Format::Text));
        assert_eq!(Format::detect("NOTICE", b"Copyright \xA9 Ma\xEFs, 2019"), Some(Format::Text));
        assert_eq!(Format::detect("saved-page", b"\xEF\xBB\xBF\n  <!DOCTYPE HTML><html><p>Hi</p>"), Some(Format::Html));
        assert_eq!(Format::detect("index", b"<html lang=en><body>Menu</body></html>"), Some(Format::Html));
        assert_eq!(Format::detect("guide.rst", b""), Some(Format::Text));
        assert_eq!(Format::detect("photo", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), None, "binary");
        assert_eq!(Format::detect("empty", b""), None);
        assert_eq!(Format::detect("data.json", b"{\"a\": 1}"), None, "an unknown extension stays unsupported");
        let export =
            b"<html xmlns:o=\"urn:schemas-microsoft-com:office:office\"><body><table><tr><td>1</td></tr></table>";
        assert_eq!(Format::detect("report.xls", export), Some(Format::Html), "a web page saved as .xls");
        assert_eq!(Format::detect("letter.doc", b"Dear Sir,\n"), Some(Format::Doc), "text named .doc goes by its name");
        let mhtml = b"MIME-Version: 1.0\r\nContent-Type: multipart/related; boundary=\"x\"\r\n";
        assert!(what_it_holds(mhtml).unwrap().contains("MHTML"));
        assert_eq!(Format::detect("wiki-export.doc", mhtml), Some(Format::Mhtml), "an export \"to Word\"");
        assert_eq!(Format::detect("saved.html", mhtml), Some(Format::Mhtml));
        assert_eq!(Format::detect("page.mht", b""), Some(Format::Mhtml));
        assert_eq!(Format::detect("raw-message.txt", mhtml), Some(Format::Text), "a text file stays text");
        assert_eq!(what_it_holds(b"PK\x03\x04\x14\0"), Some("a ZIP archive"));
    }

    #[test]
    fn a_slide_without_text_gives_no_section_of_its_label_alone() {
        let blank = slide_sections(3, " ", &[], vec![], &[]);
        assert!(blank.is_empty(), "{blank:?}");
        let with_notes = slide_sections(4, "", &[], vec![vec![vec!["a".into()]]], &["Say hello".into()]);
        let texts: Vec<&str> = with_notes.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(texts, ["| a |\n| --- |", "Slide 4 notes:\nSay hello"]);
        assert!(with_notes.iter().all(|s| s.anchor.slide == Some(4)));
    }

    #[test]
    fn tables_are_markdown_rows() {
        let t = markdown_table(&[vec!["a", "b|c"], vec!["1"]]);
        assert_eq!(t, "| a | b\\|c |\n| --- | --- |\n| 1 |  |");
    }

    #[test]
    fn text_is_capped() {
        let mut e = Extracted {
            sections: vec![
                Section { anchor: Anchor::default(), kind: SectionKind::Text, text: "héllo".into() },
                Section { anchor: Anchor::default(), kind: SectionKind::Text, text: "world".into() },
            ],
            notes: vec![],
        };
        cap_chars(&mut e, 7);
        assert_eq!(e.text(), "héllo\n\nwo");
        assert_eq!(e.notes, ["text truncated at 7 characters"]);
    }
}
