//! A zip whose central directory is whole but whose entries behind it are not where or
//! what it says: a local header overwritten (the zip crate then refuses the entry:
//! "Invalid local file header"), or every offset shifted because bytes were added in front
//! of the archive (or a writer counted one too many). Each entry is read from where the
//! directory puts it, moved by the shift the directory's own position shows (or not
//! moved, for the entries before the bytes added or lost); its data
//! starts after the local header when that header is sound (or sound a few bytes away),
//! else where a header of the directory's name length would end; an entry is kept only
//! when the directory's sizes and CRC check out.

use super::{CENTRAL_HEADER, LOCAL_HEADER, LOCAL_HEADER_LEN, Refusal, Salvaged, inflate, le16, le32, rebuilt};
use crate::knowledge::extract::Limits;

const END_OF_DIRECTORY: &[u8] = b"PK\x05\x06";
const END_OF_DIRECTORY_LEN: usize = 22;
const CENTRAL_HEADER_LEN: usize = 46;
/// How far from where the directory puts it a local header is looked for.
const NEARBY: usize = 64;

/// One entry as the central directory describes it.
struct Listed {
    name: Vec<u8>,
    flags: u16,
    method: u16,
    crc: u32,
    compressed: usize,
    size: usize,
    extra: usize,
    offset: usize,
}

/// How an entry was found.
enum Found {
    /// Behind its local header, where the directory puts it (after the shift).
    AsListed,
    /// Its local header damaged or a few bytes away.
    Repaired,
}

/// The entries of a zip whose central directory reads but whose entries do not all read
/// from it; `None` when there is no sound directory, when every entry reads as listed
/// (the damage is not in the zip), when none does, or when what they inflate breaks the
/// zip-bomb guards.
pub fn damaged_entries(bytes: &[u8], limits: &Limits) -> Option<Salvaged> {
    let (listed, shift) = directory(bytes)?;
    let mut kept: Vec<(String, Vec<u8>)> = Vec::new();
    let (mut lost, mut repaired) = (Vec::new(), 0usize);
    let mut inflated = 0u64;
    for entry in &listed {
        let name = String::from_utf8_lossy(&entry.name).into_owned();
        let budget = limits.max_uncompressed_bytes.saturating_sub(inflated);
        match read(bytes, entry, shift, budget, limits.max_ratio) {
            Ok(Some((data, found))) => {
                inflated += data.len() as u64;
                repaired += usize::from(matches!(found, Found::Repaired));
                kept.push((name, data));
            }
            Ok(None) => lost.push(name),
            Err(Refusal::Bomb) => return None,
        }
    }
    let files = kept.iter().filter(|(name, _)| !name.ends_with('/')).count();
    if files == 0 || (lost.is_empty() && repaired == 0 && shift == 0) {
        return None;
    }
    let bytes_out = rebuilt(kept.iter().map(|(name, data)| (name.as_str(), data.as_slice())), inflated)?;
    let mut what = Vec::new();
    if shift != 0 {
        what.push(format!(
            "its parts sit {shift} byte{} from where its directory says",
            if shift.abs() == 1 { "" } else { "s" }
        ));
    }
    let parts = |n: usize| if n == 1 { "1 part was".to_owned() } else { format!("{n} parts were") };
    if repaired > 0 {
        what.push(format!("{} read past a damaged local header", parts(repaired)));
    }
    if !lost.is_empty() {
        what.push(format!("{} damaged and left out: {}", parts(lost.len()), lost.join(", ")));
    }
    Some(Salvaged {
        bytes: bytes_out,
        note: format!(
            "the package is damaged ({}); read from the {files} parts its directory lists that check out",
            what.join("; ")
        ),
    })
}

