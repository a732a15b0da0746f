//! Document formats: their names, the extensions that name them, and how a file's format
//! is told from its first bytes rather than its name (a PDF saved as `.docx`, a web page
//! exported "to Excel", a maildir file without an extension).

use std::{fmt, path::Path};

use serde::{Deserialize, Serialize};

use super::{ExtractError, email, encoding, mhtml};
#[cfg(feature = "office-docs")]
use super::{ole, ooxml};

/// A document format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// PDF.
    Pdf,
    /// Word (docx, docm).
    Docx,
    /// Legacy Word (doc, Word 97–2003).
    Doc,
    /// Excel (xlsx, xlsm, and the binary xlsb).
    Xlsx,
    /// Legacy Excel (xls, BIFF8).
    Xls,
    /// OpenDocument spreadsheet (ods).
    Ods,
    /// OpenDocument text (odt).
    Odt,
    /// OpenDocument presentation (odp).
    Odp,
    /// PowerPoint (pptx, pptm).
    Pptx,
    /// Legacy PowerPoint (ppt, PowerPoint 97–2003).
    Ppt,
    /// Rich Text Format.
    Rtf,
    /// Plain text.
    Text,
    /// Markdown.
    Markdown,
    /// Comma-separated values.
    Csv,
    /// HTML.
    Html,
    /// MHTML web archive (a "single file web page"; also what Word, Excel and web
    /// applications' exports write under `.doc` and `.xls` names).
    Mhtml,
    /// An email message (`.eml`, a maildir file), its attachments read by their formats.
    Email,
    /// An Outlook message (`.msg`), its attachments read by their formats.
    Msg,
    /// A zip archive of documents, each read by its format.
    Zip,
}

