//! Words a PDF hyphenated across a line break, joined again. Typesetters that hyphenate
//! (TeX, InDesign) break `manipulation` as `manip-` at a line's end and `ulation` at the
//! next one's start, and keyword search then finds neither half. A line that ends in a
//! letter and a hyphen, followed by one that starts with a lowercase letter, is joined to
//! it. A compound broken at its own hyphen (`well-` / `known`) cannot be told apart by
//! its shape, so the document decides: the hyphen is kept where the document writes the
//! hyphenated form elsewhere and never the joined one. Otherwise it is dropped, as PDFium
//! does.

use std::collections::HashSet;

use super::Section;

/// Joins the words broken across line breaks in `sections`, with the document's own words
/// as the evidence for keeping a compound's hyphen.
pub(super) fn join_broken_words(sections: &mut [Section]) {
    if !sections.iter().any(|s| s.text.contains("-\n")) {
        return;
    }
    let words: HashSet<String> = sections
        .iter()
        .flat_map(|s| s.text.split(|c: char| !c.is_alphanumeric() && c != '-'))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    for section in sections {
        if section.text.contains("-\n") {
            section.text = join_in(&section.text, &words);
        }
    }
}

fn join_in(text: &str, words: &HashSet<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let lines: Vec<&str> = text.split('\n').collect();
    let mut joined_to_previous = false;
    for (i, line) in lines.iter().enumerate() {
        let line = if joined_to_previous { line.trim_start() } else { line };
        joined_to_previous = false;
        let Some(next) = lines.get(i + 1).map(|l| l.trim_start()) else {
            out.push_str(line);
            break;
        };
        let stem = line.trim_end().strip_suffix('-');
        let broken = stem.filter(|stem| {
            stem.chars().next_back().is_some_and(char::is_alphabetic)
                && next.chars().next().is_some_and(char::is_lowercase)
        });
        let Some(stem) = broken else {
            out.push_str(line);
            out.push('\n');
            continue;
        };
        out.push_str(stem);
        let first = stem.rsplit(|c: char| !c.is_alphanumeric() && c != '-').next().unwrap_or_default();
        let second: String = next.chars().take_while(|c| c.is_alphanumeric()).collect();
        let hyphenated = format!("{first}-{second}").to_lowercase();
        let whole = format!("{first}{second}").to_lowercase();
        if words.contains(&hyphenated) && !words.contains(&whole) {
            out.push('-');
        }
        joined_to_previous = true;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::join_broken_words;
    use crate::knowledge::extract::{Anchor, Section, SectionKind};

    fn joined(pages: &[&str]) -> Vec<String> {
        let mut sections: Vec<Section> = pages
            .iter()
            .map(|t| Section { anchor: Anchor::default(), kind: SectionKind::Text, text: (*t).to_owned() })
            .collect();
        join_broken_words(&mut sections);
        sections.into_iter().map(|s| s.text).collect()
    }

    #[test]
    fn a_word_broken_at_a_line_end_is_whole_again() {
        assert_eq!(joined(&["DER manip-\n  ulation of\nthe tree"]), ["DER manipulation of\nthe tree"]);
        assert_eq!(joined(&["the ASN-\n1 parser", "CO-\nOperation"]), ["the ASN-\n1 parser", "CO-\nOperation"]);
        assert_eq!(joined(&["a dash -\nthen", "ends with-"]), ["a dash -\nthen", "ends with-"]);
    }

    #[test]
    fn a_compound_the_document_writes_with_its_hyphen_keeps_it() {
        let pages = joined(&["a well-\nknown fact", "as is well-known"]);
        assert_eq!(pages[0], "a well-known fact");
        let pages = joined(&["a well-\nknown fact", "nothing else"]);
        assert_eq!(pages[0], "a wellknown fact", "no evidence: dropped, as PDFium does");
        let pages = joined(&["declara-\ntions", "the declarations and the declara-tions"]);
        assert_eq!(pages[0], "declarations", "the joined word written elsewhere wins");
    }
}
