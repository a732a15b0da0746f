//! Rich Text Format (`.rtf`): a single pass over its control words and groups, laid out as
//! DOCX is through the same outline. Headings come from the paragraph's outline level
//! or its style's name (`heading N`, from the style sheet); `\intbl` paragraphs with `\cell`
//! and `\row` marks become markdown rows; footnotes, comments, headers and footers are
//! parts of their own; a field's result is text, its instruction is not. Text is decoded
//! from `\uN` escapes, or from bytes in the code page the document (`\ansicpg`) or the
//! current font (`\fcharset`) names. Destinations that hold no text — font and colour
//! tables, pictures, embedded objects' data, shape properties, list labels, and any
//! unknown `\*` group — are skipped.

use std::collections::HashMap;

use encoding_rs::Encoding;

use super::{
    ExtractError, Extracted, Extractor, Limits,
    encoding::code_page,
    outline::{Part, Parts},
};

/// RTF documents.
pub struct Rtf;

impl Extractor for Rtf {
    fn extract(&self, bytes: &[u8], _limits: &Limits) -> Result<Extracted, ExtractError> {
        if !bytes.trim_ascii_start().starts_with(b"{\\rtf") {
            return Err(ExtractError::Malformed("not an RTF document (no {\\rtf header)".into()));
        }
        let mut reader = Reader::default();
        reader.read(bytes);
        Ok(reader.finish())
    }
}

/// Groups deeper than this are read as if they were at this depth.
const MAX_DEPTH: usize = 4096;

/// What a group holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Destination {
    Text(Part),
    Skip,
    Fonts,
    Styles,
}

/// The state a group starts from and restores on its end.
#[derive(Debug, Clone, Copy)]
struct Group {
    destination: Destination,
    /// Characters of fallback text after each `\uN`.
    unicode_skip: usize,
    font: Option<i64>,
    /// No control word or text has been read in the group yet.
    first: bool,
    /// `\*` came first: an unknown destination is skipped.
    ignorable: bool,
}

/// One target's text as it is read: the open paragraph and its properties, and a table.
#[derive(Default)]
struct Flow {
    text: String,
    level: Option<usize>,
    style_level: Option<usize>,
    in_table: bool,
    cell: String,
    row: Vec<String>,
    rows: Vec<Vec<String>>,
}

struct Reader {
    groups: Vec<Group>,
    overflow: usize,
    flows: [Flow; 5],
    parts: Parts,
    /// Bytes of text not yet decoded, and the encoding they are in.
    raw: Vec<u8>,
    raw_encoding: &'static Encoding,
    document_encoding: &'static Encoding,
    font_charsets: HashMap<i64, i64>,
    font_defined: Option<i64>,
    style_levels: HashMap<i64, usize>,
    style_defined: Option<i64>,
    style_name: String,
    /// Fallback characters still to skip after a `\uN`.
    skipping: usize,
}

impl Default for Reader {
    fn default() -> Self {
        let root = Group {
            destination: Destination::Text(Part::Body),
            unicode_skip: 1,
            font: None,
            first: false,
            ignorable: false,
        };
        Self {
            groups: vec![root],
            overflow: 0,
            flows: Default::default(),
            parts: Parts::new(),
            raw: Vec::new(),
            raw_encoding: encoding_rs::WINDOWS_1252,
            document_encoding: encoding_rs::WINDOWS_1252,
            font_charsets: HashMap::new(),
            font_defined: None,
            style_levels: HashMap::new(),
            style_defined: None,
            style_name: String::new(),
            skipping: 0,
        }
    }
}

impl Reader {
    fn group(&self) -> Group {
        self.groups.last().copied().unwrap_or(Group {
            destination: Destination::Skip,
            unicode_skip: 1,
            font: None,
            first: false,
            ignorable: false,
        })
    }

    fn group_mut(&mut self) -> Option<&mut Group> {
        self.groups.last_mut()
    }

