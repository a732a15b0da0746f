//! DOCX with zip + quick-xml (docx-rs measured ~2× Python and panicked on a fuzzed file;
//! a streaming walk over the XML measured ~13×). The main part is found through the
//! package relationships. Paragraphs carry their heading path (from the styles' outline
//! levels); tables become markdown rows; text boxes, tracked insertions and content
//! controls are read, deletions are not; `mc:Fallback` copies are skipped so a text box is
//! not read twice. Footnotes, endnotes, comments, headers, footers, SmartArt diagrams,
//! charts (titles and labels), documents embedded whole (`w:altChunk`) and embedded
//! objects (a workbook, a document: [`super::embedded`]) become sections of their own.

use std::collections::HashMap;

use quick_xml::{Reader, events::Event};

use super::{
    Anchor, ExtractError, Extracted, Extractor, Limits, Section, SectionKind,
    ooxml::{Package, attr, resolve_ref},
    or_note,
    outline::Outline,
    word_lists::Lists,
};

/// Word documents.
pub struct Docx;

impl Extractor for Docx {
    fn extract(&self, bytes: &[u8], limits: &Limits) -> Result<Extracted, ExtractError> {
        let mut package = Package::open(bytes, limits)?;
        let main = package.main_part()?;
        let document =
            package.part(&main)?.ok_or_else(|| ExtractError::Malformed(format!("the main part {main} is missing")))?;
        let rels = package.relationships(&main)?;
        let styles = match rels.iter().find(|r| r.kind == "styles") {
            Some(r) => package.part(&r.target)?.map(|xml| parse_styles(&xml)).unwrap_or_default(),
            None => Styles::default(),
        };
        let lists = match rels.iter().find(|r| r.kind == "numbering") {
            Some(r) => package.part(&r.target)?.map(|xml| Lists::parse(&xml)).unwrap_or_default(),
            None => Lists::default(),
        };
        let mut sections = walk(&document, &styles, &lists, None)?;
        let mut notes = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (kind, label) in [
            ("footnotes", "footnotes"),
            ("endnotes", "endnotes"),
            ("comments", "comments"),
            ("header", "header"),
            ("footer", "footer"),
        ] {
            for rel in rels.iter().filter(|r| r.kind == kind) {
                let Some(xml) = package.part(&rel.target)? else { continue };
                // A damaged footnote, header or footer part is noted; the body still counts.
                let Some(part_sections) = or_note(walk(&xml, &styles, &lists, Some(label)), &mut notes, |e| {
                    format!("{} not read ({e})", rel.target)
                })?
                else {
                    continue;
                };
                for section in part_sections {
                    // Headers and footers repeat across page styles.
                    if seen.insert(section.text.clone()) {
                        sections.push(section);
                    }
                }
            }
        }
        for (kind, label, what) in [("diagramData", "diagram", "SmartArt diagram"), ("chart", "chart", "chart")] {
            match package.related_texts(&rels, kind) {
                Ok(drawings) => sections.extend(drawings.into_iter().map(|text| Section {
                    anchor: Anchor { part: Some(label.into()), ..Anchor::default() },
                    kind: SectionKind::Text,
                    text,
                })),
                Err(e) => notes.push(format!("a {what} was not read ({e})")),
            }
        }
        let mut extracted = Extracted { sections, notes };
        super::embedded::read_embedded(&mut package, &rels, limits, &Default::default(), &mut extracted)?;
        Ok(extracted)
    }
}

/// What the walk takes from the styles part, each property inherited through
/// `w:basedOn` (a custom "Chapter" style based on Heading 1 is a level-1 heading, as
/// Word's navigation pane shows it).
#[derive(Debug, Default)]
struct Styles {
    /// Style id → heading level (1-based), from `w:outlineLvl` or a "heading N" name.
    levels: HashMap<String, usize>,
    /// Style id → the list its paragraphs are numbered in (`w:numPr`: numId, level).
    lists: HashMap<String, (String, usize)>,
}

/// The level (0–8) in `e`'s `w:val` (`w:outlineLvl`, `w:ilvl`).
fn level_of(e: &quick_xml::events::BytesStart<'_>) -> Option<usize> {
    attr(e, "val").and_then(|v| v.parse().ok()).filter(|l| *l < 9)
}

