//! Workbooks calamine reads a whole sheet at a time: legacy Excel (`.xls`, BIFF8 inside an
//! OLE compound file), Excel binary (`.xlsb`) and OpenDocument (`.ods`). Laid out as XLSX
//! is — 50 rows per section under the sheet's first row, cell ranges, ISO dates — with the
//! cell and character caps applied as the cells are copied out. Unlike the XLSX path,
//! calamine holds the sheet (and an `.xls` file's whole string table) in memory before the
//! caps can act, so a hostile file is bounded by the extraction child's memory and time
//! limits rather than by the caps.

use std::{fmt::Display, io::Cursor};

use calamine::{Data, DataRef, Range, Reader};

use super::{
    ExtractError, Extracted, Extractor, Limits,
    xlsx::{Budget, Layout, Sheet, cell_text},
};

/// Legacy Excel workbooks (`.xls`).
pub struct Xls;

/// OpenDocument spreadsheets (`.ods`).
pub struct Ods;

impl Extractor for Xls {
    fn extract(&self, bytes: &[u8], limits: &Limits) -> Result<Extracted, ExtractError> {
        let bytes = super::ole::rebuilt(bytes, &["/Workbook", "/Book"])?
            .ok_or_else(|| ExtractError::Malformed("the compound file holds no workbook stream".into()))?;
        match calamine::Xls::new(Cursor::new(&bytes[..])) {
            Ok(workbook) => Ok(sheets(workbook, limits)),
            Err(calamine::XlsError::Password) => Err(password_protected()),
            Err(e) => Err(ExtractError::Malformed(format!("workbook: {e}"))),
        }
    }
}

impl Extractor for Ods {
    fn extract(&self, bytes: &[u8], limits: &Limits) -> Result<Extracted, ExtractError> {
        // The zip's guards (bombs) before calamine reads it; an ODS has no OOXML parts.
        super::ooxml::check_zip(bytes, limits)?;
        match calamine::Ods::new(Cursor::new(bytes)) {
            Ok(workbook) => Ok(sheets(workbook, limits)),
            Err(calamine::OdsError::Password) => Err(password_protected()),
            // calamine expects each table element right after the one before it and refuses
            // a pretty-printed `content.xml` (KSpread's): read once more without that space.
            Err(calamine::OdsError::Mismatch { .. }) => {
                let tidied = super::ooxml::with_parts_edited(
                    bytes,
                    limits,
                    |name| name == "content.xml",
                    without_space_between_table_elements,
                )?;
                calamine::Ods::new(Cursor::new(&tidied[..]))
                    .map(|workbook| sheets(workbook, limits))
                    .map_err(|e| ExtractError::Malformed(format!("workbook: {}", plain(&e.to_string()))))
            }
            Err(e) => Err(ExtractError::Malformed(format!("workbook: {}", plain(&e.to_string())))),
        }
    }
}

