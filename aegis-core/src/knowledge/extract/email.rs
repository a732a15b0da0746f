//! Email messages (`.eml`: RFC 5322 with MIME, as a mail client saves one, or a maildir
//! file). The first section is the headers a reader cites (subject, sender, recipients,
//! date); then the body, the plain-text alternative when the message has one (else its
//! HTML, through the HTML reader), each text part in the charset it names; then every
//! attachment in a format AEGIS reads, through that format's extractor in this process
//! (PDFs with lopdf), as a part of the message named for the attachment. The body's
//! sections carry the subject as their heading. Pictures are skipped; an attachment of a
//! format AEGIS does not read, or one that fails, is a note. An attached message is read
//! the same way, at most [`MAX_NESTING`] deep.

use std::cell::Cell;

use mailparse::{DispositionType, MailHeaderMap, ParsedMail};

use super::{Anchor, ExtractError, Extracted, Extractor, Format, Limits, Section, SectionKind, html, nested, text};

/// Email.
pub struct Email;

/// The deepest a message attached to a message (attached to a message, …) is read.
const MAX_NESTING: u32 = 8;

thread_local! {
    /// How many messages the reader is inside on this thread (an attached message is read
    /// by a nested call).
    static NESTING: Cell<u32> = const { Cell::new(0) };
}

/// The headers cited, in this order, each as often as the message has it.
const CITED_HEADERS: [&str; 5] = ["Subject", "From", "To", "Cc", "Date"];

impl Extractor for Email {
    fn extract(&self, bytes: &[u8], limits: &Limits) -> Result<Extracted, ExtractError> {
        one_message_deeper(|| read_message(bytes, limits))
    }
}

/// Runs `read`, the reading of one message, one level deeper in the messages this thread
/// is inside, or fails past [`MAX_NESTING`]. Emails and Outlook messages count together,
/// however one is attached to the other (a file or an Outlook storage), so that no chain
/// of them can nest readers until the stack overflows.
pub(super) fn one_message_deeper<T>(read: impl FnOnce() -> Result<T, ExtractError>) -> Result<T, ExtractError> {
    nested(&NESTING, MAX_NESTING, "messages attached", read)
}

fn read_message(bytes: &[u8], limits: &Limits) -> Result<Extracted, ExtractError> {
    let message = mailparse::parse_mail(bytes)
        .map_err(|e| ExtractError::Malformed(format!("not a readable email message: {e}")))?;
    let cited: Vec<String> = CITED_HEADERS
        .iter()
        .flat_map(|name| {
            message
                .headers
                .get_all_values(name)
                .into_iter()
                .filter(|v| !v.trim().is_empty())
                .map(move |v| format!("{name}: {}", v.trim()))
        })
        .collect();
    let subject = message.headers.get_first_value("Subject").map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    let mut reader = Reader { subject, limits, extracted: Extracted::default(), attachments: 0 };
    // A bare MIME entity (a part saved on its own) has no such headers, only content.
    reader.extracted.sections.extend(headers_section(reader.subject.as_deref(), &cited));
    reader.walk(&message);
    Ok(reader.extracted)
}

struct Reader<'l> {
    subject: Option<String>,
    limits: &'l Limits,
    extracted: Extracted,
    /// Attachments seen, for naming those without a file name.
    attachments: usize,
}

