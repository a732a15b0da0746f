//! Office Open XML packages (docx, xlsx, pptx): a zip with guards against zip bombs, parts
//! found through the package relationships, and small helpers over quick-xml events.
//!
//! Entity references come out of quick-xml as separate events and only the five
//! predefined ones and character references are resolved, so an entity-expansion bomb
//! expands to nothing.

use std::{
    borrow::Cow,
    io::{Cursor, Read, Write},
};

use quick_xml::events::{BytesRef, BytesStart};

use super::{ExtractError, Format, Limits};

/// An opened package.
pub struct Package<'a> {
    archive: zip::ZipArchive<Cursor<&'a [u8]>>,
    max_part: u64,
}

/// A relationship of a part.
#[derive(Debug, Clone)]
pub struct Relationship {
    /// `rId…`.
    pub id: String,
    /// The type URI's last segment (`officeDocument`, `slide`, `notesSlide`, …).
    pub kind: String,
    /// The target part's full name inside the package.
    pub target: String,
}

const OLE_MAGIC: &[u8] = b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1";

impl<'a> Package<'a> {
    /// Opens `bytes`, refusing encrypted (OLE) containers, non-zips and bombs.
    pub fn open(bytes: &'a [u8], limits: &Limits) -> Result<Self, ExtractError> {
        if bytes.starts_with(OLE_MAGIC) {
            // Office encrypts a package into a compound file of these two streams.
            let encrypted = super::ole::Ole::open(bytes).is_ok_and(|ole| ole.has("/EncryptedPackage"));
            return Err(if encrypted {
                ExtractError::Encrypted("an encrypted (password-protected) Office package".into())
            } else {
                ExtractError::Malformed("an OLE compound file holding no Word, Excel or PowerPoint document".into())
            });
        }
        Ok(Self { archive: guarded_zip(bytes, limits)?, max_part: limits.max_uncompressed_bytes })
    }

    /// A part's bytes, or `None` when absent. Reads at most the limit even if the zip's
    /// declared sizes lie.
    pub fn part_bytes(&mut self, name: &str) -> Result<Option<Vec<u8>>, ExtractError> {
        let name = name.trim_start_matches('/');
        let mut entry = match self.archive.by_name(name) {
            Ok(entry) => entry,
            Err(zip::result::ZipError::FileNotFound) => return Ok(None),
            Err(e) => return Err(ExtractError::Malformed(format!("part {name}: {e}"))),
        };
        read_entry(&mut entry, self.max_part)
            .map_err(|e| match e {
                ExtractError::Malformed(e) => ExtractError::Malformed(format!("part {name}: {e}")),
                ExtractError::ZipBomb(e) => ExtractError::ZipBomb(format!("part {name} {e}")),
                other => other,
            })
            .map(Some)
    }

