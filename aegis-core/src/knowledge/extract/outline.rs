//! Sections of a word-processing document, built from its paragraphs and tables in
//! reading order: consecutive prose paragraphs form one section under their heading path,
//! a heading starts a new one, a table is a section of markdown rows. Shared by the DOCX,
//! legacy Word, OpenDocument and RTF readers, which differ only in how they find
//! paragraphs.

use std::collections::HashSet;

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

/// A part of a word-processing document with an outline of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Part {
    Body,
    Footnotes,
    Comments,
    Header,
    Footer,
}

impl Part {
    /// Every part, in the order their sections come out.
    pub(super) const ALL: [Part; 5] = [Part::Body, Part::Footnotes, Part::Comments, Part::Header, Part::Footer];

    /// The anchor's `part` label (`None`: the body).
    fn label(self) -> Option<&'static str> {
        match self {
            Part::Body => None,
            Part::Footnotes => Some("footnotes"),
            Part::Comments => Some("comments"),
            Part::Header => Some("header"),
            Part::Footer => Some("footer"),
        }
    }
}

/// One [`Outline`] per [`Part`]. A header's or footer's paragraph is kept once: they repeat
/// with every section or master page of the document.
pub(super) struct Parts {
    outlines: [Outline; 5],
    repeated: HashSet<(Part, String)>,
}

impl Parts {
    pub(super) fn new() -> Self {
        Self { outlines: Part::ALL.map(|p| Outline::new(p.label())), repeated: HashSet::new() }
    }

    /// A paragraph of `part`; `level` makes it a heading of the body.
    pub(super) fn paragraph(&mut self, part: Part, text: &str, level: Option<usize>) {
        if matches!(part, Part::Header | Part::Footer) {
            let text = text.trim();
            if !text.is_empty() && self.repeated.insert((part, text.to_owned())) {
                self.outlines[part as usize].paragraph(text, None);
            }
            return;
        }
        self.outlines[part as usize].paragraph(text, level);
    }

    /// A table of `part`.
    pub(super) fn table(&mut self, part: Part, rows: Vec<Vec<String>>) {
        self.outlines[part as usize].table(rows);
    }

    /// The sections: the body's, then each other part's.
    pub(super) fn finish(self) -> Vec<Section> {
        self.outlines.into_iter().flat_map(Outline::finish).collect()
    }
}