impl Format {
    /// Whether its files are zip files (Office Open XML, OpenDocument, zip archives).
    pub fn is_zip_package(self) -> bool {
        matches!(
            self,
            Format::Docx | Format::Xlsx | Format::Pptx | Format::Ods | Format::Odt | Format::Odp | Format::Zip
        )
    }

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Pdf => "pdf",
            Format::Docx => "docx",
            Format::Doc => "doc",
            Format::Xlsx => "xlsx",
            Format::Xls => "xls",
            Format::Ods => "ods",
            Format::Odt => "odt",
            Format::Odp => "odp",
            Format::Pptx => "pptx",
            Format::Ppt => "ppt",
            Format::Rtf => "rtf",
            Format::Text => "text",
            Format::Markdown => "markdown",
            Format::Csv => "csv",
            Format::Html => "html",
            Format::Mhtml => "mhtml",
            Format::Email => "email",
            Format::Msg => "msg",
            Format::Zip => "zip",
        }
    }

    /// The format of a file (`bytes` is all of it): what its content shows where it has
    /// a signature — a PDF header, an Office package's main part, a compound file's
    /// Word, Excel or PowerPoint stream — else its extension. A file named for one format but holding
    /// another is read as what it holds; a zip that is no Office package, an encrypted
    /// OOXML package (a compound file) and the rest go by the name, so that their
    /// extractor gives the error. A file without an extension (`README`, `NOTICE`, a
    /// download saved without one) whose bytes are text is read as text, or as HTML if it
    /// starts like a page; so is text under a binary format's name (`notes.doc`; a page
    /// saved as `report.xls`, a web application's "export to Excel").
    pub fn detect(name: &str, bytes: &[u8]) -> Option<Format> {
        let by_name = Self::from_extension(name);
        let head = &bytes[..bytes.len().min(1024)];
        // The header may follow a little junk (readers accept it within 1,024 bytes), but a
        // text file that merely mentions "%PDF-" stays text.
        let text_named = matches!(by_name, Some(Format::Text | Format::Markdown | Format::Csv | Format::Html));
        if head.starts_with(b"%PDF-") || (!text_named && head.windows(5).any(|w| w == b"%PDF-")) {
            return Some(Format::Pdf);
        }
        if head.trim_ascii_start().starts_with(b"{\\rtf") {
            return Some(Format::Rtf);
        }
        // An email or a web archive under any name but a plain-text one (a maildir file
        // has none; Confluence's "export to Word" is a web archive named `.doc`, Excel's
        // single-file web page one named `.xls`). A message's header block can run past
        // 1 KB of `Received` lines.
        if !matches!(by_name, Some(Format::Text | Format::Markdown | Format::Csv)) {
            if email::looks_like_email(&bytes[..bytes.len().min(8192)]) {
                return Some(Format::Email);
            }
            if mhtml::looks_like_mhtml(head) {
                return Some(Format::Mhtml);
            }
        }
        // An OpenDocument file stores its media type first, uncompressed, as `mimetype`.
        if bytes.starts_with(b"PK\x03\x04") && bytes.get(30..38) == Some(b"mimetype") {
            let names = |kind: &[u8]| head.windows(kind.len()).any(|w| w == kind);
            for (kind, format) in [
                (b"opendocument.spreadsheet".as_slice(), Format::Ods),
                (b"opendocument.text", Format::Odt),
                (b"opendocument.presentation", Format::Odp),
            ] {
                if names(kind) {
                    return Some(format);
                }
            }
        }
        #[cfg(feature = "office-docs")]
        if bytes.starts_with(b"PK\x03\x04")
            && let Some(format) = ooxml::sniff(bytes)
        {
            return Some(format);
        }
        // A zip that is no Office package, saved without an extension, is an archive.
        #[cfg(feature = "office-docs")]
        if bytes.starts_with(b"PK\x03\x04") && by_name.is_none() && Path::new(name).extension().is_none() {
            return Some(Format::Zip);
        }
        #[cfg(feature = "office-docs")]
        if bytes.starts_with(ole::MAGIC)
            && let Some(format) = ole::sniff(bytes)
        {
            return Some(format);
        }
        let binary_named = by_name.is_some() && !text_named && by_name != Some(Format::Rtf);
        if (binary_named || Path::new(name).extension().is_none()) && encoding::looks_like_text(bytes) {
            // A web page saved under an Office name (a report "exported to Excel").
            if looks_like_html(head) {
                return Some(Format::Html);
            }
            // Plain text under a binary format's name (a manual's `pdb.doc`, a message
            // catalogue's `it.msg`), as Word opens it; an email or a web archive is text
            // by nature, and its own reader says what is wrong with it.
            if !matches!(by_name, Some(Format::Email | Format::Mhtml)) {
                return Some(Format::Text);
            }
        }
        by_name
    }

    /// Whether a file called `name` whose first bytes are `head` may be one AEGIS reads:
    /// false only when neither its name nor its first bytes name a format, so that an
    /// upload can be refused before it is queued. A zip or compound file may be one
    /// whatever its name (its kind is told from parts the head may not reach).
    pub fn may_be_readable(name: &str, head: &[u8]) -> bool {
        #[cfg(feature = "office-docs")]
        if head.starts_with(b"PK\x03\x04") || head.starts_with(ole::MAGIC) {
            return true;
        }
        Self::detect(name, head).is_some()
    }

    /// The format a file's extension names, if any.
    pub fn from_extension(name: &str) -> Option<Format> {
        let ext = Path::new(name).extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("pdf") => Some(Format::Pdf),
            Some("docx" | "docm" | "dotx" | "dotm") => Some(Format::Docx),
            Some("doc" | "dot") => Some(Format::Doc),
            Some("xlsx" | "xlsm" | "xltx" | "xltm" | "xlsb") => Some(Format::Xlsx),
            Some("xls" | "xlt") => Some(Format::Xls),
            Some("ods" | "ots") => Some(Format::Ods),
            Some("odt" | "ott") => Some(Format::Odt),
            Some("odp" | "otp") => Some(Format::Odp),
            Some("pptx" | "pptm" | "potx" | "potm" | "ppsx" | "ppsm") => Some(Format::Pptx),
            Some("ppt" | "pps" | "pot") => Some(Format::Ppt),
            Some("rtf") => Some(Format::Rtf),
            Some("txt" | "text" | "log" | "rst" | "adoc" | "asciidoc" | "org") => Some(Format::Text),
            Some("md" | "markdown") => Some(Format::Markdown),
            Some("csv" | "tsv") => Some(Format::Csv),
            Some("html" | "htm" | "xhtml") => Some(Format::Html),
            Some("mht" | "mhtml") => Some(Format::Mhtml),
            Some("eml") => Some(Format::Email),
            Some("msg") => Some(Format::Msg),
            Some("zip") => Some(Format::Zip),
            _ => None,
        }
    }
}

/// Whether a file's first bytes open an HTML page (`<!DOCTYPE html`, `<html`, `<head`,
/// `<body`, `<meta`, `<table`, after white space and a UTF-8 byte-order mark).
fn looks_like_html(head: &[u8]) -> bool {
    let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head).trim_ascii_start();
    let opens = |tag: &[u8]| head.get(..tag.len()).is_some_and(|h| h.eq_ignore_ascii_case(tag));
    [b"<!doctype html".as_slice(), b"<html", b"<head", b"<body", b"<meta", b"<table"].into_iter().any(opens)
}

/// The error for `bytes` that are not the `container` a reader expects, saying what they
/// hold instead when their first bytes tell ([`what_it_holds`]).
#[cfg_attr(not(feature = "office-docs"), allow(dead_code))] // the binary formats' readers
pub(crate) fn not_a(container: &str, bytes: &[u8]) -> ExtractError {
    let holds = what_it_holds(bytes).map(|what| format!(": it is {what}")).unwrap_or_default();
    ExtractError::Malformed(format!("not {container}{holds}"))
}

