//! Plain text, Markdown and CSV.

use super::{
    Anchor, ExtractError, Extracted, Extractor, Limits, Section, SectionKind, encoding::decode, markdown_table,
};

/// Groups paragraphs (blank-line separated) into sections of about `target` characters,
/// anchored by line range.
fn paragraphs(text: &str, headings: &[String], first_line: usize, target: usize) -> Vec<Section> {
    let mut sections = Vec::new();
    let mut current = String::new();
    let mut start = first_line;
    let mut line_no = first_line;
    let flush = |current: &mut String, start: usize, end: usize, sections: &mut Vec<Section>| {
        if !current.trim().is_empty() {
            sections.push(Section {
                anchor: Anchor {
                    range: Some(format!("lines {start}-{end}")),
                    headings: headings.to_vec(),
                    ..Anchor::default()
                },
                kind: SectionKind::Text,
                text: current.trim().to_owned(),
            });
        }
        current.clear();
    };
    for line in text.lines() {
        if line.trim().is_empty() && current.len() >= target {
            flush(&mut current, start, line_no, &mut sections);
            start = line_no + 1;
        } else {
            if current.is_empty() {
                start = line_no;
            }
            current.push_str(line);
            current.push('\n');
        }
        line_no += 1;
    }
    flush(&mut current, start, line_no.saturating_sub(1).max(start), &mut sections);
    sections
}

/// Plain text.
pub struct PlainText;

impl Extractor for PlainText {
    fn extract(&self, bytes: &[u8], _limits: &Limits) -> Result<Extracted, ExtractError> {
        Ok(read_plain(bytes, None))
    }
}

/// Reads plain text; `charset` is the encoding its carrier names (a MIME part's), if any.
pub(super) fn read_plain(bytes: &[u8], charset: Option<&'static encoding_rs::Encoding>) -> Extracted {
    let mut notes = Vec::new();
    let text = decode(bytes, charset, &mut notes);
    Extracted { sections: paragraphs(&text, &[], 1, 2000), notes }
}

/// Markdown: `#` headings give the heading path; table blocks stay tables.
pub struct Markdown;

impl Extractor for Markdown {
    fn extract(&self, bytes: &[u8], _limits: &Limits) -> Result<Extracted, ExtractError> {
        let mut notes = Vec::new();
        let text = decode(bytes, None, &mut notes);
        let mut sections = Vec::new();
        let mut headings: Vec<(usize, String)> = Vec::new();
        let mut block = String::new();
        let mut block_start = 1;
        let mut in_code = false;
        let path = |h: &[(usize, String)]| h.iter().map(|(_, t)| t.clone()).collect::<Vec<_>>();
        let emit = |block: &mut String, start: usize, headings: &[(usize, String)], sections: &mut Vec<Section>| {
            let mut table = Vec::new();
            let mut prose = String::new();
            for line in block.lines() {
                if line.trim_start().starts_with('|') {
                    table.push(line.trim().to_owned());
                } else {
                    if !table.is_empty() {
                        sections.push(Section {
                            anchor: Anchor { headings: path(headings), ..Anchor::default() },
                            kind: SectionKind::Table,
                            text: table.join("\n"),
                        });
                        table.clear();
                    }
                    prose.push_str(line);
                    prose.push('\n');
                }
            }
            sections.extend(paragraphs(&prose, &path(headings), start, 2000));
            if !table.is_empty() {
                sections.push(Section {
                    anchor: Anchor { headings: path(headings), ..Anchor::default() },
                    kind: SectionKind::Table,
                    text: table.join("\n"),
                });
            }
            block.clear();
        };
        for (i, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("```") {
                in_code = !in_code;
            }
            let level = line.chars().take_while(|c| *c == '#').count();
            if !in_code && (1..=6).contains(&level) && line[level..].starts_with(' ') {
                emit(&mut block, block_start, &headings, &mut sections);
                headings.retain(|(l, _)| *l < level);
                headings.push((level, line[level..].trim().trim_end_matches('#').trim().to_owned()));
                block_start = i + 2;
                block.push_str(line.trim_start_matches('#').trim());
                block.push('\n');
                continue;
            }
            block.push_str(line);
            block.push('\n');
        }
        emit(&mut block, block_start, &headings, &mut sections);
        Ok(Extracted { sections, notes })
    }
}

