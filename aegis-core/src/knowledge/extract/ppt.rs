//! Legacy PowerPoint presentations (`.ppt`, PowerPoint 97 to 2003), read from the binary
//! format as the published specification describes it. The `Current User` stream points
//! at the last edit; the chain of edits gives the persist directory (object id → offset in
//! the `PowerPoint Document` stream); the document's slide list gives the slides in
//! presentation order with their placeholder text; each slide's own records hold the text
//! of its other shapes and point at its notes. Laid out as PPTX is: each slide a section
//! `Slide N: <title>`, speaker notes a section of their own.
//!
//! An encrypted presentation is an encryption error. A damaged edit chain is a note, and
//! the slides are then read in the order they are stored. Tables come out as their cells'
//! lines, not markdown rows: the binary format stores a table as a group of text boxes.

use std::collections::{HashMap, HashSet};

use super::{
    ExtractError, Extracted, Extractor, Limits,
    ole::{Ole, le_u16, le_u32},
    slide_sections,
};

/// PowerPoint 97–2003 presentations.
pub struct Ppt;

const DOCUMENT: u16 = 0x03E8;
const SLIDE: u16 = 0x03EE;
const SLIDE_ATOM: u16 = 0x03EF;
const NOTES: u16 = 0x03F0;
const SLIDE_PERSIST: u16 = 0x03F3;
const TEXT_HEADER: u16 = 0x0F9F;
const TEXT_CHARS: u16 = 0x0FA0;
const TEXT_BYTES: u16 = 0x0FA8;
const SLIDE_LIST: u16 = 0x0FF0;
const USER_EDIT: u16 = 0x0FF5;
const PERSIST_DIRECTORY: u16 = 0x1772;

/// Text types of a text header: a title, or a centred (title slide) title.
const TITLE_TYPES: [u32; 2] = [0, 6];
/// The `Current User` header token of an encrypted presentation.
const ENCRYPTED_TOKEN: u32 = 0xF3D1_C4DF;
/// How deep records are searched for text (shapes in groups in drawings in slides).
const MAX_DEPTH: usize = 24;

impl Extractor for Ppt {
    fn extract(&self, bytes: &[u8], _limits: &Limits) -> Result<Extracted, ExtractError> {
        let mut ole = Ole::open(bytes)?;
        if ole.has("/EncryptedSummary") {
            return Err(encrypted());
        }
        let stream = ole.stream("/PowerPoint Document")?.ok_or_else(|| {
            ExtractError::Malformed("no PowerPoint Document stream: not a PowerPoint presentation".into())
        })?;
        let current = ole.stream("/Current User")?.unwrap_or_default();
        if le_u32(&current, 12) == Some(ENCRYPTED_TOKEN) {
            return Err(encrypted());
        }
        let mut notes = Vec::new();
        let presentation = match le_u32(&current, 16) {
            Some(edit) => Presentation::read(&stream, edit as usize),
            None => Err(Damage::Malformed("no current user record".into())),
        };
        let slides = match presentation {
            Ok(presentation) => presentation.slides(&stream),
            Err(Damage::Encrypted) => return Err(encrypted()),
            Err(Damage::Malformed(why)) => {
                notes.push(format!("the edit history is damaged ({why}): slides read in the order they are stored"));
                stored_slides(&stream)
            }
        };
        if slides.is_empty() {
            notes.push("the presentation has no slides".into());
        }
        let mut sections = Vec::new();
        for (i, slide) in slides.into_iter().enumerate() {
            let number = u32::try_from(i + 1).unwrap_or(u32::MAX);
            let title = slide.texts.iter().find(|(kind, _)| TITLE_TYPES.contains(kind)).map(|(_, t)| t.clone());
            let bodies: Vec<String> =
                slide.texts.into_iter().map(|(_, t)| t).filter(|t| Some(t) != title.as_ref()).collect();
            sections.extend(slide_sections(number, title.as_deref().unwrap_or(""), &bodies, Vec::new(), &slide.notes));
        }
        Ok(Extracted { sections, notes })
    }
}

fn encrypted() -> ExtractError {
    ExtractError::Encrypted("the presentation is password-protected".into())
}

/// Why the edit history could not be followed.
enum Damage {
    Encrypted,
    Malformed(String),
}