impl Reader<'_> {
    fn walk(&mut self, part: &ParsedMail) {
        if part.ctype.mimetype == "multipart/alternative" {
            // The same content several ways: the plain text, else the HTML, else the last
            // (the richest, by RFC 2046's order).
            let by_type = |mimetype: &str| part.subparts.iter().find(|p| p.ctype.mimetype == mimetype);
            if let Some(choice) = by_type("text/plain").or_else(|| by_type("text/html")).or(part.subparts.last()) {
                self.walk(choice);
            }
            return;
        }
        if !part.subparts.is_empty() {
            for subpart in &part.subparts {
                self.walk(subpart);
            }
            return;
        }
        let disposition = part.get_content_disposition();
        let file_name = disposition.params.get("filename").or_else(|| part.ctype.params.get("name")).cloned();
        // Any text (`text/enriched`, a `text` without its subtype) reads as text.
        let mimetype = part.ctype.mimetype.as_str();
        let is_text = mimetype == "text" || mimetype.starts_with("text/") || is_html(part);
        if is_text && disposition.disposition != DispositionType::Attachment {
            self.body(part);
        } else if file_name.is_some() || mimetype == "message/rfc822" {
            self.attachment(part, file_name);
        } else if mimetype.starts_with("multipart/") {
            self.extracted
                .notes
                .push(format!("the parts of a {mimetype} cannot be found: its boundary is missing or damaged"));
        }
    }

    /// A text part of the body, its sections under the subject.
    fn body(&mut self, part: &ParsedMail) {
        let bytes = match part.get_body_raw() {
            Ok(bytes) => bytes,
            Err(e) => return self.extracted.notes.push(format!("a part of the body does not decode: {e}")),
        };
        let read =
            if is_html(part) { html::read(&bytes, charset(part)) } else { text::read_plain(&bytes, charset(part)) };
        add_body(&mut self.extracted, self.subject.as_deref(), read);
    }

    /// An attached file, read by its format's extractor.
    fn attachment(&mut self, part: &ParsedMail, file_name: Option<String>) {
        self.attachments += 1;
        let name = file_name.unwrap_or_else(|| match part.ctype.mimetype.as_str() {
            "message/rfc822" => format!("message {}.eml", self.attachments),
            _ => format!("attachment {}", self.attachments),
        });
        let bytes = match part.get_body_raw() {
            Ok(bytes) => bytes,
            Err(e) => return self.extracted.notes.push(format!("attachment {name} does not decode: {e}")),
        };
        let format = (part.ctype.mimetype == "message/rfc822").then_some(Format::Email);
        read_attachment(&mut self.extracted, &name, &bytes, &part.ctype.mimetype, format, self.limits);
    }
}

/// The `headers` section of a message: the header lines cited, under its subject; none
/// when there are none.
pub(super) fn headers_section(subject: Option<&str>, lines: &[String]) -> Option<Section> {
    (!lines.is_empty()).then(|| Section {
        anchor: Anchor {
            headings: subject.into_iter().map(str::to_owned).collect(),
            part: Some("headers".into()),
            ..Anchor::default()
        },
        kind: SectionKind::Text,
        text: lines.join("\n"),
    })
}

/// Adds a body's sections under the message's subject, and its notes.
pub(super) fn add_body(extracted: &mut Extracted, subject: Option<&str>, read: Extracted) {
    extracted.notes.extend(read.notes);
    for mut section in read.sections {
        if let Some(subject) = subject {
            section.anchor.headings.insert(0, subject.to_owned());
        }
        extracted.sections.push(section);
    }
}

/// Reads an attached file by its format (`format`, else sniffed from its name and bytes)
/// and adds its sections as a part named for it (`attachment <name>`, inside which its
/// own parts keep their names), its notes labelled so. One AEGIS does not read, or that
/// fails, is a note; a picture is skipped quietly.
pub(super) fn read_attachment(
    extracted: &mut Extracted,
    name: &str,
    bytes: &[u8],
    mimetype: &str,
    format: Option<Format>,
    limits: &Limits,
) {
    let Some(format) = format.or_else(|| Format::detect(name, bytes)) else {
        if !mimetype.starts_with("image/") {
            extracted.notes.push(format!("attachment {name} ({mimetype}) was not read: not a format AEGIS reads"));
        }
        return;
    };
    match super::extract(format, bytes, limits) {
        Ok(read) => add_attachment(extracted, name, read),
        Err(e) => extracted.notes.push(format!("attachment {name} was not read: {e}")),
    }
}

/// Adds what an attachment gave, each section a part named for it.
pub(super) fn add_attachment(extracted: &mut Extracted, name: &str, read: Extracted) {
    super::add_as_part(extracted, &format!("attachment {name}"), read);
}