    /// A part as text, or `None` when absent ([`Package::part_bytes`]).
    pub fn part(&mut self, name: &str) -> Result<Option<String>, ExtractError> {
        let Some(mut bytes) = self.part_bytes(name)? else { return Ok(None) };
        if bytes.starts_with(b"\xEF\xBB\xBF") {
            bytes.drain(..3);
        }
        // Valid UTF-8 (the norm) is taken as is, without a copy.
        Ok(Some(String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())))
    }

    /// The relationships of `part` (`""` for the package itself).
    pub fn relationships(&mut self, part: &str) -> Result<Vec<Relationship>, ExtractError> {
        let (dir, file) = part.rsplit_once('/').unwrap_or(("", part));
        let rels_name = if part.is_empty() {
            "_rels/.rels".to_owned()
        } else if dir.is_empty() {
            format!("_rels/{file}.rels")
        } else {
            format!("{dir}/_rels/{file}.rels")
        };
        let Some(xml) = self.part(&rels_name)? else { return Ok(Vec::new()) };
        let mut reader = quick_xml::Reader::from_str(&xml);
        let mut rels = Vec::new();
        loop {
            match reader.read_event() {
                Ok(quick_xml::events::Event::Empty(e) | quick_xml::events::Event::Start(e))
                    if local(&e) == "Relationship" =>
                {
                    if attr(&e, "TargetMode").as_deref() == Some("External") {
                        continue;
                    }
                    let (Some(id), Some(kind), Some(target)) = (attr(&e, "Id"), attr(&e, "Type"), attr(&e, "Target"))
                    else {
                        continue;
                    };
                    let kind = kind.rsplit('/').next().unwrap_or_default().to_owned();
                    rels.push(Relationship { id, kind, target: resolve(dir, &target) });
                }
                Ok(quick_xml::events::Event::Eof) => break,
                Ok(_) => {}
                Err(e) => return Err(ExtractError::Malformed(format!("{rels_name}: {e}"))),
            }
        }
        Ok(rels)
    }

    /// The main part, found through the package relationships (`officeDocument`).
    pub fn main_part(&mut self) -> Result<String, ExtractError> {
        self.relationships("")?
            .into_iter()
            .find(|r| r.kind == "officeDocument")
            .map(|r| r.target)
            .ok_or_else(|| ExtractError::Malformed("the package has no main document relationship".into()))
    }

    /// The Office format of the package: its main part's content type in
    /// `[Content_Types].xml` (the part's `Override`, else the `Default` for its extension).
    fn office_format(&mut self) -> Result<Option<Format>, ExtractError> {
        let main = self.main_part()?;
        let Some(types) = self.part("[Content_Types].xml")? else { return Ok(None) };
        let extension = main.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
        let (mut overridden, mut default) = (None, None);
        let mut reader = quick_xml::Reader::from_str(&types);
        loop {
            match reader.read_event() {
                Ok(quick_xml::events::Event::Empty(e) | quick_xml::events::Event::Start(e)) => {
                    match local(&e).as_str() {
                        "Override"
                            if attr(&e, "PartName")
                                .is_some_and(|p| p.trim_start_matches('/').eq_ignore_ascii_case(&main)) =>
                        {
                            overridden = attr(&e, "ContentType");
                        }
                        "Default" if attr(&e, "Extension").map(|x| x.to_ascii_lowercase()) == extension => {
                            default = attr(&e, "ContentType");
                        }
                        _ => {}
                    }
                }
                Ok(quick_xml::events::Event::Eof) => break,
                Ok(_) => {}
                Err(e) => return Err(ExtractError::Malformed(format!("[Content_Types].xml: {e}"))),
            }
        }
        Ok(overridden.or(default).and_then(|t| format_of_content_type(&t)))
    }

    /// The text of the SmartArt diagrams (`kind` `diagramData`) or charts (`chart`) among
    /// a part's relationships `rels`, one entry per drawing, a paragraph or label per line.
    /// A diagram's own data is read, not the drawing Office caches beside it, which
    /// repeats the same text; a chart gives its titles and the cached text of its series
    /// and categories.
    pub fn related_texts(&mut self, rels: &[Relationship], kind: &str) -> Result<Vec<String>, ExtractError> {
        let mut texts = Vec::new();
        for rel in rels.iter().filter(|r| r.kind == kind) {
            let Some(xml) = self.part(&rel.target)? else { continue };
            let mut text = drawing_lines(&xml).map_err(|e| ExtractError::Malformed(format!("{}: {e}", rel.target)))?;
            // Each series of a chart caches the same category labels.
            let mut seen = std::collections::HashSet::new();
            text.retain(|line| seen.insert(line.clone()));
            if !text.is_empty() {
                texts.push(text.join("\n"));
            }
        }
        Ok(texts)
    }
}

/// Opens a zip, refusing non-zips and bombs (total uncompressed size, per-entry ratio) by
/// its central directory, before anything is inflated.
pub fn guarded_zip<'a>(bytes: &'a [u8], limits: &Limits) -> Result<zip::ZipArchive<Cursor<&'a [u8]>>, ExtractError> {
    if !bytes.starts_with(b"PK") {
        return Err(super::not_a("a zip package", bytes));
    }
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| ExtractError::Malformed(format!("zip: the package is damaged or truncated ({e})")))?;
    let mut total = 0u64;
    for i in 0..archive.len() {
        let entry = archive.by_index_raw(i).map_err(|e| ExtractError::Malformed(format!("zip entry {i}: {e}")))?;
        let (size, compressed) = (entry.size(), entry.compressed_size().max(1));
        total = total.saturating_add(size);
        if size > 1024 * 1024 && size / compressed > limits.max_ratio {
            return Err(ExtractError::ZipBomb(format!("an entry expands {}× ({} bytes)", size / compressed, size)));
        }
    }
    if total > limits.max_uncompressed_bytes {
        return Err(ExtractError::ZipBomb(format!(
            "{total} bytes uncompressed, limit {}",
            limits.max_uncompressed_bytes
        )));
    }
    Ok(archive)
}

/// A zip entry's bytes, at most `max` whatever the zip declares (a bomb's sizes lie).
pub fn read_entry(entry: &mut zip::read::ZipFile<'_, impl Read>, max: u64) -> Result<Vec<u8>, ExtractError> {
    let mut bytes = Vec::with_capacity(usize::try_from(entry.size().min(64 * 1024 * 1024)).unwrap_or(0));
    entry.take(max + 1).read_to_end(&mut bytes).map_err(|e| ExtractError::Malformed(e.to_string()))?;
    if bytes.len() as u64 > max {
        return Err(ExtractError::ZipBomb(format!("expands past {max} bytes")));
    }
    Ok(bytes)
}

