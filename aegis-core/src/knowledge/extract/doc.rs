//! Legacy Word documents (`.doc`, Word 97 to 2003), read from the binary format as the
//! published specification describes it: the file information block locates the piece
//! table, which maps the document's character positions to 8-bit (Windows-1252) or
//! UTF-16 runs of the `WordDocument` stream; the paragraph property pages say which
//! paragraphs are in a table (and which mark ends a row), their style and outline level;
//! the style sheet says which styles are headings. The text is laid out as DOCX's is:
//! heading paths, tables as markdown rows. Footnotes, headers, comments, endnotes and text
//! boxes are the document's other stories and become sections of their own. Field codes
//! are dropped and field results kept. Word 6 and 95 files are refused as unsupported, and
//! encrypted ones as encrypted.
//!
//! Damaged paragraph properties or style sheets are notes (the text is still read, without
//! headings and tables); a damaged piece table fails the file.

use std::{collections::HashSet, ops::Range};

use super::{
    ExtractError, Extracted, Extractor, Limits, Section,
    ole::{Ole, le_u16, le_u32},
    outline::Outline,
};

/// Word 97–2003 documents.
pub struct Doc;

impl Extractor for Doc {
    fn extract(&self, bytes: &[u8], limits: &Limits) -> Result<Extracted, ExtractError> {
        let mut ole = Ole::open(bytes)?;
        let word = ole
            .stream("/WordDocument")?
            .ok_or_else(|| ExtractError::Malformed("no WordDocument stream: not a Word document".into()))?;
        let fib = Fib::read(&word)?;
        let table_name = if fib.table_one { "/1Table" } else { "/0Table" };
        let table = ole
            .stream(table_name)?
            .ok_or_else(|| ExtractError::Malformed(format!("the table stream {table_name} is missing")))?;
        let mut notes = Vec::new();
        let text = Text::read(&word, &table, fib.clx, limits.max_chars, &mut notes)?;
        let paragraphs = ParagraphRuns::read(&word, &table, fib.papx).unwrap_or_else(|e| {
            notes.push(format!("paragraph properties not read ({e}): no headings or tables"));
            ParagraphRuns::default()
        });
        let headings = heading_styles(&table, fib.stsh).unwrap_or_else(|e| {
            notes.push(format!("style sheet not read ({e}): headings only from outline levels"));
            Vec::new()
        });
        let reader = Stories { text: &text, paragraphs: &paragraphs, headings: &headings };
        let mut sections = Vec::new();
        let mut seen = HashSet::new();
        let mut start = 0usize;
        for (len, story) in fib.ccp.iter().zip(STORIES) {
            let end = start.saturating_add(*len as usize).min(text.units.len());
            let range = start..end;
            start = end;
            let parts = match story {
                Story::Skipped => continue,
                Story::Headers => header_stories(&table, fib.hdd, range),
                Story::Part(part) => vec![(range, part)],
            };
            for (range, part) in parts {
                for section in reader.sections(range, part) {
                    // Headers and footers repeat across the document's sections.
                    if part.is_none() || seen.insert(section.text.clone()) {
                        sections.push(section);
                    }
                }
            }
        }
        Ok(Extracted { sections, notes })
    }
}