/// What a file that is not what its reader expects holds, when its first bytes say
/// (for that reader's error): a ZIP archive, a PDF, an HTML page, a MIME web archive or
/// plain text.
#[cfg_attr(not(feature = "office-docs"), allow(dead_code))] // the binary formats' readers
fn what_it_holds(bytes: &[u8]) -> Option<&'static str> {
    let head = &bytes[..bytes.len().min(1024)];
    if head.starts_with(b"PK\x03\x04") {
        Some("a ZIP archive")
    } else if head.starts_with(b"%PDF-") {
        Some("a PDF")
    } else if mhtml::looks_like_mhtml(head) {
        Some("a MIME web archive (MHTML, a \"single file web page\")")
    } else if looks_like_html(head) {
        Some("an HTML page")
    } else if encoding::looks_like_text(bytes) {
        Some("plain text")
    } else {
        None
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_detected() {
        for format in [
            Format::Pdf,
            Format::Docx,
            Format::Doc,
            Format::Xlsx,
            Format::Xls,
            Format::Ods,
            Format::Odt,
            Format::Odp,
            Format::Pptx,
            Format::Ppt,
            Format::Rtf,
            Format::Text,
            Format::Markdown,
            Format::Csv,
            Format::Html,
            Format::Mhtml,
            Format::Email,
            Format::Msg,
            Format::Zip,
        ] {
            let name = serde_json::to_value(format).unwrap();
            assert_eq!(name.as_str(), Some(format.as_str()), "the child process is told a format by its name");
        }
        assert_eq!(Format::detect("a/Report.PDF", b""), Some(Format::Pdf));
        assert_eq!(Format::detect("x.docm", b""), Some(Format::Docx));
        assert_eq!(Format::detect("noext", b"%PDF-1.7"), Some(Format::Pdf));
        assert_eq!(Format::detect("image.png", b"\x89PNG"), None);
        assert_eq!(Format::detect("saved.docx", b"%PDF-1.4\n..."), Some(Format::Pdf), "the content wins");
        assert_eq!(Format::detect("download.bin", b"\r\n\r\n%PDF-1.4"), Some(Format::Pdf));
        assert_eq!(Format::detect("notes.txt", b"Every file starts with %PDF-1.7"), Some(Format::Text));
        assert_eq!(Format::detect("old.doc.docx", b"\xD0\xCF\x11\xE0"), Some(Format::Docx), "its extractor explains");
        assert_eq!(Format::detect("Budget.XLS", b"\xD0\xCF\x11\xE0"), Some(Format::Xls));
        let ods = b"PK\x03\x04\x14\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x08\0\0\0mimetypeapplication/vnd.oasis.opendocument.spreadsheet";
        assert_eq!(Format::detect("stock", ods), Some(Format::Ods));
    }

    #[test]
    fn a_file_without_an_extension_is_read_by_its_content() {
        assert_eq!(Format::detect("docs/README", b"AEGIS\n=====\n\nAgents for businesses.\n"), Some(Format::Text));
        assert_eq!(Format::detect("NOTICE", b"Copyright \xA9 Ma\xEFs, 2019"), Some(Format::Text));
        assert_eq!(Format::detect("saved-page", b"\xEF\xBB\xBF\n  <!DOCTYPE HTML><html><p>Hi</p>"), Some(Format::Html));
        assert_eq!(Format::detect("index", b"<html lang=en><body>Menu</body></html>"), Some(Format::Html));
        assert_eq!(Format::detect("guide.rst", b""), Some(Format::Text));
        assert_eq!(Format::detect("photo", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), None, "binary");
        assert_eq!(Format::detect("empty", b""), None);
        assert_eq!(Format::detect("data.json", b"{\"a\": 1}"), None, "an unknown extension stays unsupported");
        let export =
            b"<html xmlns:o=\"urn:schemas-microsoft-com:office:office\"><body><table><tr><td>1</td></tr></table>";
        assert_eq!(Format::detect("report.xls", export), Some(Format::Html), "a web page saved as .xls");
        assert_eq!(
            Format::detect("letter.doc", b"Dear Sir,\n"),
            Some(Format::Text),
            "text named .doc, as Word reads it"
        );
        for name in ["it.msg", "notes.xls", "deck.pptx", "scan.pdf", "archive.zip"] {
            assert_eq!(Format::detect(name, b"set msg \"Fichier\"\n"), Some(Format::Text), "{name}");
        }
        assert_eq!(Format::detect("broken.eml", b"no headers here\n"), Some(Format::Email), "its reader says why");
        let truncated = [&b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1"[..], &[0u8; 64]].concat();
        assert_eq!(Format::detect("letter.doc", &truncated), Some(Format::Doc), "a damaged compound file is no text");
        let mhtml = b"MIME-Version: 1.0\r\nContent-Type: multipart/related; boundary=\"x\"\r\n";
        assert!(what_it_holds(mhtml).unwrap().contains("MHTML"));
        assert_eq!(Format::detect("wiki-export.doc", mhtml), Some(Format::Mhtml), "an export \"to Word\"");
        assert_eq!(Format::detect("saved.html", mhtml), Some(Format::Mhtml));
        assert_eq!(Format::detect("page.mht", b""), Some(Format::Mhtml));
        assert_eq!(Format::detect("raw-message.txt", mhtml), Some(Format::Text), "a text file stays text");
        assert_eq!(what_it_holds(b"PK\x03\x04\x14\0"), Some("a ZIP archive"));
    }
}