/// Whether a file's first bytes are an email's header: header fields, among them one only
/// a sent or received message has (`To`, `Message-ID`, `Received`, `Return-Path`,
/// `Delivered-To`), and a sender, subject or date. A web archive (From `<Saved by …>`,
/// Subject and Date, but none of the first kind) is not one.
pub(super) fn looks_like_email(head: &[u8]) -> bool {
    let text = String::from_utf8_lossy(head);
    let header_block = text.split("\r\n\r\n").next().unwrap_or_default().split("\n\n").next().unwrap_or_default();
    let names: Vec<String> = header_block
        .lines()
        .take_while(|line| !line.is_empty())
        .filter(|line| !line.starts_with([' ', '\t']))
        .map(|line| line.split(':').next().unwrap_or_default().trim_end().to_ascii_lowercase())
        .collect();
    let is_field_name = |n: &String| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if names.is_empty() || !names.iter().all(is_field_name) {
        return false;
    }
    let has = |wanted: &[&str]| names.iter().any(|n| wanted.contains(&n.as_str()));
    has(&["to", "message-id", "received", "return-path", "delivered-to"]) && has(&["from", "subject", "date"])
}

/// The encoding a MIME part's `Content-Type` names (`charset=`), if it names one.
pub(super) fn charset(part: &ParsedMail) -> Option<&'static encoding_rs::Encoding> {
    part.ctype.params.get("charset").and_then(|label| super::encoding::for_label(label))
}

/// Whether a MIME part is an HTML page.
pub(super) fn is_html(part: &ParsedMail) -> bool {
    let mimetype = part.ctype.mimetype.as_str();
    mimetype == "text/html" || mimetype == "application/xhtml+xml"
}

#[cfg(test)]
mod tests {
    use super::super::extract;
    use super::*;

    /// A message as a mail client sends one: alternatives, an encoded-word subject, a
    /// Latin-1 body, a CSV and a forwarded message attached, a picture inline.
    fn quarterly_message() -> String {
        let forwarded = "From: Ana <ana@example.com>\r\nTo: ops@example.com\r\nSubject: Supplier terms\r\n\
                         Date: Mon, 30 Nov 2026 09:00:00 +0100\r\n\r\nPayment is due within 45 days.\r\n";
        format!(
            "Return-Path: <cfo@example.com>\r\nReceived: from mx.example.com by mail.example.com; Tue, 1 Dec 2026 10:00:00 +0000\r\n\
             From: =?utf-8?q?Jos=C3=A9_Ruiz?= <cfo@example.com>\r\nTo: board@example.com\r\nCc: audit@example.com\r\n\
             Subject: =?utf-8?q?Quarterly_r=C3=A9sum=C3=A9?=\r\nDate: Tue, 1 Dec 2026 10:00:00 +0000\r\n\
             Message-ID: <q4@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"mixed\"\r\n\r\n\
             --mixed\r\nContent-Type: multipart/alternative; boundary=\"alt\"\r\n\r\n\
             --alt\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
             Revenue rose 12 % ; the caf=E9 opened in March.\r\n\
             --alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Revenue rose <b>12 %</b> (HTML copy)</p>\r\n--alt--\r\n\
             --mixed\r\nContent-Type: image/png; name=\"logo.png\"\r\nContent-Disposition: inline; filename=\"logo.png\"\r\n\
             Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n\
             --mixed\r\nContent-Type: text/csv; name=\"figures.csv\"\r\nContent-Disposition: attachment; filename=\"figures.csv\"\r\n\r\n\
             quarter,revenue\r\nQ4,1200\r\n\
             --mixed\r\nContent-Type: application/x-unknown\r\nContent-Disposition: attachment; filename=\"model.bin\"\r\n\r\n\x01\x02\r\n\
             --mixed\r\nContent-Type: message/rfc822\r\n\r\n{forwarded}\r\n--mixed--\r\n"
        )
    }