    fn read(&mut self, bytes: &[u8]) {
        let mut i = 0usize;
        while i < bytes.len() {
            match bytes[i] {
                b'{' => {
                    self.flush_raw();
                    self.skipping = 0;
                    if self.groups.len() >= MAX_DEPTH {
                        self.overflow += 1;
                    } else {
                        let mut group = self.group();
                        group.first = true;
                        group.ignorable = false;
                        self.groups.push(group);
                    }
                    i += 1;
                }
                b'}' => {
                    self.flush_raw();
                    self.skipping = 0;
                    if self.overflow > 0 {
                        self.overflow -= 1;
                    } else if self.groups.len() > 1 {
                        self.end_group();
                    }
                    i += 1;
                }
                b'\\' => i = self.control(bytes, i + 1),
                b'\r' | b'\n' => i += 1,
                byte => {
                    self.text_byte(byte);
                    i += 1;
                }
            }
        }
        self.flush_raw();
    }

    /// Reads the control word or symbol after a backslash at `i`; returns where the next
    /// token starts.
    fn control(&mut self, bytes: &[u8], i: usize) -> usize {
        let Some(&first) = bytes.get(i) else { return i };
        if !first.is_ascii_alphabetic() {
            return self.symbol(bytes, i, first);
        }
        let word_end = i + bytes[i..].iter().take(32).take_while(|b| b.is_ascii_alphabetic()).count();
        let word = std::str::from_utf8(&bytes[i..word_end]).unwrap_or_default();
        let mut end = word_end;
        let negative = bytes.get(end) == Some(&b'-');
        if negative {
            end += 1;
        }
        let digits = bytes[end..].iter().take(10).take_while(|b| b.is_ascii_digit()).count();
        let param = std::str::from_utf8(&bytes[end..end + digits]).ok().and_then(|d| d.parse::<i64>().ok());
        let param = param.map(|p| if negative { -p } else { p });
        end += digits;
        if bytes.get(end) == Some(&b' ') {
            end += 1;
        }
        if word == "bin" {
            // Raw binary data of the given length: never text.
            self.flush_raw();
            return end.saturating_add(usize::try_from(param.unwrap_or(0)).unwrap_or(0)).min(bytes.len());
        }
        self.word(word, param);
        end
    }

    fn symbol(&mut self, bytes: &[u8], i: usize, symbol: u8) -> usize {
        match symbol {
            b'\'' => {
                // Two hex digits; a cut-short escape's digits are dropped with it.
                let digits = bytes[i + 1..].iter().take(2).take_while(|b| b.is_ascii_hexdigit()).count();
                let hex = std::str::from_utf8(&bytes[i + 1..i + 1 + digits]).unwrap_or_default();
                if let (2, Ok(byte)) = (digits, u8::from_str_radix(hex, 16)) {
                    self.text_byte(byte);
                }
                i + 1 + digits
            }
            b'*' => {
                if let Some(group) = self.group_mut() {
                    group.ignorable = true;
                }
                i + 1
            }
            b'\\' | b'{' | b'}' => {
                self.text_byte(symbol);
                i + 1
            }
            b'~' => {
                self.text(" ");
                i + 1
            }
            b'_' => {
                self.text("-");
                i + 1
            }
            b'\r' | b'\n' => {
                self.word("par", None);
                i + 1
            }
            _ => {
                self.consume_skip();
                i + 1
            }
        }
    }

    fn word(&mut self, word: &str, param: Option<i64>) {
        self.flush_raw();
        let group = self.group();
        if group.first {
            if let Some(group) = self.group_mut() {
                group.first = false;
            }
            if let Some(destination) = destination(word, group.ignorable) {
                if let Some(group) = self.group_mut() {
                    group.destination = destination;
                }
                return;
            }
        }
        match group.destination {
            Destination::Skip => {}
            Destination::Fonts => match word {
                "f" => self.font_defined = param,
                "fcharset" => {
                    if let (Some(font), Some(charset)) = (self.font_defined, param) {
                        self.font_charsets.insert(font, charset);
                    }
                }
                _ => {}
            },
            Destination::Styles => match word {
                "s" => {
                    self.style_defined = param;
                    self.style_name.clear();
                }
                "outlinelevel" => {
                    if let (Some(style), Some(level)) = (self.style_defined, param.filter(|l| (0..9).contains(l))) {
                        self.style_levels.insert(style, level as usize + 1);
                    }
                }
                _ => {}
            },
            Destination::Text(target) => self.text_word(target, word, param),
        }
    }

