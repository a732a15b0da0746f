//! XLSX with calamine's streaming cell reader: sheet by sheet, 50 rows per section under
//! the sheet's first row, each section anchored by its cell range; dates as ISO dates, not
//! serial numbers. Cells are read one by one (shared strings borrowed, not copied) and the
//! cells and characters read are capped as they stream, before anything is laid out: a
//! shared-strings amplification file can turn 110 KB into millions of characters.
//! Numbers are written through their cells' number formats ([`NumberFormat`]): `12.5%`,
//! `$1,234.50`, as Excel shows them.

use std::{borrow::Cow, io::Cursor};

use calamine::{DataRef, Reader, XlsxError};

use super::{
    Anchor, ExtractError, Extracted, Extractor, Limits, Section, SectionKind, embedded::Place, markdown_table,
    number_format::NumberFormat, ooxml::Package,
};

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

/// A cell's text: numbers without a spurious `.0`, dates as ISO dates.
pub(super) fn cell_text<'a>(cell: &DataRef<'a>) -> Cow<'a, str> {
    match *cell {
        DataRef::Empty => Cow::Borrowed(""),
        DataRef::SharedString(s) => Cow::Borrowed(s),
        DataRef::String(ref s) | DataRef::DateTimeIso(ref s) | DataRef::DurationIso(ref s) => Cow::Owned(s.clone()),
        DataRef::Int(i) => Cow::Owned(i.to_string()),
        // A whole number below 10^15 is exact as an i64 (and prints far faster than
        // `{:.0}`, which takes the exact-decimal path).
        DataRef::Float(f) => Cow::Owned(number_text(f)),
        DataRef::Bool(b) => Cow::Borrowed(if b { "TRUE" } else { "FALSE" }),
        DataRef::DateTime(ref dt) => Cow::Owned(
            if dt.is_duration() {
                dt.as_duration().map(|d| {
                    let s = d.num_seconds();
                    format!("{:02}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
                })
            } else if (0.0..1.0).contains(&dt.as_f64()) {
                // A time of day: the serial number has no date part (Excel shows none).
                dt.as_datetime().map(|t| time_of_day(t.time()))
            } else {
                dt.as_datetime().map(iso_date)
            }
            .unwrap_or_else(|| number_text(dt.as_f64())),
        ),
        // Excel's own spelling: `#DIV/0!`, `#N/A`, `#REF!`.
        DataRef::Error(ref e) => Cow::Owned(e.to_string()),
    }
}

/// A number as Excel shows it in a General cell: at most 15 significant digits, so that a
/// computed `0.1 + 0.2` reads `0.3`, not `0.30000000000000004`.
pub(super) fn number_text(f: f64) -> String {
    // A whole number below 10^15 is exact as an i64 (and prints far faster than
    // `{:.0}`, which takes the exact-decimal path).
    if f.fract() == 0.0 && f.abs() < 1e15 {
        return (f as i64).to_string();
    }
    let rounded: f64 = format!("{f:.14e}").parse().unwrap_or(f);
    rounded.to_string()
}

/// A time of day as `09:30`, or `09:30:15` when it has seconds.
fn time_of_day(t: chrono::NaiveTime) -> String {
    use chrono::Timelike;
    match t.second() {
        0 => format!("{:02}:{:02}", t.hour(), t.minute()),
        s => format!("{:02}:{:02}:{s:02}", t.hour(), t.minute()),
    }
}

/// A cell's date as an ISO date, with its time when it has one (`2026-12-06`,
/// `2026-12-06T09:30:00`); written field by field, as chrono's format strings are parsed
/// on every call (a workbook has many dates).
fn iso_date(t: chrono::NaiveDateTime) -> String {
    use chrono::{Datelike, Timelike};
    let (date, time) = (t.date(), t.time());
    if !(0..=9999).contains(&date.year()) {
        return t.format("%Y-%m-%dT%H:%M:%S").to_string();
    }
    if time == chrono::NaiveTime::MIN {
        format!("{:04}-{:02}-{:02}", date.year(), date.month(), date.day())
    } else {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            date.year(),
            date.month(),
            date.day(),
            time.hour(),
            time.minute(),
            time.second()
        )
    }
}

