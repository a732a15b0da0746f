//! Zip packages that no zip reader reads whole, read from what they still hold: the
//! entries are inflated and CRC-checked, a package of the ones found whole is rebuilt
//! (stored), and the format's own reader reads that, with a note of what was lost. Two
//! kinds of damage:
//! - [`truncated_zip`]: cut short (a download or an attachment that stopped early), its
//!   central directory lost: the local headers are walked from the start.
//! - [`damaged_entries`]: the central directory whole, but entries behind it damaged (a
//!   local header overwritten, the offsets shifted by bytes added in front): each entry is
//!   read from where the directory says, its data found by the directory's sizes.
//!
//! The directory's reading is tried first: where it has one, it knows every entry. Both
//! run only after the format's reader failed, so whole files pay nothing; what they
//! inflate is held to the zip-bomb guards, and a breach gives up the salvage so that the
//! file's own error stands.

mod directory;
mod local_headers;

use std::io::{Cursor, Write};

pub use directory::damaged_entries;
pub use local_headers::truncated_zip;

const LOCAL_HEADER: &[u8] = b"PK\x03\x04";
const CENTRAL_HEADER: &[u8] = b"PK\x01\x02";
const LOCAL_HEADER_LEN: usize = 30;

/// A package rebuilt from the entries a damaged zip still holds whole.
#[derive(Debug)]
pub struct Salvaged {
    /// The rebuilt zip (every entry stored, in the damaged file's order).
    pub bytes: Vec<u8>,
    /// What was read and where the damaged file stopped being readable.
    pub note: String,
}

/// Why salvage gave up altogether (the damaged file's own error then stands).
enum Refusal {
    /// What an entry inflates to breaks the zip-bomb guards.
    Bomb,
}

/// A stored zip of `entries` (name, data), directories left out; `size` is what they hold
/// in all, for the buffer.
fn rebuilt<'a>(entries: impl Iterator<Item = (&'a str, &'a [u8])>, size: u64) -> Option<Vec<u8>> {
    let stored = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let mut out = zip::ZipWriter::new(Cursor::new(Vec::with_capacity(usize::try_from(size).unwrap_or(0))));
    for (name, data) in entries.filter(|(name, _)| !name.ends_with('/')) {
        out.start_file(name, stored).ok()?;
        out.write_all(data).ok()?;
    }
    Some(out.finish().ok()?.into_inner())
}

/// Raw deflate data from the start of `input` to the end of its stream: what it inflates
/// to and how many bytes of `input` it used.
fn inflate(input: &[u8], budget: u64, max_ratio: u64) -> Result<(Vec<u8>, usize), Result<String, Refusal>> {
    let mut inflater = flate2::Decompress::new(false);
    let mut out = Vec::with_capacity(input.len().min(1 << 20) * 3);
    loop {
        if out.len() == out.capacity() {
            out.reserve(out.len().max(64 * 1024));
        }
        let (used, made) = (inflater.total_in(), out.len());
        let step = input.get(usize::try_from(used).unwrap_or(usize::MAX)..).unwrap_or_default();
        let status = inflater
            .decompress_vec(step, &mut out, flate2::FlushDecompress::None)
            .map_err(|_| Ok("its compressed data is damaged".to_owned()))?;
        let size = out.len() as u64;
        if size > budget || (size > 1024 * 1024 && size / inflater.total_in().max(1) > max_ratio) {
            return Err(Err(Refusal::Bomb));
        }
        if status == flate2::Status::StreamEnd {
            break;
        }
        if inflater.total_in() == used && out.len() == made {
            return Err(Ok("cut short".to_owned()));
        }
    }
    Ok((out, usize::try_from(inflater.total_in()).unwrap_or(usize::MAX)))
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
