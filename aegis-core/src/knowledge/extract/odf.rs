//! OpenDocument text (`.odt`) and presentations (`.odp`), the formats LibreOffice saves by
//! default, with zip + quick-xml like OOXML (the same zip-bomb guards). A text document is
//! laid out as DOCX is, through the same [`Outline`]: headings (`text:h` with its outline
//! level) give the heading path, tables become markdown rows, text boxes are read in
//! place; footnotes, comments, headers and footers (from the master pages in
//! `styles.xml`) are parts of their own. A presentation is laid out as PPTX is: each page a
//! section `Slide N: <title>`, its tables as markdown rows, its speaker notes a section.
//! Tracked deletions, list labels, alt text and document metadata are not text.

use std::collections::HashSet;

use quick_xml::{
    Reader,
    events::{BytesStart, Event},
};

use super::{
    ExtractError, Extracted, Extractor, Limits, Section,
    ooxml::{Package, attr, resolve_ref},
    or_note,
    outline::{Part, Parts},
    slide_sections,
};

/// OpenDocument text documents.
pub struct Odt;

/// OpenDocument presentations.
pub struct Odp;

/// The most spaces one `text:s` element stands for.
const MAX_SPACES: usize = 1024;

/// Presentation frames that hold page furniture (numbers, dates, footers), not content.
const FURNITURE: [&str; 5] = ["page-number", "date-time", "footer", "header", "page"];

fn content(package: &mut Package<'_>) -> Result<String, ExtractError> {
    package.part("content.xml")?.ok_or_else(|| ExtractError::Malformed("content.xml is missing".into()))
}

impl Extractor for Odt {
    fn extract(&self, bytes: &[u8], limits: &Limits) -> Result<Extracted, ExtractError> {
        let mut package = Package::open(bytes, limits)?;
        let body = content(&mut package)?;
        let mut sections = read_text(&body, Some(Part::Body))?;
        let mut notes = Vec::new();
        // Headers and footers live in the master pages; damaged styles are a note.
        if let Some(styles) = package.part("styles.xml")?
            && let Some(parts) =
                or_note(read_text(&styles, None), &mut notes, |e| format!("styles.xml not read ({e})"))?
        {
            let mut seen = HashSet::new();
            sections.extend(parts.into_iter().filter(|s| seen.insert(s.text.clone())));
        }
        Ok(Extracted { sections, notes })
    }
}

impl Extractor for Odp {
    fn extract(&self, bytes: &[u8], limits: &Limits) -> Result<Extracted, ExtractError> {
        let mut package = Package::open(bytes, limits)?;
        let pages = read_pages(&content(&mut package)?)?;
        let mut notes = Vec::new();
        if pages.is_empty() {
            notes.push("the presentation has no slides".into());
        }
        let mut sections = Vec::new();
        for (i, page) in pages.into_iter().enumerate() {
            let number = u32::try_from(i + 1).unwrap_or(u32::MAX);
            sections.extend(slide_sections(number, &page.title.join(" "), &page.bodies, page.tables, &page.notes));
        }
        Ok(Extracted { sections, notes })
    }
}

/// The paragraphs and tables being read: open paragraphs (a text box's nest inside its
/// anchor's) and open tables (nested ones flattened into their cell), and what is skipped.
#[derive(Default)]
struct Blocks {
    paragraphs: Vec<(String, Option<usize>)>,
    tables: Vec<Vec<Vec<String>>>,
    /// Depth inside an element that holds no text (a deletion, a list label, alt text).
    skip: usize,
}

/// What a finished block is.
enum Block {
    Paragraph(String, Option<usize>),
    Table(Vec<Vec<String>>),
}