/// The central directory's entries, and how far the archive's bytes are shifted from the
/// offsets it records (bytes added in front of it). `None` when it cannot be read, or is a
/// zip64 one.
fn directory(bytes: &[u8]) -> Option<(Vec<Listed>, isize)> {
    let search_from = bytes.len().saturating_sub(END_OF_DIRECTORY_LEN + usize::from(u16::MAX));
    let end = (search_from..=bytes.len().checked_sub(END_OF_DIRECTORY_LEN)?)
        .rev()
        .find(|&at| bytes[at..].starts_with(END_OF_DIRECTORY))?;
    let count = usize::from(le16(bytes, end + 10));
    let (length, recorded) = (le32(bytes, end + 12) as usize, le32(bytes, end + 16) as usize);
    if count == usize::from(u16::MAX) || recorded == u32::MAX as usize {
        return None;
    }
    let start = end.checked_sub(length)?;
    let shift = isize::try_from(start).ok()? - isize::try_from(recorded).ok()?;
    let mut listed = Vec::with_capacity(count);
    let mut at = start;
    for _ in 0..count {
        let header = bytes.get(at..at + CENTRAL_HEADER_LEN)?;
        if !header.starts_with(CENTRAL_HEADER) {
            return None;
        }
        let (name_len, extra, comment) =
            (usize::from(le16(header, 28)), usize::from(le16(header, 30)), usize::from(le16(header, 32)));
        let name = bytes.get(at + CENTRAL_HEADER_LEN..at + CENTRAL_HEADER_LEN + name_len)?.to_vec();
        listed.push(Listed {
            name,
            flags: le16(header, 8),
            method: le16(header, 10),
            crc: le32(header, 16),
            compressed: le32(header, 20) as usize,
            size: le32(header, 24) as usize,
            extra,
            offset: le32(header, 42) as usize,
        });
        at += CENTRAL_HEADER_LEN + name_len + extra + comment;
    }
    Some((listed, shift))
}

