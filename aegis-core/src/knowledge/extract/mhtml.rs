//! MHTML web archives (`.mht`, `.mhtml`): a page saved with its pictures, styles and
//! frames as one MIME `multipart/related` message (RFC 2557). Browsers write it as a
//! "single file web page"; Word and Excel write it too, and so do web applications that
//! export "to Word" or "to Excel" (a wiki page saved as `.doc`, a report as `.xls`).
//!
//! Its HTML parts are read by the HTML reader, each in the charset its part declares:
//! the root page first (the part the `start` parameter names, else the first page), then
//! every other page (a frame, one sheet of an Excel workbook) as a part of the document
//! named by its file name. Pictures, styles and scripts are skipped. MIME parsing is the
//! `mailparse` crate's, which stops past 100 nested multiparts.

use mailparse::{MailHeaderMap, ParsedMail};

use super::{
    ExtractError, Extracted, Extractor, Limits, add_as_part,
    email::{charset, is_html},
    html,
};

/// MHTML.
pub struct Mhtml;

impl Extractor for Mhtml {
    fn extract(&self, bytes: &[u8], _limits: &Limits) -> Result<Extracted, ExtractError> {
        let message = mailparse::parse_mail(bytes)
            .map_err(|e| ExtractError::Malformed(format!("not a readable MIME web archive: {e}")))?;
        let mut leaves = Vec::new();
        collect_leaves(&message, &mut leaves);
        let mut pages: Vec<&ParsedMail> = leaves.iter().copied().filter(|part| is_html(part)).collect();
        if pages.is_empty() && message.ctype.mimetype.starts_with("multipart/") && message.subparts.is_empty() {
            return Err(ExtractError::Malformed(
                "a MIME web archive whose parts cannot be found: its boundary is missing or damaged".into(),
            ));
        }
        if pages.is_empty() {
            let kinds: Vec<&str> = leaves.iter().map(|part| part.ctype.mimetype.as_str()).collect();
            return Err(ExtractError::Malformed(format!(
                "a MIME message with no HTML page in it (its parts: {})",
                kinds.join(", ")
            )));
        }
        if let Some(root) = root_position(&message, &pages) {
            let page = pages.remove(root);
            pages.insert(0, page);
        }
        let mut extracted = Extracted::default();
        for (index, page) in pages.iter().enumerate() {
            let body = match page.get_body_raw() {
                Ok(body) => body,
                Err(e) if index == 0 => return Err(ExtractError::Malformed(format!("its page does not decode: {e}"))),
                Err(e) => {
                    extracted.notes.push(format!("{} was skipped: it does not decode ({e})", part_name(page, index)));
                    continue;
                }
            };
            let read = html::read(&body, charset(page));
            if index > 0 {
                add_as_part(&mut extracted, &part_name(page, index), read);
            } else {
                extracted.notes.extend(read.notes);
                extracted.sections.extend(read.sections);
            }
        }
        Ok(extracted)
    }
}

/// The parts that hold content (not multipart containers), in the order they are written.
fn collect_leaves<'a>(part: &'a ParsedMail<'a>, leaves: &mut Vec<&'a ParsedMail<'a>>) {
    if part.subparts.is_empty() {
        leaves.push(part);
    }
    for subpart in &part.subparts {
        collect_leaves(subpart, leaves);
    }
}

/// Where among `pages` the root page is, when the archive's `start` parameter names it
/// by its `Content-ID` (RFC 2557 makes the first part the root otherwise).
fn root_position(message: &ParsedMail, pages: &[&ParsedMail]) -> Option<usize> {
    let start = message.ctype.params.get("start")?;
    let start = start.trim().trim_start_matches('<').trim_end_matches('>');
    pages.iter().position(|page| {
        page.headers
            .get_first_value("Content-ID")
            .is_some_and(|id| id.trim().trim_start_matches('<').trim_end_matches('>') == start)
    })
}