fn parse_styles(xml: &str) -> Styles {
    #[derive(Default)]
    struct Style {
        outline: Option<usize>,
        named: Option<usize>,
        num_id: Option<String>,
        list_level: Option<usize>,
        based_on: Option<String>,
    }
    let mut styles: HashMap<String, Style> = HashMap::new();
    let mut reader = Reader::from_str(xml);
    let mut current: Option<String> = None;
    // Skipping the old properties of a tracked style change (`w:pPrChange`).
    let mut in_change = 0usize;
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) if e.local_name().as_ref() == "style" => current = attr(&e, "styleId"),
            Ok(Event::End(e)) if e.local_name().as_ref() == "style" => current = None,
            Ok(Event::Start(e)) if superseded(e.local_name().as_ref()) => in_change += 1,
            Ok(Event::End(e)) if superseded(e.local_name().as_ref()) => in_change = in_change.saturating_sub(1),
            Ok(Event::Empty(e) | Event::Start(e)) if in_change == 0 => {
                let Some(id) = &current else { continue };
                let name = e.local_name();
                // Only the elements read (a styles part has thousands of others).
                if !matches!(name.as_ref(), "outlineLvl" | "numId" | "ilvl" | "basedOn" | "name") {
                    continue;
                }
                let style = match styles.get_mut(id) {
                    Some(style) => style,
                    None => styles.entry(id.clone()).or_default(),
                };
                match name.as_ref() {
                    "outlineLvl" => style.outline = level_of(&e).map(|l| l + 1),
                    "numId" => style.num_id = attr(&e, "val"),
                    "ilvl" => style.list_level = level_of(&e),
                    "basedOn" => style.based_on = attr(&e, "val"),
                    "name" => {
                        let name = attr(&e, "val").unwrap_or_default().to_ascii_lowercase();
                        if let Some(level) = name.strip_prefix("heading ").and_then(|n| n.trim().parse::<usize>().ok())
                        {
                            style.named = Some(level);
                        } else if name == "title" {
                            style.named = Some(1);
                        }
                    }
                    _ => {}
                }
            }
            Ok(Event::Eof) | Err(_) => break,
            Ok(_) => {}
        }
    }
    // The first value up the chain of a style and those it is based on (at most 16: a
    // loop of basedOn, hostile or broken, ends).
    let inherited = |style: &Style, own: &dyn Fn(&Style) -> Option<usize>| {
        let mut at = Some(style);
        for _ in 0..16 {
            let style = at?;
            if let Some(value) = own(style) {
                return Some(value);
            }
            at = style.based_on.as_ref().and_then(|base| styles.get(base));
        }
        None
    };
    let mut out = Styles::default();
    for (id, style) in &styles {
        if let Some(level) = inherited(style, &|s| s.outline.or(s.named)) {
            out.levels.insert(id.clone(), level);
        }
        let mut at = Some(style);
        for _ in 0..16 {
            let Some(base) = at else { break };
            if let Some(num_id) = &base.num_id {
                // The level is the style's own when it sets one, whichever style names the list.
                let level = inherited(style, &|s| s.list_level).unwrap_or(0);
                out.lists.insert(id.clone(), (num_id.clone(), level));
                break;
            }
            at = base.based_on.as_ref().and_then(|next| styles.get(next));
        }
    }
    out
}

#[derive(Default)]
struct Paragraph {
    text: String,
    style: Option<String>,
    outline: Option<usize>,
    /// Its own list numbering (`w:numPr`), over its style's.
    num_id: Option<String>,
    list_level: Option<usize>,
}

#[derive(Default)]
struct Table {
    rows: Vec<Vec<String>>,
    /// The grid columns the open cell spans (`w:gridSpan`), padded with empty cells when
    /// it ends so that the columns after it stay under their headers.
    span: usize,
}

/// The most grid columns a cell's span or a row's leading gap counts (Word allows 63):
/// a hostile value cannot make a row of millions of cells.
const MAX_GRID_COLUMNS: usize = 64;

impl Table {
    /// Adds `n` empty cells to the open row.
    fn pad(&mut self, n: usize) {
        if let Some(row) = self.rows.last_mut() {
            row.extend(std::iter::repeat_n(String::new(), n.min(MAX_GRID_COLUMNS)));
        }
    }
}

struct Walker<'s> {
    styles: &'s Styles,
    lists: Lists,
    outline: Outline,
    paragraphs: Vec<Paragraph>,
    tables: Vec<Table>,
    in_text: bool,
}

