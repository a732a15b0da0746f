//! A zip package cut short — a download or an attachment that stopped early — has lost
//! its central directory, which sits at the end, and no zip reader opens it. Its entries
//! are still there from the start, each behind a local header: this walks them in order,
//! inflating and checking each one's CRC, and rebuilds a package of the entries found
//! whole. The walk stops at the first entry that is cut short or does not check out.

use std::io::Cursor;

use super::{CENTRAL_HEADER, LOCAL_HEADER, LOCAL_HEADER_LEN, Refusal, Salvaged, inflate, le16, le32, rebuilt};
use crate::knowledge::extract::Limits;

const DATA_DESCRIPTOR: &[u8] = b"PK\x07\x08";

/// One entry read from its local header.
struct Entry {
    name: String,
    data: Vec<u8>,
    /// Where the next local header starts.
    next: usize,
}

/// The entries `bytes` still holds whole, when it starts like a zip but its central
/// directory does not open; `None` when it opens (the damage is elsewhere), when no
/// entry is whole, or when what the entries inflate to breaks the zip-bomb guards.
pub fn truncated_zip(bytes: &[u8], limits: &Limits) -> Option<Salvaged> {
    if !bytes.starts_with(LOCAL_HEADER) || zip::ZipArchive::new(Cursor::new(bytes)).is_ok() {
        return None;
    }
    let mut entries: Vec<Entry> = Vec::new();
    let (mut at, mut inflated) = (0usize, 0u64);
    let stopped = loop {
        if !bytes.get(at..).is_some_and(|b| b.starts_with(LOCAL_HEADER)) {
            break if at >= bytes.len() {
                "at its end".to_owned()
            } else if bytes[at..].starts_with(CENTRAL_HEADER) {
                "where its zip directory begins, itself damaged or cut short".to_owned()
            } else {
                "with no entry after it".to_owned()
            };
        }
        let budget = limits.max_uncompressed_bytes.saturating_sub(inflated);
        match entry_at(bytes, at, budget, limits.max_ratio) {
            Ok(entry) => {
                inflated += entry.data.len() as u64;
                at = entry.next;
                if !entries.iter().any(|e| e.name == entry.name) {
                    entries.push(entry);
                }
            }
            Err(Ok(reason)) => break reason,
            Err(Err(Refusal::Bomb)) => return None,
        }
    };
    let files = entries.iter().filter(|e| !e.name.ends_with('/')).count();
    if files == 0 {
        return None;
    }
    let bytes_out = rebuilt(entries.iter().map(|e| (e.name.as_str(), e.data.as_slice())), inflated)?;
    Some(Salvaged {
        bytes: bytes_out,
        note: format!(
            "the package is damaged or cut short (its zip directory is missing): read from the {files} parts \
             found whole before byte {at} of {}, where it stops {stopped}",
            bytes.len()
        ),
    })
}

/// The entry whose local header is at `at`: `Err(Ok(where and why))` when it is not whole.
fn entry_at(bytes: &[u8], at: usize, budget: u64, max_ratio: u64) -> Result<Entry, Result<String, Refusal>> {
    let header = bytes.get(at..at + LOCAL_HEADER_LEN).ok_or_else(|| Ok("in a local header cut short".to_owned()))?;
    let (flags, method) = (le16(header, 6), le16(header, 8));
    let (crc, compressed, size) = (le32(header, 14), le32(header, 18), le32(header, 22));
    let name_start = at + LOCAL_HEADER_LEN;
    let data_start = name_start + usize::from(le16(header, 26)) + usize::from(le16(header, 28));
    let name = bytes.get(name_start..name_start + usize::from(le16(header, 26)));
    let name = String::from_utf8_lossy(name.ok_or_else(|| Ok("in a local header cut short".to_owned()))?).into_owned();
    let stop = |what: &str| Ok(format!("at {name}: {what}"));
    let cut = || stop("cut short");
    let rest = bytes.get(data_start..).ok_or_else(cut)?;
    if flags & 1 != 0 {
        return Err(stop("encrypted"));
    }
    let sized_later = flags & 8 != 0;
    if !sized_later && (compressed == u32::MAX || size == u32::MAX) {
        return Err(stop("a zip64 part"));
    }
    let (data, used) = match method {
        0 if sized_later => return Err(stop("stored with no length")),
        0 => {
            let data = rest.get(..compressed as usize).ok_or_else(cut)?;
            if data.len() as u64 > budget {
                return Err(Err(Refusal::Bomb));
            }
            (data.to_vec(), data.len())
        }
        8 => {
            let input = if sized_later { rest } else { rest.get(..compressed as usize).ok_or_else(cut)? };
            inflate(input, budget, max_ratio).map_err(|e| e.map(|what| format!("at {name}: {what}")))?
        }
        other => return Err(stop(&format!("compressed by method {other}"))),
    };
    let mut next = data_start + used;
    let expected = if sized_later {
        if bytes.get(next..).is_some_and(|b| b.starts_with(DATA_DESCRIPTOR)) {
            next += DATA_DESCRIPTOR.len();
        }
        let descriptor = bytes.get(next..next + 12).ok_or_else(cut)?;
        // Sizes of 4 bytes each, or of 8 (zip64): in the first, the uncompressed size
        // follows the compressed one; in the second, the compressed size's high half.
        let zip64 = le32(descriptor, 8) as usize != data.len();
        next += if zip64 { 20 } else { 12 };
        le32(descriptor, 0)
    } else {
        crc
    };
    if crc32fast::hash(&data) != expected || (!sized_later && data.len() != size as usize) {
        return Err(stop("its checksum does not match"));
    }
    Ok(Entry { name, data, next })
}

