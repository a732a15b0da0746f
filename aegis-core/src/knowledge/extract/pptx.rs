//! PPTX with zip + quick-xml: slides in presentation order (`p:sldIdLst` through the
//! package relationships), each a section labelled `Slide N: <title>`, with the text of
//! every shape (group shapes included), of its SmartArt diagrams and charts (titles and
//! labels), tables as markdown rows, the files embedded in it (a workbook, a document:
//! [`super::embedded`]) as parts on its slide, and speaker notes as a section of their own.

use quick_xml::{Reader, events::Event};

use super::{
    Anchor, ExtractError, Extracted, Extractor, Limits, Section, SectionKind,
    embedded::Place,
    markdown_table,
    ooxml::{Package, attr, resolve_ref},
    or_note,
};

/// PowerPoint presentations.
pub struct Pptx;

impl Extractor for Pptx {
    fn extract(&self, bytes: &[u8], limits: &Limits) -> Result<Extracted, ExtractError> {
        let mut package = Package::open(bytes, limits)?;
        let main = package.main_part()?;
        let presentation =
            package.part(&main)?.ok_or_else(|| ExtractError::Malformed(format!("the main part {main} is missing")))?;
        let rels = package.relationships(&main)?;
        let mut notes = Vec::new();
        let mut sections = Vec::new();
        let mut hidden = Vec::new();
        let order = slide_ids(&presentation)?;
        if order.is_empty() {
            notes.push("the presentation has no slides".into());
        }
        for (i, rid) in order.iter().enumerate() {
            let number = u32::try_from(i + 1).unwrap_or(u32::MAX);
            let Some(rel) = rels.iter().find(|r| &r.id == rid) else {
                notes.push(format!("slide {number}: its relationship {rid} is missing"));
                continue;
            };
            let Some(xml) = package.part(&rel.target)? else {
                notes.push(format!("slide {number}: part {} is missing", rel.target));
                continue;
            };
            // One damaged slide is noted and skipped; the rest of the deck is still read.
            let Some(slide) = or_note(read_shapes(&xml), &mut notes, |e| format!("slide {number}: not read ({e})"))?
            else {
                continue;
            };
            if slide.hidden {
                hidden.push(number.to_string());
            }
            let anchor = Anchor { slide: Some(number), ..Anchor::default() };
            let mut text = format!("Slide {number}: {}", slide.title.as_deref().unwrap_or("").trim());
            for body in &slide.bodies {
                text.push('\n');
                text.push_str(body);
            }
            let slide_rels = or_note(package.relationships(&rel.target), &mut notes, |e| {
                format!("slide {number}: its relationships not read, so neither its drawings nor its notes ({e})")
            })?
            .unwrap_or_default();
            for (kind, what) in [("diagramData", "SmartArt diagram"), ("chart", "chart")] {
                match package.related_texts(&slide_rels, kind) {
                    Ok(drawings) => {
                        for drawing in drawings {
                            text.push('\n');
                            text.push_str(&drawing);
                        }
                    }
                    Err(e) => notes.push(format!("slide {number}: a {what} was not read ({e})")),
                }
            }
            // A slide with no text (a picture, a blank) gives no section of its label alone.
            if text.trim_end() != format!("Slide {number}:") {
                sections.push(Section {
                    anchor: anchor.clone(),
                    kind: SectionKind::Text,
                    text: text.trim_end().to_owned(),
                });
            }
            for table in slide.tables {
                sections.push(Section {
                    anchor: anchor.clone(),
                    kind: SectionKind::Table,
                    text: markdown_table(&table),
                });
            }
            let mut objects = Extracted::default();
            let place = Place { anchor: anchor.clone(), name: format!("slide {number}") };
            super::embedded::read_embedded(&mut package, &slide_rels, limits, &place, &mut objects)?;
            sections.extend(objects.sections);
            notes.extend(objects.notes);
            if let Some(notes_rel) = slide_rels.iter().find(|r| r.kind == "notesSlide")
                && let Some(notes_xml) = package.part(&notes_rel.target)?
            {
                let Some(shapes) = or_note(read_shapes(&notes_xml), &mut notes, |e| {
                    format!("slide {number}: its speaker notes not read ({e})")
                })?
                else {
                    continue;
                };
                let notes_text = shapes.bodies.join("\n");
                if !notes_text.trim().is_empty() {
                    sections.push(Section {
                        anchor: Anchor { part: Some("notes".into()), ..anchor.clone() },
                        kind: SectionKind::Text,
                        text: format!("Slide {number} notes:\n{}", notes_text.trim()),
                    });
                }
            }
        }
        // Read like the others (they often hold the backup detail people ask about), but
        // a hit from one should not be a surprise.
        if !hidden.is_empty() {
            notes.push(format!("hidden slides, read like the others: {}", hidden.join(", ")));
        }
        Ok(Extracted { sections, notes })
    }
}