impl Walker<'_> {
    fn push_text(&mut self, text: &str) {
        if let Some(p) = self.paragraphs.last_mut() {
            p.text.push_str(text);
        }
    }

    fn end_paragraph(&mut self) {
        let Some(p) = self.paragraphs.pop() else { return };
        let styled = p.style.as_ref().and_then(|s| self.styles.lists.get(s));
        let num_id = p.num_id.as_ref().or(styled.map(|(id, _)| id));
        let list_level = p.list_level.or(styled.map(|(_, level)| *level)).unwrap_or(0);
        // Word counts an empty numbered paragraph too.
        let label = num_id.and_then(|id| self.lists.next_label(id, list_level));
        let text = p.text.trim();
        let labelled;
        let text = match label {
            Some(label) if !text.is_empty() => {
                labelled = format!("{label} {text}");
                labelled.as_str()
            }
            _ => text,
        };
        if let Some(table) = self.tables.last_mut() {
            if let Some(cell) = table.rows.last_mut().and_then(|r| r.last_mut()) {
                if !cell.is_empty() && !text.is_empty() {
                    cell.push(' ');
                }
                cell.push_str(text);
            }
            return;
        }
        let level =
            p.outline.map(|l| l + 1).or_else(|| p.style.as_ref().and_then(|s| self.styles.levels.get(s).copied()));
        self.outline.paragraph(text, level);
    }

    fn end_table(&mut self) {
        let Some(table) = self.tables.pop() else { return };
        if let Some(outer) = self.tables.last_mut() {
            // A nested table is flattened into its enclosing cell.
            let rows = table.rows.iter().filter(|r| r.iter().any(|c| !c.is_empty()));
            let flat = rows.map(|r| r.join(" ")).collect::<Vec<_>>().join("; ");
            if let Some(cell) = outer.rows.last_mut().and_then(|r| r.last_mut()).filter(|_| !flat.is_empty()) {
                cell.push(' ');
                cell.push_str(&flat);
            }
            return;
        }
        self.outline.table(table.rows);
    }
}

/// Whether the element `name` holds what the document no longer says, to be skipped
/// whole: the old properties of a tracked formatting change (`w:pPrChange`, `w:rPrChange`,
/// …, whose old `w:pStyle` would otherwise replace the current one), text moved away
/// (`w:moveFrom`) or deleted (`w:del`), and the fallback copy of alternate content.
fn superseded(name: &str) -> bool {
    name.ends_with("PrChange") || matches!(name, "moveFrom" | "del" | "Fallback")
}

/// The grid columns `e`'s `w:val` counts (`w:gridSpan`, `w:gridBefore`), at least 1.
fn grid_columns(e: &quick_xml::events::BytesStart<'_>) -> usize {
    attr(e, "val").and_then(|v| v.parse().ok()).unwrap_or(1).clamp(1, MAX_GRID_COLUMNS)
}

/// The character a `w:sym` shows: `char` is hexadecimal, a code point, or for a symbol
/// font one in U+F000–U+F0FF whose low byte is the font's own code. The Symbol font's
/// letters and signs are mapped; a pictogram font's (Wingdings) are left out.
fn symbol(font: Option<&str>, char: Option<&str>) -> Option<char> {
    let code = u32::from_str_radix(char?, 16).ok()?;
    if !(0xF000..=0xF0FF).contains(&code) {
        return char::from_u32(code).filter(|c| !c.is_control());
    }
    if !font.is_some_and(|f| f.eq_ignore_ascii_case("symbol")) {
        return None;
    }
    let byte = (code & 0xFF) as u8;
    const GREEK_UPPER: &str = "ΑΒΧΔΕΦΓΗΙϑΚΛΜΝΟΠΘΡΣΤΥςΩΞΨΖ";
    const GREEK_LOWER: &str = "αβχδεφγηιϕκλμνοπθρστυϖωξψζ";
    Some(match byte {
        b'A'..=b'Z' => GREEK_UPPER.chars().nth(usize::from(byte - b'A'))?,
        b'a'..=b'z' => GREEK_LOWER.chars().nth(usize::from(byte - b'a'))?,
        0x22 => '∀',
        0x24 => '∃',
        0x27 => '∋',
        0x2A => '∗',
        0x2D => '−',
        0x40 => '≅',
        0x20..=0x7E => char::from(byte),
        0xA2 => '′',
        0xA3 => '≤',
        0xA5 => '∞',
        0xAB => '↔',
        0xAC => '←',
        0xAD => '↑',
        0xAE => '→',
        0xAF => '↓',
        0xB0 => '°',
        0xB1 => '±',
        0xB2 => '″',
        0xB3 => '≥',
        0xB4 => '×',
        0xB5 => '∝',
        0xB6 => '∂',
        0xB7 => '•',
        0xB8 => '÷',
        0xB9 => '≠',
        0xBA => '≡',
        0xBB => '≈',
        0xBC => '…',
        0xC6 => '∅',
        0xC7 => '∩',
        0xC8 => '∪',
        0xCE => '∈',
        0xCF => '∉',
        0xD2 | 0xE2 => '®',
        0xD3 | 0xE3 => '©',
        0xD4 | 0xE4 => '™',
        0xD5 => '∏',
        0xD6 => '√',
        0xD7 => '⋅',
        0xDB => '⇔',
        0xDE => '⇒',
        0xE5 => '∑',
        0xF2 => '∫',
        _ => return None,
    })
}