/// OpenDocument XML without the white space that only lays out table elements
/// (`table:table-row`, `table:table-cell`, …): text next to other elements is kept.
fn without_space_between_table_elements(xml: &str) -> String {
    let mut out = String::with_capacity(xml.len());
    let mut rest = xml;
    let mut after_table_tag = false;
    while let Some(lt) = rest.find('<') {
        let text = &rest[..lt];
        let end = rest[lt..].find('>').map_or(rest.len(), |gt| lt + gt + 1);
        let tag = &rest[lt..end];
        let table_tag = tag.trim_start_matches(['<', '/']).starts_with("table:");
        if !(text.trim().is_empty() && (after_table_tag || table_tag)) {
            out.push_str(text);
        }
        out.push_str(tag);
        after_table_tag = table_tag;
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// A calamine error message without the Rust debug rendering of XML events it can hold
/// (`Text(BytesText { content: Borrowed("\n  ") })` becomes `text`).
fn plain(message: &str) -> String {
    match message.find("Text(BytesText") {
        Some(at) => format!("{}text'", &message[..at]),
        None => message.to_owned(),
    }
}

/// An Excel binary workbook: an OOXML package (already opened and guarded by the XLSX
/// extractor) whose parts are binary records.
pub(super) fn xlsb(bytes: &[u8], limits: &Limits) -> Result<Extracted, ExtractError> {
    match calamine::Xlsb::new(Cursor::new(bytes)) {
        Ok(workbook) => Ok(sheets(workbook, limits)),
        Err(calamine::XlsbError::Password) => Err(password_protected()),
        Err(e) => Err(ExtractError::Malformed(format!("workbook: {e}"))),
    }
}

fn password_protected() -> ExtractError {
    ExtractError::Encrypted("the workbook is password-protected".into())
}

fn sheets<'b, R>(mut workbook: R, limits: &Limits) -> Extracted
where
    R: Reader<Cursor<&'b [u8]>>,
    R::Error: Display,
{
    let mut layout = Layout::default();
    for name in workbook.sheet_names() {
        match workbook.worksheet_range(&name) {
            Ok(range) => {
                let sheet = sheet_of(&range, limits, &mut layout.budget);
                if !layout.add(&name, &sheet, limits) {
                    break;
                }
            }
            Err(e) => layout.notes.push(format!("sheet {name}: not read ({e})")),
        }
    }
    layout.note_hidden(workbook.sheets_metadata());
    layout.finish()
}

/// A sheet's non-empty cells at their absolute positions, strings borrowed from the range.
fn sheet_of<'a>(range: &'a Range<Data>, limits: &Limits, budget: &mut Budget) -> Sheet<'a> {
    let (top, left) = range.start().unwrap_or_default();
    let mut cells = Vec::new();
    let mut stopped_at = None;
    for (row, col, data) in range.used_cells() {
        let (row, col) = (top + row as u32, left + col as u32);
        let text = cell_text(&borrowed(data));
        if text.is_empty() {
            continue;
        }
        if !budget.take(&text, limits) {
            stopped_at = Some(row);
            break;
        }
        cells.push((row, col, text));
    }
    Sheet { cells, stopped_at }
}

