//! PDF with lopdf, page by page. lopdf's known defects are guarded here: a file whose
//! password is not empty loads "successfully" with its text still encrypted, so that is
//! refused as encrypted instead of returning empty text; a page whose content would
//! decompress past the limit, or fails to parse, becomes a note for that page; a page with
//! no text layer (a scan) is noted, not silently empty. Memory and time are bounded by the
//! child process that runs extraction (see `isolate`).
//!
//! The text is placed by AEGIS's own walk over lopdf's parse (`pdf_text`): lopdf's walk
//! put no space for a move between words (`Td`, `Tm`: OCR text layers place each word so)
//! or a fractional `TJ` offset (Distiller's), and skipped the text of form XObjects. lopdf
//! still reads some documents poorly: it turns the codes of a composite (CID) font
//! without a `ToUnicode` map into garbage rather than looking up the font's character
//! collection, and a font of unknown widths can still run words together. When a fallback
//! reader is set (PDFium), a document showing one of these signs — or a page that failed,
//! came out empty, or drew forms nested past the walk's limits — is read again by the
//! fallback, whose answer wins when it has one. lopdf stays first because it
//! is several times faster (see `benches/README.md`).

use lopdf::{Document, Object, ObjectId};

use super::{Anchor, ExtractError, Extracted, Extractor, Limits, Section, SectionKind};

/// PDF documents.
pub struct Pdf {
    /// Reads the documents lopdf reads poorly, when set.
    pub fallback: Option<Box<dyn Extractor>>,
}

/// Most decompressed content per page.
const MAX_PAGE_CONTENT: usize = 64 * 1024 * 1024;

impl Extractor for Pdf {
    fn extract(&self, bytes: &[u8], limits: &Limits) -> Result<Extracted, ExtractError> {
        check_header(bytes)?;
        let read = read(bytes, limits);
        let doubt = match &read {
            Ok((_, doubt)) => doubt.clone(),
            Err(e) => Some(e.to_string()),
        };
        if let (Some(fallback), Some(why)) = (&self.fallback, doubt) {
            tracing::debug!(%why, "lopdf reads this PDF poorly: reading it with the fallback");
            if let Ok(better) = fallback.extract(bytes, limits) {
                return Ok(better);
            }
        }
        read.map(|(extracted, _)| extracted)
    }
}

/// Reads with lopdf; the second value says why the result is doubtful, if it is.
fn read(bytes: &[u8], limits: &Limits) -> Result<(Extracted, Option<String>), ExtractError> {
    let mut document = Document::load_mem(bytes).map_err(|e| match e {
        lopdf::Error::InvalidPassword => ExtractError::Encrypted("a password is required".into()),
        other => ExtractError::Malformed(format!("PDF: {other}")),
    })?;
    // `is_encrypted` misses an /Encrypt entry that is not a reference; the trailer does not.
    let declares_encryption = document.trailer.get(b"Encrypt").is_ok() || document.is_encrypted();
    if declares_encryption && !document.was_encrypted() {
        return Err(ExtractError::Encrypted("a user password is required to read its text".into()));
    }
    super::tex_fonts::add_ot1_encodings(&mut document);
    let pages = document.get_pages();
    if pages.is_empty() {
        return Err(ExtractError::Malformed("the document has no pages".into()));
    }
    let mut doubt = None;
    let texts = pages.iter().map(|(&number, &page)| {
        if doubt.is_none()
            && let Some(font) = composite_font_without_unicode(&document, page)
        {
            doubt = Some(format!("page {number} uses the composite font {font} without a ToUnicode map"));
        }
        let (text, failure) = super::pdf_text::page_text(&document, page, MAX_PAGE_CONTENT);
        if let Some(failure) = &failure {
            doubt.get_or_insert_with(|| format!("page {number}: {failure}"));
        } else if text.trim().is_empty() {
            doubt.get_or_insert_with(|| format!("page {number} has no text lopdf can read"));
        }
        match failure {
            Some(failure) if text.trim().is_empty() => (number, Err(format!("its text could not be read ({failure})"))),
            _ => (number, Ok(text)),
        }
    });
    let extracted = assemble(texts, limits);
    let doubt = doubt.or_else(|| {
        let share = run_together_share(&extracted);
        (share > RUN_TOGETHER).then(|| format!("{:.0} % of its words run together", share * 100.0))
    });
    Ok((extracted, doubt))
}

/// Above this share of the letters and digits of space-separated scripts in words of
/// [`LONG_WORD`] characters or more, lopdf has dropped the spaces (an OCR layer placing
/// each word: 100 %; Distiller's fractional offsets: 79 %; well-read text, a few %).
const RUN_TOGETHER: f64 = 0.4;