    #[test]
    fn a_message_gives_its_headers_its_plain_body_and_its_attachments_as_named_parts() {
        let message = quarterly_message();
        assert_eq!(Format::detect("q4.eml", message.as_bytes()), Some(Format::Email));
        assert_eq!(
            Format::detect("1733047200.M1P2.mail:2,S", message.as_bytes()),
            Some(Format::Email),
            "a maildir file"
        );
        let extracted = extract(Format::Email, message.as_bytes(), &Limits::default()).unwrap();
        let headers = &extracted.sections[0];
        assert_eq!(headers.anchor.part.as_deref(), Some("headers"));
        assert_eq!(headers.anchor.headings, ["Quarterly résumé"]);
        assert!(headers.text.starts_with("Subject: Quarterly résumé\nFrom: José Ruiz <cfo@example.com>\nTo: board@example.com\nCc: audit@example.com\nDate: Tue, 1 Dec 2026"), "{}", headers.text);
        let body = &extracted.sections[1];
        assert_eq!(
            (body.anchor.headings.as_slice(), body.anchor.part.as_deref()),
            (&["Quarterly résumé".to_owned()][..], None)
        );
        assert!(body.text.contains("the café opened in March"), "Latin-1 as its part names: {}", body.text);
        let text = extracted.text();
        assert!(!text.contains("HTML copy"), "one alternative only: {text}");
        let part = |name: &str| {
            extracted
                .sections
                .iter()
                .find(|s| s.anchor.part.as_deref() == Some(name))
                .unwrap_or_else(|| panic!("{name}: {extracted:?}"))
        };
        assert!(part("attachment figures.csv").text.contains("| Q4 | 1200 |"), "{extracted:?}");
        assert!(part("attachment message 4.eml, headers").text.contains("Subject: Supplier terms"));
        assert!(text.contains("Payment is due within 45 days."));
        assert!(
            extracted.notes.iter().any(|n| n.contains("model.bin (application/x-unknown) was not read")),
            "{:?}",
            extracted.notes
        );
        assert!(!extracted.notes.iter().any(|n| n.contains("logo.png")), "pictures are skipped quietly");
    }

    #[test]
    fn messages_attached_too_deep_stop_with_a_note_not_a_stack_overflow() {
        let mut message =
            "From: a@example.com\r\nTo: b@example.com\r\nSubject: innermost\r\n\r\nThe bottom.\r\n".to_owned();
        for level in 0..12 {
            message = format!(
                "From: a@example.com\r\nTo: b@example.com\r\nSubject: level {level}\r\nContent-Type: multipart/mixed; boundary=\"b{level}\"\r\n\r\n\
                 --b{level}\r\nContent-Type: message/rfc822\r\n\r\n{message}\r\n--b{level}--\r\n"
            );
        }
        let extracted = extract(Format::Email, message.as_bytes(), &Limits::default()).unwrap();
        assert!(extracted.text().contains("Subject: level 11"));
        assert!(!extracted.text().contains("The bottom."), "past the nesting limit");
        assert!(extracted.notes.iter().any(|n| n.contains("more than 8 deep")), "{:?}", extracted.notes);
    }

    #[test]
    fn headers_are_told_from_a_web_archive_and_from_prose() {
        assert!(looks_like_email(b"Received: from x\r\n\tby y\r\nFrom: a@b\r\nTo: c@d\r\n\r\nHi"));
        assert!(!looks_like_email(b"From: <Saved by Blink>\r\nSubject: Page\r\nDate: x\r\nMIME-Version: 1.0\r\n\r\n"));
        assert!(!looks_like_email(b"To: whom it may concern\nFrom the desk of the director, greetings.\n"));
        assert!(!looks_like_email(b"Subject: notes\r\n\r\n"), "no field a sent message has");
        let entity = b"Content-Type: text/plain; charset=us-ascii\r\n\r\nA part saved on its own.\r\n";
        let extracted = extract(Format::Email, entity, &Limits::default()).unwrap();
        assert_eq!(extracted.text(), "A part saved on its own.", "no headers to cite, the content still read");
    }
}
