//! Laying extracted text out the same way across readers: markdown tables, the sections of
//! a slide, the parts of a file held inside another (an attachment, a file of an
//! archive), and the cap on characters.

use super::Extracted;
#[cfg(feature = "office-docs")]
use super::{Anchor, Section, SectionKind};

/// Adds what a file inside another gave (an attachment, a file of an archive), each of its
/// sections a part labelled `label` (its own parts kept after it: `attachment a.docx,
/// footnotes`), its notes labelled so.
pub(super) fn add_as_part(extracted: &mut Extracted, label: &str, read: Extracted) {
    extracted.notes.extend(read.notes.into_iter().map(|note| format!("{label}: {note}")));
    for mut section in read.sections {
        section.anchor.part = Some(match section.anchor.part.take() {
            Some(inner) => format!("{label}, {inner}"),
            None => label.to_owned(),
        });
        extracted.sections.push(section);
    }
}

/// A slide's sections as the legacy PowerPoint and OpenDocument readers lay them out:
/// `Slide N: <title>` with the bodies under it, each table, then the speaker notes.
#[cfg(feature = "office-docs")]
pub(super) fn slide_sections(
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
pub(super) fn cap_chars(extracted: &mut Extracted, max: usize) {
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

#[cfg(test)]
mod tests {
    use super::super::{Anchor, Section, SectionKind};
    use super::*;

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