/// One of the document's stories, which follow one another in character positions.
#[derive(Clone, Copy)]
enum Story {
    /// Laid out as a part (`None`: the body).
    Part(Option<&'static str>),
    /// Headers and footers, each a story of its own ([`header_stories`]).
    Headers,
    /// Not read (macros: unused since Word 97).
    Skipped,
}

/// The stories in the order of their character positions: the body, footnotes, headers
/// and footers, macros, comments, endnotes, text boxes and header text boxes.
const STORIES: [Story; 8] = [
    Story::Part(None),
    Story::Part(Some("footnotes")),
    Story::Headers,
    Story::Skipped,
    Story::Part(Some("comments")),
    Story::Part(Some("endnotes")),
    Story::Part(Some("text box")),
    Story::Part(Some("header text box")),
];

/// The header and footer stories within the headers' `range`, from their table of
/// character positions: six note separators, then per section of the document an even
/// header, odd header, even footer, odd footer, first-page header and first-page footer.
/// Without that table the range is read as one `header` part.
fn header_stories(table: &[u8], hdd: (u32, u32), range: Range<usize>) -> Vec<(Range<usize>, Option<&'static str>)> {
    let positions: Vec<usize> = match slice(table, hdd, "header table") {
        Ok(plc) if plc.len() >= 8 => {
            plc.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as usize).collect()
        }
        _ => return vec![(range, Some("header"))],
    };
    let mut stories = Vec::new();
    for (i, bounds) in positions.windows(2).enumerate().skip(6) {
        let start = range.start.saturating_add(bounds[0]).min(range.end);
        let end = range.start.saturating_add(bounds[1]).min(range.end);
        if start < end {
            let footer = matches!((i - 6) % 6, 2 | 3 | 5);
            stories.push((start..end, Some(if footer { "footer" } else { "header" })));
        }
    }
    stories
}

/// What the file information block says about where things are.
struct Fib {
    /// The table stream is `1Table` (else `0Table`).
    table_one: bool,
    /// Characters in each story, in [`STORIES`] order.
    ccp: [u32; 8],
    /// Offset and length in the table stream of the style sheet,
    stsh: (u32, u32),
    /// of the header and footer stories' positions,
    hdd: (u32, u32),
    /// of the paragraph property page table,
    papx: (u32, u32),
    /// and of the piece table.
    clx: (u32, u32),
}

impl Fib {
    fn read(word: &[u8]) -> Result<Self, ExtractError> {
        let damaged = || ExtractError::Malformed("the file information block is damaged".into());
        if le_u16(word, 0) != Some(0xA5EC) {
            return Err(ExtractError::Malformed("no Word file information block".into()));
        }
        let flags = le_u16(word, 0x0A).ok_or_else(damaged)?;
        if flags & 0x0100 != 0 {
            return Err(ExtractError::Encrypted("the document is password-protected".into()));
        }
        if le_u16(word, 2).ok_or_else(damaged)? < 0xC1 {
            return Err(ExtractError::Unsupported(
                "a Word 6 or Word 95 document: only Word 97 and later binary documents are read".into(),
            ));
        }
        let csw = usize::from(le_u16(word, 32).ok_or_else(damaged)?);
        let longs_at = 34 + 2 * csw;
        let longs = usize::from(le_u16(word, longs_at).ok_or_else(damaged)?);
        let longs_at = longs_at + 2;
        let pairs_at = longs_at + 4 * longs;
        let pairs = usize::from(le_u16(word, pairs_at).ok_or_else(damaged)?);
        let pairs_at = pairs_at + 2;
        if longs < 11 || pairs < 34 {
            return Err(damaged());
        }
        let mut ccp = [0u32; 8];
        for (k, count) in ccp.iter_mut().enumerate() {
            *count = le_u32(word, longs_at + 4 * (3 + k)).ok_or_else(damaged)?;
        }
        let pair = |i: usize| -> Result<(u32, u32), ExtractError> {
            let at = pairs_at + 8 * i;
            Ok((le_u32(word, at).ok_or_else(damaged)?, le_u32(word, at + 4).ok_or_else(damaged)?))
        };
        Ok(Self {
            table_one: flags & 0x0200 != 0,
            ccp,
            stsh: pair(1)?,
            hdd: pair(11)?,
            papx: pair(13)?,
            clx: pair(33)?,
        })
    }
}

/// The bytes `(offset, length)` of the table stream.
fn slice<'t>(table: &'t [u8], (at, len): (u32, u32), what: &str) -> Result<&'t [u8], ExtractError> {
    let at = at as usize;
    table
        .get(at..at.saturating_add(len as usize))
        .ok_or_else(|| ExtractError::Malformed(format!("the {what} lies outside the table stream")))
}