/// The sections of one part's XML; `lists` are the document's list definitions (each
/// part counts its own).
fn walk(xml: &str, styles: &Styles, lists: &Lists, part: Option<&'static str>) -> Result<Vec<Section>, ExtractError> {
    let mut w = Walker {
        styles,
        lists: lists.clone(),
        outline: Outline::new(part),
        paragraphs: vec![],
        tables: vec![],
        in_text: false,
    };
    let mut reader = Reader::from_str(xml);
    // The superseded element being skipped, and how deep in elements of its name.
    let mut skipping: Option<(String, usize)> = None;
    loop {
        let event = reader.read_event().map_err(|e| ExtractError::Malformed(format!("document XML: {e}")))?;
        if let Some((name, depth)) = &mut skipping {
            match &event {
                Event::Start(e) if e.local_name().as_ref() == name.as_str() => *depth += 1,
                Event::End(e) if e.local_name().as_ref() == name.as_str() => {
                    *depth -= 1;
                    if *depth == 0 {
                        skipping = None;
                    }
                }
                Event::Eof => break,
                _ => {}
            }
            continue;
        }
        // An element written open and closed (`<w:tab></w:tab>`) means what its empty
        // form does.
        let (start, empty) = match &event {
            Event::Start(e) => (Some(e), None),
            Event::Empty(e) => (None, Some(e)),
            _ => (None, None),
        };
        // The element's name, found once (each `local_name` searches for the prefix).
        let local = start.or(empty).map(|e| e.local_name());
        let tag: &str = local.as_ref().map_or("", |n| n.as_ref());
        if start.is_some() && superseded(tag) {
            skipping = Some((tag.to_owned(), 1));
            continue;
        }
        if start.is_some() {
            match tag {
                "p" => w.paragraphs.push(Paragraph::default()),
                "t" => w.in_text = true,
                "tbl" => w.tables.push(Table::default()),
                "tr" => {
                    if let Some(t) = w.tables.last_mut() {
                        t.rows.push(Vec::new());
                    }
                }
                "tc" => {
                    if let Some(t) = w.tables.last_mut() {
                        t.span = 1;
                        if let Some(row) = t.rows.last_mut() {
                            row.push(String::new());
                        }
                    }
                }
                _ => {}
            }
        }
        if let Some(e) = start.or(empty) {
            match tag {
                "pStyle" => {
                    if let Some(p) = w.paragraphs.last_mut() {
                        p.style = attr(e, "val");
                    }
                }
                "outlineLvl" => {
                    if let Some(p) = w.paragraphs.last_mut() {
                        p.outline = level_of(e);
                    }
                }
                "numId" => {
                    if let Some(p) = w.paragraphs.last_mut() {
                        p.num_id = attr(e, "val");
                    }
                }
                "ilvl" => {
                    if let Some(p) = w.paragraphs.last_mut() {
                        p.list_level = level_of(e);
                    }
                }
                "gridSpan" => {
                    if let Some(t) = w.tables.last_mut() {
                        t.span = grid_columns(e);
                    }
                }
                // A row that starts at a later grid column (`w:trPr`, before its cells).
                "gridBefore" => {
                    if let Some(t) = w.tables.last_mut() {
                        t.pad(grid_columns(e));
                    }
                }
                // A tab in a run, or a position tab (headers and footers); a tab stop
                // (`w:tabs`, with a position) is not text.
                "tab" | "ptab" if attr(e, "pos").is_none() => w.push_text("\t"),
                "br" | "cr" => w.push_text("\n"),
                "noBreakHyphen" => w.push_text("-"),
                "sym" => {
                    if let Some(c) = symbol(attr(e, "font").as_deref(), attr(e, "char").as_deref()) {
                        w.push_text(c.encode_utf8(&mut [0; 4]));
                    }
                }
                _ => {}
            }
        }
        match event {
            Event::End(e) => match e.local_name().as_ref() {
                "p" => w.end_paragraph(),
                "t" => w.in_text = false,
                "tc" => {
                    if let Some(t) = w.tables.last_mut() {
                        let span = std::mem::replace(&mut t.span, 1);
                        t.pad(span - 1);
                    }
                }
                "tbl" => w.end_table(),
                _ => {}
            },
            Event::Text(t) if w.in_text => {
                let text = t.xml10_content();
                w.push_text(&text);
            }
            Event::GeneralRef(r) if w.in_text => {
                if let Some(c) = resolve_ref(r) {
                    w.push_text(c.encode_utf8(&mut [0; 4]));
                }
            }
            Event::CData(c) if w.in_text => {
                let text = c.xml10_content().into_owned();
                w.push_text(&text);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    while !w.tables.is_empty() {
        w.end_table();
    }
    Ok(w.outline.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::knowledge::extract::ooxml::{repackaged, repackaged_adding};

    /// The sections of a document body `body` (WordprocessingML inside `w:body`).
    fn body_sections(body: &str, styles: &Styles) -> Vec<Section> {
        let xml = format!(
            r#"<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>{body}</w:body></w:document>"#
        );
        walk(&xml, styles, &Lists::default(), None).unwrap()
    }

    #[test]
    fn merged_cells_keep_the_columns_after_them_under_their_headers() {
        let cell = |text: &str, props: &str| {
            format!("<w:tc><w:tcPr>{props}</w:tcPr><w:p><w:r><w:t>{text}</w:t></w:r></w:p></w:tc>")
        };
        let row = |cells: &[String], props: &str| format!("<w:tr><w:trPr>{props}</w:trPr>{}</w:tr>", cells.concat());
        let table = [
            row(&[cell("A", ""), cell("B", ""), cell("C", ""), cell("D", "")], ""),
            row(&[cell("wide", r#"<w:gridSpan w:val="2"/>"#), cell("c1", ""), cell("d1", "")], ""),
            row(&[cell("c2", ""), cell("d2", "")], r#"<w:gridBefore w:val="2"/>"#),
        ]
        .concat();
        let sections = body_sections(&format!("<w:tbl>{table}</w:tbl>"), &Styles::default());
        let lines: Vec<&str> = sections[0].text.lines().collect();
        assert_eq!(
            lines,
            ["| A | B | C | D |", "| --- | --- | --- | --- |", "| wide |  | c1 | d1 |", "|  |  | c2 | d2 |"]
        );
        let hostile = row(&[cell("hostile", r#"<w:gridSpan w:val="99999999"/>"#)], "");
        let sections = body_sections(&format!("<w:tbl>{hostile}</w:tbl>"), &Styles::default());
        assert_eq!(
            sections[0].text.lines().next().unwrap().matches('|').count(),
            MAX_GRID_COLUMNS + 1,
            "a span is capped"
        );
    }

    #[test]
    fn superseded_text_and_properties_are_left_out_and_inline_marks_kept() {
        let levels = Styles { levels: HashMap::from([("Heading1".to_owned(), 1)]), ..Styles::default() };
        let body = r#"
            <w:p><w:pPr><w:pStyle w:val="Heading1"/><w:pPrChange w:id="1"><w:pPr><w:pStyle w:val="Normal"/></w:pPr></w:pPrChange></w:pPr>
                <w:r><w:t>Reviewed Heading</w:t></w:r></w:p>
            <w:p><w:pPr><w:tabs><w:tab w:val="left" w:pos="720"/></w:tabs></w:pPr>
                <w:moveFrom w:id="2"><w:r><w:t>MOVED </w:t></w:r></w:moveFrom><w:del w:id="3"><w:r><w:t>GONE </w:t></w:r></w:del>
                <w:r><w:t>Company</w:t><w:ptab w:relativeTo="margin" w:alignment="center" w:leader="none"/><w:t>Confidential</w:t>
                <w:tab></w:tab><w:t>Draft</w:t></w:r></w:p>
            <w:p><w:r><w:t>Temp 20</w:t><w:sym w:font="Symbol" w:char="F0B0"/><w:t>C, co</w:t><w:noBreakHyphen/><w:t>operate </w:t>
                <w:sym w:font="Wingdings" w:char="F0FC"/><w:sym w:font="Arial" w:char="2192"/></w:r></w:p>"#;
        let sections = body_sections(body, &levels);
        assert_eq!(sections.len(), 1, "{sections:?}");
        assert_eq!(sections[0].anchor.headings, ["Reviewed Heading"], "the current style, not the old one");
        assert_eq!(sections[0].text, "Reviewed Heading\nCompany\tConfidential\tDraft\nTemp 20°C, co-operate →");
    }

    #[test]
    fn numbered_paragraphs_and_headings_carry_the_labels_word_shows() {
        let numbering = r#"<w:numbering xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">
            <w:abstractNum w:abstractNumId="0">
              <w:lvl w:ilvl="0"><w:start w:val="1"/><w:numFmt w:val="decimal"/><w:lvlText w:val="%1."/></w:lvl>
              <w:lvl w:ilvl="1"><w:start w:val="1"/><w:numFmt w:val="decimal"/><w:lvlText w:val="%1.%2"/></w:lvl>
              <w:lvl w:ilvl="2"><w:start w:val="1"/><w:numFmt w:val="lowerLetter"/><w:lvlText w:val="(%3)"/></w:lvl>
            </w:abstractNum><w:num w:numId="1"><w:abstractNumId w:val="0"/></w:num></w:numbering>"#;
        let styles = parse_styles(
            r#"<w:styles xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">
            <w:style w:styleId="Heading1"><w:pPr><w:numPr><w:numId w:val="1"/></w:numPr><w:outlineLvl w:val="0"/></w:pPr></w:style>
            <w:style w:styleId="Heading2"><w:basedOn w:val="Heading1"/><w:pPr><w:numPr><w:ilvl w:val="1"/></w:numPr><w:outlineLvl w:val="1"/></w:pPr></w:style>
            </w:styles>"#,
        );
        let p = |style: &str, own: &str, text: &str| {
            format!(r#"<w:p><w:pPr>{style}{own}</w:pPr><w:r><w:t>{text}</w:t></w:r></w:p>"#)
        };
        let h = |level: u8| format!(r#"<w:pStyle w:val="Heading{level}"/>"#);
        let clause = r#"<w:numPr><w:ilvl w:val="2"/><w:numId w:val="1"/></w:numPr>"#;
        let body = [
            p(&h(1), "", "Scope"),
            p(&h(2), "", "Purpose"),
            p(&h(2), "", "Terms"),
            p("", clause, "the first clause"),
            p("", clause, "the second clause"),
            p("", r#"<w:numPr><w:numId w:val="0"/></w:numPr>"#, "not numbered"),
            p(&h(1), "", "Payment"),
        ]
        .concat();
        let xml = format!(
            r#"<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>{body}</w:body></w:document>"#
        );
        let sections = walk(&xml, &styles, &Lists::parse(numbering), None).unwrap();
        let texts: Vec<&str> = sections.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "1. Scope",
                "1.1 Purpose",
                "1.2 Terms\n(a) the first clause\n(b) the second clause\nnot numbered",
                "2. Payment"
            ]
        );
        assert_eq!(sections[2].anchor.headings, ["1. Scope", "1.2 Terms"], "cited by their numbers");
    }

    #[test]
    fn a_style_based_on_a_heading_is_a_heading_of_its_level() {
        let styles = r#"<w:styles xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">
            <w:style w:styleId="Heading1"><w:name w:val="heading 1"/><w:pPr><w:outlineLvl w:val="0"/></w:pPr></w:style>
            <w:style w:styleId="Heading2"><w:name w:val="heading 2"/></w:style>
            <w:style w:styleId="Chapter"><w:name w:val="Chapter Heading"/><w:basedOn w:val="Heading1"/></w:style>
            <w:style w:styleId="Sub"><w:name w:val="My Sub"/><w:basedOn w:val="Heading2"/></w:style>
            <w:style w:styleId="Body"><w:name w:val="Body"/><w:basedOn w:val="Normal"/></w:style>
            <w:style w:styleId="LoopA"><w:basedOn w:val="LoopB"/></w:style>
            <w:style w:styleId="LoopB"><w:basedOn w:val="LoopA"/></w:style>
            <w:style w:styleId="Changed"><w:pPr><w:pPrChange><w:pPr><w:outlineLvl w:val="2"/></w:pPr></w:pPrChange></w:pPr></w:style>
        </w:styles>"#;
        let levels = parse_styles(styles).levels;
        let level = |id: &str| levels.get(id).copied();
        assert_eq!(
            (level("Heading1"), level("Heading2"), level("Chapter"), level("Sub")),
            (Some(1), Some(2), Some(1), Some(2))
        );
        assert_eq!((level("Body"), level("LoopA"), level("Changed")), (None, None, None));
    }

    #[test]
    fn a_document_embedded_whole_is_read_as_a_part_of_its_own() {
        let with_chunks = |name: &str, bytes: Vec<u8>| {
            match name {
            "word/_rels/document.xml.rels" => String::from_utf8(bytes)
                .unwrap()
                .replace(
                    "</Relationships>",
                    "<Relationship Id=\"rId90\" Target=\"chunk.htm\" \
                     Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/aFChunk\"/>\
                     <Relationship Id=\"rId91\" Target=\"blob.bin\" \
                     Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/aFChunk\"/></Relationships>",
                )
                .into_bytes(),
            _ => bytes,
        }
        };
        let html = b"<html><body><h1>Merged clause</h1><p>Payment is due within 30 days.</p></body></html>";
        let docx = repackaged_adding(
            "real/docx/footnotes.docx",
            with_chunks,
            &[("word/chunk.htm", html), ("word/blob.bin", b"\x00\x01\x02 binary")],
        );
        let extracted = Docx.extract(&docx, &Limits::default()).unwrap();
        let embedded: Vec<&Section> =
            extracted.sections.iter().filter(|s| s.anchor.part.as_deref() == Some("embedded chunk.htm")).collect();
        assert!(embedded.iter().any(|s| s.text.contains("Payment is due within 30 days.")), "{:?}", extracted.sections);
        assert!(extracted.notes.iter().any(|n| n.starts_with("embedded blob.bin not read")), "{:?}", extracted.notes);
    }

    #[test]
    fn comments_are_a_part_of_their_own() {
        let with_comments = |name: &str, bytes: Vec<u8>| {
            match name {
            "word/_rels/document.xml.rels" => String::from_utf8(bytes)
                .unwrap()
                .replace(
                    "</Relationships>",
                    "<Relationship Id=\"rId99\" Target=\"comments.xml\" \
                     Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/comments\"/></Relationships>",
                )
                .into_bytes(),
            "word/comments.xml" => br#"<w:comments xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">
                <w:comment w:id="0" w:author="Marta"><w:p><w:r><w:t>Check the Q3 freight figure</w:t></w:r></w:p></w:comment>
                </w:comments>"#
                .to_vec(),
            _ => bytes,
        }
        };
        let extracted =
            Docx.extract(&repackaged("real/docx/footnotes.docx", with_comments), &Limits::default()).unwrap();
        let comment = extracted.sections.iter().find(|s| s.anchor.part.as_deref() == Some("comments"));
        assert_eq!(comment.map(|s| s.text.as_str()), Some("Check the Q3 freight figure"), "{:?}", extracted.sections);
    }

    #[test]
    fn a_damaged_footnotes_part_is_noted_and_the_body_is_read() {
        let broken = |name: &str, bytes: Vec<u8>| {
            if name == "word/footnotes.xml" {
                [&bytes[..bytes.len() / 2], b"<broken attr=\"".as_slice()].concat()
            } else {
                bytes
            }
        };
        let whole = Docx.extract(&repackaged("real/docx/footnotes.docx", |_, b| b), &Limits::default()).unwrap();
        let damaged = Docx.extract(&repackaged("real/docx/footnotes.docx", broken), &Limits::default()).unwrap();
        assert!(damaged.notes.iter().any(|n| n.starts_with("word/footnotes.xml not read")), "{:?}", damaged.notes);
        let body = |e: &Extracted| e.sections.iter().filter(|s| s.anchor.part.is_none()).count();
        assert!(body(&damaged) > 0 && body(&damaged) == body(&whole));
        assert!(whole.sections.iter().any(|s| s.anchor.part.as_deref() == Some("footnotes")));
    }
}
