//! Extraction: a file becomes sections of text, each with an anchor saying where it came
//! from (page, slide, sheet and cell range, heading path). One trait, one implementation
//! per format; [`extract`] picks by format and contains failures: a parser's panic becomes
//! that file's error. For hard isolation (a parser that never returns, or overflows its
//! stack) run extraction in a child process: see [`isolate`].

#[cfg(feature = "office-docs")]
mod archive;
#[cfg(feature = "office-docs")]
mod cell_comments;
#[cfg(feature = "office-docs")]
mod doc;
#[cfg(feature = "office-docs")]
mod docx;
mod email;
#[cfg(feature = "office-docs")]
mod embedded;
mod encoding;
mod extracted;
mod format;
mod html;
#[cfg(feature = "office-docs")]
mod hyphenation;
pub mod isolate;
mod layout;
#[cfg(feature = "office-docs")]
mod legacy_sheets;
mod mhtml;
#[cfg(feature = "office-docs")]
mod msg;
#[cfg(feature = "office-docs")]
mod number_format;
#[cfg(feature = "office-docs")]
mod odf;
#[cfg(feature = "office-docs")]
mod ole;
#[cfg(feature = "office-docs")]
mod ooxml;
mod outline;
#[cfg(feature = "office-docs")]
mod pdf;
#[cfg(feature = "office-docs")]
mod pdf_fonts;
mod pdf_reader;
#[cfg(feature = "office-docs")]
mod pdf_text;
#[cfg(feature = "pdfium")]
mod pdfium;
#[cfg(feature = "office-docs")]
mod ppt;
#[cfg(feature = "office-docs")]
mod pptx;
mod rtf;
#[cfg(feature = "office-docs")]
mod salvage;
#[cfg(feature = "office-docs")]
mod tex_fonts;
mod text;
#[cfg(feature = "office-docs")]
mod word_lists;
#[cfg(feature = "office-docs")]
mod xlsx;

use std::{path::Path, time::Duration};

#[cfg(feature = "office-docs")]
pub use archive::{MAX_FILES as MAX_ARCHIVE_FILES, Unpacked, unpack};
pub use extracted::{Anchor, Extracted, Section, SectionKind, token_fidelity};
pub use format::Format;
#[cfg(feature = "office-docs")]
use format::not_a;
#[cfg(feature = "office-docs")]
use layout::slide_sections;
use layout::{add_as_part, cap_chars, markdown_table};
pub use pdf_reader::{PdfBackend, PdfConfig, PdfReader};
use serde::{Deserialize, Serialize};

/// The version of what the extractors make of a file. Bump it when a change to any
/// extractor alters its output, so that re-ingesting unchanged files re-extracts them
/// (the integration test `a_change_to_what_the_extractors_make_bumps_their_version`
/// holds a digest of the corpus's extraction at this version, and fails until both move).
pub const EXTRACTOR_VERSION: u32 = 9;

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
pub(crate) fn caught<T>(extract: impl FnOnce() -> Result<T, ExtractError>) -> Result<T, ExtractError> {
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
