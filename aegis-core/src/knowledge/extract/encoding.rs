//! Bytes to text for the text formats (plain text, Markdown, CSV, HTML), whatever
//! character encoding the file was saved in.
//!
//! The order: a byte-order mark wins; then UTF-16 without a mark (every other byte NUL);
//! then valid UTF-8, taken as it is (a file that is valid UTF-8 and has non-ASCII bytes is
//! UTF-8 in practice, whatever it declares); then the encoding the document declares (an
//! HTML `<meta charset>`); then the legacy encoding chardetng — Firefox's detector for
//! unlabelled pages — guesses from the bytes (windows-1252, Shift_JIS, GBK, EUC-KR,
//! windows-1251, windows-1255, windows-1256, …). Before this, invalid UTF-8 bytes were
//! replaced, so a Latin-1 `café` became `caf�` and a Shift_JIS file became noise.

use chardetng::{EncodingDetector, Iso2022JpDetection, Utf8Detection};
use encoding_rs::{Encoding, UTF_16BE, UTF_16LE};

/// How much of a file the UTF-16 sniffing and the detector look at: enough to tell, and
/// a bounded cost on a large file.
const SNIFF_BYTES: usize = 64 * 1024;

/// Decodes `bytes` as described in the module documentation; `declared` is the encoding
/// the document names for itself, if any. Anything other than plain or declared text
/// (a guess, replaced bytes) is noted.
pub(super) fn decode(bytes: &[u8], declared: Option<&'static Encoding>, notes: &mut Vec<String>) -> String {
    if let Some((encoding, bom)) = Encoding::for_bom(bytes) {
        return decode_as(encoding, &bytes[bom..], notes);
    }
    if let Some(encoding) = utf16_without_bom(bytes) {
        notes.push(format!("the text has no byte-order mark; read as {} from its NUL bytes", encoding.name()));
        return decode_as(encoding, bytes, notes);
    }
    if let Ok(text) = std::str::from_utf8(bytes) {
        return text.to_owned();
    }
    // A page cannot declare UTF-16 in bytes that are not (the HTML standard ignores it).
    if let Some(encoding) = declared.filter(|e| *e != UTF_16LE && *e != UTF_16BE) {
        return decode_as(encoding, bytes, notes);
    }
    let mut detector = EncodingDetector::new(Iso2022JpDetection::Allow);
    let sample = &bytes[..bytes.len().min(SNIFF_BYTES)];
    detector.feed(sample, sample.len() == bytes.len());
    let encoding = detector.guess(None, Utf8Detection::Deny);
    notes.push(format!("the text is not UTF-8; read as {}, guessed from its bytes", encoding.name()));
    decode_as(encoding, bytes, notes)
}

/// Decodes with one encoding, noting replaced bytes.
fn decode_as(encoding: &'static Encoding, bytes: &[u8], notes: &mut Vec<String>) -> String {
    let (text, had_errors) = encoding.decode_without_bom_handling(bytes);
    if had_errors {
        notes.push(format!("the text has bytes that are not valid {}; they were replaced", encoding.name()));
    }
    text.into_owned()
}

/// UTF-16 without a byte-order mark: text where most bytes at one parity are NUL and
/// almost none at the other (ASCII-range text, which is most of any real file).
fn utf16_without_bom(bytes: &[u8]) -> Option<&'static Encoding> {
    let sample = &bytes[..bytes.len().min(SNIFF_BYTES)];
    if sample.len() < 4 || !sample.contains(&0) {
        return None;
    }
    let pairs = sample.len() / 2;
    let (mut even, mut odd) = (0usize, 0usize);
    for pair in sample.chunks_exact(2) {
        even += usize::from(pair[0] == 0);
        odd += usize::from(pair[1] == 0);
    }
    let most = |n: usize| n * 10 >= pairs * 4;
    let few = |n: usize| n * 50 <= pairs;
    match (most(even) && few(odd), most(odd) && few(even)) {
        (true, false) => Some(UTF_16BE),
        (false, true) => Some(UTF_16LE),
        _ => None,
    }
}

/// Whether `bytes` read as text in some encoding: a byte-order mark, UTF-16 told by its
/// NUL bytes, or else no NUL byte and next to no control characters in the first 64 KB
/// (binary formats have NULs early: images, archives, executables, databases).
pub(super) fn looks_like_text(bytes: &[u8]) -> bool {
    if Encoding::for_bom(bytes).is_some() || utf16_without_bom(bytes).is_some() {
        return true;
    }
    let sample = &bytes[..bytes.len().min(SNIFF_BYTES)];
    if sample.is_empty() || sample.contains(&0) {
        return false;
    }
    let controls = sample.iter().filter(|&&b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x0C | 0x1B)).count();
    controls * 100 <= sample.len()
}

/// The encoding an encoding label names (`latin1`, `shift_jis`, `utf-8`, …), as the
/// WHATWG Encoding standard maps labels.
pub(super) fn for_label(label: &str) -> Option<&'static Encoding> {
    Encoding::for_label(label.trim().as_bytes())
}

