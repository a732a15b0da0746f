//! The comments (notes) on a workbook's cells: each sheet's `comments` part, found through
//! the workbook's and the sheet's relationships, becomes one section of that sheet, a line
//! per comment led by its cell (`B2: Check the Q3 freight figure`). calamine reads none.

use quick_xml::{Reader, events::Event};

use super::{
    Anchor, ExtractError, Section, SectionKind,
    ooxml::{Package, Relationship, attr, resolve_ref},
};

/// Each worksheet of the workbook in `package`, in sheet order: its name and its
/// relationships (where its comments and embedded files are found).
pub(super) fn worksheets(package: &mut Package<'_>) -> Result<Vec<(String, Vec<Relationship>)>, ExtractError> {
    let main = package.main_part()?;
    let rels = package.relationships(&main)?;
    let Some(workbook) = package.part(&main)? else { return Ok(Vec::new()) };
    let mut worksheets = Vec::new();
    for (name, id) in sheets(&workbook) {
        let Some(sheet) = rels.iter().find(|r| r.id == id && r.kind == "worksheet") else { continue };
        worksheets.push((name, package.relationships(&sheet.target)?));
    }
    Ok(worksheets)
}

/// The comment sections of `worksheets` (from [`worksheets`]), in sheet order, and notes
/// on comment parts that could not be read (the cells still stand).
pub(super) fn sheet_comments(
    package: &mut Package<'_>,
    worksheets: &[(String, Vec<Relationship>)],
) -> Result<(Vec<Section>, Vec<String>), ExtractError> {
    let (mut sections, mut notes) = (Vec::new(), Vec::new());
    for (name, rels) in worksheets {
        for comments in rels.iter().filter(|r| r.kind == "comments") {
            let Some(xml) = package.part(&comments.target)? else { continue };
            match comment_lines(&xml) {
                Ok(lines) if lines.is_empty() => {}
                Ok(lines) => sections.push(Section {
                    anchor: Anchor { sheet: Some(name.clone()), part: Some("comments".into()), ..Anchor::default() },
                    kind: SectionKind::Text,
                    text: lines.join("\n"),
                }),
                Err(e) => notes.push(format!("the comments of sheet {name} were not read ({e})")),
            }
        }
    }
    Ok((sections, notes))
}

/// The workbook's sheets in order: (name, relationship id).
fn sheets(workbook: &str) -> Vec<(String, String)> {
    let mut reader = Reader::from_str(workbook);
    let mut sheets = Vec::new();
    loop {
        match reader.read_event() {
            Ok(Event::Empty(e) | Event::Start(e)) if e.local_name().as_ref() == "sheet" => {
                if let (Some(name), Some(id)) = (attr(&e, "name"), attr(&e, "id")) {
                    sheets.push((name, id));
                }
            }
            Ok(Event::Eof) | Err(_) => break,
            Ok(_) => {}
        }
    }
    sheets
}

/// `B2: text` for each comment of a comments part, its runs joined, in the part's order.
fn comment_lines(xml: &str) -> Result<Vec<String>, quick_xml::Error> {
    let mut reader = Reader::from_str(xml);
    let mut lines = Vec::new();
    let mut comment: Option<(String, String)> = None;
    let mut in_text = false;
    // A run's phonetic guide (`rPh`) repeats its reading, not its text.
    let mut in_phonetic = false;
    loop {
        match reader.read_event()? {
            Event::Start(e) => match e.local_name().as_ref() {
                "comment" => comment = Some((attr(&e, "ref").unwrap_or_default(), String::new())),
                "t" if !in_phonetic => in_text = true,
                "rPh" => in_phonetic = true,
                _ => {}
            },
            Event::End(e) => match e.local_name().as_ref() {
                "comment" => {
                    if let Some((cell, text)) = comment.take() {
                        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
                        if !text.is_empty() {
                            lines.push(if cell.is_empty() { text } else { format!("{cell}: {text}") });
                        }
                    }
                }
                "t" => in_text = false,
                "rPh" => in_phonetic = false,
                _ => {}
            },
            Event::Text(t) if in_text => {
                if let Some((_, text)) = &mut comment {
                    text.push_str(&t.xml10_content());
                }
            }
            Event::GeneralRef(r) if in_text => {
                if let Some((_, text)) = &mut comment {
                    text.extend(resolve_ref(r));
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_comment_is_a_line_led_by_its_cell() {
        let xml = r#"<comments xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">
            <authors><author>Marta</author></authors><commentList>
            <comment ref="B2" authorId="0"><text><r><rPr><b/></rPr><t>Marta:</t></r><r><t xml:space="preserve">
            Check the Q3 &amp; Q4 freight</t></r></text></comment>
            <comment ref="C7" authorId="0"><text><t>東京</t><rPh sb="0" eb="2"><t>トウキョウ</t></rPh></text></comment>
            <comment ref="D1" authorId="0"><text><t>  </t></text></comment>
            </commentList></comments>"#;
        assert_eq!(comment_lines(xml).unwrap(), ["B2: Marta: Check the Q3 & Q4 freight", "C7: 東京"]);
    }
}