/// What the workbook has used of the caps so far.
#[derive(Default)]
pub(super) struct Budget {
    cells: usize,
    chars: usize,
}

impl Budget {
    /// Counts one non-empty cell of `text`; false when that passes a cap.
    pub fn take(&mut self, text: &str, limits: &Limits) -> bool {
        self.cells += 1;
        self.chars += text.len();
        self.cells <= limits.max_cells && self.chars <= limits.max_chars
    }
}

/// One sheet's non-empty cells, in row then column order.
pub(super) struct Sheet<'a> {
    /// (row, column, text), 0-based and absolute.
    pub cells: Vec<(u32, u32, Cow<'a, str>)>,
    /// The row at which the caps stopped reading, if they did.
    pub stopped_at: Option<u32>,
}

/// The number formats of a workbook's cell styles, each parsed when a number first asks
/// for it (a workbook can have thousands of styles and use a few for numbers).
#[derive(Default)]
struct StyleFormats {
    /// By style id: `None` while not parsed, then the format (`None` for General).
    parsed: Vec<Option<Option<NumberFormat>>>,
}

impl StyleFormats {
    /// `value` as the number format of style `style` of `styles` shows it; `None` for a
    /// General format (or one [`NumberFormat`] does not follow).
    fn text(&mut self, styles: &[calamine::Style], style: usize, value: f64) -> Option<String> {
        if self.parsed.len() < styles.len() {
            self.parsed.resize(styles.len(), None);
        }
        let format = self.parsed.get_mut(style)?.get_or_insert_with(|| {
            styles.get(style)?.number_format.as_ref().and_then(|format| NumberFormat::parse(&format.format_code))
        });
        format.as_ref().map(|format| format.format(value))
    }
}

fn read_sheet<'a>(
    workbook: &'a mut calamine::Xlsx<Cursor<&[u8]>>,
    name: &str,
    limits: &Limits,
    budget: &mut Budget,
    formats: &mut StyleFormats,
) -> Result<Sheet<'a>, XlsxError> {
    let mut reader = workbook.worksheet_cells_reader(name)?;
    let mut cells = Vec::new();
    let mut stopped_at = None;
    while let Some((cell, style)) = reader.next_cell_with_style_id()? {
        let (row, col) = cell.get_position();
        let formatted = match *cell.get_value() {
            DataRef::Empty => continue,
            DataRef::Float(f) => formats.text(reader.styles(), style, f),
            DataRef::Int(i) => formats.text(reader.styles(), style, i as f64),
            _ => None,
        };
        let text = formatted.map_or_else(|| cell_text(cell.get_value()), Cow::Owned);
        if !budget.take(&text, limits) {
            stopped_at = Some(row);
            break;
        }
        cells.push((row, col, text));
    }
    if !cells.is_sorted_by_key(|(r, c, _)| (*r, *c)) {
        cells.sort_by_key(|(r, c, _)| (*r, *c));
    }
    Ok(Sheet { cells, stopped_at })
}