/// Relationship ids of the slides, in order.
fn slide_ids(xml: &str) -> Result<Vec<String>, ExtractError> {
    let mut reader = Reader::from_str(xml);
    let mut ids = Vec::new();
    loop {
        match reader.read_event() {
            Ok(Event::Empty(e) | Event::Start(e)) if e.local_name().as_ref() == "sldId" => {
                // The relationship id is the namespaced `r:id`; the bare `id` is a number.
                let rid = e
                    .attributes()
                    .flatten()
                    .find(|a| a.key.prefix().is_some() && a.key.local_name().as_ref() == "id")
                    .and_then(|a| a.normalized_value(quick_xml::XmlVersion::Implicit1_0).ok().map(|v| v.into_owned()));
                if let Some(rid) = rid {
                    ids.push(rid);
                }
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => return Err(ExtractError::Malformed(format!("presentation XML: {e}"))),
        }
    }
    Ok(ids)
}

#[derive(Default)]
struct Slide {
    title: Option<String>,
    bodies: Vec<String>,
    tables: Vec<Vec<Vec<String>>>,
    /// Hidden in the slide show (`<p:sld show="0">`).
    hidden: bool,
}

/// Text of every shape; the title placeholder separately; slide numbers and dates skipped.
fn read_shapes(xml: &str) -> Result<Slide, ExtractError> {
    let mut reader = Reader::from_str(xml);
    let mut slide = Slide::default();
    let mut shape: Option<(String, Option<String>)> = None; // (text, placeholder type)
    let mut paragraph = String::new();
    let mut in_text = false;
    let mut table: Option<Vec<Vec<String>>> = None;
    let mut fallback = 0usize;
    loop {
        let event = reader.read_event().map_err(|e| ExtractError::Malformed(format!("slide XML: {e}")))?;
        if fallback > 0 {
            match &event {
                Event::Start(e) if e.local_name().as_ref() == "Fallback" => fallback += 1,
                Event::End(e) if e.local_name().as_ref() == "Fallback" => fallback -= 1,
                Event::Eof => break,
                _ => {}
            }
            continue;
        }
        match event {
            Event::Start(e) => match e.local_name().as_ref() {
                "Fallback" => fallback = 1,
                "sld" => slide.hidden = matches!(attr(&e, "show").as_deref(), Some("0" | "false")),
                "sp" => shape = Some((String::new(), None)),
                "t" => in_text = true,
                "p" => paragraph.clear(),
                "tbl" => table = Some(Vec::new()),
                "tr" => {
                    if let Some(t) = &mut table {
                        t.push(Vec::new());
                    }
                }
                "tc" => {
                    if let Some(row) = table.as_mut().and_then(|t| t.last_mut()) {
                        row.push(String::new());
                    }
                }
                "ph" => {
                    if let Some((_, kind)) = &mut shape {
                        *kind = Some(attr(&e, "type").unwrap_or_else(|| "body".into()));
                    }
                }
                _ => {}
            },
            Event::Empty(e) => match e.local_name().as_ref() {
                "ph" => {
                    if let Some((_, kind)) = &mut shape {
                        *kind = Some(attr(&e, "type").unwrap_or_else(|| "body".into()));
                    }
                }
                "br" => paragraph.push('\n'),
                _ => {}
            },
            Event::End(e) => match e.local_name().as_ref() {
                "t" => in_text = false,
                "p" => {
                    let text = std::mem::take(&mut paragraph);
                    let text = text.trim();
                    if let Some(cell) = table.as_mut().and_then(|t| t.last_mut()).and_then(|r| r.last_mut()) {
                        if !cell.is_empty() && !text.is_empty() {
                            cell.push(' ');
                        }
                        cell.push_str(text);
                    } else if let Some((shape_text, _)) = &mut shape
                        && !text.is_empty()
                    {
                        if !shape_text.is_empty() {
                            shape_text.push('\n');
                        }
                        shape_text.push_str(text);
                    }
                }
                "sp" => {
                    if let Some((text, kind)) = shape.take()
                        && !text.trim().is_empty()
                    {
                        match kind.as_deref() {
                            Some("title" | "ctrTitle") if slide.title.is_none() => {
                                slide.title = Some(text.replace('\n', " "))
                            }
                            Some("sldNum" | "dt" | "ftr" | "sldImg") => {}
                            _ => slide.bodies.push(text),
                        }
                    }
                }
                "tbl" => {
                    if let Some(t) = table.take() {
                        let rows: Vec<Vec<String>> =
                            t.into_iter().filter(|r| r.iter().any(|c| !c.is_empty())).collect();
                        if !rows.is_empty() {
                            slide.tables.push(rows);
                        }
                    }
                }
                _ => {}
            },
            Event::Text(t) if in_text => paragraph.push_str(&t.xml10_content()),
            Event::GeneralRef(r) if in_text => {
                if let Some(c) = resolve_ref(r) {
                    paragraph.push(c);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(slide)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::knowledge::extract::ooxml::repackaged;

    /// The generated two-slide deck with `damage` applied to each part's bytes.
    fn deck_with(damage: impl Fn(&str, Vec<u8>) -> Vec<u8>) -> Vec<u8> {
        repackaged("generated/pptx/gen-pptx-001-2s.pptx", damage)
    }

    #[test]
    fn hidden_slides_are_read_and_noted() {
        let deck = deck_with(|name, bytes| {
            if name == "ppt/slides/slide2.xml" {
                String::from_utf8(bytes).unwrap().replacen("<p:sld ", "<p:sld show=\"0\" ", 1).into_bytes()
            } else {
                bytes
            }
        });
        let extracted = Pptx.extract(&deck, &Limits::default()).unwrap();
        let whole = Pptx.extract(&deck_with(|_, b| b), &Limits::default()).unwrap();
        assert_eq!(extracted.sections, whole.sections);
        assert_eq!(extracted.notes, ["hidden slides, read like the others: 2"]);
    }

    #[test]
    fn one_damaged_slide_is_noted_and_the_rest_of_the_deck_is_read() {
        let cut = |bytes: Vec<u8>| [&bytes[..bytes.len() / 2], b"<broken attr=\"".as_slice()].concat();
        let deck = deck_with(|name, bytes| if name == "ppt/slides/slide1.xml" { cut(bytes) } else { bytes });
        let extracted = Pptx.extract(&deck, &Limits::default()).unwrap();
        assert!(extracted.notes.iter().any(|n| n.starts_with("slide 1: not read")), "{:?}", extracted.notes);
        assert!(extracted.sections.iter().all(|s| s.anchor.slide == Some(2)), "{:?}", extracted.sections);
        assert!(!extracted.sections.is_empty());

        let deck = deck_with(|name, bytes| if name == "ppt/slides/_rels/slide2.xml.rels" { cut(bytes) } else { bytes });
        let extracted = Pptx.extract(&deck, &Limits::default()).unwrap();
        assert!(
            extracted.notes.iter().any(|n| n.starts_with("slide 2: its relationships not read")),
            "{:?}",
            extracted.notes
        );
        assert!(extracted.sections.iter().any(|s| s.anchor.slide == Some(2) && s.text.starts_with("Slide 2:")));
    }
}