/// A run of the document's characters stored contiguously in the `WordDocument` stream.
struct Piece {
    /// First character position.
    cp: usize,
    /// Byte offset of its first character.
    fc: usize,
    /// One byte per character (Windows-1252) instead of two (UTF-16).
    compressed: bool,
}

/// The document's characters as UTF-16 code units, indexed by character position.
struct Text {
    units: Vec<u16>,
    pieces: Vec<Piece>,
}

impl Text {
    fn read(
        word: &[u8],
        table: &[u8],
        clx: (u32, u32),
        max_units: usize,
        notes: &mut Vec<String>,
    ) -> Result<Self, ExtractError> {
        let damaged = |why: &str| ExtractError::Malformed(format!("the piece table is damaged: {why}"));
        let clx = slice(table, clx, "piece table")?;
        // Property modifiers (type 1) come first, then the piece table itself (type 2).
        let mut at = 0usize;
        let plc = loop {
            match clx.get(at) {
                Some(1) => {
                    let len = le_u16(clx, at + 1).ok_or_else(|| damaged("a modifier is cut short"))?;
                    at += 3 + usize::from(len);
                }
                Some(2) => {
                    let len = le_u32(clx, at + 1).ok_or_else(|| damaged("its length is cut short"))? as usize;
                    break clx.get(at + 5..(at + 5).saturating_add(len)).ok_or_else(|| damaged("it is cut short"))?;
                }
                _ => return Err(damaged("no piece table")),
            }
        };
        if plc.len() < 4 || (plc.len() - 4) % 12 != 0 {
            return Err(damaged("its length is not a whole number of pieces"));
        }
        let count = (plc.len() - 4) / 12;
        let cp = |i: usize| le_u32(plc, 4 * i).map_or(0, |c| c as usize);
        let windows_1252 = windows_1252();
        let mut units = Vec::new();
        let mut pieces = Vec::with_capacity(count);
        for i in 0..count {
            let (start, end) = (cp(i), cp(i + 1));
            if start != units.len() || end < start {
                return Err(damaged("its character positions are out of order"));
            }
            let raw = le_u32(plc, 4 * (count + 1) + 8 * i + 2).unwrap_or(0);
            let compressed = raw & 0x4000_0000 != 0;
            let fc = (raw & 0x3FFF_FFFF) as usize;
            let fc = if compressed { fc / 2 } else { fc };
            let mut len = end - start;
            if units.len() + len > max_units {
                len = max_units - units.len();
                notes.push(format!("text truncated at {max_units} characters"));
            }
            let width = if compressed { 1 } else { 2 };
            let bytes = word
                .get(fc..fc.saturating_add(len * width))
                .ok_or_else(|| damaged("a piece lies outside the document stream"))?;
            if compressed {
                units.extend(bytes.iter().map(|b| windows_1252[usize::from(*b)]));
            } else {
                units.extend(bytes.chunks_exact(2).map(|u| u16::from_le_bytes([u[0], u[1]])));
            }
            pieces.push(Piece { cp: start, fc, compressed });
            if units.len() >= max_units {
                break;
            }
        }
        Ok(Self { units, pieces })
    }

    /// The byte offset in the `WordDocument` stream of the character at `cp`.
    fn fc(&self, cp: usize) -> Option<usize> {
        let piece = &self.pieces[self.pieces.partition_point(|p| p.cp <= cp).checked_sub(1)?];
        let width = if piece.compressed { 1 } else { 2 };
        Some(piece.fc + (cp - piece.cp) * width)
    }
}

/// Windows-1252 as UTF-16, byte by byte (the 8-bit pieces' encoding).
fn windows_1252() -> [u16; 256] {
    let bytes: Vec<u8> = (0..=255).collect();
    let (text, _) = encoding_rs::WINDOWS_1252.decode_without_bom_handling(&bytes);
    let mut table = [0u16; 256];
    for (slot, c) in table.iter_mut().zip(text.chars()) {
        *slot = u16::try_from(u32::from(c)).unwrap_or(0xFFFD);
    }
    table
}