/// Lays a sheet's cells out as markdown tables of `ROWS_PER_SECTION` rows under its first
/// row, leaving out wide runs of empty columns ([`laid_out_columns`]). Counts every laid-out cell (empty ones
/// included) against the cell cap, and returns the row at which that cap stopped it, if
/// it did.
fn lay_out(
    name: &str,
    sheet: &Sheet<'_>,
    limits: &Limits,
    laid_out: &mut usize,
    sections: &mut Vec<Section>,
) -> Option<u32> {
    let columns = laid_out_columns(sheet);
    let (Some(&first_col), Some(&last_col)) = (columns.first(), columns.last()) else {
        return None;
    };
    let width = columns.len();
    let mut rows = sheet.cells.chunk_by(|a, b| a.0 == b.0).map(|cells| {
        let mut row: Vec<&str> = vec![""; width];
        for (_, col, text) in cells {
            row[columns.binary_search(col).unwrap_or(0)] = text;
        }
        (cells[0].0, row)
    });
    let (header_row, header) = rows.next()?;
    let table = |range: String, rows: &[Vec<&str>]| Section {
        anchor: Anchor { sheet: Some(name.to_owned()), range: Some(range), ..Anchor::default() },
        kind: SectionKind::Table,
        text: markdown_table(rows),
    };
    let mut batch: Vec<(u32, Vec<&str>)> = Vec::new();
    // The first section's range includes the header row; later ones repeat the header
    // for context, and their ranges are their own rows.
    let mut header_uncited = true;
    let mut emit = |batch: &mut Vec<(u32, Vec<&str>)>, sections: &mut Vec<Section>| {
        let (Some((start, _)), Some((end, _))) = (batch.first(), batch.last()) else { return };
        let start = if std::mem::take(&mut header_uncited) { header_row } else { *start };
        let range = format!("{}{}:{}{}", column_name(first_col), start + 1, column_name(last_col), end + 1);
        let mut rows = Vec::with_capacity(batch.len() + 1);
        rows.push(header.clone());
        rows.extend(batch.drain(..).map(|(_, r)| r));
        sections.push(table(range, &rows));
    };
    let mut any_row = false;
    let mut stopped_at = None;
    for (row_no, row) in rows {
        *laid_out += width;
        if *laid_out > limits.max_cells {
            stopped_at = Some(row_no);
            break;
        }
        any_row = true;
        batch.push((row_no, row));
        if batch.len() == ROWS_PER_SECTION {
            emit(&mut batch, sections);
        }
    }
    emit(&mut batch, sections);
    if !any_row {
        sections.push(table(format!("{}{}", column_name(first_col), header_row + 1), std::slice::from_ref(&header)));
    }
    stopped_at
}

/// The widest run of empty columns kept between two columns holding cells: a spacer
/// column stays in the table, a stray cell far to the right (at XFD1) does not pad every
/// row with thousands of empty cells.
const MAX_EMPTY_COLUMNS_KEPT: u32 = 3;

/// The columns of `sheet` laid out, in order: those holding a cell, and the gaps between
/// them of at most [`MAX_EMPTY_COLUMNS_KEPT`].
fn laid_out_columns(sheet: &Sheet<'_>) -> Vec<u32> {
    let mut used: Vec<u32> = sheet.cells.iter().map(|c| c.1).collect();
    used.sort_unstable();
    used.dedup();
    let mut columns = Vec::with_capacity(used.len());
    for (i, &col) in used.iter().enumerate() {
        if let Some(&before) = i.checked_sub(1).and_then(|i| used.get(i))
            && col - before - 1 <= MAX_EMPTY_COLUMNS_KEPT
        {
            columns.extend(before + 1..col);
        }
        columns.push(col);
    }
    columns
}

/// A workbook's sections and notes as its sheets are laid out, with the caps' budget.
#[derive(Default)]
pub(super) struct Layout {
    sections: Vec<Section>,
    /// Notes on the workbook (sheets skipped, caps reached).
    pub notes: Vec<String>,
    /// What the sheets read so far have used of the caps.
    pub budget: Budget,
    laid_out: usize,
}

impl Layout {
    /// Lays out one sheet; false when a cap stopped it (read no further sheets).
    pub fn add(&mut self, name: &str, sheet: &Sheet<'_>, limits: &Limits) -> bool {
        if sheet.cells.is_empty() && sheet.stopped_at.is_none() {
            self.notes.push(format!("sheet {name} has no cells"));
            return true;
        }
        let Some(row) = lay_out(name, sheet, limits, &mut self.laid_out, &mut self.sections).or(sheet.stopped_at)
        else {
            return true;
        };
        self.notes.push(format!(
            "stopped in sheet {name} at row {}: more than {} cells or {} characters",
            row + 1,
            limits.max_cells,
            limits.max_chars
        ));
        false
    }