/// CSV (or TSV, sniffed from the first line): markdown rows, 50 per section, each
/// section repeating the header row.
pub struct Csv;

const ROWS_PER_SECTION: usize = 50;

impl Extractor for Csv {
    fn extract(&self, bytes: &[u8], limits: &Limits) -> Result<Extracted, ExtractError> {
        let mut notes = Vec::new();
        let text = decode(bytes, None, &mut notes);
        let first = text.lines().next().unwrap_or_default();
        let delimiter = if first.contains('\t') && !first.contains(',') {
            b'\t'
        } else if first.contains(';') && !first.contains(',') {
            b';'
        } else {
            b','
        };
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .has_headers(false)
            .flexible(true)
            .from_reader(text.as_bytes());
        let mut rows: Vec<Vec<String>> = Vec::new();
        let mut cells = 0usize;
        for record in reader.records() {
            let record = record.map_err(|e| ExtractError::Malformed(format!("CSV: {e}")))?;
            cells += record.len();
            if cells > limits.max_cells {
                notes.push(format!("stopped after {} rows: more than {} cells", rows.len(), limits.max_cells));
                break;
            }
            rows.push(record.iter().map(str::to_owned).collect());
        }
        let Some(header) = rows.first().cloned() else { return Ok(Extracted { sections: vec![], notes }) };
        let sections = rows[1..]
            .chunks(ROWS_PER_SECTION)
            .enumerate()
            .map(|(i, chunk)| {
                let first_row = i * ROWS_PER_SECTION + 2;
                let mut table = vec![header.clone()];
                table.extend(chunk.iter().cloned());
                Section {
                    anchor: Anchor {
                        range: Some(format!("rows {first_row}-{}", first_row + chunk.len() - 1)),
                        ..Anchor::default()
                    },
                    kind: SectionKind::Table,
                    text: markdown_table(&table),
                }
            })
            .collect::<Vec<_>>();
        let sections = if sections.is_empty() {
            vec![Section {
                anchor: Anchor { range: Some("rows 1-1".into()), ..Anchor::default() },
                kind: SectionKind::Table,
                text: markdown_table(&rows),
            }]
        } else {
            sections
        };
        Ok(Extracted { sections, notes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_keeps_the_heading_path_and_tables() {
        let md = "# Policies\nIntro.\n## Refunds\nWithin 14 days.\n\n| a | b |\n|---|---|\n| 1 | 2 |\n# Other\nText";
        let e = Markdown.extract(md.as_bytes(), &Limits::default()).unwrap();
        let refunds = e.sections.iter().find(|s| s.text.contains("14 days")).unwrap();
        assert_eq!(refunds.anchor.headings, ["Policies", "Refunds"]);
        let table = e.sections.iter().find(|s| s.kind == SectionKind::Table).unwrap();
        assert_eq!(table.text.lines().count(), 3);
        assert_eq!(e.sections.last().unwrap().anchor.headings, ["Other"]);
    }

    #[test]
    fn csv_becomes_markdown_rows_with_ranges() {
        let csv = "name,\"city, country\"\nAna,\"Zürich, CH\"\nBo,Oslo\n";
        let e = Csv.extract(csv.as_bytes(), &Limits::default()).unwrap();
        assert_eq!(e.sections[0].anchor.range.as_deref(), Some("rows 2-3"));
        assert!(e.sections[0].text.contains("| Ana | Zürich, CH |"), "{}", e.sections[0].text);
    }
}