/// What a paragraph's properties say that the layout needs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Paragraph {
    /// Index of its style in the style sheet.
    style: u16,
    /// Inside a table.
    in_table: bool,
    /// Its mark ends a table row.
    row_end: bool,
    /// Outline level 0–8 (9 is body text).
    outline: Option<u8>,
}

/// Paragraph properties by byte range of the `WordDocument` stream.
#[derive(Default)]
struct ParagraphRuns {
    runs: Vec<(usize, usize, Paragraph)>,
}

impl ParagraphRuns {
    fn read(word: &[u8], table: &[u8], papx: (u32, u32)) -> Result<Self, ExtractError> {
        let plc = slice(table, papx, "paragraph property table")?;
        if plc.len() < 4 {
            return Ok(Self::default());
        }
        let pages = (plc.len() - 4) / 8;
        let mut runs = Vec::new();
        for i in 0..pages {
            let number = le_u32(plc, 4 * (pages + 1) + 4 * i).unwrap_or(0) & 0x3F_FFFF;
            let at = number as usize * 512;
            let page = word
                .get(at..at + 512)
                .ok_or_else(|| ExtractError::Malformed("a paragraph property page lies outside the file".into()))?;
            let count = usize::from(page[511]);
            if 4 * (count + 1) + 13 * count > 511 {
                return Err(ExtractError::Malformed("a paragraph property page is damaged".into()));
            }
            for j in 0..count {
                let (start, end) = (le_u32(page, 4 * j).unwrap_or(0), le_u32(page, 4 * (j + 1)).unwrap_or(0));
                let offset = usize::from(page[4 * (count + 1) + 13 * j]) * 2;
                let paragraph = if offset == 0 { Paragraph::default() } else { paragraph(page, offset) };
                runs.push((start as usize, end as usize, paragraph));
            }
        }
        runs.sort_by_key(|r| r.0);
        Ok(Self { runs })
    }

    /// The properties of the paragraph whose mark is at byte `fc`.
    fn at(&self, fc: Option<usize>) -> Paragraph {
        let Some(fc) = fc else { return Paragraph::default() };
        let i = self.runs.partition_point(|r| r.0 <= fc);
        match i.checked_sub(1).map(|i| self.runs[i]) {
            Some((_, end, paragraph)) if fc < end => paragraph,
            _ => Paragraph::default(),
        }
    }
}

/// The paragraph properties stored at `offset` of a property page: a style index and
/// a list of property modifiers, of which the table and outline ones are kept.
fn paragraph(page: &[u8], offset: usize) -> Paragraph {
    let (start, len) = match page.get(offset) {
        Some(0) => (offset + 2, 2 * page.get(offset + 1).map_or(0, |b| usize::from(*b))),
        Some(cb) => (offset + 1, 2 * usize::from(*cb) - 1),
        None => return Paragraph::default(),
    };
    let Some(props) = page.get(start..(start + len).min(page.len())) else { return Paragraph::default() };
    let mut paragraph = Paragraph { style: le_u16(props, 0).unwrap_or(0), ..Paragraph::default() };
    for_each_modifier(props.get(2..).unwrap_or_default(), |sprm, operand| {
        let on = operand.first().is_some_and(|b| *b != 0);
        match sprm {
            0x2416 => paragraph.in_table |= on,
            0x2417 => paragraph.row_end |= on,
            0x6649 => paragraph.in_table |= le_u32(operand, 0).is_some_and(|depth| depth > 0),
            0x2640 => paragraph.outline = operand.first().copied().filter(|l| *l < 9),
            _ => {}
        }
    });
    paragraph
}