    /// Notes the sheets the workbook hides. They are read like the rest (hidden sheets
    /// often hold the lookup tables people ask about), but a hit from one should not be a
    /// surprise.
    pub fn note_hidden(&mut self, sheets: &[calamine::Sheet]) {
        let hidden: Vec<String> = sheets
            .iter()
            .filter_map(|sheet| match sheet.visible {
                calamine::SheetVisible::Visible => None,
                calamine::SheetVisible::Hidden => Some(sheet.name.clone()),
                calamine::SheetVisible::VeryHidden => Some(format!("{} (very hidden)", sheet.name)),
            })
            .collect();
        if !hidden.is_empty() {
            self.notes.push(format!("hidden sheets, read like the others: {}", hidden.join(", ")));
        }
    }

    /// The workbook, extracted.
    pub fn finish(self) -> Extracted {
        Extracted { sections: self.sections, notes: self.notes }
    }
}

impl Extractor for Xlsx {
    fn extract(&self, bytes: &[u8], limits: &Limits) -> Result<Extracted, ExtractError> {
        // The package guards (encryption, bombs) before calamine reads it.
        let mut package = Package::open(bytes, limits)?;
        if package.main_part()?.ends_with(".bin") {
            drop(package);
            return super::legacy_sheets::xlsb(bytes, limits);
        }
        drop(package);
        // calamine refuses markup some writers emit; each such refusal is met once by
        // reading a copy of the package with that markup changed (`with_parts_edited`).
        let mut bytes = Cow::Borrowed(bytes);
        let (mut trimmed, mut relabelled) = (false, false);
        loop {
            match workbook(&bytes, limits)? {
                Reading::Whole(mut extracted) => {
                    add_sheet_parts(&bytes, limits, &mut extracted)?;
                    if trimmed {
                        extracted.notes.push("numbers written with spaces around them were read trimmed".into());
                    }
                    if relabelled {
                        extracted
                            .notes
                            .push("Excel 4 macro sheets were read as worksheets (their cells' values)".into());
                    }
                    return Ok(extracted);
                }
                // A number written with spaces around it (`<v> 41</v>`) drops its sheet.
                Reading::UnparsedNumber(_) if !trimmed => {
                    let is_sheet = |name: &str| name.starts_with("xl/worksheets/") && name.ends_with(".xml");
                    bytes = Cow::Owned(super::ooxml::with_parts_edited(&bytes, limits, is_sheet, trimmed_values)?);
                    trimmed = true;
                }
                Reading::UnparsedNumber(mut extracted) => {
                    add_sheet_parts(&bytes, limits, &mut extracted)?;
                    return Ok(extracted);
                }
                // An Excel 4 macro sheet makes the whole workbook unreadable: relabelled, its
                // cells are read like a worksheet's (their cached values), and so are the rest.
                Reading::MacroSheet(_) if !relabelled => {
                    let is_rels = |name: &str| name == "xl/_rels/workbook.xml.rels";
                    bytes = Cow::Owned(super::ooxml::with_parts_edited(&bytes, limits, is_rels, |xml| {
                        xml.replace("/xlMacrosheet\"", "/worksheet\"").replace("/xlIntlMacrosheet\"", "/worksheet\"")
                    })?);
                    relabelled = true;
                }
                Reading::MacroSheet(why) => return Err(ExtractError::Malformed(format!("workbook: {why}"))),
            }
        }
    }
}

/// What [`workbook`] made of a workbook.
enum Reading {
    /// Every sheet it could read, laid out.
    Whole(Extracted),
    /// The layout as it is, a sheet dropped for a number calamine could not parse.
    UnparsedNumber(Extracted),
    /// calamine refused the workbook for a sheet of a kind it does not know (this error).
    MacroSheet(XlsxError),
}

