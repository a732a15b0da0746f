//! Sections of a word-processing document, built from its paragraphs and tables in
//! reading order: consecutive prose paragraphs form one section under their heading path,
//! a heading starts a new one, a table is a section of markdown rows. Shared by the DOCX
//! (XML) and legacy Word (binary) readers, which differ only in how they find paragraphs.

use super::{Anchor, Section, SectionKind, markdown_table};

/// Collects a document part's sections.
pub(super) struct Outline {
    part: Option<&'static str>,
    sections: Vec<Section>,
    headings: Vec<(usize, String)>,
    prose: Vec<String>,
}

impl Outline {
    /// An outline of the body (`part` `None`) or of another part (`footnotes`, `header`),
    /// whose paragraphs never become headings.
    pub(super) fn new(part: Option<&'static str>) -> Self {
        Self { part, sections: Vec::new(), headings: Vec::new(), prose: Vec::new() }
    }

    /// A paragraph outside any table; `level` (1-based) makes it a heading.
    pub(super) fn paragraph(&mut self, text: &str, level: Option<usize>) {
        let text = text.trim();
        if text.is_empty() {
            return;
        }
        if let Some(level) = level.filter(|_| self.part.is_none()) {
            self.flush_prose();
            self.headings.retain(|(l, _)| *l < level);
            self.headings.push((level, text.to_owned()));
        }
        self.prose.push(text.to_owned());
    }

    /// A table; rows with no text are dropped.
    pub(super) fn table(&mut self, rows: Vec<Vec<String>>) {
        let rows: Vec<Vec<String>> = rows.into_iter().filter(|r| r.iter().any(|c| !c.trim().is_empty())).collect();
        if rows.is_empty() {
            return;
        }
        self.flush_prose();
        self.sections.push(Section { anchor: self.anchor(), kind: SectionKind::Table, text: markdown_table(&rows) });
    }

    /// The sections, in reading order.
    pub(super) fn finish(mut self) -> Vec<Section> {
        self.flush_prose();
        self.sections
    }

    fn anchor(&self) -> Anchor {
        Anchor {
            headings: self.headings.iter().map(|(_, h)| h.clone()).collect(),
            part: self.part.map(str::to_owned),
            ..Anchor::default()
        }
    }

    fn flush_prose(&mut self) {
        if !self.prose.is_empty() {
            let text = self.prose.join("\n");
            self.prose.clear();
            self.sections.push(Section { anchor: self.anchor(), kind: SectionKind::Text, text });
        }
    }
}