/// Calls `f` with each property modifier (its code and operand) in `list`, stopping at
/// the first that is cut short. The operand's size is in the code's top three bits.
fn for_each_modifier(mut list: &[u8], mut f: impl FnMut(u16, &[u8])) {
    while let Some(sprm) = le_u16(list, 0) {
        list = &list[2..];
        let len = match sprm >> 13 {
            0 | 1 => 1,
            2 | 4 | 5 => 2,
            3 => 4,
            7 => 3,
            _ if sprm == 0xD608 => {
                // A table definition: a two-byte length, counting itself as one.
                let Some(len) = le_u16(list, 0) else { return };
                list = &list[2..];
                usize::from(len).saturating_sub(1)
            }
            _ => {
                let Some(len) = list.first() else { return };
                list = &list[1..];
                usize::from(*len)
            }
        };
        let Some(operand) = list.get(..len) else { return };
        f(sprm, operand);
        list = &list[len..];
    }
}

/// Heading level (1-based) by style index, from the built-in style each style is:
/// Heading 1–9, and Title as level 1.
fn heading_styles(table: &[u8], stsh: (u32, u32)) -> Result<Vec<Option<usize>>, ExtractError> {
    let sheet = slice(table, stsh, "style sheet")?;
    let damaged = || ExtractError::Malformed("the style sheet is damaged".into());
    let header = usize::from(le_u16(sheet, 0).ok_or_else(damaged)?);
    let count = usize::from(le_u16(sheet, 2).ok_or_else(damaged)?);
    let mut at = 2 + header;
    let mut levels = Vec::with_capacity(count);
    for _ in 0..count {
        let len = usize::from(le_u16(sheet, at).ok_or_else(damaged)?);
        let builtin = if len >= 2 { le_u16(sheet, at + 2).ok_or_else(damaged)? & 0x0FFF } else { 0 };
        levels.push(match builtin {
            1..=9 => Some(usize::from(builtin)),
            62 => Some(1),
            _ => None,
        });
        at += 2 + len;
    }
    Ok(levels)
}

/// Lays out ranges of the document's characters.
struct Stories<'a> {
    text: &'a Text,
    paragraphs: &'a ParagraphRuns,
    headings: &'a [Option<usize>],
}