/// A page's name for its sections' anchor: the file name of its `Content-Location`
/// (`sheet001.htm`), else `page N`.
fn part_name(page: &ParsedMail, index: usize) -> String {
    page.headers
        .get_first_value("Content-Location")
        .and_then(|location| {
            let path = location.split(['?', '#']).next().unwrap_or_default().trim_end_matches('/');
            let name = path.rsplit(['/', '\\']).next().unwrap_or_default().trim();
            (!name.is_empty()).then(|| name.to_owned())
        })
        .unwrap_or_else(|| format!("page {}", index + 1))
}

/// Whether a file's first bytes open a MIME web archive: header fields (`From:`,
/// `MIME-Version:`, …) with a `multipart/related` content type among them.
pub(super) fn looks_like_mhtml(head: &[u8]) -> bool {
    let starts_with_a_header = {
        let name_end = head.iter().position(|&b| b == b':').unwrap_or(0);
        name_end > 0 && head[..name_end].iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-')
    };
    let related = b"multipart/related";
    starts_with_a_header && head.windows(related.len()).any(|w| w.eq_ignore_ascii_case(related))
}

#[cfg(test)]
mod tests {
    use super::super::{Format, SectionKind, extract};
    use super::*;

    /// An Excel workbook saved as a single-file web page under an `.xls` name: a frameset
    /// root, two sheets as quoted-printable windows-1252 pages, a picture.
    fn excel_workbook() -> Vec<u8> {
        // The first sheet also names its charset in a `<meta>`; the second only in its part.
        let sheet = |rows: &str, meta: bool| {
            let meta = if meta {
                "<meta http-equiv=3DContent-Type content=3D\"text/html; charset=3Dwindows-1252\">"
            } else {
                ""
            };
            format!("<html><head>{meta}</head>\r\n<body><table>{rows}</table></body></html>\r\n")
        };
        let mut archive = concat!(
            "MIME-Version: 1.0\r\n",
            "X-Document-Type: Workbook\r\n",
            "Content-Type: multipart/related; boundary=\"----=_NextPart_01DB.0\"\r\n\r\n",
            "This document is a Single File Web Page, also known as a Web Archive file.\r\n\r\n",
            "------=_NextPart_01DB.0\r\n",
            "Content-Location: file:///C:/0E8D/Budget.htm\r\n",
            "Content-Transfer-Encoding: quoted-printable\r\n",
            "Content-Type: text/html; charset=\"us-ascii\"\r\n\r\n",
            "<html><head><title>Budget 2026</title></head><frameset rows=3D\"*,39\">\r\n",
            "<frame src=3D\"Budget_files/sheet001.htm\" name=3D\"frSheet\"></frameset></html>\r\n\r\n",
        )
        .as_bytes()
        .to_vec();
        for (name, rows, meta) in [
            ("sheet001.htm", "<tr><td>Caf=E9 r=E9novation</td><td>12 500</td></tr>", true),
            ("sheet002.htm", "<tr><td>Fa=E7ade =80</td><td>3 000</td></tr>", false),
        ] {
            archive.extend_from_slice(
                format!(
                    "------=_NextPart_01DB.0\r\nContent-Location: file:///C:/0E8D/Budget_files/{name}\r\n\
                     Content-Transfer-Encoding: quoted-printable\r\nContent-Type: text/html; charset=\"windows-1252\"\r\n\r\n{}\r\n",
                    sheet(rows, meta)
                )
                .as_bytes(),
            );
        }
        archive.extend_from_slice(
            b"------=_NextPart_01DB.0\r\nContent-Location: file:///C:/0E8D/Budget_files/image001.png\r\n\
              Content-Transfer-Encoding: base64\r\nContent-Type: image/png\r\n\r\niVBORw0KGgo=\r\n\r\n------=_NextPart_01DB.0--\r\n",
        );
        archive
    }