/// The zip guards alone, for zip formats that are not OOXML packages (ODS).
pub fn check_zip(bytes: &[u8], limits: &Limits) -> Result<(), ExtractError> {
    guarded_zip(bytes, limits).map(drop)
}

/// The zip `bytes` again, with the text of each part `wants` names passed through
/// `edit` and every other entry copied as it is (compressed, in its place: an ODS's
/// `mimetype` stays first and stored). For a third-party reader that refuses markup the
/// format allows — a number padded with spaces, white space between table elements — so
/// that the file can be read again with the markup tidied, under the same guards.
pub fn with_parts_edited(
    bytes: &[u8],
    limits: &Limits,
    wants: impl Fn(&str) -> bool,
    edit: impl Fn(&str) -> String,
) -> Result<Vec<u8>, ExtractError> {
    let mut package = Package { archive: guarded_zip(bytes, limits)?, max_part: limits.max_uncompressed_bytes };
    let zip_error = |e: zip::result::ZipError| ExtractError::Malformed(format!("zip: {e}"));
    let mut out = zip::ZipWriter::new(Cursor::new(Vec::with_capacity(bytes.len())));
    for i in 0..package.archive.len() {
        let name = package.archive.by_index_raw(i).map_err(zip_error)?.name().map_err(zip_error)?.into_owned();
        if wants(&name) {
            let text = package.part(&name)?.unwrap_or_default();
            out.start_file(name.as_str(), zip::write::SimpleFileOptions::default()).map_err(zip_error)?;
            out.write_all(edit(&text).as_bytes()).map_err(|e| ExtractError::Malformed(format!("zip: {e}")))?;
        } else {
            out.raw_copy_file(package.archive.by_index_raw(i).map_err(zip_error)?).map_err(zip_error)?;
        }
    }
    Ok(out.finish().map_err(zip_error)?.into_inner())
}

/// The largest part read when sniffing a package's kind ([`sniff`]).
const SNIFF_PART_BYTES: u64 = 1024 * 1024;

/// Which Office format a zip package is, whatever its file is called: `None` for a zip
/// that is not an Office package, or one too broken to tell (its extractor then gives
/// the error). It reads only the central directory and two small parts, in the calling
/// process, with a parser panic caught.
pub fn sniff(bytes: &[u8]) -> Option<Format> {
    std::panic::catch_unwind(|| {
        let mut package = Package::open(bytes, &Limits::default()).ok()?;
        package.max_part = SNIFF_PART_BYTES;
        package.office_format().ok().flatten()
    })
    .ok()
    .flatten()
}

