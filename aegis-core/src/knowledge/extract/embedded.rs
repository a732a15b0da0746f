//! Files embedded in Office documents, read as parts of the document that holds them:
//! documents Word merges into the text (`w:altChunk`: HTML, MHTML, RTF, text, Word), and
//! objects embedded in a document or a slide (a workbook, a document or a deck embedded
//! whole, `package`; a legacy binary object, `oleObject`, such as an Excel 97 sheet or a
//! file of any format packaged into one, which is read as that file). The
//! page shows an object as a picture of it; its data is what the object holds. A chart's
//! own workbook is not among them (it hangs off the chart, whose cached values are read).

use super::{Anchor, ExtractError, Extracted, Limits, ooxml::Package, ooxml::Relationship, or_note};

/// The deepest a file embedded in a file (in one embedded in another, …) is read.
const MAX_EMBEDDED_NESTING: u32 = 4;

/// The most embedded files one part reads, those nested in them included: nesting alone
/// bounds the depth, not the fan-out (ten objects each holding ten, four deep, are 11,110).
const MAX_EMBEDDED_FILES: u32 = 64;

thread_local! {
    /// How many embedded files the reader is inside on this thread.
    static EMBEDDED_NESTING: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    /// How many more embedded files the outermost part being read may read.
    static EMBEDDED_LEFT: std::cell::Cell<u32> = const { std::cell::Cell::new(MAX_EMBEDDED_FILES) };
}

/// The relationship kinds of embedded files: merged documents and embedded objects.
const EMBEDDED_KINDS: [&str; 3] = ["aFChunk", "package", "oleObject"];

/// Where the embedding part sits: its slide or sheet, given to the embedded file's
/// sections that have none of their own, and named in its notes (`slide 3`).
#[derive(Default)]
pub(super) struct Place {
    /// The slide and sheet of the part that embeds the files.
    pub anchor: Anchor,
    /// The part's name in notes, empty for a document's body.
    pub name: String,
}

/// Reads every file `rels` embeds ([`EMBEDDED_KINDS`]) as a part named for it, at `place`;
/// its position in the text is not kept. One that cannot be read is a note.
pub(super) fn read_embedded(
    package: &mut Package<'_>,
    rels: &[Relationship],
    limits: &Limits,
    place: &Place,
    extracted: &mut Extracted,
) -> Result<(), ExtractError> {
    if EMBEDDED_NESTING.get() == 0 {
        EMBEDDED_LEFT.set(MAX_EMBEDDED_FILES);
    }
    // A part referred to twice is read once.
    let mut seen = std::collections::HashSet::new();
    for rel in rels.iter().filter(|r| EMBEDDED_KINDS.contains(&r.kind.as_str()) && seen.insert(r.target.as_str())) {
        if EMBEDDED_LEFT.get() == 0 {
            let at = if place.name.is_empty() { String::new() } else { format!("{}: ", place.name) };
            extracted.notes.push(format!("{at}more than {MAX_EMBEDDED_FILES} embedded files: the rest were not read"));
            break;
        }
        EMBEDDED_LEFT.set(EMBEDDED_LEFT.get() - 1);
        read_one(package, &rel.target, limits, place, extracted)?;
    }
    Ok(())
}