impl Blocks {
    /// Handles one event; returns a finished top-level paragraph or table.
    fn event(&mut self, event: &Event<'_>) -> Option<Block> {
        match event {
            Event::Start(e) if self.skip > 0 || skipped(e) => {
                self.skip += 1;
                None
            }
            Event::End(_) if self.skip > 0 => {
                self.skip -= 1;
                None
            }
            _ if self.skip > 0 => None,
            Event::Start(e) => {
                match e.local_name().as_ref() {
                    "p" => self.paragraphs.push((String::new(), None)),
                    "h" => {
                        let level =
                            attr(e, "outline-level").and_then(|l| l.parse().ok()).filter(|l| (1..=9).contains(l));
                        self.paragraphs.push((String::new(), Some(level.unwrap_or(1))));
                    }
                    "table" => self.tables.push(Vec::new()),
                    "table-row" => {
                        if let Some(table) = self.tables.last_mut() {
                            table.push(Vec::new());
                        }
                    }
                    "table-cell" | "covered-table-cell" => {
                        if let Some(row) = self.tables.last_mut().and_then(|t| t.last_mut()) {
                            row.push(String::new());
                        }
                    }
                    _ => {}
                }
                None
            }
            Event::Empty(e) => {
                match e.local_name().as_ref() {
                    "s" => {
                        let count = attr(e, "c").and_then(|c| c.parse().ok()).unwrap_or(1usize);
                        self.push_text(&" ".repeat(count.min(MAX_SPACES)));
                    }
                    "tab" => self.push_text("\t"),
                    "line-break" => self.push_text("\n"),
                    "table-cell" | "covered-table-cell" => {
                        if let Some(row) = self.tables.last_mut().and_then(|t| t.last_mut()) {
                            row.push(String::new());
                        }
                    }
                    _ => {}
                }
                None
            }
            Event::End(e) => match e.local_name().as_ref() {
                "p" | "h" => self.end_paragraph(),
                "table" => self.end_table(),
                _ => None,
            },
            Event::Text(t) => {
                let text = t.xml10_content();
                self.push_text(&text);
                None
            }
            Event::GeneralRef(r) => {
                if let Some(c) = resolve_ref(r.clone()) {
                    self.push_text(c.encode_utf8(&mut [0; 4]));
                }
                None
            }
            _ => None,
        }
    }

    fn push_text(&mut self, text: &str) {
        if let Some((p, _)) = self.paragraphs.last_mut() {
            p.push_str(text);
        }
    }

    fn end_paragraph(&mut self) -> Option<Block> {
        let (text, level) = self.paragraphs.pop()?;
        let text = text.trim();
        if let Some(cell) = self.tables.last_mut().and_then(|t| t.last_mut()).and_then(|r| r.last_mut()) {
            if !cell.is_empty() && !text.is_empty() {
                cell.push(' ');
            }
            cell.push_str(text);
            return None;
        }
        Some(Block::Paragraph(text.to_owned(), level))
    }

    fn end_table(&mut self) -> Option<Block> {
        let rows = self.tables.pop()?;
        if let Some(cell) = self.tables.last_mut().and_then(|t| t.last_mut()).and_then(|r| r.last_mut()) {
            let rows = rows.iter().filter(|r| r.iter().any(|c| !c.is_empty()));
            let flat = rows.map(|r| r.join(" ")).collect::<Vec<_>>().join("; ");
            if !flat.is_empty() {
                cell.push(' ');
                cell.push_str(&flat);
            }
            return None;
        }
        Some(Block::Table(rows))
    }
}

/// Elements whose content is not the document's text: tracked deletions (and the rest of
/// the change log), a note's citation mark, list labels, alt text and metadata.
fn skipped(e: &BytesStart<'_>) -> bool {
    let name = e.name();
    let name = name.as_ref();
    name.starts_with("svg:")
        || name.starts_with("dc:")
        || matches!(e.local_name().as_ref(), "tracked-changes" | "note-citation" | "number" | "deletion")
}

fn xml_error(part: &str) -> impl Fn(quick_xml::Error) -> ExtractError + '_ {
    move |e| ExtractError::Malformed(format!("{part}: {e}"))
}