/// The non-empty lines of a DrawingML part, in order: each paragraph (`a:p` of `a:t`
/// runs), and each cached string value of a chart (`c:v` inside `c:strCache`).
fn drawing_lines(xml: &str) -> Result<Vec<String>, quick_xml::Error> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    let (mut out, mut line) = (Vec::new(), String::new());
    let (mut in_text, mut in_strings, mut in_value) = (false, false, false);
    let mut flush = |line: &mut String| {
        let text = std::mem::take(line);
        if !text.trim().is_empty() {
            out.push(text.trim().to_owned());
        }
    };
    loop {
        match reader.read_event()? {
            Event::Start(e) => match e.local_name().as_ref() {
                "t" => in_text = true,
                "strCache" => in_strings = true,
                "v" if in_strings => in_value = true,
                _ => {}
            },
            Event::End(e) => match e.local_name().as_ref() {
                "t" => in_text = false,
                "strCache" => in_strings = false,
                "v" if in_value => {
                    in_value = false;
                    flush(&mut line);
                }
                "p" => flush(&mut line),
                _ => {}
            },
            Event::Text(t) if in_text || in_value => line.push_str(&t.xml10_content()),
            Event::GeneralRef(r) if in_text || in_value => line.extend(resolve_ref(r)),
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(out)
}

/// The format a main part's content type names (`…wordprocessingml.document.main+xml`,
/// `…ms-excel.sheet.macroEnabled.main+xml`, `…presentationml.slideshow.main+xml`, …).
fn format_of_content_type(content_type: &str) -> Option<Format> {
    let t = content_type.to_ascii_lowercase();
    if t.contains("wordprocessingml") || t.contains("ms-word") {
        Some(Format::Docx)
    } else if t.contains("spreadsheetml") || t.contains("ms-excel") {
        Some(Format::Xlsx)
    } else if t.contains("presentationml") || t.contains("ms-powerpoint") {
        Some(Format::Pptx)
    } else {
        None
    }
}

/// Resolves a relationship target against the source part's directory.
fn resolve(dir: &str, target: &str) -> String {
    if let Some(absolute) = target.strip_prefix('/') {
        return absolute.to_owned();
    }
    let mut parts: Vec<&str> = if dir.is_empty() { Vec::new() } else { dir.split('/').collect() };
    for segment in target.split('/') {
        match segment {
            ".." => {
                parts.pop();
            }
            "." | "" => {}
            s => parts.push(s),
        }
    }
    parts.join("/")
}

/// An element's local name.
pub fn local(e: &BytesStart<'_>) -> String {
    e.local_name().as_ref().to_owned()
}

/// An attribute by local name, unescaped.
pub fn attr(e: &BytesStart<'_>, name: &str) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.local_name().as_ref() == name)
        .and_then(|a| a.normalized_value(quick_xml::XmlVersion::Implicit1_0).ok().map(Cow::into_owned))
}

/// The character an entity reference stands for: predefined and numeric ones only.
pub fn resolve_ref(r: BytesRef<'_>) -> Option<char> {
    if r.is_char_ref() {
        return r.resolve_char_ref().ok().flatten();
    }
    match &*r.into_inner() {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        _ => None,
    }
}

/// A corpus package (`path` under `../shared/corpus`) rewritten with `damage` applied to
/// each part's bytes, for tests of damaged parts inside a sound zip.
#[cfg(test)]
pub(super) fn repackaged(path: &str, damage: impl Fn(&str, Vec<u8>) -> Vec<u8>) -> Vec<u8> {
    repackaged_adding(path, damage, &[])
}

/// [`repackaged`], with the parts `extra` (name, bytes) added at the end.
#[cfg(test)]
pub(super) fn repackaged_adding(
    path: &str,
    damage: impl Fn(&str, Vec<u8>) -> Vec<u8>,
    extra: &[(&str, &[u8])],
) -> Vec<u8> {
    use std::io::Write;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus").join(path);
    let mut source = zip::ZipArchive::new(Cursor::new(std::fs::read(path).unwrap())).unwrap();
    let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for i in 0..source.len() {
        let mut entry = source.by_index(i).unwrap();
        let name = entry.name().unwrap().into_owned();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        out.start_file(name.as_str(), zip::write::SimpleFileOptions::default()).unwrap();
        out.write_all(&damage(&name, bytes)).unwrap();
    }
    for (name, bytes) in extra {
        out.start_file(*name, zip::write::SimpleFileOptions::default()).unwrap();
        out.write_all(bytes).unwrap();
    }
    out.finish().unwrap().into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_resolve_against_their_part() {
        assert_eq!(resolve("ppt/slides", "../notesSlides/notesSlide1.xml"), "ppt/notesSlides/notesSlide1.xml");
        assert_eq!(resolve("", "word/document.xml"), "word/document.xml");
        assert_eq!(resolve("word", "/word/document2.xml"), "word/document2.xml");
    }

    #[test]
    fn packages_are_known_by_their_main_part_not_their_name() {
        let generated = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/generated");
        for (dir, format) in [("docx", Format::Docx), ("xlsx", Format::Xlsx), ("pptx", Format::Pptx)] {
            let file = std::fs::read_dir(generated.join(dir))
                .unwrap()
                .map(|e| e.unwrap().path())
                .find(|p| p.extension().is_some_and(|e| e == dir));
            let bytes = std::fs::read(file.unwrap()).unwrap();
            assert_eq!(sniff(&bytes), Some(format), "{dir}");
        }
        assert_eq!(format_of_content_type("application/vnd.ms-excel.sheet.macroEnabled.main+xml"), Some(Format::Xlsx));
        assert_eq!(sniff(b"PK\x03\x04 truncated"), None);
    }

    #[test]
    fn non_packages_are_refused_clearly() {
        let limits = Limits::default();
        let mut encrypted = cfb::CompoundFile::create(Cursor::new(Vec::new())).unwrap();
        for stream in ["/EncryptionInfo", "/EncryptedPackage"] {
            std::io::Write::write_all(&mut encrypted.create_stream(stream).unwrap(), b"\x04\0\x04\0").unwrap();
        }
        let encrypted = encrypted.into_inner().into_inner();
        assert!(matches!(Package::open(&encrypted, &limits), Err(ExtractError::Encrypted(_))));
        assert!(matches!(
            Package::open(b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1rest", &limits),
            Err(ExtractError::Malformed(_))
        ));
        assert!(matches!(Package::open(b"hello", &limits), Err(ExtractError::Malformed(_))));
    }
}
