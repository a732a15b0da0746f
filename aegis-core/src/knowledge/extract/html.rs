//! HTML: tags stripped, script and style dropped, entities decoded, `h1`–`h6` giving the
//! heading path, tables kept as markdown rows. A small scanner, not a browser: it reads
//! broken markup without failing.

use super::{Anchor, ExtractError, Extracted, Extractor, Limits, Section, SectionKind, encoding, markdown_table};

/// HTML.
pub struct Html;

const BLOCK: &[&str] = &[
    "p",
    "div",
    "br",
    "li",
    "ul",
    "ol",
    "section",
    "article",
    "header",
    "footer",
    "blockquote",
    "pre",
    "hr",
    "dt",
    "dd",
    "title",
];

struct Builder {
    sections: Vec<Section>,
    headings: Vec<(usize, String)>,
    prose: String,
    heading: Option<(usize, String)>,
    /// The tables open, outermost first: a table inside a cell is the cell's text.
    tables: Vec<Table>,
    /// Tables opened past [`MAX_TABLE_DEPTH`], whose tags are ignored (their cells join
    /// the deepest table kept).
    ignored_tables: usize,
}

/// The deepest nesting of tables kept apart. Each inner table is copied into its outer
/// cell when it closes, so a hostile page nesting thousands would cost quadratic time.
const MAX_TABLE_DEPTH: usize = 16;

/// A table being read: its rows, and the cell open in it.
#[derive(Default)]
struct Table {
    rows: Vec<Vec<String>>,
    cell: Option<String>,
}

impl Table {
    /// Ends the open cell, if any (HTML lets `</td>` and `</tr>` be left out).
    fn end_cell(&mut self) {
        if let Some(cell) = self.cell.take() {
            let cell = cell.split_whitespace().collect::<Vec<_>>().join(" ");
            match self.rows.last_mut() {
                Some(row) => row.push(cell),
                None => self.rows.push(vec![cell]),
            }
        }
    }

    /// Its rows with some text.
    fn finish(mut self) -> Vec<Vec<String>> {
        self.end_cell();
        self.rows.into_iter().filter(|r| r.iter().any(|cell| !cell.is_empty())).collect()
    }
}

impl Builder {
    fn path(&self) -> Vec<String> {
        self.headings.iter().map(|(_, h)| h.clone()).collect()
    }

    fn text(&mut self, t: &str) {
        if let Some(cell) = self.tables.last_mut().and_then(|table| table.cell.as_mut()) {
            cell.push_str(t);
        } else if let Some((_, h)) = &mut self.heading {
            h.push_str(t);
        } else {
            self.prose.push_str(t);
        }
    }

    fn flush_prose(&mut self) {
        let text = self
            .prose
            .split('\n')
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("\n");
        if !text.is_empty() {
            self.sections.push(Section {
                anchor: Anchor { headings: self.path(), ..Anchor::default() },
                kind: SectionKind::Text,
                text,
            });
        }
        self.prose.clear();
    }

    /// Closes the innermost table: a section of markdown rows, or, inside another table,
    /// its cells' text in the enclosing cell (markdown tables do not nest).
    fn close_table(&mut self) {
        let Some(table) = self.tables.pop() else { return };
        let rows = table.finish();
        if rows.is_empty() {
            return;
        }
        if let Some(outer) = self.tables.last_mut() {
            let text = rows.iter().map(|row| row.join(" ")).collect::<Vec<_>>().join("; ");
            let cell = outer.cell.get_or_insert_with(String::new);
            cell.push(' ');
            cell.push_str(&text);
            return;
        }
        self.sections.push(Section {
            anchor: Anchor { headings: self.path(), ..Anchor::default() },
            kind: SectionKind::Table,
            text: markdown_table(&rows),
        });
    }
}

/// The longest character reference looked for, `&` and `;` included (HTML's longest
/// name, `&CounterClockwiseContourIntegral;`, is 33 bytes).
const LONGEST_REFERENCE: usize = 40;

