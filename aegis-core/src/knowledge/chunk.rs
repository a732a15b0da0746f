//! Chunking: sections become chunks of about `target_tokens`, with `overlap_tokens` of the
//! previous chunk repeated at the start of the next, never crossing a section (so each
//! chunk keeps its section's anchor) and never splitting a table row: a table chunk
//! repeats the table's header row.
//!
//! Tokens are estimated without a model vocabulary: a CJK character counts as one token,
//! any other run of characters as one token per four characters (at least one per word),
//! close to what BPE tokenizers give for English and conservative for other scripts.

use serde::{Deserialize, Serialize};

use super::extract::{Anchor, Extracted, SectionKind};

/// Chunk sizes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ChunkOptions {
    /// Target size in tokens.
    pub target_tokens: usize,
    /// Tokens of the previous chunk repeated at the start of the next.
    pub overlap_tokens: usize,
}

impl Default for ChunkOptions {
    fn default() -> Self {
        Self { target_tokens: 320, overlap_tokens: 48 }
    }
}

/// A chunk of a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Position in the document.
    pub ordinal: usize,
    /// Where it came from.
    pub anchor: Anchor,
    /// The text.
    pub text: String,
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xAC00..=0xD7AF | 0xF900..=0xFAFF | 0x20000..=0x2FFFF)
}

/// Estimated tokens of `text`.
pub fn estimate_tokens(text: &str) -> usize {
    text.split_whitespace()
        .map(|word| {
            let cjk = word.chars().filter(|c| is_cjk(*c)).count();
            let other = word.chars().count() - cjk;
            cjk + other.div_ceil(4).max(usize::from(cjk == 0))
        })
        .sum()
}

/// Splits prose into units no larger than the target: lines, then sentences, then words.
fn units(text: &str, target: usize) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if estimate_tokens(line) <= target {
            out.push(line.to_owned());
            continue;
        }
        let mut sentence = String::new();
        for word in line.split_whitespace() {
            if !sentence.is_empty() {
                sentence.push(' ');
            }
            sentence.push_str(word);
            let ends = word.ends_with(['.', '!', '?', '。', '！', '？']);
            if ends || estimate_tokens(&sentence) >= target {
                out.push(std::mem::take(&mut sentence));
            }
        }
        if !sentence.is_empty() {
            out.push(sentence);
        }
    }
    out
}

/// Chunks every section of `extracted`.
pub fn chunk(extracted: &Extracted, options: &ChunkOptions) -> Vec<Chunk> {
    let target = options.target_tokens.max(16);
    let overlap = options.overlap_tokens.min(target / 2);
    let mut chunks = Vec::new();
    let push = |anchor: &Anchor, text: String, chunks: &mut Vec<Chunk>| {
        if !text.trim().is_empty() {
            chunks.push(Chunk { ordinal: chunks.len(), anchor: anchor.clone(), text });
        }
    };
    for section in &extracted.sections {
        match section.kind {
            SectionKind::Table => {
                let lines: Vec<&str> = section.text.lines().collect();
                let header_len = if lines.get(1).is_some_and(|l| l.trim_start().starts_with("| ---")) { 2 } else { 0 };
                let header = lines[..header_len.min(lines.len())].join("\n");
                let header_tokens = estimate_tokens(&header);
                let mut current: Vec<&str> = Vec::new();
                let mut tokens = header_tokens;
                for row in &lines[header_len.min(lines.len())..] {
                    let row_tokens = estimate_tokens(row);
                    if !current.is_empty() && tokens + row_tokens > target {
                        push(&section.anchor, with_header(&header, &current), &mut chunks);
                        current.clear();
                        tokens = header_tokens;
                    }
                    current.push(row);
                    tokens += row_tokens;
                }
                if !current.is_empty() || header_len == lines.len() {
                    push(&section.anchor, with_header(&header, &current), &mut chunks);
                }
            }
            SectionKind::Text => {
                let units = units(&section.text, target);
                let mut current: Vec<String> = Vec::new();
                let mut tokens = 0;
                for unit in units {
                    let unit_tokens = estimate_tokens(&unit);
                    if !current.is_empty() && tokens + unit_tokens > target {
                        push(&section.anchor, current.join("\n"), &mut chunks);
                        // Carry the tail of this chunk into the next.
                        let mut carried = Vec::new();
                        let mut carried_tokens = 0;
                        for previous in current.iter().rev() {
                            let t = estimate_tokens(previous);
                            if carried_tokens + t > overlap {
                                break;
                            }
                            carried.insert(0, previous.clone());
                            carried_tokens += t;
                        }
                        current = carried;
                        tokens = carried_tokens;
                    }
                    current.push(unit);
                    tokens += unit_tokens;
                }
                if !current.is_empty() {
                    push(&section.anchor, current.join("\n"), &mut chunks);
                }
            }
        }
    }
    chunks
}

fn with_header(header: &str, rows: &[&str]) -> String {
    if header.is_empty() {
        rows.join("\n")
    } else if rows.is_empty() {
        header.to_owned()
    } else {
        format!("{header}\n{}", rows.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::knowledge::extract::Section;

    fn doc(kind: SectionKind, text: &str) -> Extracted {
        Extracted {
            sections: vec![Section { anchor: Anchor { page: Some(3), ..Anchor::default() }, kind, text: text.into() }],
            notes: vec![],
        }
    }

    #[test]
    fn prose_is_cut_near_the_target_with_overlap() {
        let text = (0..200).map(|i| format!("Sentence number {i} is about refunds.")).collect::<Vec<_>>().join(" ");
        let chunks = chunk(&doc(SectionKind::Text, &text), &ChunkOptions { target_tokens: 60, overlap_tokens: 12 });
        assert!(chunks.len() > 10);
        for pair in chunks.windows(2) {
            assert!(estimate_tokens(&pair[0].text) <= 60 + 12);
            let last_line = pair[0].text.lines().last().unwrap();
            assert!(pair[1].text.starts_with(last_line), "the overlap repeats the previous tail");
        }
        assert!(chunks.iter().all(|c| c.anchor.page == Some(3)));
    }

    #[test]
    fn tables_are_cut_between_rows_and_repeat_their_header() {
        let mut rows = vec!["| id | name |".to_owned(), "| --- | --- |".to_owned()];
        rows.extend((0..100).map(|i| format!("| {i} | a rather long product name number {i} |")));
        let chunks =
            chunk(&doc(SectionKind::Table, &rows.join("\n")), &ChunkOptions { target_tokens: 80, overlap_tokens: 0 });
        assert!(chunks.len() > 3);
        for c in &chunks {
            assert!(c.text.starts_with("| id | name |\n| --- | --- |"));
            assert!(c.text.lines().all(|l| l.starts_with('|') && l.ends_with('|')), "no row is split");
        }
        let all_rows: usize = chunks.iter().map(|c| c.text.lines().count() - 2).sum();
        assert_eq!(all_rows, 100);
    }

    #[test]
    fn cjk_counts_per_character() {
        assert_eq!(estimate_tokens("退款政策"), 4);
        assert_eq!(estimate_tokens("refund policy"), 2 + 2);
    }
}