/// Characters from which a word is taken as run together.
const LONG_WORD: usize = 25;

/// The share of the letters and digits of scripts that separate words with spaces in
/// words of [`LONG_WORD`] characters or more (0 for less than 200 such characters, too
/// little to judge). Letters of scripts written without spaces (Chinese, Japanese, Thai,
/// …) do not count, nor URLs.
fn run_together_share(extracted: &Extracted) -> f64 {
    let spaced = |c: char| c.is_alphanumeric() && (u32::from(c) < 0x0E00 || (0x1E00..0x2E80).contains(&u32::from(c)));
    let (mut all, mut long) = (0usize, 0usize);
    for word in extracted.sections.iter().flat_map(|s| s.text.split_whitespace()) {
        let letters = word.chars().filter(|&c| spaced(c)).count();
        all += letters;
        if word.chars().count() >= LONG_WORD && !word.contains("://") && !word.starts_with("www.") {
            long += letters;
        }
    }
    if all < 200 { 0.0 } else { long as f64 / all as f64 }
}

/// The name of a composite (Type0) font of the page without a `ToUnicode` map, if one.
fn composite_font_without_unicode(document: &Document, page: ObjectId) -> Option<String> {
    let fonts = document.get_page_fonts(page).ok()?;
    fonts.values().find_map(|font| {
        let composite = font.get(b"Subtype").and_then(Object::as_name).is_ok_and(|s| s == b"Type0");
        (composite && font.get(b"ToUnicode").is_err()).then(|| {
            font.get(b"BaseFont")
                .and_then(Object::as_name)
                .map(|n| String::from_utf8_lossy(n).into_owned())
                .unwrap_or_default()
        })
    })
}

/// Refuses bytes that are not a PDF (no `%PDF-` in the first kilobyte).
pub(super) fn check_header(bytes: &[u8]) -> Result<(), ExtractError> {
    if bytes.windows(5).take(1024).any(|w| w == b"%PDF-") {
        Ok(())
    } else {
        Err(ExtractError::Malformed("no %PDF header".into()))
    }
}