/// A Windows code page's encoding, among those encoding_rs knows.
pub(super) fn code_page(page: i64) -> Option<&'static Encoding> {
    let label: &[u8] = match page {
        874 => b"windows-874",
        932 => b"shift_jis",
        936 => b"gbk",
        949 => b"euc-kr",
        950 => b"big5",
        1250..=1258 => return Encoding::for_label(format!("windows-{page}").as_bytes()),
        10000 => b"macintosh",
        20866 => b"koi8-r",
        866 => b"ibm866",
        65001 => b"utf-8",
        28591..=28605 => return Encoding::for_label(format!("iso-8859-{}", page - 28590).as_bytes()),
        _ => return None,
    };
    Encoding::for_label(label)
}

#[cfg(test)]
mod tests {
    use encoding_rs::{EUC_KR, SHIFT_JIS, UTF_8, WINDOWS_1251, WINDOWS_1252};

    use super::*;

    fn encoded(encoding: &'static Encoding, text: &str) -> Vec<u8> {
        let (bytes, _, unmappable) = encoding.encode(text);
        assert!(!unmappable, "{text} fits {}", encoding.name());
        bytes.into_owned()
    }

    #[test]
    fn boms_and_plain_utf8_are_read_without_notes() {
        let mut notes = vec![];
        assert_eq!(decode(b"\xEF\xBB\xBFhi", None, &mut notes), "hi");
        assert_eq!(decode(b"\xFF\xFEh\0i\0", None, &mut notes), "hi");
        assert_eq!(decode(b"\xFE\xFF\0h\0i", None, &mut notes), "hi");
        assert_eq!(decode("Zürich".as_bytes(), Some(WINDOWS_1252), &mut notes), "Zürich");
        assert!(notes.is_empty(), "{notes:?}");
    }

    #[test]
    fn legacy_encodings_are_guessed_and_noted() {
        let cases = [
            (WINDOWS_1252, "Le café de la gare est fermé le dimanche; réouverture à neuf heures."),
            (WINDOWS_1251, "Договор поставки товаров между поставщиком и покупателем заключён в Москве."),
            (SHIFT_JIS, "この文書は会社の就業規則について説明します。従業員は毎日九時に出勤します。"),
            (EUC_KR, "이 문서는 회사의 취업 규칙을 설명합니다. 직원은 매일 아홉 시에 출근합니다."),
        ];
        for (encoding, text) in cases {
            let mut notes = vec![];
            assert_eq!(decode(&encoded(encoding, text), None, &mut notes), text, "{}", encoding.name());
            assert_eq!(notes.len(), 1, "{notes:?}");
            assert!(notes[0].contains(encoding.name()), "{notes:?}");
        }
    }

    #[test]
    fn a_declared_encoding_is_used_when_the_bytes_are_not_utf8() {
        let text = "Prix: 12 €, TVA comprise — reçu n° 7";
        let mut notes = vec![];
        let bytes = encoded(WINDOWS_1252, text);
        assert_eq!(decode(&bytes, for_label("iso-8859-1"), &mut notes), text);
        assert!(notes.is_empty(), "{notes:?}");
        assert_eq!(decode(b"caf\xE9", Some(UTF_8), &mut notes), "caf\u{FFFD}");
        assert_eq!(notes.len(), 1, "a file declared UTF-8 with bad bytes is noted: {notes:?}");
    }

    #[test]
    fn utf16_without_a_bom_is_recognised_by_its_nul_bytes() {
        let text = "Quarterly report: revenue grew by 12% in the third quarter.";
        let le: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let be: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
        let mut notes = vec![];
        assert_eq!(decode(&le, None, &mut notes), text);
        assert_eq!(decode(&be, None, &mut notes), text);
        assert_eq!(notes.len(), 2, "{notes:?}");
        let mut notes = vec![];
        assert_eq!(
            decode(b"hello\0world, plain text", None, &mut notes),
            "hello\0world, plain text",
            "a stray NUL is not UTF-16"
        );
    }

    #[test]
    fn text_in_any_encoding_looks_like_text_and_binary_files_do_not() {
        let text = "Opening hours: Monday to Friday, nine to five.\n";
        let utf16: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
        for bytes in
            [text.as_bytes(), &encoded(WINDOWS_1252, "Café fermé\r\n"), &encoded(SHIFT_JIS, "就業規則"), &utf16]
        {
            assert!(looks_like_text(bytes), "{bytes:?}");
        }
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x10";
        let gzip = b"\x1f\x8b\x08\0\0\0\0\0\0\x03";
        let controls: Vec<u8> = (0..200u8).map(|i| if i % 10 == 0 { 0x01 } else { b'a' }).collect();
        for bytes in [png.as_slice(), gzip, &controls, b""] {
            assert!(!looks_like_text(bytes), "{bytes:?}");
        }
    }
}
