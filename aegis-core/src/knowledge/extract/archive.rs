//! Zip archives of documents (`.zip`, a folder sent or downloaded as one file): each file
//! in it is read by its format's extractor, in this process and under the same limits, as
//! a part of the archive named by its path (`policies/refunds.docx, page 2`); a zip inside
//! is read the same way, at most [`MAX_NESTING`] deep. The zip-bomb guards of the Office
//! packages apply to the whole archive before anything is read. Files of formats AEGIS
//! does not read (pictures, programs) are counted in one note; an encrypted or damaged
//! entry is a note of its own; macOS's resource forks (`__MACOSX/`, `._name`) are skipped.
//! Read so, an archive is one document (`aegis extract`, a zip attached to an email); a
//! batch ingest instead stores each file of an archive as a document of its own, through
//! [`unpack`] (`knowledge::archives`, decision 33).

use std::{cell::Cell, collections::BTreeMap};

use super::{
    ExtractError, Extracted, Extractor, Format, Limits, add_as_part, nested,
    ooxml::{guarded_zip, read_entry},
};

/// Zip archives.
pub struct Archive;

/// The deepest an archive inside an archive is read.
const MAX_NESTING: u32 = 4;

/// The most files of one archive read (by [`unpack`]: of an archive and all those nested
/// in it together).
pub const MAX_FILES: usize = 10_000;

thread_local! {
    /// How many archives the reader is inside on this thread.
    static NESTING: Cell<u32> = const { Cell::new(0) };
}

impl Extractor for Archive {
    fn extract(&self, bytes: &[u8], limits: &Limits) -> Result<Extracted, ExtractError> {
        nested(&NESTING, MAX_NESTING, "archives nested", || read_archive(bytes, limits))
    }
}

/// One file of an archive, as the walk over it finds it.
enum Entry {
    /// Its path in the archive and its bytes.
    File(String, Vec<u8>),
    /// A file that could not be read (encrypted, damaged, past the size limit).
    Unreadable(String, ExtractError),
}

/// Walks the files of an archive in their order, at most [`MAX_FILES`], without folders
/// and macOS's resource forks, each read under the size limit and handed to `each` (whose
/// error stops the walk). Returns whether files were left out past [`MAX_FILES`].
fn entries(
    bytes: &[u8],
    limits: &Limits,
    each: &mut dyn FnMut(Entry) -> Result<(), ExtractError>,
) -> Result<bool, ExtractError> {
    let mut archive = guarded_zip(bytes, limits)?;
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
            each(Entry::Unreadable(name, ExtractError::Encrypted("a zip entry with a password".into())))?;
            continue;
        }
        match archive
            .by_index(index)
            .map_err(|e| ExtractError::Malformed(format!("zip: {e}")))
            .and_then(|mut entry| read_entry(&mut entry, limits.max_uncompressed_bytes))
        {
            Ok(data) => each(Entry::File(name, data))?,
            Err(e) => each(Entry::Unreadable(name, e))?,
        }
    }
    Ok(archive.len() > MAX_FILES)
}