    fn text_word(&mut self, target: Part, word: &str, param: Option<i64>) {
        let style_level = param.and_then(|s| self.style_levels.get(&s).copied());
        let flow = &mut self.flows[target as usize];
        match word {
            "pard" => {
                flow.in_table = false;
                flow.level = None;
                flow.style_level = None;
            }
            "intbl" => flow.in_table = true,
            "s" => flow.style_level = style_level,
            "outlinelevel" => flow.level = param.filter(|l| (0..9).contains(l)).map(|l| l as usize + 1),
            "cell" => {
                let text = std::mem::take(&mut flow.text);
                join(&mut flow.cell, text.trim());
                let cell = std::mem::take(&mut flow.cell);
                flow.row.push(cell);
            }
            "nestcell" => {
                let text = std::mem::take(&mut flow.text);
                join(&mut flow.cell, text.trim());
            }
            "row" => {
                let row = std::mem::take(&mut flow.row);
                flow.rows.push(row);
            }
            "par" | "sect" => self.end_paragraph(target),
            "line" | "page" => self.text("\n"),
            "tab" => self.text("\t"),
            "emdash" => self.text("—"),
            "endash" => self.text("–"),
            "bullet" => self.text("•"),
            "lquote" => self.text("‘"),
            "rquote" => self.text("’"),
            "ldblquote" => self.text("“"),
            "rdblquote" => self.text("”"),
            "u" => {
                if let Some(code) = param {
                    let code = if code < 0 { code + 65_536 } else { code };
                    let c = u32::try_from(code).ok().and_then(char::from_u32).unwrap_or('\u{FFFD}');
                    self.text(c.encode_utf8(&mut [0; 4]));
                    self.skipping = self.group().unicode_skip;
                }
            }
            "uc" => {
                if let Some(group) = self.group_mut() {
                    group.unicode_skip = usize::try_from(param.unwrap_or(1)).unwrap_or(1).min(16);
                }
            }
            "f" => {
                if let Some(group) = self.group_mut() {
                    group.font = param;
                }
            }
            "ansicpg" => {
                if let Some(encoding) = param.and_then(code_page) {
                    self.document_encoding = encoding;
                }
            }
            "mac" => self.document_encoding = encoding_rs::MACINTOSH,
            _ => self.consume_skip(),
        }
    }

    /// A byte of text in the current encoding (or a fallback byte after `\uN`).
    fn text_byte(&mut self, byte: u8) {
        let group = self.group();
        if group.first
            && let Some(group) = self.group_mut()
        {
            group.first = false;
        }
        if self.skipping > 0 {
            self.skipping -= 1;
            return;
        }
        match group.destination {
            Destination::Text(_) => {
                let encoding = self.encoding(group.font);
                if encoding != self.raw_encoding {
                    self.flush_raw();
                    self.raw_encoding = encoding;
                }
                self.raw.push(byte);
            }
            Destination::Styles if byte == b';' => {
                if let (Some(style), Some(level)) = (self.style_defined, heading_level(&self.style_name)) {
                    self.style_levels.entry(style).or_insert(level);
                }
                self.style_name.clear();
            }
            Destination::Styles => self.style_name.push(char::from(byte)),
            Destination::Fonts | Destination::Skip => {}
        }
    }

