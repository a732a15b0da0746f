//! Zip archives of documents (`.zip`, a folder sent or downloaded as one file): each file
//! in it is read by its format's extractor, in this process and under the same limits, as
//! a part of the archive named by its path (`policies/refunds.docx, page 2`); a zip inside
//! is read the same way, at most [`MAX_NESTING`] deep. The zip-bomb guards of the Office
//! packages apply to the whole archive before anything is read. Files of formats AEGIS
//! does not read (pictures, programs) are counted in one note; an encrypted or damaged
//! entry is a note of its own; macOS's resource forks (`__MACOSX/`, `._name`) are skipped.
//! The archive is one document: its files are not stored apart, and the per-file time
//! limit covers all of them.

use std::{cell::Cell, collections::BTreeMap};

use super::{
    ExtractError, Extracted, Extractor, Format, Limits, add_as_part, nested,
    ooxml::{guarded_zip, read_entry},
};

/// Zip archives.
pub struct Archive;

/// The deepest an archive inside an archive is read.
const MAX_NESTING: u32 = 4;

/// The most files of one archive read.
const MAX_FILES: usize = 10_000;

thread_local! {
    /// How many archives the reader is inside on this thread.
    static NESTING: Cell<u32> = const { Cell::new(0) };
}

impl Extractor for Archive {
    fn extract(&self, bytes: &[u8], limits: &Limits) -> Result<Extracted, ExtractError> {
        nested(&NESTING, MAX_NESTING, "archives nested", || read_archive(bytes, limits))
    }
}

fn read_archive(bytes: &[u8], limits: &Limits) -> Result<Extracted, ExtractError> {
    let mut archive = guarded_zip(bytes, limits)?;
    let mut extracted = Extracted::default();
    let mut unread: BTreeMap<String, usize> = BTreeMap::new();
    if archive.len() > MAX_FILES {
        extracted.notes.push(format!("only the first {MAX_FILES} of its {} entries were read", archive.len()));
    }
    for index in 0..archive.len().min(MAX_FILES) {
        let Some((name, encrypted)) = archive
            .by_index_raw(index)
            .ok()
            .filter(|entry| !entry.is_dir())
            .and_then(|entry| Some((entry.name().ok()?.into_owned(), entry.encrypted())))
        else {
            continue;
        };
        let file_name = name.rsplit('/').next().unwrap_or_default();
        if name.starts_with("__MACOSX/") || file_name.starts_with("._") || file_name == ".DS_Store" {
            continue;
        }
        if encrypted {
            extracted.notes.push(format!("{name} was not read: it is encrypted"));
            continue;
        }
        let data = match archive
            .by_index(index)
            .map_err(|e| ExtractError::Malformed(format!("zip: {e}")))
            .and_then(|mut entry| read_entry(&mut entry, limits.max_uncompressed_bytes))
        {
            Ok(data) => data,
            Err(e) => {
                extracted.notes.push(format!("{name} was not read: {e}"));
                continue;
            }
        };
        let Some(format) = Format::detect(&name, &data) else {
            let kind = match file_name.rsplit_once('.') {
                Some((_, extension)) => format!(".{}", extension.to_ascii_lowercase()),
                None => "without an extension".to_owned(),
            };
            *unread.entry(kind).or_default() += 1;
            continue;
        };
        match super::extract(format, &data, limits) {
            Ok(read) => add_as_part(&mut extracted, &name, read),
            Err(e) => extracted.notes.push(format!("{name} was not read: {e}")),
        }
    }
    if !unread.is_empty() {
        let counts: Vec<String> = unread.iter().map(|(kind, n)| format!("{n} {kind}")).collect();
        let total: usize = unread.values().sum();
        extracted
            .notes
            .push(format!("{total} files of formats AEGIS does not read were skipped: {}", counts.join(", ")));
    }
    Ok(extracted)
}

#[cfg(test)]
mod tests {
    use std::io::{Cursor, Write};

    use super::super::{Format, Limits, corpus, extract};

    fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, data) in files {
            out.start_file(*name, zip::write::SimpleFileOptions::default()).unwrap();
            out.write_all(data).unwrap();
        }
        out.finish().unwrap().into_inner()
    }

    #[test]
    fn each_file_of_an_archive_is_read_as_a_part_named_by_its_path() {
        let docx = corpus("generated/docx/gen-docx-001-2p.docx");
        let inner = zip_of(&[("minutes.txt", b"The board met on Tuesday.")]);
        let archive = zip_of(&[
            ("policies/refunds.docx", &docx),
            ("policies/prices.csv", b"item,price\ncoffee,3.20\n"),
            ("policies/logo.png", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"),
            ("__MACOSX/policies/._refunds.docx", b"\0\x05\x16\x07"),
            ("old/2019.zip", &inner),
        ]);
        assert_eq!(Format::detect("policies.zip", &archive), Some(Format::Zip));
        assert_eq!(Format::detect("download", &archive), Some(Format::Zip), "sniffed without an extension");
        let extracted = extract(Format::Zip, &archive, &Limits::default()).unwrap();
        let docx_text = extract(Format::Docx, &docx, &Limits::default()).unwrap().text();
        let part = |label: &str| -> Vec<&str> {
            extracted
                .sections
                .iter()
                .filter(|s| s.anchor.part.as_deref() == Some(label))
                .map(|s| s.text.as_str())
                .collect()
        };
        assert_eq!(part("policies/refunds.docx").join("\n\n"), docx_text);
        assert!(part("policies/prices.csv")[0].contains("| coffee | 3.20 |"), "{extracted:?}");
        assert_eq!(part("old/2019.zip, minutes.txt"), ["The board met on Tuesday."], "a zip inside is read too");
        assert_eq!(
            extracted.notes,
            ["1 files of formats AEGIS does not read were skipped: 1 .png"],
            "resource forks are not counted"
        );
    }

    #[test]
    fn archives_nested_too_deep_stop_with_a_note() {
        let mut archive = zip_of(&[("bottom.txt", b"The bottom.")]);
        for level in 0..6 {
            archive = zip_of(&[(&format!("level{level}.zip"), &archive)]);
        }
        let extracted = extract(Format::Zip, &archive, &Limits::default()).unwrap();
        assert!(!extracted.text().contains("The bottom."));
        assert!(
            extracted.notes.iter().any(|n| n.contains("archives nested more than 4 deep")),
            "{:?}",
            extracted.notes
        );
    }

    #[test]
    fn a_bomb_is_refused_before_anything_is_read() {
        let zeros = vec![0u8; 64 * 1024 * 1024];
        let bomb = zip_of(&[("a.txt", b"readable"), ("zeros.bin", &zeros)]);
        let error = extract(Format::Zip, &bomb, &Limits::default()).unwrap_err();
        assert!(matches!(error, super::ExtractError::ZipBomb(_)), "{error}");
    }
}