    #[test]
    fn an_excel_web_archive_named_xls_is_read_sheet_by_sheet_in_its_declared_charset() {
        let archive = excel_workbook();
        assert_eq!(Format::detect("Budget.xls", &archive), Some(Format::Mhtml), "sniffed whatever its name");
        let extracted = extract(Format::Mhtml, &archive, &Limits::default()).unwrap();
        let tables: Vec<(&str, &str)> = extracted
            .sections
            .iter()
            .filter(|s| s.kind == SectionKind::Table)
            .map(|s| (s.anchor.part.as_deref().unwrap_or_default(), s.text.as_str()))
            .collect();
        assert_eq!(tables.len(), 2, "{extracted:?}");
        assert_eq!(tables[0].0, "sheet001.htm");
        assert!(tables[0].1.contains("| Café rénovation | 12 500 |"), "{}", tables[0].1);
        assert_eq!(tables[1].0, "sheet002.htm");
        assert!(tables[1].1.contains("| Façade € | 3 000 |"), "{}", tables[1].1);
        assert!(!extracted.notes.iter().any(|n| n.contains("guessed")), "read as its part says: {:?}", extracted.notes);
        assert!(extracted.text().contains("Budget 2026"), "the root page comes first: {}", extracted.text());
        assert!(!extracted.text().contains("iVBOR"), "pictures are skipped");
    }

    #[test]
    fn the_start_parameter_names_the_root_page_and_base64_pages_decode() {
        use base64::Engine as _;
        let encode = |html: &str| base64::engine::general_purpose::STANDARD.encode(html);
        let archive = format!(
            "From: <Saved by Blink>\r\nSubject: Policy\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/related; type=\"text/html\"; start=\"<root@x>\"; boundary=\"B\"\r\n\r\n\
             --B\r\nContent-Type: text/html\r\nContent-ID: <frame@x>\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n\
             --B\r\nContent-Type: text/html; charset=utf-8\r\nContent-ID: <root@x>\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--B--\r\n",
            encode("<p>Advertisement frame</p>"),
            encode("<h1>Refund policy</h1><p>Refunds within 30 días.</p>"),
        );
        let extracted = extract(Format::Mhtml, archive.as_bytes(), &Limits::default()).unwrap();
        assert_eq!(extracted.sections[0].anchor.headings, ["Refund policy"], "{extracted:?}");
        assert!(extracted.sections[0].text.contains("Refunds within 30 días."));
        assert_eq!(extracted.sections[0].anchor.part, None);
        let frame = extracted.sections.last().unwrap();
        assert_eq!((frame.anchor.part.as_deref(), frame.text.as_str()), (Some("page 2"), "Advertisement frame"));
    }

    #[test]
    fn an_archive_without_a_page_or_cut_before_its_parts_is_a_clear_error() {
        let pictures = "MIME-Version: 1.0\r\nContent-Type: multipart/related; boundary=\"B\"\r\n\r\n\
                        --B\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n--B--\r\n";
        let error = extract(Format::Mhtml, pictures.as_bytes(), &Limits::default()).unwrap_err();
        assert!(error.to_string().contains("no HTML page in it (its parts: image/png)"), "{error}");
        let cut = "MIME-Version: 1.0\r\nContent-Type: multipart/related; boundary=\"B\"\r\n\r\nThis document is";
        let error = extract(Format::Mhtml, cut.as_bytes(), &Limits::default()).unwrap_err();
        assert!(error.to_string().contains("its boundary is missing or damaged"), "{error}");
    }

    #[test]
    fn mime_headers_are_told_from_text_that_mentions_them() {
        assert!(looks_like_mhtml(b"MIME-Version: 1.0\r\nContent-Type: multipart/related; boundary=x\r\n"));
        assert!(looks_like_mhtml(b"From: <Saved by Blink>\r\nContent-Type: multipart/related;\r\n"));
        assert!(!looks_like_mhtml(b"Notes on multipart/related: see RFC 2557\n"));
        assert!(!looks_like_mhtml(b"MIME-Version: 1.0\r\nContent-Type: text/plain\r\n"));
    }
}