impl Stories<'_> {
    /// The sections of the characters in `range`, a story labelled `part`.
    fn sections(&self, range: Range<usize>, part: Option<&'static str>) -> Vec<Section> {
        let mut outline = Outline::new(part);
        let mut paragraph: Vec<u16> = Vec::new();
        let mut cell = String::new();
        let mut row: Vec<String> = Vec::new();
        let mut rows: Vec<Vec<String>> = Vec::new();
        // One entry per open field: whether its result (after the separator) has begun.
        let mut fields: Vec<bool> = Vec::new();
        for cp in range {
            let unit = self.text.units[cp];
            match unit {
                0x13 => fields.push(false),
                0x14 => {
                    if let Some(result) = fields.last_mut() {
                        *result = true;
                    }
                }
                0x15 => {
                    fields.pop();
                }
                0x0D | 0x07 | 0x0C => {
                    let props = self.paragraphs.at(self.text.fc(cp));
                    let text = String::from_utf16_lossy(&paragraph);
                    paragraph.clear();
                    if props.in_table && unit != 0x0C {
                        let text = text.trim();
                        if !cell.is_empty() && !text.is_empty() {
                            cell.push(' ');
                        }
                        cell.push_str(text);
                        if unit == 0x07 && props.row_end {
                            if !cell.is_empty() {
                                row.push(std::mem::take(&mut cell));
                            }
                            rows.push(std::mem::take(&mut row));
                        } else if unit == 0x07 {
                            row.push(std::mem::take(&mut cell));
                        }
                        continue;
                    }
                    if !rows.is_empty() || !row.is_empty() {
                        if !row.is_empty() {
                            rows.push(std::mem::take(&mut row));
                        }
                        outline.table(std::mem::take(&mut rows));
                    }
                    let level = props
                        .outline
                        .map(|l| usize::from(l) + 1)
                        .or_else(|| self.headings.get(usize::from(props.style)).copied().flatten());
                    outline.paragraph(&text, level);
                }
                // Inside a field's instructions (`HYPERLINK "…"`, `PAGE`): not text.
                _ if fields.iter().any(|result| !result) => {}
                0x0B => paragraph.push(u16::from(b'\n')),
                0x09 => paragraph.push(u16::from(b'\t')),
                0x1E => paragraph.push(u16::from(b'-')),
                0xA0 => paragraph.push(u16::from(b' ')),
                // Other controls: pictures, drawn objects, note references, separators.
                0..0x20 | 0x7F..0xA0 => {}
                _ => paragraph.push(unit),
            }
        }
        if !row.is_empty() {
            rows.push(row);
        }
        outline.table(rows);
        outline.paragraph(&String::from_utf16_lossy(&paragraph), None);
        outline.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::knowledge::extract::{
        Format, SectionKind, corpus, docx::Docx, fixture, ole::with_stream, token_fidelity,
    };

    fn with_word_stream(doc: &[u8], change: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        with_stream(doc, "/WordDocument", change)
    }

    #[test]
    fn a_word_97_document_yields_the_text_its_docx_original_does() {
        // LibreOffice's conversion of a generated document whose exact text is known.
        let doc = fixture("doc/gen-docx-003-4p.doc");
        assert_eq!(Format::detect("scan.bin", &doc), Some(Format::Doc), "sniffed from its streams");
        assert_eq!(Format::detect("misnamed.docx", &doc), Some(Format::Doc));
        let extracted = Doc.extract(&doc, &Limits::default()).unwrap();
        let truth = String::from_utf8(corpus("generated/docx/gen-docx-003-4p.txt")).unwrap();
        let (recall, precision) = token_fidelity(&truth, &extracted.text());
        assert!(recall >= 0.99 && precision >= 0.99, "recall {recall}, precision {precision}");
        let original = Docx.extract(&corpus("generated/docx/gen-docx-003-4p.docx"), &Limits::default()).unwrap();
        let anchors = |e: &Extracted| e.sections.iter().map(|s| (s.anchor.clone(), s.kind)).collect::<Vec<_>>();
        assert_eq!(anchors(&extracted), anchors(&original), "the same heading paths and tables");
        assert!(extracted.sections.iter().any(|s| s.kind == SectionKind::Table));
        assert!(extracted.notes.is_empty(), "{:?}", extracted.notes);
    }

    #[test]
    fn tables_headers_footers_and_footnotes_come_out_as_from_the_docx() {
        for name in ["hdr-header-footer", "footnotes", "nested_table"] {
            let doc = Doc.extract(&fixture(&format!("doc/{name}.doc")), &Limits::default()).unwrap();
            let docx = Docx.extract(&corpus(&format!("real/docx/{name}.docx")), &Limits::default()).unwrap();
            assert_eq!(doc.sections, docx.sections, "{name}");
        }
        let tables = Doc.extract(&fixture("doc/nested_table.doc"), &Limits::default()).unwrap();
        assert!(tables.sections.iter().any(|s| s.kind == SectionKind::Table && s.text.starts_with("| ")));
        let header = Doc.extract(&fixture("doc/hdr-header-footer.doc"), &Limits::default()).unwrap();
        let parts: Vec<_> = header.sections.iter().map(|s| s.anchor.part.as_deref()).collect();
        assert_eq!(parts, [None, Some("header"), Some("footer")], "each header once: {:?}", header.sections);
    }

    #[test]
    fn a_document_saved_by_word_keeps_its_headings_and_field_results() {
        let clean = Doc.extract(&fixture("doc/harmless-clean.doc"), &Limits::default()).unwrap();
        let first = &clean.sections[0];
        assert_eq!(first.anchor.headings, ["Test"], "a Heading 1 paragraph (German style names)");
        assert!(first.text.contains("ünicöde-ßtringß"), "{}", first.text);
        let fields = Doc.extract(&fixture("doc/dde-test-from-office2016.doc"), &Limits::default()).unwrap().text();
        assert!(fields.contains("The dde auto field is:") && fields.contains("Unerwartetes Ende des Ausdrucks"));
        assert!(
            !fields.contains("DDEAUTO") && !fields.contains("cmd.exe"),
            "field instructions are not text: {fields}"
        );
    }

    #[test]
    fn encrypted_old_and_damaged_documents_are_clear_errors_or_notes() {
        let limits = Limits::default();
        let encrypted = Doc.extract(&fixture("doc/encrypted.doc"), &limits);
        assert!(matches!(encrypted, Err(ExtractError::Encrypted(_))), "{encrypted:?}");
        let clean = fixture("doc/harmless-clean.doc");
        let word95 = with_word_stream(&clean, |s| s[2..4].copy_from_slice(&0x68u16.to_le_bytes()));
        assert!(matches!(Doc.extract(&word95, &limits), Err(ExtractError::Unsupported(_))));
        let no_fib = with_word_stream(&clean, |s| s.truncate(100));
        assert!(matches!(Doc.extract(&no_fib, &limits), Err(ExtractError::Malformed(_))));
        // A damaged paragraph property table or style sheet: the text is still read, noted.
        let damaged_table = |pair: usize| {
            with_word_stream(&clean, |s| {
                let longs_at = 34 + 2 * usize::from(le_u16(s, 32).unwrap());
                let pairs_at = longs_at + 2 + 4 * usize::from(le_u16(s, longs_at).unwrap()) + 2;
                s[pairs_at + 8 * pair + 4..pairs_at + 8 * pair + 8].copy_from_slice(&0xFFFF_0000u32.to_le_bytes());
            })
        };
        for (pair, note) in [(13, "paragraph properties not read"), (1, "style sheet not read")] {
            let damaged = Doc.extract(&damaged_table(pair), &limits).unwrap();
            assert!(damaged.text().contains("This is a harmless test document."), "{damaged:?}");
            assert!(damaged.notes.iter().any(|n| n.starts_with(note)), "{:?}", damaged.notes);
            assert!(damaged.sections.iter().all(|s| s.anchor.headings.is_empty()), "no headings without them");
        }
        let mut cut = clean.clone();
        cut.truncate(clean.len() / 2);
        assert!(matches!(Doc.extract(&cut, &limits), Err(ExtractError::Malformed(_))));
        assert!(matches!(Doc.extract(b"not a compound file", &limits), Err(ExtractError::Malformed(_))));
    }

    #[test]
    fn an_oversized_document_is_cut_at_the_character_cap() {
        let limits = Limits { max_chars: 40, ..Limits::default() };
        let extracted = Doc.extract(&fixture("doc/harmless-clean.doc"), &limits).unwrap();
        assert!(extracted.chars() <= 40, "{extracted:?}");
        assert!(extracted.notes.iter().any(|n| n == "text truncated at 40 characters"), "{:?}", extracted.notes);
    }

    #[test]
    fn property_modifiers_are_sized_by_their_code() {
        // fInTable (1-byte), itap (4-byte), a variable one, then fTtp; a cut-short tail.
        let list = [0x16, 0x24, 1, 0x49, 0x66, 2, 0, 0, 0, 0x15, 0xC6, 2, 9, 9, 0x17, 0x24, 1, 0x40, 0x26];
        let mut seen = Vec::new();
        for_each_modifier(&list, |sprm, operand| seen.push((sprm, operand.to_vec())));
        assert_eq!(seen, [(0x2416, vec![1]), (0x6649, vec![2, 0, 0, 0]), (0xC615, vec![9, 9]), (0x2417, vec![1])]);
    }
}