impl From<String> for Damage {
    fn from(why: String) -> Self {
        Damage::Malformed(why)
    }
}

/// One record: its type, instance, whether it holds other records, and its body.
#[derive(Clone, Copy)]
struct Record<'a> {
    kind: u16,
    instance: u16,
    container: bool,
    body: &'a [u8],
}

/// The record at `at` of `bytes`, if it is whole.
fn record(bytes: &[u8], at: usize) -> Option<Record<'_>> {
    let head = le_u16(bytes, at)?;
    let kind = le_u16(bytes, at + 2)?;
    let len = le_u32(bytes, at + 4)? as usize;
    let body = bytes.get(at + 8..(at + 8).checked_add(len)?)?;
    Some(Record { kind, instance: head >> 4, container: head & 0xF == 0xF, body })
}

/// The records one after another in `bytes`, up to the first that is cut short.
fn records(bytes: &[u8]) -> impl Iterator<Item = Record<'_>> {
    let mut at = 0usize;
    std::iter::from_fn(move || {
        let r = record(bytes, at)?;
        at += 8 + r.body.len();
        Some(r)
    })
}

/// What a slide says: its texts (with their text types) and its speaker notes.
#[derive(Default)]
struct Slide {
    texts: Vec<(u32, String)>,
    notes: Vec<String>,
}

/// An entry of a slide list: the slide's persist id, its slide id, and the placeholder
/// texts that follow it in the list.
struct ListEntry {
    persist: u32,
    id: u32,
    texts: Vec<(u32, String)>,
}

/// The objects of the presentation by persist id, and its document record.
struct Presentation<'a> {
    offsets: HashMap<u32, usize>,
    document: Record<'a>,
}

impl<'a> Presentation<'a> {
    /// Follows the edits from the last one (at `edit`) back to the first, the newest
    /// offset of each object winning.
    fn read(stream: &'a [u8], mut edit: usize) -> Result<Self, Damage> {
        let mut offsets = HashMap::new();
        let mut visited = HashSet::new();
        let mut document = None;
        while visited.insert(edit) {
            let user = record(stream, edit)
                .filter(|r| r.kind == USER_EDIT && r.body.len() >= 28)
                .ok_or_else(|| format!("no edit record at offset {edit}"))?;
            if user.body.len() >= 32 {
                // Only an encrypted presentation names an encryption session.
                return Err(Damage::Encrypted);
            }
            document.get_or_insert(le_u32(user.body, 16).unwrap_or(0));
            let at = le_u32(user.body, 12).unwrap_or(0) as usize;
            let directory = record(stream, at)
                .filter(|r| r.kind == PERSIST_DIRECTORY)
                .ok_or_else(|| format!("no persist directory at offset {at}"))?;
            let mut i = 0usize;
            while let Some(entry) = le_u32(directory.body, i) {
                let (first, count) = (entry & 0xF_FFFF, entry >> 20);
                i += 4;
                for k in 0..count {
                    let Some(offset) = le_u32(directory.body, i) else { break };
                    offsets.entry(first + k).or_insert(offset as usize);
                    i += 4;
                }
            }
            match le_u32(user.body, 8) {
                Some(0) | None => break,
                Some(previous) => edit = previous as usize,
            }
        }
        let id = document.unwrap_or(0);
        let document = offsets
            .get(&id)
            .and_then(|at| record(stream, *at))
            .filter(|r| r.kind == DOCUMENT)
            .ok_or_else(|| format!("the document record (object {id}) is missing"))?;
        Ok(Self { offsets, document })
    }

