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
    table: Option<Vec<Vec<String>>>,
    cell: Option<String>,
}

impl Builder {
    fn path(&self) -> Vec<String> {
        self.headings.iter().map(|(_, h)| h.clone()).collect()
    }

    fn text(&mut self, t: &str) {
        if let Some(cell) = &mut self.cell {
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
}

fn decode_entities(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let end = rest[..rest.len().min(12)].find(';');
        let decoded = end.and_then(|end| {
            let name = &rest[1..end];
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" | "#39" => Some('\''),
                "nbsp" => Some(' '),
                _ if name.starts_with("#x") || name.starts_with("#X") => {
                    u32::from_str_radix(&name[2..], 16).ok().and_then(char::from_u32)
                }
                _ if name.starts_with('#') => name[1..].parse().ok().and_then(char::from_u32),
                _ => None,
            }?;
            Some((c, end + 1))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
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
        let mut notes = Vec::new();
        let html = encoding::decode(bytes, declared_charset(bytes), &mut notes);
        let mut b = Builder {
            sections: vec![],
            headings: vec![],
            prose: String::new(),
            heading: None,
            table: None,
            cell: None,
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
                    rest = rest.to_ascii_lowercase().find(&close).map_or("", |i| &rest[i..]);
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
                "table" if !closing => {
                    b.flush_prose();
                    b.table = Some(Vec::new());
                }
                "table" => {
                    if let Some(rows) = b.table.take() {
                        let rows: Vec<Vec<String>> = rows.into_iter().filter(|r| !r.is_empty()).collect();
                        if !rows.is_empty() {
                            b.sections.push(Section {
                                anchor: Anchor { headings: b.path(), ..Anchor::default() },
                                kind: SectionKind::Table,
                                text: markdown_table(&rows),
                            });
                        }
                    }
                }
                "tr" if !closing => {
                    if let Some(rows) = &mut b.table {
                        rows.push(Vec::new());
                    }
                }
                "td" | "th" if !closing => b.cell = Some(String::new()),
                "td" | "th" => {
                    if let (Some(cell), Some(rows)) = (b.cell.take(), &mut b.table) {
                        let cell = cell.split_whitespace().collect::<Vec<_>>().join(" ");
                        if let Some(row) = rows.last_mut() {
                            row.push(cell);
                        } else {
                            rows.push(vec![cell]);
                        }
                    }
                }
                n if BLOCK.contains(&n) => b.text("\n"),
                _ => {}
            }
        }
        b.text(&decode_entities(rest));
        b.flush_prose();
        Ok(Extracted { sections: b.sections, notes })
    }
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