fn read_one(
    package: &mut Package<'_>,
    target: &str,
    limits: &Limits,
    place: &Place,
    extracted: &mut Extracted,
) -> Result<(), ExtractError> {
    let name = target.rsplit('/').next().unwrap_or(target);
    let at = if place.name.is_empty() { String::new() } else { format!("{}: ", place.name) };
    let Some(bytes) =
        or_note(package.part_bytes(target), &mut extracted.notes, |e| format!("{at}embedded {name} not read ({e})"))?
            .flatten()
    else {
        return Ok(());
    };
    // A file packaged into an OLE object is read as that file, under its own name.
    let (name, bytes) = match bytes.starts_with(super::ole::MAGIC) {
        true => match or_note(super::ole::packaged_file(&bytes), &mut extracted.notes, |e| {
            format!("{at}embedded {name} not read ({e})")
        })? {
            Some(Some((inner, data))) => (inner, data),
            Some(None) => (name.to_owned(), bytes),
            None => return Ok(()),
        },
        false => (name.to_owned(), bytes),
    };
    let name = name.as_str();
    let Some(format) = super::Format::detect(name, &bytes) else {
        extracted.notes.push(format!("{at}embedded {name} not read: not a format AEGIS reads"));
        return Ok(());
    };
    let read = super::nested(&EMBEDDED_NESTING, MAX_EMBEDDED_NESTING, "files embedded", || {
        super::extract(format, &bytes, limits)
    });
    match read {
        Ok(mut read) => {
            // The place is in the sections' anchors; the notes name it.
            for section in &mut read.sections {
                section.anchor.slide = section.anchor.slide.or(place.anchor.slide);
                section.anchor.sheet = section.anchor.sheet.take().or_else(|| place.anchor.sheet.clone());
            }
            let notes = std::mem::take(&mut read.notes);
            super::add_as_part(extracted, &format!("embedded {name}"), read);
            extracted.notes.extend(notes.into_iter().map(|note| format!("{at}embedded {name}: {note}")));
        }
        Err(e) => extracted.notes.push(format!("{at}embedded {name} not read: {e}")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::{Cursor, Write};

    use super::super::{Extractor, Section, docx::Docx, ooxml::repackaged_adding, pptx::Pptx, xlsx::Xlsx};
    use super::*;

    /// An OLE Package object wrapping the file `name` of `data`, as Office writes one when a
    /// file is dragged into a document; `cut` drops that many bytes off its stream's end.
    fn ole_package(name: &str, data: &[u8], cut: usize) -> Vec<u8> {
        let mut body = vec![2, 0];
        for text in [name, &format!("C:\\Users\\marta\\{name}")] {
            body.extend(text.as_bytes());
            body.push(0);
        }
        let temp = format!("C:\\Temp\\{name}\0");
        body.extend([0, 0, 3, 0]);
        body.extend(u32::try_from(temp.len()).unwrap().to_le_bytes());
        body.extend(temp.as_bytes());
        body.extend(u32::try_from(data.len()).unwrap().to_le_bytes());
        body.extend(data);
        let mut native = u32::try_from(body.len()).unwrap().to_le_bytes().to_vec();
        native.extend(body);
        native.truncate(native.len() - cut);
        let mut file = cfb::CompoundFile::create(Cursor::new(Vec::new())).unwrap();
        file.create_stream("/\u{1}Ole10Native").unwrap().write_all(&native).unwrap();
        file.flush().unwrap();
        file.into_inner().into_inner()
    }

    fn relationship(id: &str, kind: &str, target: &str) -> String {
        format!(
            "<Relationship Id=\"{id}\" Target=\"{target}\" \
             Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/{kind}\"/>"
        )
    }

    #[test]
    fn objects_embedded_in_a_document_are_read_as_its_parts() {
        let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus");
        let workbook = std::fs::read(corpus.join("generated/xlsx/gen-xlsx-000-10r.xlsx")).unwrap();
        let minutes = ole_package("minutes.txt", "Board minutes: the Zürich lease is renewed.".as_bytes(), 0);
        let damaged = ole_package("cut.txt", b"never read", 6);
        let mut unknown = cfb::CompoundFile::create(Cursor::new(Vec::new())).unwrap();
        unknown.create_stream("/CONTENTS").unwrap().write_all(b"equation").unwrap();
        unknown.flush().unwrap();
        let unknown = unknown.into_inner().into_inner();
        let rels = [
            relationship("rId90", "package", "embeddings/Microsoft_Excel_Worksheet.xlsx"),
            relationship("rId91", "oleObject", "embeddings/oleObject1.bin"),
            relationship("rId92", "oleObject", "embeddings/oleObject2.bin"),
            relationship("rId93", "oleObject", "embeddings/oleObject3.bin"),
        ]
        .concat();
        let with_objects = |name: &str, bytes: Vec<u8>| match name {
            "word/_rels/document.xml.rels" => String::from_utf8(bytes)
                .unwrap()
                .replace("</Relationships>", &format!("{rels}</Relationships>"))
                .into_bytes(),
            _ => bytes,
        };
        let docx = repackaged_adding(
            "real/docx/footnotes.docx",
            with_objects,
            &[
                ("word/embeddings/Microsoft_Excel_Worksheet.xlsx", &workbook),
                ("word/embeddings/oleObject1.bin", &minutes),
                ("word/embeddings/oleObject2.bin", &damaged),
                ("word/embeddings/oleObject3.bin", &unknown),
            ],
        );
        let extracted = Docx.extract(&docx, &Limits::default()).unwrap();
        let part = |label: &str| -> Vec<&Section> {
            extracted.sections.iter().filter(|s| s.anchor.part.as_deref() == Some(label)).collect()
        };
        let sheets = part("embedded Microsoft_Excel_Worksheet.xlsx");
        assert!(!sheets.is_empty() && sheets.iter().all(|s| s.anchor.sheet.is_some()), "{:?}", extracted.sections);
        assert_eq!(
            part("embedded minutes.txt").first().map(|s| s.text.as_str()),
            Some("Board minutes: the Zürich lease is renewed.")
        );
        let noted = |start: &str| extracted.notes.iter().any(|n| n.starts_with(start));
        assert!(noted("embedded oleObject2.bin not read (the packaged file's Ole10Native stream is damaged)"));
        assert!(noted("embedded oleObject3.bin not read: not a format AEGIS reads"), "{:?}", extracted.notes);
        // The body is read as before.
        assert!(extracted.sections.iter().any(|s| s.anchor.part.is_none()));
    }

    #[test]
    fn a_workbook_embedded_in_a_slide_is_cited_on_that_slide() {
        let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus");
        let deck = std::fs::read(corpus.join("real/pptx/act-props.pptm")).unwrap();
        let extracted = Pptx.extract(&deck, &Limits::default()).unwrap();
        let sheet = extracted
            .sections
            .iter()
            .find(|s| s.anchor.part.as_deref() == Some("embedded Microsoft_Excel_Worksheet.xlsx"))
            .unwrap_or_else(|| panic!("{:?}", extracted.sections));
        assert_eq!((sheet.anchor.slide, sheet.anchor.sheet.as_deref()), (Some(3), Some("Sheet1")));
        assert!(sheet.text.contains("| OLE |"), "{}", sheet.text);
    }

    #[test]
    fn a_file_embedded_in_a_sheet_is_cited_on_that_sheet() {
        let memo = ole_package("memo.txt", b"Stock count signed off by the auditor.", 0);
        let rels = format!(
            "<Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">{}</Relationships>",
            relationship("rId1", "oleObject", "../embeddings/oleObject1.bin")
        );
        let workbook = repackaged_adding(
            "generated/xlsx/gen-xlsx-000-10r.xlsx",
            |_, bytes| bytes,
            &[("xl/worksheets/_rels/sheet1.xml.rels", rels.as_bytes()), ("xl/embeddings/oleObject1.bin", &memo)],
        );
        let extracted = Xlsx.extract(&workbook, &Limits::default()).unwrap();
        let memo = extracted
            .sections
            .iter()
            .find(|s| s.anchor.part.as_deref() == Some("embedded memo.txt"))
            .unwrap_or_else(|| panic!("{:?}", extracted.sections));
        assert_eq!(
            (memo.anchor.sheet.as_deref(), memo.text.as_str()),
            (Some("All1"), "Stock count signed off by the auditor.")
        );
        assert!(
            extracted.sections.iter().any(|s| s.anchor.part.is_none() && s.anchor.sheet.as_deref() == Some("All1"))
        );
    }

    #[test]
    fn a_part_embedding_many_files_reads_at_most_the_budget_and_each_target_once() {
        let files: Vec<(String, Vec<u8>)> = (0..70)
            .map(|i| (format!("word/embeddings/oleObject{i}.bin"), ole_package(&format!("n{i}.txt"), b"note", 0)))
            .collect();
        // Each file twice: a target referred to again is not read again.
        let rels: String = (0..140)
            .map(|i| {
                relationship(&format!("rId{}", 900 + i), "oleObject", &format!("embeddings/oleObject{}.bin", i % 70))
            })
            .collect();
        let with_objects = |name: &str, bytes: Vec<u8>| match name {
            "word/_rels/document.xml.rels" => String::from_utf8(bytes)
                .unwrap()
                .replace("</Relationships>", &format!("{rels}</Relationships>"))
                .into_bytes(),
            _ => bytes,
        };
        let extra: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (n.as_str(), b.as_slice())).collect();
        let docx = repackaged_adding("real/docx/footnotes.docx", with_objects, &extra);
        let extracted = Docx.extract(&docx, &Limits::default()).unwrap();
        let embedded =
            extracted.sections.iter().filter(|s| s.anchor.part.as_deref().is_some_and(|p| p.starts_with("embedded n")));
        assert_eq!(embedded.count(), MAX_EMBEDDED_FILES as usize);
        assert!(extracted.notes.iter().any(|n| n.starts_with("more than 64 embedded files")), "{:?}", extracted.notes);
    }
}