/// The workbook's sheets laid out.
fn workbook(bytes: &[u8], limits: &Limits) -> Result<Reading, ExtractError> {
    let mut workbook = match calamine::Xlsx::new(Cursor::new(bytes)) {
        Ok(workbook) => workbook,
        Err(e @ XlsxError::Unrecognized { typ: "sheet:type", .. }) => return Ok(Reading::MacroSheet(e)),
        // An entity the XML defines itself (in a DTD) is never expanded: that is how an
        // entity-expansion bomb is built, and no spreadsheet writer emits one.
        Err(e) if e.to_string().contains("unrecognized entity") => {
            return Err(ExtractError::Malformed(format!(
                "workbook: its XML uses entities it defines itself, which are not expanded \
                 (the make-up of an XML bomb): {e}"
            )));
        }
        Err(e) => return Err(ExtractError::Malformed(format!("workbook: {e}"))),
    };
    let mut layout = Layout::default();
    let mut unparsed_number = false;
    let mut formats = StyleFormats::default();
    for name in workbook.sheet_names() {
        match read_sheet(&mut workbook, &name, limits, &mut layout.budget, &mut formats) {
            Ok(sheet) => {
                if !layout.add(&name, &sheet, limits) {
                    break;
                }
            }
            Err(XlsxError::NotAWorksheet(kind)) => {
                layout.notes.push(format!("sheet {name} is not a worksheet ({kind})"))
            }
            Err(e) => {
                unparsed_number |= matches!(e, XlsxError::ParseFloat(_) | XlsxError::ParseInt(_));
                layout.notes.push(format!("sheet {name}: not read ({e})"));
            }
        }
    }
    layout.note_hidden(workbook.sheets_metadata());
    Ok(if unparsed_number { Reading::UnparsedNumber(layout.finish()) } else { Reading::Whole(layout.finish()) })
}

/// Adds what the workbook's sheets hold beside their cells, after the sheets: the comments
/// on their cells ([`cell_comments`](super::cell_comments)) and the files embedded in
/// them ([`embedded`](super::embedded)), each on its sheet. A damaged comments part on the
/// way is a note: the cells stand.
fn add_sheet_parts(bytes: &[u8], limits: &Limits, extracted: &mut Extracted) -> Result<(), ExtractError> {
    // The package was opened once already; a damaged relationships part is a note.
    let opened = Package::open(bytes, limits).and_then(|mut package| {
        let worksheets = super::cell_comments::worksheets(&mut package)?;
        Ok((package, worksheets))
    });
    let Some((mut package, worksheets)) =
        super::or_note(opened, &mut extracted.notes, |e| format!("comments and embedded files not read ({e})"))?
    else {
        return Ok(());
    };
    let read = super::cell_comments::sheet_comments(&mut package, &worksheets);
    if let Some((sections, notes)) = super::or_note(read, &mut extracted.notes, |e| format!("comments not read ({e})"))?
    {
        extracted.sections.extend(sections);
        extracted.notes.extend(notes);
    }
    for (name, rels) in &worksheets {
        let place =
            Place { anchor: Anchor { sheet: Some(name.clone()), ..Anchor::default() }, name: format!("sheet {name}") };
        super::embedded::read_embedded(&mut package, rels, limits, &place, extracted)?;
    }
    Ok(())
}

