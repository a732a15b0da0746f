//! TeX's Computer Modern text fonts embedded without an encoding or a `ToUnicode` map. pdfTeX embeds them as
//! Type 1 fonts whose encoding is the font program's own (TeX's OT1), with no `/Encoding`
//! and no `ToUnicode` map; a reader that does not parse the font program reads their codes
//! as the standard encoding, where OT1's ligatures sit on undefined codes: "filled" reads
//! "lled" and "Official" "Ocial". Those fonts are given the OT1 positions that differ from
//! the standard encoding as `/Differences`, which lopdf decodes by glyph name.

use lopdf::{Dictionary, Document, Object};

/// OT1's glyphs where the standard encoding has another or none: (first code, names).
const OT1_DIFFERENCES: &[(i64, &[&str])] = &[
    (0x00, &["Gamma", "Delta", "Theta", "Lambda", "Xi", "Pi", "Sigma", "Upsilon", "Phi", "Psi", "Omega"]),
    (0x0B, &["ff", "fi", "fl", "ffi", "ffl", "dotlessi"]),
    (0x19, &["germandbls", "ae", "oe", "oslash", "AE", "OE", "Oslash"]),
    (0x22, &["quotedblright"]),
    (0x3C, &["exclamdown"]),
    (0x3E, &["questiondown"]),
    (0x5C, &["quotedblleft"]),
    (0x7B, &["endash", "emdash"]),
];

/// The Computer Modern families encoded in OT1 text (roman, bold, italic, slanted, sans,
/// small caps, and their kin); math, symbol and typewriter fonts have encodings of their own.
const OT1_TEXT_FAMILIES: &[&str] = &[
    "CMR", "CMBX", "CMTI", "CMSL", "CMSS", "CMSSBX", "CMSSI", "CMSSDC", "CMSSQ", "CMSSQI", "CMBXSL", "CMBXTI", "CMB",
    "CMCSC", "CMDUNH", "CMFIB", "CMFF", "CMFI", "CMU", "CMINCH",
];

/// Gives every Computer Modern text font of `document` without an encoding the OT1
/// differences; returns how many it changed.
pub(super) fn add_ot1_encodings(document: &mut Document) -> usize {
    let mut changed = 0;
    for object in document.objects.values_mut() {
        let Object::Dictionary(font) = object else { continue };
        if is_bare_computer_modern(font) {
            font.set("Encoding", ot1_encoding());
            changed += 1;
        }
    }
    changed
}

fn is_bare_computer_modern(font: &Dictionary) -> bool {
    let name = |key: &[u8]| font.get(key).and_then(Object::as_name).ok();
    // A `ToUnicode` map says what the codes are; lopdf prefers an `/Encoding` to it, so
    // one added would hide the map.
    if name(b"Type") != Some(b"Font")
        || name(b"Subtype") != Some(b"Type1")
        || font.has(b"Encoding")
        || font.has(b"ToUnicode")
    {
        return false;
    }
    let Some(base) = name(b"BaseFont") else { return false };
    // A subset's name is prefixed with six capitals and `+` (`BRYBCZ+CMR17`).
    let base = base.iter().position(|b| *b == b'+').map_or(base, |plus| &base[plus + 1..]);
    let family: Vec<u8> = base.iter().copied().take_while(|b| !b.is_ascii_digit()).collect();
    OT1_TEXT_FAMILIES.iter().any(|text| family == text.as_bytes())
}

fn ot1_encoding() -> Object {
    let mut differences = Vec::new();
    for (first, names) in OT1_DIFFERENCES {
        differences.push(Object::Integer(*first));
        differences.extend(names.iter().map(|name| Object::Name(name.as_bytes().to_vec())));
    }
    Object::Dictionary(Dictionary::from_iter([
        ("Type", Object::Name(b"Encoding".to_vec())),
        ("Differences", Object::Array(differences)),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn font(base: &str, encoding: bool) -> Dictionary {
        let mut font = Dictionary::from_iter([
            ("Type", Object::Name(b"Font".to_vec())),
            ("Subtype", Object::Name(b"Type1".to_vec())),
            ("BaseFont", Object::Name(base.as_bytes().to_vec())),
        ]);
        if encoding {
            font.set("Encoding", Object::Name(b"WinAnsiEncoding".to_vec()));
        }
        font
    }

    #[test]
    fn only_computer_modern_text_fonts_without_an_encoding_are_given_ot1() {
        assert!(is_bare_computer_modern(&font("BRYBCZ+CMR17", false)));
        assert!(is_bare_computer_modern(&font("CMBX12", false)));
        assert!(is_bare_computer_modern(&font("NYYIGP+CMSSBX10", false)));
        assert!(!is_bare_computer_modern(&font("CMR10", true)), "it has an encoding");
        assert!(!is_bare_computer_modern(&font("BKSOJG+CMMI10", false)), "math italic");
        assert!(!is_bare_computer_modern(&font("CMTT10", false)), "typewriter");
        assert!(!is_bare_computer_modern(&font("CMMIB10", false)), "bold math italic");
        assert!(!is_bare_computer_modern(&font("CMTCSC10", false)), "typewriter caps");
        let mut mapped = font("CMR10", false);
        mapped.set("ToUnicode", Object::Reference((7, 0)));
        assert!(!is_bare_computer_modern(&mapped), "its ToUnicode map says what its codes are");
        assert!(!is_bare_computer_modern(&font("Helvetica", false)));
    }

    #[test]
    fn a_pdftex_document_reads_with_its_ligatures() {
        use super::super::{Extractor, Limits, pdf::Pdf};
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/real/pdf/multicolumn.pdf");
        let extracted = Pdf { fallback: None }.extract(&std::fs::read(path).unwrap(), &Limits::default()).unwrap();
        let text: String = extracted.sections.iter().map(|s| s.text.as_str()).collect::<Vec<_>>().join("\n");
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(text.contains("two columns filled with Lorem Ipsum"), "{text}");
        assert!(text.contains("Capital Official Language"), "{text}");
    }
}