fn read_archive(bytes: &[u8], limits: &Limits) -> Result<Extracted, ExtractError> {
    let mut extracted = Extracted::default();
    let mut unread: BTreeMap<String, usize> = BTreeMap::new();
    let capped = entries(bytes, limits, &mut |entry| {
        let (name, data) = match entry {
            Entry::File(name, data) => (name, data),
            Entry::Unreadable(name, e) => {
                extracted.notes.push(format!("{name} was not read: {e}"));
                return Ok(());
            }
        };
        let Some(format) = Format::detect(&name, &data) else {
            let file_name = name.rsplit('/').next().unwrap_or_default();
            let kind = match file_name.rsplit_once('.') {
                Some((_, extension)) => format!(".{}", extension.to_ascii_lowercase()),
                None => "without an extension".to_owned(),
            };
            *unread.entry(kind).or_default() += 1;
            return Ok(());
        };
        match super::extract(format, &data, limits) {
            Ok(read) => add_as_part(&mut extracted, &name, read),
            Err(e) => extracted.notes.push(format!("{name} was not read: {e}")),
        }
        Ok(())
    })?;
    if capped {
        extracted.notes.push(format!("only the first {MAX_FILES} of its entries were read"));
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

/// A file found by [`unpack`].
#[derive(Debug)]
pub enum Unpacked {
    /// Its path (through the archives it is inside: `old/2019.zip/minutes.txt`) and bytes.
    File(String, Vec<u8>),
    /// A file that could not be read, and why.
    Unreadable(String, ExtractError),
}

/// The files of a zip archive, for storing each as a document of its own: those of zips
/// inside it too, [`MAX_NESTING`] deep, by their paths joined with `/`. The reader's guards
/// apply to every archive, and all the archives together stay within one budget: the
/// uncompressed size limit (each entry counted as at least 1 KiB, nested archives too),
/// [`MAX_FILES`] entries and the per-file time limit. The archive itself failing (not a
/// zip, damaged, a bomb, out of time) is the error; a file in it failing is an
/// [`Unpacked::Unreadable`]. Returns whether entries were left out past [`MAX_FILES`].
pub fn unpack(bytes: &[u8], limits: &Limits, each: &mut dyn FnMut(Unpacked)) -> Result<bool, ExtractError> {
    let mut budget = Budget {
        bytes: limits.max_uncompressed_bytes,
        files: MAX_FILES,
        deadline: std::time::Instant::now() + limits.timeout,
        exhausted: None,
    };
    match unpack_into(bytes, limits, "", 1, &mut budget, each) {
        Err(_) if budget.exhausted == Some(Exhausted::Files) => Ok(true),
        result => result,
    }
}

/// What all the archives of one [`unpack`] may take together.
struct Budget {
    /// Bytes of files (each counted as at least [`MIN_FILE_COST`]) and of nested archives.
    bytes: u64,
    /// Entries, files and nested archives alike.
    files: usize,
    /// When the unpacking must have ended (the per-file time limit).
    deadline: std::time::Instant,
    /// What ran out, once something has.
    exhausted: Option<Exhausted>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exhausted {
    Files,
    Bytes,
    Time,
}

/// What an entry costs at least: an archive of empty files must not unpack without end.
const MIN_FILE_COST: u64 = 1024;

impl Budget {
    /// Charges one entry of `bytes`; the error ends the walk.
    fn charge(&mut self, bytes: usize, limits: &Limits) -> Result<(), ExtractError> {
        let cost = (bytes as u64).max(MIN_FILE_COST);
        let exhausted = if self.files == 0 {
            Exhausted::Files
        } else if cost > self.bytes {
            Exhausted::Bytes
        } else if std::time::Instant::now() > self.deadline {
            Exhausted::Time
        } else {
            self.files -= 1;
            self.bytes -= cost;
            return Ok(());
        };
        self.exhausted = Some(exhausted);
        Err(match exhausted {
            Exhausted::Files => ExtractError::TooLarge(format!("more than {MAX_FILES} files")),
            Exhausted::Bytes => {
                ExtractError::ZipBomb(format!("its files expand past {} bytes together", limits.max_uncompressed_bytes))
            }
            Exhausted::Time => ExtractError::Timeout(limits.timeout.as_secs()),
        })
    }
}

fn unpack_into(
    bytes: &[u8],
    limits: &Limits,
    prefix: &str,
    depth: u32,
    budget: &mut Budget,
    each: &mut dyn FnMut(Unpacked),
) -> Result<bool, ExtractError> {
    let capped = entries(bytes, limits, &mut |entry| {
        let (name, data) = match entry {
            Entry::File(name, data) => (format!("{prefix}{name}"), data),
            Entry::Unreadable(name, e) => {
                budget.charge(0, limits)?;
                each(Unpacked::Unreadable(format!("{prefix}{name}"), e));
                return Ok(());
            }
        };
        budget.charge(data.len(), limits)?;
        if Format::detect(&name, &data) == Some(Format::Zip) {
            if depth >= MAX_NESTING {
                let error = ExtractError::Malformed(format!("archives nested deeper than {MAX_NESTING}"));
                each(Unpacked::Unreadable(name, error));
                return Ok(());
            }
            match unpack_into(&data, limits, &format!("{name}/"), depth + 1, budget, each) {
                Ok(_) => {}
                Err(e) if budget.exhausted.is_some() => return Err(e),
                Err(e) => each(Unpacked::Unreadable(name, e)),
            }
            return Ok(());
        }
        each(Unpacked::File(name, data));
        Ok(())
    })?;
    if capped {
        budget.exhausted = Some(Exhausted::Files);
        return Err(ExtractError::TooLarge(format!("more than {MAX_FILES} files")));
    }
    Ok(false)
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
    fn unpacking_names_files_by_their_paths_through_nested_archives_under_one_budget() {
        let unpacked = |archive: &[u8], limits: &Limits| {
            let mut found = Vec::new();
            let capped = super::unpack(archive, limits, &mut |file| match file {
                super::Unpacked::File(path, data) => found.push(format!("{path}: {}", String::from_utf8_lossy(&data))),
                super::Unpacked::Unreadable(path, e) => found.push(format!("{path} unreadable: {e}")),
            });
            (found, capped)
        };
        let mut deep = zip_of(&[("bottom.txt", b"The bottom.")]);
        for level in 0..4 {
            deep = zip_of(&[(&format!("level{level}.zip"), &deep)]);
        }
        let archive = zip_of(&[
            ("policies/refunds.txt", b"Refunds within 14 days."),
            ("__MACOSX/policies/._refunds.txt", b"\0\x05"),
            ("old/2019.zip", &zip_of(&[("minutes.txt", b"The board met.")])),
            ("deep.zip", &deep),
        ]);
        let (found, capped) = unpacked(&archive, &Limits::default());
        assert!(!capped.unwrap());
        assert_eq!(
            found,
            [
                "policies/refunds.txt: Refunds within 14 days.",
                "old/2019.zip/minutes.txt: The board met.",
                "deep.zip/level3.zip/level2.zip/level1.zip unreadable: the file is malformed: archives nested deeper than 4",
            ]
        );
        // The files together stay under the uncompressed limit, though each archive does.
        let inner = zip_of(&[("a.txt", &[b'a'; 1000])]);
        let three = zip_of(&[("1.zip", &inner), ("2.zip", &inner), ("3.zip", &inner)]);
        // Each entry costs at least 1 KiB, nested archives included: 1.zip, a.txt, 2.zip, a.txt.
        let limits = Limits { max_uncompressed_bytes: 5000, ..Limits::default() };
        let (found, result) = unpacked(&three, &limits);
        assert_eq!(found.len(), 2, "two files fit: {found:?}");
        assert!(matches!(result, Err(super::ExtractError::ZipBomb(_))), "{result:?}");
        // So empty files do not unpack without end.
        let names: Vec<String> = (0..20).map(|i| format!("empty{i}.txt")).collect();
        let empties = zip_of(&names.iter().map(|n| (n.as_str(), &b""[..])).collect::<Vec<_>>());
        let limits = Limits { max_uncompressed_bytes: 10 * 1024, ..Limits::default() };
        let (found, result) = unpacked(&empties, &limits);
        assert_eq!(found.len(), 10);
        assert!(matches!(result, Err(super::ExtractError::ZipBomb(_))), "{result:?}");
    }

    #[test]
    fn a_bomb_is_refused_before_anything_is_read() {
        let zeros = vec![0u8; 64 * 1024 * 1024];
        let bomb = zip_of(&[("a.txt", b"readable"), ("zeros.bin", &zeros)]);
        let error = extract(Format::Zip, &bomb, &Limits::default()).unwrap_err();
        assert!(matches!(error, super::ExtractError::ZipBomb(_)), "{error}");
    }
}