/// A worksheet's XML with the white space around each cell value (`<v> 41</v>`) removed.
fn trimmed_values(xml: &str) -> String {
    let mut out = String::with_capacity(xml.len());
    let mut rest = xml;
    while let Some(at) = rest.find("<v>") {
        out.push_str(&rest[..at + 3]);
        rest = &rest[at + 3..];
        let end = rest.find("</v>").unwrap_or(rest.len());
        out.push_str(rest[..end].trim());
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// A workbook of one sheet whose `rows` rows each hold `A` and `C`, both the one shared
    /// string `shared` (the amplification pattern: one string, many references).
    fn workbook(shared: &str, rows: usize) -> Vec<u8> {
        workbook_with(shared, rows, Vec::new())
    }

    /// [`workbook`] with `extra` parts added.
    fn workbook_with(shared: &str, rows: usize, extra: Vec<(&str, String)>) -> Vec<u8> {
        const NS: &str = "http://schemas.openxmlformats.org/spreadsheetml/2006/main";
        const REL: &str = "http://schemas.openxmlformats.org/officeDocument/2006/relationships";
        let cells: String = (1..=rows)
            .map(|r| format!(r#"<row r="{r}"><c r="A{r}" t="s"><v>0</v></c><c r="C{r}" t="s"><v>0</v></c></row>"#))
            .collect();
        let parts = [
            (
                "[Content_Types].xml",
                r#"<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/><Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>"#.to_owned(),
            ),
            (
                "_rels/.rels",
                format!(r#"<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="{REL}/officeDocument" Target="xl/workbook.xml"/></Relationships>"#),
            ),
            (
                "xl/workbook.xml",
                format!(r#"<?xml version="1.0"?><workbook xmlns="{NS}" xmlns:r="{REL}"><sheets><sheet name="Data" sheetId="1" r:id="rId1"/></sheets></workbook>"#),
            ),
            (
                "xl/_rels/workbook.xml.rels",
                format!(r#"<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="{REL}/worksheet" Target="worksheets/sheet1.xml"/><Relationship Id="rId2" Type="{REL}/sharedStrings" Target="sharedStrings.xml"/></Relationships>"#),
            ),
            ("xl/sharedStrings.xml", format!(r#"<?xml version="1.0"?><sst xmlns="{NS}" count="1" uniqueCount="1"><si><t>{shared}</t></si></sst>"#)),
            ("xl/worksheets/sheet1.xml", format!(r#"<?xml version="1.0"?><worksheet xmlns="{NS}"><sheetData>{cells}</sheetData></worksheet>"#)),
        ];
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, text) in parts.into_iter().chain(extra) {
            zip.start_file(name, zip::write::SimpleFileOptions::default()).unwrap();
            zip.write_all(text.as_bytes()).unwrap();
        }
        zip.finish().unwrap().into_inner()
    }

    /// The two-row workbook of `workbook("cell", 2)` with `from` replaced by `to` in `part`.
    fn edited(part: &str, from: &str, to: &str) -> Vec<u8> {
        let edit = |xml: &str| xml.replace(from, to);
        crate::knowledge::extract::ooxml::with_parts_edited(
            &workbook("cell", 2),
            &Limits::default(),
            |n| n == part,
            edit,
        )
        .unwrap()
    }

    #[test]
    fn numbers_times_and_errors_read_as_excel_shows_them() {
        use calamine::{CellErrorType, DataRef, ExcelDateTime, ExcelDateTimeType};
        let sum = [0.1f64, 0.2].iter().sum::<f64>();
        assert_eq!(sum.to_string(), "0.30000000000000004");
        assert_eq!(super::cell_text(&DataRef::Float(sum)), "0.3");
        assert_eq!(super::cell_text(&DataRef::Float(1.1 * 3.0)), "3.3");
        assert_eq!(super::cell_text(&DataRef::Float(19.99 * 3.0)), "59.97");
        assert_eq!(super::cell_text(&DataRef::Float(1.0 / 3.0)), "0.333333333333333");
        assert_eq!(super::cell_text(&DataRef::Float(-1234.5678)), "-1234.5678");
        let at = |value: f64| DataRef::DateTime(ExcelDateTime::new(value, ExcelDateTimeType::DateTime, false));
        assert_eq!(super::cell_text(&at(0.3958333333333333)), "09:30", "a time of day has no date");
        assert_eq!(super::cell_text(&at(0.5 + 15.0 / 86400.0)), "12:00:15");
        assert_eq!(super::cell_text(&at(45_000.5)), "2023-03-15T12:00:00");
        for (error, text) in
            [(CellErrorType::Div0, "#DIV/0!"), (CellErrorType::NA, "#N/A"), (CellErrorType::Ref, "#REF!")]
        {
            assert_eq!(super::cell_text(&DataRef::Error(error)), text);
        }
    }

    #[test]
    fn comments_on_cells_are_a_section_of_their_sheet() {
        const REL: &str = "http://schemas.openxmlformats.org/officeDocument/2006/relationships";
        let rels = format!(
            r#"<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="{REL}/comments" Target="../comments1.xml"/></Relationships>"#
        );
        let comments = r#"<comments xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><authors><author>M</author></authors><commentList><comment ref="C2" authorId="0"><text><r><t>Freight is estimated</t></r></text></comment></commentList></comments>"#;
        let with = workbook_with(
            "cell",
            2,
            vec![("xl/worksheets/_rels/sheet1.xml.rels", rels), ("xl/comments1.xml", comments.to_owned())],
        );
        let extracted = Xlsx.extract(&with, &Limits::default()).unwrap();
        let comment = extracted.sections.last().unwrap();
        assert_eq!(comment.text, "C2: Freight is estimated");
        assert_eq!((comment.anchor.sheet.as_deref(), comment.anchor.part.as_deref()), (Some("Data"), Some("comments")));
        assert_eq!(extracted.sections.len(), 2, "the cells, then the comments: {extracted:?}");
        // A damaged comments part is a note; the cells stand.
        let damaged = workbook_with(
            "cell",
            2,
            vec![
                (
                    "xl/worksheets/_rels/sheet1.xml.rels",
                    format!(
                        r#"<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="{REL}/comments" Target="../comments1.xml"/></Relationships>"#
                    ),
                ),
                ("xl/comments1.xml", "<comments><comment ref=\"A1\"><text><t>x</t></tx></comment>".to_owned()),
            ],
        );
        let extracted = Xlsx.extract(&damaged, &Limits::default()).unwrap();
        assert_eq!(extracted.sections.len(), 1);
        assert!(
            extracted.notes.iter().any(|n| n.starts_with("the comments of sheet Data were not read")),
            "{:?}",
            extracted.notes
        );
    }

    #[test]
    fn a_stray_cell_far_to_the_right_does_not_pad_the_rows() {
        let limits = Limits::default();
        let stray = edited(
            "xl/worksheets/sheet1.xml",
            r#"<c r="C1" t="s"><v>0</v></c>"#,
            r#"<c r="C1" t="s"><v>0</v></c><c r="XFD1" t="s"><v>0</v></c>"#,
        );
        let extracted = Xlsx.extract(&stray, &limits).unwrap();
        assert_eq!(extracted.sections.len(), 1, "{:?}", extracted.notes);
        let section = &extracted.sections[0];
        assert_eq!(section.anchor.range.as_deref(), Some("A1:XFD2"), "the range stays absolute");
        assert_eq!(section.text, "| cell |  | cell | cell |\n| --- | --- | --- | --- |\n| cell |  | cell |  |");
        assert!(extracted.notes.is_empty(), "{:?}", extracted.notes);
    }

    #[test]
    fn numbers_and_dates_are_written_as_before_the_fast_paths() {
        use calamine::DataRef;
        for f in [0.0f64, -0.0, 1.0, -42.0, 1234567.0, 999_999_999_999_999.0, 1e15, 2.5, -0.125, 1e300] {
            let expected =
                if f.fract() == 0.0 && f.abs() < 1e15 { format!("{:.0}", f).replace("-0", "0") } else { f.to_string() };
            assert_eq!(super::cell_text(&DataRef::Float(f)), expected.as_str(), "{f}");
        }
        let day = chrono::NaiveDate::from_ymd_opt(2019, 3, 7).unwrap();
        for t in [
            day.and_hms_opt(0, 0, 0).unwrap(),
            day.and_hms_opt(9, 5, 30).unwrap(),
            chrono::NaiveDate::from_ymd_opt(1900, 1, 1).unwrap().and_hms_opt(23, 59, 59).unwrap(),
        ] {
            let expected = if t.time() == chrono::NaiveTime::MIN {
                t.format("%Y-%m-%d").to_string()
            } else {
                t.format("%Y-%m-%dT%H:%M:%S").to_string()
            };
            assert_eq!(super::iso_date(t), expected);
        }
    }

    #[test]
    fn a_number_written_with_spaces_around_it_does_not_drop_its_sheet() {
        let limits = Limits::default();
        let padded =
            edited("xl/worksheets/sheet1.xml", r#"<c r="C2" t="s"><v>0</v></c>"#, r#"<c r="C2" t="n"><v> 41 </v></c>"#);
        assert!(matches!(super::workbook(&padded, &limits), Ok(Reading::UnparsedNumber(_))), "calamine drops it");
        let extracted = Xlsx.extract(&padded, &limits).unwrap();
        assert_eq!(extracted.sections.len(), 1, "{extracted:?}");
        assert_eq!(extracted.sections[0].text, "| cell |  | cell |\n| --- | --- | --- |\n| cell |  | 41 |");
        assert_eq!(extracted.notes, ["numbers written with spaces around them were read trimmed"]);
    }

    #[test]
    fn a_workbook_with_an_excel_4_macro_sheet_is_read() {
        let limits = Limits::default();
        let with_macros = edited("xl/_rels/workbook.xml.rels", "/worksheet\"", "/xlMacrosheet\"");
        assert!(matches!(super::workbook(&with_macros, &limits), Ok(Reading::MacroSheet(_))), "calamine refuses it");
        let extracted = Xlsx.extract(&with_macros, &limits).unwrap();
        assert_eq!(extracted.sections, Xlsx.extract(&workbook("cell", 2), &limits).unwrap().sections);
        assert_eq!(extracted.notes, ["Excel 4 macro sheets were read as worksheets (their cells' values)"]);
    }

    #[test]
    fn hidden_sheets_are_read_and_noted() {
        let limits = Limits::default();
        let hidden = edited("xl/workbook.xml", r#"sheetId="1""#, r#"sheetId="1" state="veryHidden""#);
        let extracted = Xlsx.extract(&hidden, &limits).unwrap();
        assert_eq!(extracted.sections, Xlsx.extract(&workbook("cell", 2), &limits).unwrap().sections);
        assert_eq!(extracted.notes, ["hidden sheets, read like the others: Data (very hidden)"]);
    }

    #[test]
    fn rows_become_markdown_sections_under_the_first_row() {
        let extracted = Xlsx.extract(&workbook("cell", 3), &Limits::default()).unwrap();
        assert_eq!(extracted.sections.len(), 1);
        let section = &extracted.sections[0];
        assert_eq!(section.anchor.sheet.as_deref(), Some("Data"));
        assert_eq!(section.anchor.range.as_deref(), Some("A1:C3"), "the header row is cited with the first rows");
        assert_eq!(section.text, "| cell |  | cell |\n| --- | --- | --- |\n| cell |  | cell |\n| cell |  | cell |");
        // Later sections repeat the header for context; their ranges are their own rows.
        let many = Xlsx.extract(&workbook("cell", 120), &Limits::default()).unwrap();
        let ranges: Vec<_> = many.sections.iter().map(|s| s.anchor.range.as_deref().unwrap_or_default()).collect();
        assert_eq!(ranges, ["A1:C51", "A52:C101", "A102:C120"]);
        assert!(many.sections.iter().all(|s| s.text.starts_with("| cell |  | cell |\n| --- |")));
    }

    #[test]
    fn an_amplified_shared_string_is_capped_while_the_cells_stream() {
        let long = "x".repeat(10_000);
        let limits = Limits { max_chars: 1_000_000, ..Limits::default() };
        let extracted = Xlsx.extract(&workbook(&long, 5_000), &limits).unwrap();
        assert!(
            extracted.notes.iter().any(|n| n.starts_with("stopped in sheet Data at row 51")),
            "{:?}",
            extracted.notes
        );
        assert!(extracted.chars() <= 1_100_000, "{} chars", extracted.chars());
        let few_cells = Limits { max_cells: 10, ..Limits::default() };
        let extracted = Xlsx.extract(&workbook("c", 100), &few_cells).unwrap();
        assert!(extracted.notes.iter().any(|n| n.starts_with("stopped in sheet Data")), "{:?}", extracted.notes);
    }

    #[test]
    fn an_xml_bomb_is_refused_as_one() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/real/xlsx/poc-xmlbomb.xlsx");
        let error = Xlsx.extract(&std::fs::read(path).unwrap(), &Limits::default()).unwrap_err();
        assert!(error.to_string().contains("entities it defines itself"), "{error}");
    }

    #[test]
    fn column_names() {
        assert_eq!(column_name(0), "A");
        assert_eq!(column_name(25), "Z");
        assert_eq!(column_name(26), "AA");
        assert_eq!(column_name(701), "ZZ");
        assert_eq!(column_name(702), "AAA");
    }
}
