//! OLE compound files, the container of the legacy binary Office formats (`.doc`, `.xls`,
//! `.ppt`) and of encrypted OOXML packages: opened with cfb, streams read whole (they are
//! parts of a file already inside the size limit), and a file's kind told from the streams
//! it holds.

use std::{
    borrow::Cow,
    io::{Cursor, Read, Write},
};

use super::{ExtractError, Format};

/// The signature every compound file starts with.
pub(super) const MAGIC: &[u8] = b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1";

/// An opened compound file.
pub(super) struct Ole<'a> {
    file: cfb::CompoundFile<Cursor<Cow<'a, [u8]>>>,
    len: u64,
}

impl<'a> Ole<'a> {
    /// Opens `bytes` (a truncated last sector is padded, as tolerant readers do).
    pub(super) fn open(bytes: &'a [u8]) -> Result<Self, ExtractError> {
        if !bytes.starts_with(MAGIC) {
            return Err(super::not_a("an OLE compound file (the binary Office format)", bytes));
        }
        let len = bytes.len() as u64;
        let file = cfb::CompoundFile::open(Cursor::new(whole_sectors(bytes)))
            .map_err(|e| ExtractError::Malformed(format!("compound file: {e}")))?;
        Ok(Self { file, len })
    }

    /// Whether the file holds the stream `name` (a path such as `/WordDocument`).
    pub(super) fn has(&self, name: &str) -> bool {
        self.file.is_stream(name)
    }

    /// Whether the file holds the storage `name` (a path such as `/__nameid_version1.0`).
    pub(super) fn has_storage(&self, name: &str) -> bool {
        self.file.is_storage(name)
    }

    /// The names of the storages directly inside the storage `name`, in the directory's
    /// order (none when it is absent or damaged).
    pub(super) fn storages_in(&self, name: &str) -> Vec<String> {
        self.file
            .read_storage(name)
            .map(|entries| entries.filter(|e| e.is_storage()).map(|e| e.name().to_owned()).collect())
            .unwrap_or_default()
    }

    /// The stream `name` whole, or `None` when absent. A stream that claims more bytes than
    /// the file holds (a sector chain that loops) is an error rather than a long read.
    pub(super) fn stream(&mut self, name: &str) -> Result<Option<Vec<u8>>, ExtractError> {
        if !self.file.is_stream(name) {
            return Ok(None);
        }
        let mut stream =
            self.file.open_stream(name).map_err(|e| ExtractError::Malformed(format!("stream {name}: {e}")))?;
        let mut bytes = Vec::new();
        (&mut stream)
            .take(self.len + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| ExtractError::Malformed(format!("stream {name}: {e}")))?;
        if bytes.len() as u64 > self.len {
            return Err(ExtractError::Malformed(format!("stream {name} is longer than the file")));
        }
        Ok(Some(bytes))
    }
}

/// The file an OLE Package object wraps — what Office embeds when a file (a PDF, a text
/// file, another document) is dragged into a document: its name and bytes, from the
/// `\u{1}Ole10Native` stream. `None` for a compound file of another kind.
pub(super) fn packaged_file(bytes: &[u8]) -> Result<Option<(String, Vec<u8>)>, ExtractError> {
    let mut ole = Ole::open(bytes)?;
    let Some(native) = ole.stream("/\u{1}Ole10Native")? else { return Ok(None) };
    let damaged = || ExtractError::Malformed("the packaged file's Ole10Native stream is damaged".into());
    // The stream's size (4 bytes) and flags (2), the label and the source path (both
    // zero-terminated, in the author's code page), 8 bytes, the temporary path, then the
    // file's size (4) and bytes.
    let mut at = 6;
    let text = |at: &mut usize| -> Option<String> {
        let rest = native.get(*at..)?;
        let end = rest.iter().position(|b| *b == 0)?;
        *at += end + 1;
        Some(encoding_rs::WINDOWS_1252.decode_without_bom_handling(&rest[..end]).0.into_owned())
    };
    let label = text(&mut at).ok_or_else(damaged)?;
    let source = text(&mut at).ok_or_else(damaged)?;
    at += 8;
    text(&mut at).ok_or_else(damaged)?;
    let size = native.get(at..at + 4).ok_or_else(damaged)?;
    let size = usize::try_from(u32::from_le_bytes([size[0], size[1], size[2], size[3]])).map_err(|_| damaged())?;
    let data = native.get(at + 4..).and_then(|rest| rest.get(..size)).ok_or_else(damaged)?;
    // The label is the name shown under the icon, usually the file's; the source path
    // names it when the label has no extension.
    let file_name = |path: &str| path.rsplit(['\\', '/']).next().unwrap_or_default().to_owned();
    let name = [file_name(&label), file_name(&source)]
        .into_iter()
        .find(|name| std::path::Path::new(name).extension().is_some())
        .unwrap_or_else(|| file_name(&label));
    Ok(Some((name, data.to_vec())))
}