/// A text document part's sections. `base` is where paragraphs outside notes, comments,
/// headers and footers go (`None`: nowhere, for `styles.xml`).
fn read_text(xml: &str, base: Option<Part>) -> Result<Vec<Section>, ExtractError> {
    let mut parts = Parts::new();
    let mut targets: Vec<Part> = Vec::new();
    let mut blocks = Blocks::default();
    let mut reader = Reader::from_str(xml);
    loop {
        let event = reader.read_event().map_err(xml_error("document XML"))?;
        if blocks.skip == 0 {
            match &event {
                Event::Start(e) => match e.local_name().as_ref() {
                    "note-body" => targets.push(Part::Footnotes),
                    "annotation" => targets.push(Part::Comments),
                    "header" | "header-left" | "header-first" => targets.push(Part::Header),
                    "footer" | "footer-left" | "footer-first" => targets.push(Part::Footer),
                    _ => {}
                },
                Event::End(e)
                    if matches!(
                        e.local_name().as_ref(),
                        "note-body"
                            | "annotation"
                            | "header"
                            | "header-left"
                            | "header-first"
                            | "footer"
                            | "footer-left"
                            | "footer-first"
                    ) =>
                {
                    targets.pop();
                }
                Event::Eof => break,
                _ => {}
            }
        } else if matches!(event, Event::Eof) {
            break;
        }
        let Some(block) = blocks.event(&event) else { continue };
        let Some(part) = targets.last().copied().or(base) else { continue };
        match block {
            Block::Paragraph(text, level) => parts.paragraph(part, &text, level),
            Block::Table(rows) => parts.table(part, rows),
        }
    }
    Ok(parts.finish())
}

/// What a presentation page says.
#[derive(Default)]
struct Page {
    title: Vec<String>,
    bodies: Vec<String>,
    tables: Vec<Vec<Vec<String>>>,
    notes: Vec<String>,
}

/// The pages of a presentation's `content.xml`, in order.
fn read_pages(xml: &str) -> Result<Vec<Page>, ExtractError> {
    let mut pages: Vec<Page> = Vec::new();
    let mut blocks = Blocks::default();
    // The presentation class of each open frame, and the depth inside speaker notes.
    let mut frames: Vec<Option<String>> = Vec::new();
    let mut in_notes = 0usize;
    let mut reader = Reader::from_str(xml);
    loop {
        let event = reader.read_event().map_err(xml_error("presentation XML"))?;
        if blocks.skip == 0 {
            match &event {
                Event::Start(e) => match e.local_name().as_ref() {
                    "page" if in_notes == 0 => pages.push(Page::default()),
                    "frame" | "custom-shape" => frames.push(attr(e, "class")),
                    "notes" => in_notes += 1,
                    _ => {}
                },
                Event::End(e) => match e.local_name().as_ref() {
                    "frame" | "custom-shape" => {
                        frames.pop();
                    }
                    "notes" => in_notes = in_notes.saturating_sub(1),
                    _ => {}
                },
                Event::Eof => break,
                _ => {}
            }
        } else if matches!(event, Event::Eof) {
            break;
        }
        let Some(block) = blocks.event(&event) else { continue };
        let Some(page) = pages.last_mut() else { continue };
        let class = frames.last().cloned().flatten();
        if class.as_deref().is_some_and(|c| FURNITURE.contains(&c)) {
            continue;
        }
        match block {
            Block::Paragraph(text, _) if text.is_empty() => {}
            Block::Paragraph(text, _) if in_notes > 0 => page.notes.push(text),
            Block::Paragraph(text, _) if class.as_deref() == Some("title") => page.title.push(text),
            Block::Paragraph(text, _) => page.bodies.push(text),
            Block::Table(mut rows) if in_notes == 0 => {
                rows.retain(|r| r.iter().any(|c| !c.trim().is_empty()));
                if !rows.is_empty() {
                    page.tables.push(rows);
                }
            }
            Block::Table(_) => {}
        }
    }
    Ok(pages)
}

#[cfg(test)]
mod tests {
    use std::io::{Cursor, Write};

    use super::*;
    use crate::knowledge::extract::{Format, corpus, docx::Docx, fixture, pptx::Pptx};

