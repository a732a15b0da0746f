//! PDF with lopdf, page by page. lopdf's known defects are guarded here: a file whose
//! password is not empty loads "successfully" with its text still encrypted, so that is
//! refused as encrypted instead of returning empty text; a page whose content would
//! decompress past the limit, or fails to parse, becomes a note for that page; a page with
//! no text layer (a scan) is noted, not silently empty. Memory and time are bounded by the
//! child process that runs extraction (see `isolate`).

use super::{Anchor, ExtractError, Extracted, Extractor, Limits, Section, SectionKind};

/// PDF documents.
pub struct Pdf;

/// Most decompressed content per page.
const MAX_PAGE_CONTENT: usize = 64 * 1024 * 1024;

impl Extractor for Pdf {
    fn extract(&self, bytes: &[u8], limits: &Limits) -> Result<Extracted, ExtractError> {
        if !bytes.windows(5).take(1024).any(|w| w == b"%PDF-") {
            return Err(ExtractError::Malformed("no %PDF header".into()));
        }
        let document = lopdf::Document::load_mem(bytes).map_err(|e| match e {
            lopdf::Error::InvalidPassword => ExtractError::Encrypted("a password is required".into()),
            other => ExtractError::Malformed(format!("PDF: {other}")),
        })?;
        // `is_encrypted` misses an /Encrypt entry that is not a reference; the trailer does not.
        let declares_encryption = document.trailer.get(b"Encrypt").is_ok() || document.is_encrypted();
        if declares_encryption && !document.was_encrypted() {
            return Err(ExtractError::Encrypted("a user password is required to read its text".into()));
        }
        let pages = document.get_pages();
        if pages.is_empty() {
            return Err(ExtractError::Malformed("the document has no pages".into()));
        }
        let mut sections = Vec::new();
        let mut notes = Vec::new();
        let mut empty_pages = Vec::new();
        let mut chars = 0usize;
        for number in pages.keys().copied() {
            match document.extract_text_with_limit(&[number], MAX_PAGE_CONTENT) {
                Ok(text) => {
                    let text = tidy(&text);
                    if text.is_empty() {
                        empty_pages.push(number);
                        continue;
                    }
                    chars += text.len();
                    sections.push(Section {
                        anchor: Anchor { page: Some(number), ..Anchor::default() },
                        kind: SectionKind::Text,
                        text,
                    });
                    if chars > limits.max_chars {
                        notes.push(format!("stopped after page {number}: more than {} characters", limits.max_chars));
                        break;
                    }
                }
                Err(e) => notes.push(format!("page {number}: its text could not be read ({e})")),
            }
        }
        if !empty_pages.is_empty() {
            let list = empty_pages.iter().map(u32::to_string).collect::<Vec<_>>().join(", ");
            if sections.is_empty() {
                notes.push(format!("no page has a text layer (image-only or scanned; OCR is not done): pages {list}"));
            } else {
                notes.push(format!("pages without a text layer (image-only?): {list}"));
            }
        }
        Ok(Extracted { sections, notes })
    }
}

/// Trims lines, drops empty runs and control characters.
fn tidy(text: &str) -> String {
    let cleaned: String = text.chars().filter(|c| !c.is_control() || *c == '\n' || *c == '\t').collect();
    let mut out = Vec::new();
    for line in cleaned.lines() {
        let line = line.split_whitespace().collect::<Vec<_>>().join(" ");
        if !line.is_empty() {
            out.push(line);
        }
    }
    out.join("\n")
}