    /// The object `id`, if it is a record of `kind`.
    fn object(&self, stream: &'a [u8], id: u32, kind: u16) -> Option<Record<'a>> {
        self.offsets.get(&id).and_then(|at| record(stream, *at)).filter(|r| r.kind == kind)
    }

    /// The slides in presentation order.
    fn slides(&self, stream: &'a [u8]) -> Vec<Slide> {
        let list = |instance: u16| {
            records(self.document.body)
                .filter(|r| r.kind == SLIDE_LIST && r.instance == instance)
                .flat_map(|r| list_entries(r.body))
                .collect::<Vec<_>>()
        };
        let notes: HashMap<u32, ListEntry> = list(2).into_iter().map(|e| (e.id, e)).collect();
        let mut slides = Vec::new();
        // Each object is read once: a hostile list naming one slide or notes page a
        // million times must not multiply its text.
        let mut read = HashSet::new();
        for entry in list(0) {
            let mut slide = Slide { texts: entry.texts, notes: Vec::new() };
            let container = Some(entry.persist).filter(|id| read.insert(*id));
            let Some(container) = container.and_then(|id| self.object(stream, id, SLIDE)) else {
                slides.push(slide);
                continue;
            };
            for text in shape_texts(container.body) {
                if !slide.texts.contains(&text) {
                    slide.texts.push(text);
                }
            }
            let notes_id = records(container.body).find(|r| r.kind == SLIDE_ATOM).and_then(|a| le_u32(a.body, 16));
            let notes_entry = notes_id.filter(|id| *id != 0).and_then(|id| notes.get(&id));
            if let Some(entry) = notes_entry.filter(|e| read.insert(e.persist)) {
                let mut texts = entry.texts.clone();
                if let Some(container) = self.object(stream, entry.persist, NOTES) {
                    texts.extend(shape_texts(container.body));
                }
                slide.notes = texts.into_iter().map(|(_, t)| t).collect();
            }
            slides.push(slide);
        }
        slides
    }
}

/// A slide list's entries, each with the texts that follow it.
fn list_entries(body: &[u8]) -> Vec<ListEntry> {
    let mut entries: Vec<ListEntry> = Vec::new();
    let mut kind = 1;
    for r in records(body) {
        match r.kind {
            SLIDE_PERSIST => entries.push(ListEntry {
                persist: le_u32(r.body, 0).unwrap_or(0),
                id: le_u32(r.body, 12).unwrap_or(0),
                texts: Vec::new(),
            }),
            TEXT_HEADER => kind = le_u32(r.body, 0).unwrap_or(1),
            TEXT_CHARS | TEXT_BYTES => {
                if let (Some(entry), Some(text)) = (entries.last_mut(), text_of(r)) {
                    entry.texts.push((kind, text));
                }
            }
            _ => {}
        }
    }
    entries
}

/// The texts held in a slide's or notes page's own records (its drawing's text boxes),
/// in order, each with the type of the text header before it.
fn shape_texts(body: &[u8]) -> Vec<(u32, String)> {
    fn walk(body: &[u8], depth: usize, out: &mut Vec<(u32, String)>) {
        let mut kind = 1;
        for r in records(body) {
            match r.kind {
                TEXT_HEADER => kind = le_u32(r.body, 0).unwrap_or(1),
                TEXT_CHARS | TEXT_BYTES => {
                    if let Some(text) = text_of(r) {
                        out.push((kind, text));
                    }
                }
                _ if r.container && depth < MAX_DEPTH => walk(r.body, depth + 1, out),
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    walk(body, 0, &mut out);
    out
}

/// A text record's text (UTF-16, or one byte per character for the 8-bit form), with
/// its paragraph and line breaks as newlines; `None` when blank.
fn text_of(r: Record<'_>) -> Option<String> {
    let text: String = if r.kind == TEXT_CHARS {
        let units: Vec<u16> = r.body.chunks_exact(2).map(|u| u16::from_le_bytes([u[0], u[1]])).collect();
        String::from_utf16_lossy(&units)
    } else {
        r.body.iter().map(|b| char::from(*b)).collect()
    };
    let text: String = text
        .chars()
        .filter_map(|c| match c {
            '\r' | '\u{b}' => Some('\n'),
            '\t' | '\n' => Some(c),
            c if c.is_control() => None,
            c => Some(c),
        })
        .collect();
    // A lone `*` is a slide-number field's placeholder, not text.
    let text = text.trim();
    (!text.is_empty() && text != "*").then(|| text.to_owned())
}

/// Without the edit history: the slide records at the top level of the stream, in the
/// order they are stored, with the text in their own records.
fn stored_slides(stream: &[u8]) -> Vec<Slide> {
    records(stream)
        .filter(|r| r.kind == SLIDE)
        .map(|r| Slide { texts: shape_texts(r.body), notes: Vec::new() })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::knowledge::extract::{Format, corpus, fixture, ole::with_stream, pptx::Pptx, token_fidelity};

    #[test]
    fn a_presentation_saved_as_powerpoint_97_reads_like_its_pptx() {
        // LibreOffice's conversion of a generated deck whose exact text is known.
        let deck = fixture("ppt/gen-pptx-004-6s.ppt");
        assert_eq!(Format::detect("deck.bin", &deck), Some(Format::Ppt), "sniffed from its streams");
        let extracted = Ppt.extract(&deck, &Limits::default()).unwrap();
        let original = Pptx.extract(&corpus("generated/pptx/gen-pptx-004-6s.pptx"), &Limits::default()).unwrap();
        assert_eq!(extracted.sections, original.sections, "slides, titles, bodies and speaker notes alike");
        assert!(extracted.sections.iter().any(|s| s.anchor.part.as_deref() == Some("notes")));
        let truth = String::from_utf8(corpus("generated/pptx/gen-pptx-004-6s.txt")).unwrap();
        let slides: Vec<&str> =
            extracted.sections.iter().filter(|s| s.anchor.part.is_none()).map(|s| s.text.as_str()).collect();
        let (recall, _) = token_fidelity(&truth, &slides.join("\n"));
        assert!(recall >= 0.99, "recall {recall}");
        assert!(extracted.notes.is_empty(), "{:?}", extracted.notes);
    }

    #[test]
    fn a_deck_saved_by_powerpoint_gives_its_slide_text() {
        let extracted = Ppt.extract(&fixture("ppt/embedded-simple-2007.ppt"), &Limits::default()).unwrap();
        assert_eq!(
            extracted.sections[0].text,
            "Slide 1: Embedded Objects\nThis slide contains an embedded object\nIt is a simple harmless ASCII text file"
        );
        assert_eq!(extracted.sections[0].anchor.slide, Some(1));
    }

    #[test]
    fn encrypted_and_damaged_presentations_are_clear_errors_or_notes() {
        let limits = Limits::default();
        let encrypted = Ppt.extract(&fixture("ppt/encrypted.ppt"), &limits);
        assert!(matches!(encrypted, Err(ExtractError::Encrypted(_))), "{encrypted:?}");
        // The last edit's offset pointing nowhere: the slides are read in stored order.
        let deck = fixture("ppt/gen-pptx-004-6s.ppt");
        let lost = with_stream(&deck, "/Current User", |s| s[16..20].copy_from_slice(&7u32.to_le_bytes()));
        let extracted = Ppt.extract(&lost, &limits).unwrap();
        assert!(extracted.notes.iter().any(|n| n.starts_with("the edit history is damaged")), "{:?}", extracted.notes);
        let whole = Ppt.extract(&deck, &limits).unwrap();
        let slides = |e: &Extracted| e.sections.iter().filter(|s| s.anchor.part.is_none()).count();
        assert_eq!(slides(&extracted), slides(&whole));
        assert!(extracted.text().contains("Many Most Go"));
        // The document stream cut in half: what is whole is read, the rest noted or lost.
        let cut = with_stream(&deck, "/PowerPoint Document", |s| s.truncate(s.len() / 2));
        assert!(Ppt.extract(&cut, &limits).is_ok());
        let mut bytes = deck.clone();
        bytes.truncate(deck.len() / 3);
        assert!(matches!(Ppt.extract(&bytes, &limits), Err(ExtractError::Malformed(_))));
        let word = fixture("doc/footnotes.doc");
        assert!(matches!(Ppt.extract(&word, &limits), Err(ExtractError::Malformed(_))), "not a deck");
    }

    #[test]
    fn text_records_become_lines_without_controls() {
        let utf16: Vec<u8> = "Q3\rrevenue\u{b}up\u{1}".encode_utf16().flat_map(u16::to_le_bytes).collect();
        let record = |kind, body| Record { kind, instance: 0, container: false, body };
        assert_eq!(text_of(record(TEXT_CHARS, &utf16)).as_deref(), Some("Q3\nrevenue\nup"));
        assert_eq!(text_of(record(TEXT_BYTES, b"caf\xe9")).as_deref(), Some("café"), "8-bit text is Latin-1");
        assert_eq!(text_of(record(TEXT_BYTES, b" * ")), None, "a slide-number placeholder");
    }
}