#[cfg(test)]
mod tests {
    use std::io::{Cursor, Read, Write};

    use super::truncated_zip;
    use crate::knowledge::extract::{Format, Limits, corpus, extract, token_fidelity};

    const DOCX: &str = "generated/docx/gen-docx-001-2p.docx";

    /// `bytes` cut 100 bytes into its last entry (the thumbnail, in the generated files):
    /// the zip directory and that entry are lost, every other part is whole.
    fn cut_into_last_part(bytes: &[u8]) -> Vec<u8> {
        let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
        let last = (0..archive.len()).map(|i| archive.by_index_raw(i).unwrap().header_start()).max().unwrap();
        bytes[..usize::try_from(last).unwrap() + 100].to_vec()
    }

    /// The same package written as a stream: each entry's sizes and CRC follow its data.
    fn streamed(bytes: &[u8]) -> Vec<u8> {
        let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
        let mut out = zip::ZipWriter::new_stream(Vec::new());
        for i in 0..archive.len() {
            let mut entry = archive.by_index(i).unwrap();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            out.start_file(entry.name().unwrap(), zip::write::SimpleFileOptions::default()).unwrap();
            out.write_all(&data).unwrap();
        }
        out.finish().unwrap().into_inner()
    }

    fn truth() -> String {
        String::from_utf8(corpus(&DOCX.replace(".docx", ".txt"))).unwrap()
    }

    #[test]
    fn a_package_cut_short_is_read_from_the_parts_it_still_holds() {
        let whole = corpus(DOCX);
        let cut = cut_into_last_part(&whole);
        assert!(zip::ZipArchive::new(Cursor::new(cut.as_slice())).is_err(), "no zip reader opens it");
        let read = extract(Format::Docx, &cut, &Limits::default()).unwrap();
        assert!(read.notes[0].starts_with("the package is damaged or cut short"), "{:?}", read.notes);
        assert!(read.notes[0].contains("where it stops at docProps/thumbnail.jpeg: cut short"), "{:?}", read.notes);
        let (recall, precision) = token_fidelity(&truth(), &read.text());
        assert!(recall >= 0.98 && precision >= 0.98, "recall {recall}, precision {precision}");
        assert_eq!(read.text(), extract(Format::Docx, &whole, &Limits::default()).unwrap().text());
        assert!(truncated_zip(&whole, &Limits::default()).is_none(), "a whole package is read as it is");
    }

    #[test]
    fn the_real_truncated_document_is_read_with_a_note() {
        // Apache POI's test file, its zip directory cut short (the corpus MANIFEST: MALFORMED).
        let read = extract(Format::Docx, &corpus("real/docx/truncated62886.docx"), &Limits::default()).unwrap();
        assert!(read.text().contains("ORÇAMENTO") && read.text().contains("| Item | Quantidade |"), "{}", read.text());
        assert!(
            read.notes[0].ends_with("where its zip directory begins, itself damaged or cut short"),
            "{:?}",
            read.notes
        );
    }

    #[test]
    fn parts_sized_after_their_data_are_read_too() {
        let streamed = streamed(&corpus(DOCX));
        assert_ne!(streamed[6] & 8, 0, "the first entry's sizes follow its data");
        let cut = cut_into_last_part(&streamed);
        let salvaged = truncated_zip(&cut, &Limits::default()).unwrap();
        let parts = zip::ZipArchive::new(Cursor::new(corpus(DOCX))).unwrap().len() - 1;
        assert!(salvaged.note.contains(&format!("from the {parts} parts")), "{}", salvaged.note);
        let read = extract(Format::Docx, &cut, &Limits::default()).unwrap();
        assert_eq!(read.text(), extract(Format::Docx, &corpus(DOCX), &Limits::default()).unwrap().text());
    }

    #[test]
    fn the_walk_ends_at_a_part_whose_checksum_does_not_match() {
        let whole = corpus(DOCX);
        let mut archive = zip::ZipArchive::new(Cursor::new(whole.as_slice())).unwrap();
        let (header, name) = {
            let entry = archive.by_index_raw(2).unwrap();
            (usize::try_from(entry.header_start()).unwrap(), entry.name().unwrap().into_owned())
        };
        let third = header
            + 30
            + usize::from(u16::from_le_bytes([whole[header + 26], whole[header + 27]]))
            + usize::from(u16::from_le_bytes([whole[header + 28], whole[header + 29]]));
        let mut cut = cut_into_last_part(&whole);
        cut[third + 2] ^= 0x55;
        let salvaged = truncated_zip(&cut, &Limits::default()).unwrap();
        assert!(salvaged.note.contains("from the 2 parts"), "{}", salvaged.note);
        assert!(salvaged.note.contains(&format!("where it stops at {name}: ")), "{}", salvaged.note);
    }

    #[test]
    fn a_bomb_cut_short_is_not_inflated_past_the_guards() {
        let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
        out.start_file("word/document.xml", zip::write::SimpleFileOptions::default()).unwrap();
        out.write_all(&vec![b' '; 8 * 1024 * 1024]).unwrap();
        let bomb = out.finish().unwrap().into_inner();
        let cut = &bomb[..bomb.len() - 30];
        assert!(truncated_zip(cut, &Limits::default()).is_none());
        let limits = Limits { max_ratio: 100_000, max_uncompressed_bytes: 4 * 1024 * 1024, ..Limits::default() };
        assert!(truncated_zip(cut, &limits).is_none(), "over the total size");
        let error = extract(Format::Docx, cut, &Limits::default()).unwrap_err();
        assert!(error.to_string().contains("damaged or truncated"), "{error}");
    }
}