    /// An OpenDocument text package whose body is `body`.
    fn odt(body: &str) -> Vec<u8> {
        let content = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:draw="urn:oasis:names:tc:opendocument:xmlns:drawing:1.0" xmlns:svg="urn:oasis:names:tc:opendocument:xmlns:svg-compatible:1.0"><office:body><office:text>{body}</office:text></office:body></office:document-content>"#
        );
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let stored = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        zip.start_file("mimetype", stored).unwrap();
        zip.write_all(b"application/vnd.oasis.opendocument.text").unwrap();
        zip.start_file("content.xml", zip::write::SimpleFileOptions::default()).unwrap();
        zip.write_all(content.as_bytes()).unwrap();
        zip.finish().unwrap().into_inner()
    }

    #[test]
    fn documents_saved_as_odt_read_like_their_docx_originals() {
        for name in ["gen-docx-003-4p", "hdr-header-footer", "footnotes", "textbox", "nested_table"] {
            let odt = fixture(&format!("odf/{name}.odt"));
            assert_eq!(Format::detect("upload", &odt), Some(Format::Odt), "{name} sniffed from its mimetype");
            let original = if name.starts_with("gen-") {
                corpus(&format!("generated/docx/{name}.docx"))
            } else {
                corpus(&format!("real/docx/{name}.docx"))
            };
            let docx = Docx.extract(&original, &Limits::default()).unwrap();
            assert_eq!(Odt.extract(&odt, &Limits::default()).unwrap().sections, docx.sections, "{name}");
        }
    }

    #[test]
    fn decks_saved_as_odp_read_like_their_pptx_originals() {
        for (name, original) in
            [("gen-pptx-004-6s", "generated/pptx/gen-pptx-004-6s.pptx"), ("tbl-cell", "real/pptx/tbl-cell.pptx")]
        {
            let odp = fixture(&format!("odf/{name}.odp"));
            assert_eq!(Format::detect("upload", &odp), Some(Format::Odp), "{name}");
            let pptx = Pptx.extract(&corpus(original), &Limits::default()).unwrap();
            assert_eq!(Odp.extract(&odp, &Limits::default()).unwrap().sections, pptx.sections, "{name}");
        }
    }

    #[test]
    fn what_is_not_text_stays_out_and_comments_are_their_own_part() {
        let body = r#"<text:h text:outline-level="2">Freight <text:s text:c="2"/>costs</text:h>
            <text:p>Paid<text:tab/>on time<text:note><text:note-citation>7</text:note-citation><text:note-body><text:p>Per contract</text:p></text:note-body></text:note>.<office:annotation><dc:creator>Marta</dc:creator><dc:date>2024-01-02</dc:date><text:p>Check Q3</text:p></office:annotation></text:p>
            <text:tracked-changes><text:changed-region><text:deletion><text:p>Withdrawn clause</text:p></text:deletion></text:changed-region></text:tracked-changes>
            <text:list><text:list-item><text:number>1.</text:number><text:p>First <draw:frame><svg:desc>a photo</svg:desc></draw:frame>item</text:p></text:list-item></text:list>
            <table:table><table:table-row><table:table-cell><text:p>a</text:p></table:table-cell><table:covered-table-cell/><table:table-cell><text:p>c</text:p></table:table-cell></table:table-row></table:table>"#;
        let extracted = Odt.extract(&odt(body), &Limits::default()).unwrap();
        let texts: Vec<(Option<&str>, &str)> =
            extracted.sections.iter().map(|s| (s.anchor.part.as_deref(), s.text.as_str())).collect();
        assert_eq!(
            texts,
            [
                (None, "Freight   costs\nPaid\ton time.\nFirst item"),
                (None, "| a |  | c |\n| --- | --- | --- |"),
                (Some("footnotes"), "Per contract"),
                (Some("comments"), "Check Q3"),
            ]
        );
        assert_eq!(extracted.sections[0].anchor.headings, ["Freight   costs"]);
    }

    #[test]
    fn a_damaged_package_is_a_clear_error() {
        let limits = Limits::default();
        let mut cut = fixture("odf/footnotes.odt");
        cut.truncate(cut.len() / 2);
        assert!(matches!(Odt.extract(&cut, &limits), Err(ExtractError::Malformed(_))));
        let broken = odt("<text:p>unclosed <text:span></text:p>");
        assert!(matches!(Odt.extract(&broken, &limits), Err(ExtractError::Malformed(_))));
        assert!(matches!(Odp.extract(&odt("<text:p>text</text:p>"), &limits), Ok(e) if e.sections.is_empty()));
    }
}