/// One entry's data, checked against the directory's size and CRC: `Ok(None)` when it
/// cannot be found or does not check out.
fn read(
    bytes: &[u8],
    entry: &Listed,
    shift: isize,
    budget: u64,
    max_ratio: u64,
) -> Result<Option<(Vec<u8>, Found)>, Refusal> {
    if entry.flags & 1 != 0 || !matches!(entry.method, 0 | 8) || entry.compressed == u32::MAX as usize {
        return Ok(None);
    }
    // Where the directory puts it, moved by the shift; or, when the bytes were added or lost
    // after this entry rather than before it, where the directory says.
    let mut places: Vec<usize> = entry.offset.checked_add_signed(shift).into_iter().collect();
    if shift != 0 {
        places.push(entry.offset);
    }
    let header_at = |at: usize| {
        bytes.get(at..).is_some_and(|b| b.starts_with(LOCAL_HEADER))
            && bytes.get(at + LOCAL_HEADER_LEN..at + LOCAL_HEADER_LEN + entry.name.len()) == Some(entry.name.as_slice())
    };
    let data_after =
        |at: usize| at + LOCAL_HEADER_LEN + usize::from(le16(bytes, at + 26)) + usize::from(le16(bytes, at + 28));
    let mut starts = Vec::new();
    if let Some(&at) = places.iter().find(|&&at| header_at(at)) {
        starts.push((data_after(at), Found::AsListed));
    } else {
        for &place in &places {
            let nearby = place.saturating_sub(NEARBY)..=(place + NEARBY).min(bytes.len());
            if let Some(at) = nearby.into_iter().find(|&at| header_at(at)) {
                starts.push((data_after(at), Found::Repaired));
            }
        }
        // A header of the directory's name length, its extra field as long as the
        // directory's or absent (the lengths in the damaged header cannot be trusted).
        for &place in &places {
            let past_name = place + LOCAL_HEADER_LEN + entry.name.len();
            starts.push((past_name + entry.extra, Found::Repaired));
            starts.push((past_name, Found::Repaired));
        }
    }
    for (start, found) in starts {
        let Some(input) = bytes.get(start..start.saturating_add(entry.compressed)) else { continue };
        let data = match entry.method {
            0 if input.len() as u64 > budget => return Err(Refusal::Bomb),
            0 => input.to_vec(),
            _ => match inflate(input, budget, max_ratio) {
                Ok((data, _)) => data,
                Err(Err(refusal)) => return Err(refusal),
                Err(Ok(_)) => continue,
            },
        };
        if data.len() == entry.size && crc32fast::hash(&data) == entry.crc {
            return Ok(Some((data, found)));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::damaged_entries;
    use crate::knowledge::extract::{Extractor, Format, Limits, corpus, docx::Docx, extract};

    const DOCX: &str = "generated/docx/gen-docx-001-2p.docx";

    /// Where entry `index`'s local header starts, and its name.
    fn header_of(bytes: &[u8], index: usize) -> (usize, String) {
        let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
        let entry = archive.by_index_raw(index).unwrap();
        (usize::try_from(entry.header_start()).unwrap(), entry.name().unwrap().into_owned())
    }

    fn index_of(bytes: &[u8], name: &str) -> usize {
        zip::ZipArchive::new(Cursor::new(bytes)).unwrap().index_for_name(name).unwrap()
    }

    #[test]
    fn a_part_behind_an_overwritten_local_header_is_read_from_the_directory() {
        let whole = corpus(DOCX);
        let (at, name) = header_of(&whole, index_of(&whole, "word/document.xml"));
        let mut damaged = whole.clone();
        damaged[at..at + 4].copy_from_slice(b"\0\0\0\0");
        damaged[at + 28] ^= 0x40; // its extra field's length too
        assert!(Docx.extract(&damaged, &Limits::default()).is_err(), "the reader alone fails on it");
        let salvaged = damaged_entries(&damaged, &Limits::default()).unwrap();
        assert!(salvaged.note.contains("1 part was read past a damaged local header"), "{}", salvaged.note);
        let read = extract(Format::Docx, &damaged, &Limits::default()).unwrap();
        assert!(read.notes[0].starts_with("the package is damaged"), "{:?}", read.notes);
        assert_eq!(read.text(), extract(Format::Docx, &whole, &Limits::default()).unwrap().text(), "{name}");
        assert!(damaged_entries(&whole, &Limits::default()).is_none(), "a whole package is read as it is");
    }

    #[test]
    fn bytes_added_in_front_shift_every_part_and_are_allowed_for() {
        let whole = corpus(DOCX);
        let mut shifted = b"X".to_vec();
        shifted.extend_from_slice(&whole);
        let read = extract(Format::Docx, &shifted, &Limits::default()).unwrap();
        assert!(read.notes.iter().any(|n| n.contains("sit 1 byte from where its directory says")), "{:?}", read.notes);
        assert_eq!(read.text(), extract(Format::Docx, &whole, &Limits::default()).unwrap().text());
    }

    #[test]
    fn a_span_lost_mid_file_shifts_only_the_parts_after_it() {
        let whole = corpus(DOCX);
        let (at, name) = header_of(&whole, index_of(&whole, "customXml/item1.xml"));
        let mut cut = whole[..at + 40].to_vec();
        cut.extend_from_slice(&whole[at + 50..]);
        let salvaged = damaged_entries(&cut, &Limits::default()).unwrap();
        assert!(salvaged.note.contains("sit -10 bytes from where its directory says"), "{}", salvaged.note);
        assert!(salvaged.note.contains(&format!("1 part was damaged and left out: {name}")), "{}", salvaged.note);
        let read = extract(Format::Docx, &cut, &Limits::default()).unwrap();
        assert_eq!(read.text(), extract(Format::Docx, &whole, &Limits::default()).unwrap().text());
    }

    #[test]
    fn a_part_whose_data_is_damaged_is_left_out_and_named() {
        let whole = corpus(DOCX);
        let (at, name) = header_of(&whole, index_of(&whole, "docProps/core.xml"));
        let mut damaged = whole.clone();
        let data = at
            + 30
            + usize::from(u16::from_le_bytes([whole[at + 26], whole[at + 27]]))
            + usize::from(u16::from_le_bytes([whole[at + 28], whole[at + 29]]));
        damaged[at..at + 4].copy_from_slice(b"\0\0\0\0");
        damaged[data + 3] ^= 0x55;
        let salvaged = damaged_entries(&damaged, &Limits::default()).unwrap();
        assert!(salvaged.note.contains(&format!("1 part was damaged and left out: {name}")), "{}", salvaged.note);
    }
}