/// A fresh compound file holding only the first of `names` that `bytes` has, copied out
/// through cfb's checked reader; `None` when it has none of them. For a reader with
/// compound-file code of its own that indexes past the end of a damaged container
/// (calamine's `.xls` reader panics): it gets a well-formed container, and one cfb cannot
/// read is a clear error before it. Version 3 (512-byte sectors), as Excel writes them:
/// calamine refuses a version 4 file whose root holds no mini stream.
pub(super) fn rebuilt(bytes: &[u8], names: &[&str]) -> Result<Option<Vec<u8>>, ExtractError> {
    let mut ole = Ole::open(bytes)?;
    for name in names {
        let Some(stream) = ole.stream(name)? else { continue };
        let write = || -> std::io::Result<Vec<u8>> {
            let buffer = Cursor::new(Vec::with_capacity(stream.len() + 8 * 512));
            let mut file = cfb::CompoundFile::create_with_version(cfb::Version::V3, buffer)?;
            file.create_stream(name)?.write_all(&stream)?;
            file.flush()?;
            Ok(file.into_inner().into_inner())
        };
        return write().map(Some).map_err(|e| ExtractError::Malformed(format!("compound file: {e}")));
    }
    Ok(None)
}

/// The legacy format a compound file holds, from its streams: Word, Excel, PowerPoint or
/// an Outlook message.
/// `None` for anything else (an encrypted OOXML package, an unknown or damaged file),
/// which then goes by its name.
/// It reads only the directory, in the calling process, with a parser panic caught.
pub(super) fn sniff(bytes: &[u8]) -> Option<Format> {
    std::panic::catch_unwind(|| {
        let ole = Ole::open(bytes).ok()?;
        if ole.has("/WordDocument") {
            Some(Format::Doc)
        } else if ole.has("/Workbook") || ole.has("/Book") {
            Some(Format::Xls)
        } else if ole.has("/PowerPoint Document") {
            Some(Format::Ppt)
        } else if ole.has("/__properties_version1.0") && ole.has_storage("/__nameid_version1.0") {
            Some(Format::Msg)
        } else {
            None
        }
    })
    .ok()
    .flatten()
}

/// A compound file is whole sectors (512 or 4,096 bytes, from its header), and readers
/// slice past the end of a truncated one (calamine's panics). Pads the last sector with
/// zeros, so that a truncated file gives what it still holds or a clear error.
fn whole_sectors(bytes: &[u8]) -> Cow<'_, [u8]> {
    let shift = le_u16(bytes, 30).unwrap_or(0);
    let sector = match shift {
        9 | 12 => 1usize << shift,
        _ => return Cow::Borrowed(bytes),
    };
    let short = (sector - bytes.len() % sector) % sector;
    if short == 0 {
        return Cow::Borrowed(bytes);
    }
    let mut padded = Vec::with_capacity(bytes.len() + short);
    padded.extend_from_slice(bytes);
    padded.resize(bytes.len() + short, 0);
    Cow::Owned(padded)
}

/// The little-endian `u16` at `at`, if the bytes reach that far.
pub(super) fn le_u16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(at..at.checked_add(2)?)?.try_into().ok()?))
}

/// The little-endian `u32` at `at`, if the bytes reach that far.
pub(super) fn le_u32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

/// `file` (a compound file) with its stream `name` passed through `change`.
#[cfg(test)]
pub(super) fn with_stream(file: &[u8], name: &str, change: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut file = cfb::CompoundFile::open(Cursor::new(file.to_vec())).unwrap();
    let mut stream = Vec::new();
    file.open_stream(name).unwrap().read_to_end(&mut stream).unwrap();
    change(&mut stream);
    file.create_stream(name).unwrap().write_all(&stream).unwrap();
    file.flush().unwrap();
    file.into_inner().into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_truncated_compound_file_is_padded_to_whole_sectors() {
        let whole = crate::knowledge::extract::fixture("budget-2019.xls");
        assert!(matches!(whole_sectors(&whole), Cow::Borrowed(_)), "an intact file is not copied");
        let padded = whole_sectors(&whole[..whole.len() - 100]);
        assert_eq!(padded.len(), whole.len());
        assert!(padded.ends_with(&[0; 100]));
        assert!(matches!(whole_sectors(b"not an OLE file"), Cow::Borrowed(_)));
    }
}