    fn encoding(&self, font: Option<i64>) -> &'static Encoding {
        font.and_then(|f| self.font_charsets.get(&f)).and_then(|c| charset(*c)).unwrap_or(self.document_encoding)
    }

    /// Decodes the buffered bytes into the current target's paragraph.
    fn flush_raw(&mut self) {
        if self.raw.is_empty() {
            return;
        }
        let (text, _) = self.raw_encoding.decode_without_bom_handling(&self.raw);
        let text = text.into_owned();
        self.raw.clear();
        self.push(&text);
    }

    /// Text from a control word: after any buffered bytes.
    fn text(&mut self, text: &str) {
        self.flush_raw();
        if self.skipping > 0 {
            self.skipping -= 1;
            return;
        }
        self.push(text);
    }

    fn push(&mut self, text: &str) {
        if let Destination::Text(target) = self.group().destination {
            let flow = &mut self.flows[target as usize];
            flow.text.extend(text.chars().filter(|c| !c.is_control() || matches!(c, '\t' | '\n')));
        }
    }

    /// A control word that is not text still counts as one fallback character of `\uN`.
    fn consume_skip(&mut self) {
        self.skipping = self.skipping.saturating_sub(1);
    }

    fn end_group(&mut self) {
        let ended = self.groups.pop();
        if let Some(Group { destination: Destination::Styles, .. }) = ended {
            self.style_name.clear();
        }
        // A part's last paragraph may end with its group rather than with `\par`.
        if let Some(Group { destination: Destination::Text(target), .. }) = ended
            && target != Part::Body
            && self.group().destination != Destination::Text(target)
        {
            self.end_paragraph(target);
        }
    }

    fn end_paragraph(&mut self, target: Part) {
        self.flush_raw();
        let flow = &mut self.flows[target as usize];
        let text = std::mem::take(&mut flow.text);
        if flow.in_table {
            join(&mut flow.cell, text.trim());
            return;
        }
        let level = flow.level.or(flow.style_level);
        let rows = std::mem::take(&mut flow.rows);
        if !rows.is_empty() {
            self.parts.table(target, rows);
        }
        self.parts.paragraph(target, &text, level);
    }

    fn finish(mut self) -> Extracted {
        for part in Part::ALL {
            self.end_paragraph(part);
            let flow = &mut self.flows[part as usize];
            if !flow.row.is_empty() {
                let row = std::mem::take(&mut flow.row);
                flow.rows.push(row);
            }
            let rows = std::mem::take(&mut flow.rows);
            self.parts.table(part, rows);
        }
        Extracted { sections: self.parts.finish(), notes: Vec::new() }
    }
}

fn join(cell: &mut String, text: &str) {
    if !cell.is_empty() && !text.is_empty() {
        cell.push(' ');
    }
    cell.push_str(text);
}

/// The destination a group's first control word opens, if it opens one: a part, a table
/// the reader needs, or something to skip. After `\*`, an unknown word is skipped too.
fn destination(word: &str, ignorable: bool) -> Option<Destination> {
    Some(match word {
        "fonttbl" => Destination::Fonts,
        "stylesheet" => Destination::Styles,
        "footnote" => Destination::Text(Part::Footnotes),
        "annotation" => Destination::Text(Part::Comments),
        "header" | "headerl" | "headerr" | "headerf" => Destination::Text(Part::Header),
        "footer" | "footerl" | "footerr" | "footerf" => Destination::Text(Part::Footer),
        // Field results, shape text and objects' results are text.
        "fldrslt" | "shptxt" | "result" | "field" | "shp" | "shpinst" | "object" => return None,
        "colortbl" | "info" | "pict" | "fldinst" | "listtable" | "listoverridetable" | "revtbl" | "rsidtbl"
        | "filetbl" | "xmlnstbl" | "generator" | "themedata" | "colorschememapping" | "datastore" | "latentstyles"
        | "pgdsctbl" | "pntext" | "pntxta" | "pntxtb" | "listtext" | "bkmkstart" | "bkmkend" | "objdata"
        | "objclass" | "objname" | "nonshppict" | "shppict" | "sp" | "shprslt" | "xe" | "tc" | "txe" | "ftnsep"
        | "ftnsepc" | "aftnsep" | "aftnsepc" | "template" | "userprops" | "docvar" | "atnid" | "atnauthor"
        | "atndate" | "atnref" | "atrfstart" | "atrfend" | "datafield" | "formfield" | "private" => Destination::Skip,
        _ if ignorable => Destination::Skip,
        _ => return None,
    })
}

/// The level (1–9) a style called `heading N` (any case) stands for.
fn heading_level(name: &str) -> Option<usize> {
    let name = name.trim().to_ascii_lowercase();
    name.strip_prefix("heading").and_then(|n| n.trim().parse().ok()).filter(|l| (1..=9).contains(l))
}