/// A cell of a whole-sheet range as the streaming reader's type, so that both paths share
/// one rendering of numbers, dates and errors.
fn borrowed(data: &Data) -> DataRef<'_> {
    match data {
        Data::Empty => DataRef::Empty,
        Data::String(s) => DataRef::SharedString(s),
        Data::Int(i) => DataRef::Int(*i),
        Data::Float(f) => DataRef::Float(*f),
        Data::Bool(b) => DataRef::Bool(*b),
        Data::DateTime(d) => DataRef::DateTime(*d),
        Data::DateTimeIso(s) => DataRef::DateTimeIso(s.clone()),
        Data::DurationIso(s) => DataRef::DurationIso(s.clone()),
        Data::Error(e) => DataRef::Error(e.clone()),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// An OpenDocument spreadsheet of one sheet with a header, a date and a number.
    fn ods() -> Vec<u8> {
        let content = r#"<?xml version="1.0" encoding="UTF-8"?>
<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2"><office:body><office:spreadsheet><table:table table:name="Stock"><table:table-row><table:table-cell office:value-type="string"><text:p>Item</text:p></table:table-cell><table:table-cell office:value-type="string"><text:p>Count</text:p></table:table-cell><table:table-cell office:value-type="string"><text:p>Checked</text:p></table:table-cell></table:table-row><table:table-row><table:table-cell office:value-type="string"><text:p>Pallets</text:p></table:table-cell><table:table-cell office:value-type="float" office:value="12"><text:p>12</text:p></table:table-cell><table:table-cell office:value-type="date" office:date-value="2021-06-30"><text:p>30/06/2021</text:p></table:table-cell></table:table-row></table:table></office:spreadsheet></office:body></office:document-content>"#;
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let stored = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        zip.start_file("mimetype", stored).unwrap();
        zip.write_all(b"application/vnd.oasis.opendocument.spreadsheet").unwrap();
        zip.start_file("META-INF/manifest.xml", zip::write::SimpleFileOptions::default()).unwrap();
        zip.write_all(br#"<?xml version="1.0" encoding="UTF-8"?><manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.2"><manifest:file-entry manifest:full-path="/" manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/><manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/></manifest:manifest>"#).unwrap();
        zip.start_file("content.xml", zip::write::SimpleFileOptions::default()).unwrap();
        zip.write_all(content.as_bytes()).unwrap();
        zip.finish().unwrap().into_inner()
    }

    #[test]
    fn an_ods_sheet_becomes_markdown_rows_with_iso_dates() {
        assert_eq!(super::super::Format::detect("stock", &ods()), Some(super::super::Format::Ods), "sniffed");
        let extracted = Ods.extract(&ods(), &Limits::default()).unwrap();
        assert_eq!(extracted.sections.len(), 1, "{extracted:?}");
        let section = &extracted.sections[0];
        assert_eq!(section.anchor.sheet.as_deref(), Some("Stock"));
        assert_eq!(section.anchor.range.as_deref(), Some("A1:C2"));
        assert_eq!(section.text, "| Item | Count | Checked |\n| --- | --- | --- |\n| Pallets | 12 | 2021-06-30 |");
    }

    #[test]
    fn a_pretty_printed_ods_is_read() {
        let content = "<office:spreadsheet>\n  <table:table table:name=\"Stock\">\n    <table:table-row>\n      \
            <table:table-cell office:value-type=\"string\">\n        <text:p>Item <text:span>one</text:span></text:p>\n      \
            </table:table-cell>\n    </table:table-row>\n  </table:table>\n</office:spreadsheet>";
        assert_eq!(
            without_space_between_table_elements(content),
            "<office:spreadsheet><table:table table:name=\"Stock\"><table:table-row><table:table-cell \
             office:value-type=\"string\"><text:p>Item <text:span>one</text:span></text:p></table:table-cell>\
             </table:table-row></table:table></office:spreadsheet>"
        );
        let pretty = crate::knowledge::extract::ooxml::with_parts_edited(
            &ods(),
            &Limits::default(),
            |name| name == "content.xml",
            |xml| xml.replace("><", ">\n  <"),
        )
        .unwrap();
        assert!(calamine::Ods::new(Cursor::new(&pretty[..])).is_err(), "calamine alone refuses it");
        let extracted = Ods.extract(&pretty, &Limits::default()).unwrap();
        assert_eq!(extracted.sections, Ods.extract(&ods(), &Limits::default()).unwrap().sections);
    }

    #[test]
    fn broken_legacy_workbooks_are_clear_errors() {
        let limits = Limits::default();
        assert!(matches!(
            Xls.extract(b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1 truncated", &limits),
            Err(ExtractError::Malformed(_))
        ));
        assert!(matches!(Ods.extract(b"PK\x03\x04 truncated", &limits), Err(ExtractError::Malformed(_))));
    }

    /// calamine's own compound-file code indexed past the end of damaged containers (22 of
    /// 300 fuzzed copies of this file panicked): the workbook stream now reaches it through
    /// cfb's checked reader in a container cfb wrote.
    #[test]
    fn a_damaged_container_is_an_error_not_a_panic() {
        let whole = super::super::fixture("budget-2019.xls");
        let mut damaged: Vec<Vec<u8>> = (512..whole.len()).step_by(128).map(|cut| whole[..cut].to_vec()).collect();
        for at in (0..whole.len()).step_by(64) {
            let mut copy = whole.clone();
            let end = (at + 16).min(copy.len());
            copy[at..end].fill(0xFF);
            damaged.push(copy);
        }
        let limits = Limits::default();
        let panicked: Vec<usize> = damaged
            .iter()
            .enumerate()
            .filter(|(_, bytes)| std::panic::catch_unwind(|| Xls.extract(bytes, &limits)).is_err())
            .map(|(case, _)| case)
            .collect();
        assert!(panicked.is_empty(), "{} of {} damaged copies panicked: {panicked:?}", panicked.len(), damaged.len());
    }
}