/// One section per page from `(page number, text or why not)`, read lazily: pages without
/// text and pages that failed become notes, and reading stops past the character limit.
pub(super) fn assemble(pages: impl Iterator<Item = (u32, Result<String, String>)>, limits: &Limits) -> Extracted {
    let mut sections = Vec::new();
    let mut notes = Vec::new();
    let mut empty_pages = Vec::new();
    let mut chars = 0usize;
    for (number, text) in pages {
        let text = match text {
            Ok(text) => tidy(&text),
            Err(why) => {
                notes.push(format!("page {number}: {why}"));
                continue;
            }
        };
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
    if !empty_pages.is_empty() {
        let list = empty_pages.iter().map(u32::to_string).collect::<Vec<_>>().join(", ");
        if sections.is_empty() {
            notes.push(format!("no page has a text layer (image-only or scanned; OCR is not done): pages {list}"));
        } else {
            notes.push(format!("pages without a text layer (image-only?): {list}"));
        }
    }
    super::hyphenation::join_broken_words(&mut sections);
    Extracted { sections, notes }
}

/// A hyphen that only marks where a word may break: the soft hyphen, and the
/// noncharacters U+FFFE and U+FFFF, which some TeX fonts' maps give the hyphen a word was
/// broken at (`Übungsauf\u{FFFE}gaben`). Dropped, with the line break after one, the word
/// is whole again.
fn is_soft_hyphen(c: char) -> bool {
    matches!(c, '\u{AD}' | '\u{FFFE}' | '\u{FFFF}')
}

/// Trims lines, drops empty runs, control characters and soft hyphens, and spells out typographic
/// ligatures (`ﬁ` → `fi`), which fonts map to one glyph and search would not match: each
/// line's words joined by one space, empty lines left out. One pass into one buffer (it
/// runs on every page's text).
fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let (mut line_has_text, mut space) = (false, false);
    // After a soft hyphen: whether a space came before it (the line break that may follow
    // joins the word's halves, and the spaces around the break go with it).
    let mut broken: Option<bool> = None;
    // The line break after a soft hyphen was dropped: the next line's leading spaces are too.
    let mut joined = false;
    for c in text.chars() {
        if c == '\n' {
            if let Some(space_before) = broken.take() {
                (space, joined) = (space_before, true);
                continue;
            }
            if line_has_text {
                out.push('\n');
            }
            (line_has_text, space, joined) = (false, false, false);
            continue;
        }
        if c.is_control() && c != '\t' {
            continue;
        }
        if is_soft_hyphen(c) {
            broken = Some(space);
            joined = false;
            continue;
        }
        if c.is_whitespace() {
            space |= !joined;
            continue;
        }
        (broken, joined) = (None, false);
        if line_has_text && space {
            out.push(' ');
        }
        (line_has_text, space) = (true, false);
        match c {
            '\u{FB00}' => out.push_str("ff"),
            '\u{FB01}' => out.push_str("fi"),
            '\u{FB02}' => out.push_str("fl"),
            '\u{FB03}' => out.push_str("ffi"),
            '\u{FB04}' => out.push_str("ffl"),
            '\u{FB05}' | '\u{FB06}' => out.push_str("st"),
            c => out.push(c),
        }
    }
    if out.ends_with('\n') {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{Anchor, Extracted, Section, SectionKind, is_soft_hyphen, run_together_share, tidy};

    #[test]
    fn words_run_together_are_told_from_scripts_without_spaces_and_urls() {
        let page = |text: String| Extracted {
            sections: vec![Section { anchor: Anchor::default(), kind: SectionKind::Text, text }],
            notes: vec![],
        };
        let prose = "Orders ship from the Rotterdam warehouse within two working days. ".repeat(8);
        assert!(run_together_share(&page(prose.clone())) < 0.05);
        assert!(run_together_share(&page(prose.replace(' ', ""))) > 0.99);
        let chinese = format!("{prose} {}", "本集團現金客戶須於交易日後兩個營業日內結算其交易金額".repeat(20));
        assert!(run_together_share(&page(chinese)) < 0.05, "Chinese is written without spaces");
        let url = format!("{prose} https://example.org/a/very/long/path/to/the/shipping/policy/page.html");
        assert!(run_together_share(&page(url)) < 0.05);
        assert_eq!(run_together_share(&page("Tooshorttojudgeanything".into())), 0.0);
    }

    #[test]
    fn text_is_tidied_and_ligatures_spelled_out() {
        assert_eq!(tidy("  The mis\u{FB01}ts\u{0} \r\n\n di\u{FB00}erently\u{FB04}  "), "The misfits\ndifferentlyffl");
        assert_eq!(tidy("\n\n a\u{A0}\u{85}b\t\tc \n\u{2003}\n"), "a b c", "Unicode spaces; NEL is a control");
        assert_eq!(
            tidy("Übungsauf\u{FFFE}gaben und Wider\u{AD}spruch"),
            "Übungsaufgaben und Widerspruch",
            "soft hyphens"
        );
    }

    /// The rule said plainly (the lines' words joined by spaces, empty lines dropped, after
    /// controls are removed and ligatures spelled out), against which the one-pass `tidy`
    /// is checked on random text.
    fn tidy_as_specified(text: &str) -> String {
        // A soft hyphen, the spaces after it, a line break and the next line's leading
        // spaces are dropped together (the word's halves join); other soft hyphens alone.
        let kept: Vec<char> = text.chars().filter(|&c| !c.is_control() || c == '\n' || c == '\t').collect();
        let blank = |c: char| c.is_whitespace() && c != '\n';
        let mut joined = Vec::with_capacity(kept.len());
        let mut i = 0;
        while i < kept.len() {
            if is_soft_hyphen(kept[i]) {
                let mut j = i + 1;
                while j < kept.len() && blank(kept[j]) {
                    j += 1;
                }
                if j < kept.len() && kept[j] == '\n' {
                    j += 1;
                    while j < kept.len() && blank(kept[j]) {
                        j += 1;
                    }
                    i = j;
                    continue;
                }
            }
            joined.push(kept[i]);
            i += 1;
        }
        let spelled: String = joined
            .into_iter()
            .filter(|&c| !is_soft_hyphen(c))
            .map(|c| match c {
                '\u{FB00}' => "ff".to_owned(),
                '\u{FB01}' => "fi".to_owned(),
                '\u{FB02}' => "fl".to_owned(),
                '\u{FB03}' => "ffi".to_owned(),
                '\u{FB04}' => "ffl".to_owned(),
                '\u{FB05}' | '\u{FB06}' => "st".to_owned(),
                c => c.to_string(),
            })
            .collect();
        let lines: Vec<String> = spelled
            .split('\n')
            .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|line| !line.is_empty())
            .collect();
        lines.join("\n")
    }

    #[test]
    fn the_one_pass_tidy_does_what_the_rule_says() {
        let alphabet: Vec<char> =
            "ab é\n\r\t\u{0}\u{A0}\u{85}\u{2003}\u{FB01}\u{FB04}中\u{AD}\u{FFFE}".chars().collect();
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..2000 {
            let mut text = String::new();
            for _ in 0..(state % 40) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                text.push(alphabet[(state % alphabet.len() as u64) as usize]);
            }
            assert_eq!(tidy(&text), tidy_as_specified(&text), "{text:?}");
        }
    }
}