/// `s` with its character references decoded: every HTML5 name (`&eacute;`, `&mdash;`),
/// decimal (`&#233;`) and hexadecimal (`&#xE9;`). One that names nothing stays as written.
fn decode_entities(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        // `;` is ASCII, so its byte position is a character boundary.
        let end = rest.bytes().take(LONGEST_REFERENCE).position(|b| b == b';');
        let decoded = end.and_then(|end| {
            let name = &rest[1..end];
            let numeric = |digits: &str, radix| u32::from_str_radix(digits, radix).ok().and_then(char::from_u32);
            let text = if let Some(hex) = name.strip_prefix("#x").or_else(|| name.strip_prefix("#X")) {
                numeric(hex, 16).map(String::from)
            } else if let Some(decimal) = name.strip_prefix('#') {
                numeric(decimal, 10).map(String::from)
            } else {
                quick_xml::escape::resolve_html5_entity(name).map(String::from)
            }?;
            Some((text, end + 1))
        });
        match decoded {
            Some((text, len)) => {
                out.push_str(&text);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Where `needle` (ASCII, starting with an ASCII character) first occurs in `haystack`,
/// ignoring ASCII case: a byte position that is a character boundary.
fn find_ignoring_case(haystack: &str, needle: &str) -> Option<usize> {
    haystack.as_bytes().windows(needle.len()).position(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// How far into a file the `<meta charset>` declaration is looked for (the HTML
/// standard's prescan reads the first 1,024 bytes).
const PRESCAN_BYTES: usize = 1024;

/// The encoding the page declares in its first bytes: `<meta charset="…">` or
/// `<meta http-equiv="Content-Type" content="text/html; charset=…">`, or an XHTML
/// page's `<?xml … encoding="…"?>`.
fn declared_charset(bytes: &[u8]) -> Option<&'static encoding_rs::Encoding> {
    let head = String::from_utf8_lossy(&bytes[..bytes.len().min(PRESCAN_BYTES)]).to_ascii_lowercase();
    let value_after = |text: &str, key: &str| {
        let at = text.find(key)? + key.len();
        let value = text[at..].trim_start().trim_start_matches(['"', '\'']);
        let end = value.find(|c: char| matches!(c, '"' | '\'' | ';' | '>' | '/' | '?') || c.is_whitespace());
        Some(value[..end.unwrap_or(value.len())].to_owned())
    };
    let from_meta = head.match_indices("<meta").find_map(|(at, _)| {
        let tag = &head[at..head[at..].find('>').map_or(head.len(), |end| at + end)];
        value_after(tag, "charset=")
    });
    let from_xml = || head.trim_start().starts_with("<?xml").then(|| value_after(&head, "encoding=")).flatten();
    from_meta.or_else(from_xml).and_then(|label| encoding::for_label(&label))
}

impl Extractor for Html {
    fn extract(&self, bytes: &[u8], _limits: &Limits) -> Result<Extracted, ExtractError> {
        Ok(read(bytes, None))
    }
}

/// Reads a page. `charset` is the encoding its carrier names (a MIME part's
/// `Content-Type`), which wins over the page's own `<meta charset>`, as an HTTP header
/// does in a browser.
pub(super) fn read(bytes: &[u8], charset: Option<&'static encoding_rs::Encoding>) -> Extracted {
    let mut notes = Vec::new();
    let html = encoding::decode(bytes, charset.or_else(|| declared_charset(bytes)), &mut notes);
    let mut b = Builder {
        sections: vec![],
        headings: vec![],
        prose: String::new(),
        heading: None,
        tables: Vec::new(),
        ignored_tables: 0,
    };
    let mut rest = html.as_str();
    while let Some(lt) = rest.find('<') {
        b.text(&decode_entities(&rest[..lt]));
        rest = &rest[lt..];
        if rest.starts_with("<!--") {
            rest = rest.find("-->").map_or("", |e| &rest[e + 3..]);
            continue;
        }
        let Some(gt) = rest.find('>') else { break };
        let tag = &rest[1..gt];
        rest = &rest[gt + 1..];
        let closing = tag.starts_with('/');
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        match name.as_str() {
            "script" | "style" | "noscript" | "template" if !closing => {
                let close = format!("</{name}");
                rest = find_ignoring_case(rest, &close).map_or("", |i| &rest[i..]);
            }
            h if h.len() == 2 && h.starts_with('h') && h.as_bytes()[1].is_ascii_digit() => {
                let level = usize::from(h.as_bytes()[1] - b'0');
                if closing {
                    if let Some((level, text)) = b.heading.take() {
                        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
                        b.headings.retain(|(l, _)| *l < level);
                        b.prose.push_str(&text);
                        b.prose.push('\n');
                        b.headings.push((level, text));
                    }
                } else {
                    b.flush_prose();
                    b.heading = Some((level, String::new()));
                }
            }
            "table" if !closing && b.tables.len() >= MAX_TABLE_DEPTH => b.ignored_tables += 1,
            "table" if !closing => {
                if b.tables.is_empty() {
                    b.flush_prose();
                }
                b.tables.push(Table::default());
            }
            "table" if b.ignored_tables > 0 => b.ignored_tables -= 1,
            "table" => b.close_table(),
            "tr" | "td" | "th" => {
                if let Some(table) = b.tables.last_mut() {
                    table.end_cell();
                    match (name.as_str(), closing) {
                        ("tr", false) => table.rows.push(Vec::new()),
                        ("td" | "th", false) => table.cell = Some(String::new()),
                        _ => {}
                    }
                }
            }
            n if BLOCK.contains(&n) => b.text("\n"),
            _ => {}
        }
    }
    b.text(&decode_entities(rest));
    while !b.tables.is_empty() {
        b.close_table();
    }
    b.flush_prose();
    Extracted { sections: b.sections, notes }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_declared_charset_decodes_a_legacy_page() {
        let page = |head: &str, body: &str, encoding: &'static encoding_rs::Encoding| {
            let html = format!("<html><head>{head}</head><body><p>{body}</p></body></html>");
            encoding.encode(&html).0.into_owned()
        };
        let hebrew = "מדיניות הפרטיות של החברה";
        let cases = [
            (page("<meta charset=\"windows-1255\">", hebrew, encoding_rs::WINDOWS_1255), hebrew),
            (
                page(
                    "<META HTTP-EQUIV='Content-Type' CONTENT='text/html; charset=ISO-8859-1'>",
                    "Prix réduit",
                    encoding_rs::WINDOWS_1252,
                ),
                "Prix réduit",
            ),
        ];
        for (bytes, body) in cases {
            let e = Html.extract(&bytes, &Limits::default()).unwrap();
            assert_eq!(e.text().trim(), body);
            assert!(e.notes.is_empty(), "a declared encoding needs no note: {:?}", e.notes);
        }
        assert_eq!(
            declared_charset(b"<?xml version=\"1.0\" encoding=\"Shift_JIS\"?><html>"),
            Some(encoding_rs::SHIFT_JIS)
        );
        assert_eq!(declared_charset(b"<html><meta name=\"x\"><p>charset=koi8-r</p>"), None);
    }

    #[test]
    fn references_decode_whatever_text_follows_an_ampersand() {
        let html = "<p>R&D: 研究開発の概要 &mdash; caf&eacute; &#x1EBF; &#8221;ビュー &CounterClockwiseContourIntegral; &nosuch; AT&T;</p>";
        let e = Html.extract(html.as_bytes(), &Limits::default()).unwrap();
        assert_eq!(e.text(), "R&D: 研究開発の概要 — café ế ”ビュー ∳ &nosuch; AT&T;");
    }

    #[test]
    fn a_table_in_a_cell_is_that_cells_text_and_the_outer_rows_are_kept() {
        let html = "<table><tr><td>Alpha<td>Beta</tr>\
            <tr><td>Gamma<table><tr><td>inner</td><td>x</td></tr><tr><td>y</td></tr></table></td><td>Delta</td></tr></table>\
            <p>After</p><table><tr><th>Open<td>at the end";
        let e = Html.extract(html.as_bytes(), &Limits::default()).unwrap();
        let tables: Vec<&str> =
            e.sections.iter().filter(|s| s.kind == SectionKind::Table).map(|s| s.text.as_str()).collect();
        assert_eq!(
            tables,
            ["| Alpha | Beta |\n| --- | --- |\n| Gamma inner x; y | Delta |", "| Open | at the end |\n| --- | --- |"],
            "cells whose end tags are left out, a nested table, a table never closed"
        );
        assert!(e.text().contains("After"));
        let deep = format!("{}<td>bottom{}", "<table><tr><td>".repeat(5000), "</td></tr></table>".repeat(5000));
        let e = Html.extract(deep.as_bytes(), &Limits::default()).unwrap();
        assert_eq!(e.text(), "| bottom |\n| --- |", "5,000 nested tables: read, in linear time");
    }

    #[test]
    fn html_becomes_sections_with_headings_and_tables() {
        let html = "<html><head><style>p{}</style><script>var x='<p>no</p>';</script></head><body>\
            <h1>Guide</h1><p>Intro &amp; more&nbsp;text</p><!-- hidden -->\
            <h2>Prices</h2><table><tr><th>Item</th><th>€</th></tr><tr><td>Tea</td><td>3&#46;5</td></tr></table>\
            <p>After <b>bold</b></p></body></html>";
        let e = Html.extract(html.as_bytes(), &Limits::default()).unwrap();
        let text = e.text();
        assert!(!text.contains("var x") && !text.contains("hidden") && !text.contains("p{}"), "{text}");
        assert!(text.contains("Intro & more text"));
        let table = e.sections.iter().find(|s| s.kind == SectionKind::Table).unwrap();
        assert_eq!(table.anchor.headings, ["Guide", "Prices"]);
        assert!(table.text.contains("| Tea | 3.5 |"), "{}", table.text);
        assert_eq!(e.sections.last().unwrap().text, "After bold");
    }
}
