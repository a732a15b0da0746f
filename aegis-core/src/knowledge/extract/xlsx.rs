//! XLSX with calamine: sheet by sheet, 50 rows per section under the sheet's first row,
//! each section anchored by its cell range; dates as ISO dates, not serial numbers; the
//! total number of cells read is capped (a shared-strings amplification file can turn
//! 110 KB into millions of characters).

use std::io::Cursor;

use calamine::{Data, Reader};

use super::{Anchor, ExtractError, Extracted, Extractor, Limits, Section, SectionKind, markdown_table, ooxml::Package};

/// Excel workbooks.
pub struct Xlsx;

const ROWS_PER_SECTION: usize = 50;

/// `A`, `B`, … `Z`, `AA`, … for a 0-based column.
fn column_name(mut col: u32) -> String {
    let mut name = Vec::new();
    loop {
        name.push(b'A' + u8::try_from(col % 26).unwrap_or(0));
        if col < 26 {
            break;
        }
        col = col / 26 - 1;
    }
    name.reverse();
    String::from_utf8(name).unwrap_or_default()
}

fn cell_text(cell: &Data) -> String {
    match cell {
        Data::Empty => String::new(),
        Data::String(s) => s.clone(),
        Data::Int(i) => i.to_string(),
        Data::Float(f) => {
            if f.fract() == 0.0 && f.abs() < 1e15 {
                format!("{f:.0}")
            } else {
                f.to_string()
            }
        }
        Data::Bool(b) => if *b { "TRUE" } else { "FALSE" }.into(),
        Data::DateTime(dt) => if dt.is_duration() {
            dt.as_duration().map(|d| {
                let s = d.num_seconds();
                format!("{:02}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
            })
        } else {
            dt.as_datetime().map(|t| {
                if t.time() == chrono::NaiveTime::MIN {
                    t.date().format("%Y-%m-%d").to_string()
                } else {
                    t.format("%Y-%m-%dT%H:%M:%S").to_string()
                }
            })
        }
        .unwrap_or_else(|| dt.as_f64().to_string()),
        Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
        Data::Error(e) => format!("#{e:?}"),
    }
}

impl Extractor for Xlsx {
    fn extract(&self, bytes: &[u8], limits: &Limits) -> Result<Extracted, ExtractError> {
        // The package guards (encryption, bombs) before calamine reads it.
        drop(Package::open(bytes, limits)?);
        let mut workbook =
            calamine::Xlsx::new(Cursor::new(bytes)).map_err(|e| ExtractError::Malformed(format!("workbook: {e}")))?;
        let mut sections = Vec::new();
        let mut notes = Vec::new();
        let mut cells = 0usize;
        let mut chars = 0usize;
        'sheets: for name in workbook.sheet_names() {
            let range = match workbook.worksheet_range(&name) {
                Ok(range) => range,
                Err(e) => {
                    notes.push(format!("sheet {name}: not read ({e})"));
                    continue;
                }
            };
            let Some((first_row, first_col)) = range.start() else {
                notes.push(format!("sheet {name} has no cells"));
                continue;
            };
            let width = range.get_size().1;
            let last_col = first_col + u32::try_from(width.saturating_sub(1)).unwrap_or(0);
            let mut rows =
                range.rows().enumerate().map(|(i, row)| (first_row + u32::try_from(i).unwrap_or(u32::MAX), row));
            let Some((_, header)) = rows.next() else { continue };
            let header: Vec<String> = header.iter().map(cell_text).collect();
            let mut batch: Vec<(u32, Vec<String>)> = Vec::new();
            let emit = |batch: &mut Vec<(u32, Vec<String>)>, sections: &mut Vec<Section>| {
                let (Some((start, _)), Some((end, _))) = (batch.first(), batch.last()) else { return };
                let range = format!("{}{}:{}{}", column_name(first_col), start + 1, column_name(last_col), end + 1);
                let mut table = vec![header.clone()];
                table.extend(batch.drain(..).map(|(_, r)| r));
                sections.push(Section {
                    anchor: Anchor { sheet: Some(name.clone()), range: Some(range), ..Anchor::default() },
                    kind: SectionKind::Table,
                    text: markdown_table(&table),
                });
            };
            if header.iter().all(String::is_empty) {
                notes.push(format!("sheet {name}: its first row is empty"));
            }
            let mut any_row = false;
            for (row_no, row) in rows {
                let texts: Vec<String> = row.iter().map(cell_text).collect();
                if texts.iter().all(String::is_empty) {
                    continue;
                }
                cells += texts.len();
                chars += texts.iter().map(String::len).sum::<usize>();
                if cells > limits.max_cells || chars > limits.max_chars {
                    emit(&mut batch, &mut sections);
                    notes.push(format!(
                        "stopped in sheet {name} at row {}: more than {} cells or {} characters",
                        row_no + 1,
                        limits.max_cells,
                        limits.max_chars
                    ));
                    break 'sheets;
                }
                any_row = true;
                batch.push((row_no, texts));
                if batch.len() == ROWS_PER_SECTION {
                    emit(&mut batch, &mut sections);
                }
            }
            emit(&mut batch, &mut sections);
            if !any_row && !header.iter().all(String::is_empty) {
                sections.push(Section {
                    anchor: Anchor {
                        sheet: Some(name.clone()),
                        range: Some(format!("{}{}", column_name(first_col), first_row + 1)),
                        ..Anchor::default()
                    },
                    kind: SectionKind::Table,
                    text: markdown_table(std::slice::from_ref(&header)),
                });
            }
        }
        Ok(Extracted { sections, notes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_names() {
        assert_eq!(column_name(0), "A");
        assert_eq!(column_name(25), "Z");
        assert_eq!(column_name(26), "AA");
        assert_eq!(column_name(701), "ZZ");
        assert_eq!(column_name(702), "AAA");
    }
}