/// A font's character set's encoding (`\fcharsetN`); `None` for the document's own.
fn charset(charset: i64) -> Option<&'static Encoding> {
    code_page(match charset {
        77 => 10000,
        128 => 932,
        129 => 949,
        134 => 936,
        136 => 950,
        161 => 1253,
        162 => 1254,
        163 => 1258,
        177 => 1255,
        178 => 1256,
        186 => 1257,
        204 => 1251,
        222 => 874,
        238 => 1250,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::knowledge::extract::{Format, Section, SectionKind};

    fn sections(rtf: &[u8]) -> Vec<(Option<String>, Vec<String>, SectionKind, String)> {
        let extracted = Rtf.extract(rtf, &Limits::default()).unwrap();
        extracted.sections.into_iter().map(|s| (s.anchor.part, s.anchor.headings, s.kind, s.text)).collect()
    }

    #[cfg(feature = "office-docs")]
    #[test]
    fn documents_saved_as_rtf_read_like_their_docx_originals() {
        use crate::knowledge::extract::{corpus, docx::Docx, fixture};
        for (name, original) in [
            ("gen-docx-003-4p", "generated/docx/gen-docx-003-4p.docx"),
            ("footnotes", "real/docx/footnotes.docx"),
            ("hdr-header-footer", "real/docx/hdr-header-footer.docx"),
            ("textbox", "real/docx/textbox.docx"),
        ] {
            let rtf = fixture(&format!("rtf/{name}.rtf"));
            assert_eq!(Format::detect("letter.doc", &rtf), Some(Format::Rtf), "{name}: an RTF file named .doc");
            let docx = corpus(original);
            let expected: Vec<Section> = Docx.extract(&docx, &Limits::default()).unwrap().sections;
            assert_eq!(Rtf.extract(&rtf, &Limits::default()).unwrap().sections, expected, "{name}");
        }
    }

    #[test]
    fn control_words_encodings_tables_and_parts() {
        let rtf = br#"{\rtf1\ansi\ansicpg1251\deff0{\fonttbl{\f0\fcharset204 Arial;}{\f1\fcharset128 MS Mincho;}}
{\stylesheet{\s0 Normal;}{\s2\sbasedon0 heading 2;}{\*\cs9 Strong;}}
{\*\generator Hand 1.0;}{\info{\title Not text}}{\header \pard Acme Ltd\par}
\pard\s2 Quarterly {\b report}\par
\pard\outlinelevel0 Summary\par
\pard \'cf\'f0\'e8\'e2\'e5\'f2, caf\u233?, {\uc0\u8364 20}\tab done\line next\~line\par
\pard {\f1 \'93\'fa\'96\'7b}\par
{\field{\*\fldinst HYPERLINK "http://x"}{\fldrslt site}} {\*\unknown secret}{\pict\pngblip 89504e47}{\*\bkmkstart b1}x{\bin4 {}\}y\par
\pard\intbl Item\cell Qty\cell\row
\pard\intbl Bolts\cell 12\cell\row
\pard after{\*\annotation{\*\atnauthor Marta} Check Q3}\par
}"#;
        let got = sections(rtf);
        let text = |i: usize| got[i].3.as_str();
        assert_eq!(got[0].1, ["Quarterly report"], "heading 2 by its style's name");
        assert_eq!(text(0), "Quarterly report");
        assert_eq!(got[1].1, ["Summary"], "an outline level starts a new heading path");
        assert_eq!(
            text(1),
            "Summary\nПривет, café, €20\tdone\nnext line\n日本\nsite xy",
            "the raw bytes after \\bin are skipped"
        );
        assert_eq!((got[2].2, text(2)), (SectionKind::Table, "| Item | Qty |\n| --- | --- |\n| Bolts | 12 |"));
        assert_eq!(text(3), "after");
        assert_eq!((got[4].0.as_deref(), text(4)), (Some("comments"), "Check Q3"));
        assert_eq!((got[5].0.as_deref(), text(5)), (Some("header"), "Acme Ltd"));
        assert_eq!(got.len(), 6, "{got:?}");
    }

    #[test]
    fn broken_rtf_is_an_error_or_what_it_holds() {
        assert!(matches!(Rtf.extract(b"plain text", &Limits::default()), Err(ExtractError::Malformed(_))));
        // Unbalanced braces and a truncated escape: the text that is there.
        let got = sections(br"{\rtf1 one}} two\par {{{ three \'e");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].3, "one two\nthree");
        // Groups nested far past the depth limit are read, not overflowed.
        let deep = [b"{\\rtf1 ".as_slice(), &b"{".repeat(100_000), b"deep", &b"}".repeat(100_000), b"}"].concat();
        assert_eq!(sections(&deep)[0].3, "deep");
    }
}
