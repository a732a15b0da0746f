//! Outlook messages (`.msg`, MS-OXMSG): a compound file of MAPI properties, each string or
//! binary property a stream `__substg1.0_<id><type>`, the fixed-size ones (dates, counts)
//! in `__properties_version1.0`, recipients and attachments in storages of their own. Laid
//! out as an email is ([`super::email`]): the cited headers, the body under the subject —
//! the plain text, else the HTML, else the compressed RTF (MS-OXRTFCP) through the RTF
//! reader — and each attachment through its format's extractor as a named part; an
//! attached message (a storage, not a file) is read the same way. Messages nest under
//! one count, whichever form each is attached in ([`one_message_deeper`]).

use std::collections::HashMap;

use chrono::DateTime;
use encoding_rs::{Encoding, UTF_8, WINDOWS_1252};

use super::{
    ExtractError, Extracted, Extractor, Format, Limits,
    email::{add_attachment, add_body, headers_section, one_message_deeper, read_attachment},
    encoding::code_page,
    html,
    ole::{Ole, le_u32},
    text,
};

/// Outlook messages.
pub struct Msg;

/// MAPI property ids read.
mod id {
    pub const SUBJECT: u16 = 0x0037;
    pub const CLIENT_SUBMIT_TIME: u16 = 0x0039;
    pub const SENT_REPRESENTING_EMAIL: u16 = 0x0065;
    pub const SENDER_NAME: u16 = 0x0C1A;
    pub const SENDER_EMAIL: u16 = 0x0C1F;
    pub const RECIPIENT_TYPE: u16 = 0x0C15;
    pub const DISPLAY_CC: u16 = 0x0E03;
    pub const DISPLAY_TO: u16 = 0x0E04;
    pub const DELIVERY_TIME: u16 = 0x0E06;
    pub const BODY: u16 = 0x1000;
    pub const RTF_COMPRESSED: u16 = 0x1009;
    pub const HTML: u16 = 0x1013;
    pub const DISPLAY_NAME: u16 = 0x3001;
    pub const EMAIL_ADDRESS: u16 = 0x3003;
    pub const ATTACH_DATA: u16 = 0x3701;
    pub const ATTACH_FILENAME: u16 = 0x3704;
    pub const ATTACH_LONG_FILENAME: u16 = 0x3707;
    pub const ATTACH_MIME_TAG: u16 = 0x370E;
    pub const SMTP_ADDRESS: u16 = 0x39FE;
    pub const INTERNET_CPID: u16 = 0x3FDE;
    pub const MESSAGE_CODEPAGE: u16 = 0x3FFD;
    pub const SENDER_SMTP_ADDRESS: u16 = 0x5D01;
}

impl Extractor for Msg {
    fn extract(&self, bytes: &[u8], limits: &Limits) -> Result<Extracted, ExtractError> {
        let mut ole = Ole::open(bytes)?;
        if !ole.has("/__properties_version1.0") {
            return Err(ExtractError::Malformed(
                "not an Outlook message: the compound file has no message properties".into(),
            ));
        }
        let mut extracted = Extracted::default();
        one_message_deeper(|| read_message(&mut ole, "", true, limits, &mut extracted))?;
        Ok(extracted)
    }
}

/// A message or an attachment or recipient in it: the storage at `root` ("" for the file).
struct Object<'o, 'a> {
    ole: &'o mut Ole<'a>,
    root: String,
    fixed: HashMap<u16, (u16, [u8; 8])>,
    /// What its 8-bit strings are written in.
    code_page: &'static Encoding,
}

impl<'o, 'a> Object<'o, 'a> {
    /// Opens the object at `root`; `header` is the size of its property stream's header
    /// (32 bytes for the file's message, 24 for an attached one, 8 for the rest).
    fn open(
        ole: &'o mut Ole<'a>,
        root: &str,
        header: usize,
        code_page: &'static Encoding,
    ) -> Result<Self, ExtractError> {
        let stream = ole.stream(&format!("{root}/__properties_version1.0"))?.unwrap_or_default();
        let fixed = stream
            .get(header..)
            .unwrap_or_default()
            .chunks_exact(16)
            .map(|entry| {
                let tag = le_u32(entry, 0).unwrap_or(0);
                let value: [u8; 8] = entry[8..16].try_into().unwrap_or_default();
                ((tag >> 16) as u16, (tag as u16, value))
            })
            .collect();
        let mut object = Self { ole, root: root.to_owned(), fixed, code_page };
        if let Some(page) = object.long(id::MESSAGE_CODEPAGE).or_else(|| object.long(id::INTERNET_CPID))
            && let Some(encoding) = super::encoding::code_page(i64::from(page))
        {
            object.code_page = encoding;
        }
        Ok(object)
    }

    fn long(&self, id: u16) -> Option<u32> {
        self.fixed
            .get(&id)
            .filter(|(kind, _)| *kind == 0x0003)
            .map(|(_, v)| u32::from_le_bytes([v[0], v[1], v[2], v[3]]))
    }

    /// A date (`PT_SYSTIME`, 100 ns ticks since 1601) as RFC 2822 text.
    fn time(&self, id: u16) -> Option<String> {
        let (_, value) = self.fixed.get(&id).filter(|(kind, _)| *kind == 0x0040)?;
        let ticks = i64::try_from(u64::from_le_bytes(*value)).ok()?;
        let seconds = ticks / 10_000_000 - 11_644_473_600;
        DateTime::from_timestamp(seconds, 0).map(|t| t.to_rfc2822())
    }

    fn stream(&mut self, id: u16, kind: &str) -> Result<Option<Vec<u8>>, ExtractError> {
        self.ole.stream(&format!("{}/__substg1.0_{id:04X}{kind}", self.root))
    }

    /// A string property (UTF-16, or 8-bit in the message's code page), trimmed; `None`
    /// when absent or empty.
    fn string(&mut self, id: u16) -> Result<Option<String>, ExtractError> {
        let text = if let Some(wide) = self.stream(id, "001F")? {
            let units: Vec<u16> = wide.chunks_exact(2).map(|pair| u16::from_le_bytes([pair[0], pair[1]])).collect();
            String::from_utf16_lossy(&units)
        } else if let Some(narrow) = self.stream(id, "001E")? {
            self.code_page.decode_without_bom_handling(&narrow).0.into_owned()
        } else {
            return Ok(None);
        };
        let text = text.trim_end_matches('\0').trim();
        Ok((!text.is_empty()).then(|| text.to_owned()))
    }

    /// The first of the string properties `ids` the object has, each read only when the
    /// ones before it are absent or empty.
    fn first_string(&mut self, ids: &[u16]) -> Result<Option<String>, ExtractError> {
        for &id in ids {
            if let Some(text) = self.string(id)? {
                return Ok(Some(text));
            }
        }
        Ok(None)
    }

    fn storages(&self, prefix: &str) -> Vec<String> {
        let root = if self.root.is_empty() { "/" } else { self.root.as_str() };
        let mut names: Vec<String> = self.ole.storages_in(root).into_iter().filter(|n| n.starts_with(prefix)).collect();
        names.sort();
        names
    }
}

/// Reads the message at `root` into `extracted`: its headers, body and attachments;
/// `top` when it is the file's own message rather than an attached one.
fn read_message(
    ole: &mut Ole,
    root: &str,
    top: bool,
    limits: &Limits,
    extracted: &mut Extracted,
) -> Result<(), ExtractError> {
    let header = if top { 32 } else { 24 };
    let mut message = Object::open(ole, root, header, WINDOWS_1252)?;
    let subject = message.string(id::SUBJECT)?;
    let mut lines = Vec::new();
    if let Some(subject) = &subject {
        lines.push(format!("Subject: {subject}"));
    }
    let sender_address =
        message.first_string(&[id::SENDER_SMTP_ADDRESS, id::SENDER_EMAIL, id::SENT_REPRESENTING_EMAIL])?;
    if let Some(from) = person(message.string(id::SENDER_NAME)?, sender_address) {
        lines.push(format!("From: {from}"));
    }
    let (to, cc) = recipients(&mut message)?;
    for (field, listed, display) in [("To", to, id::DISPLAY_TO), ("Cc", cc, id::DISPLAY_CC)] {
        let value = if listed.is_empty() { message.string(display)? } else { Some(listed.join(", ")) };
        if let Some(value) = value {
            lines.push(format!("{field}: {value}"));
        }
    }
    if let Some(date) = message.time(id::CLIENT_SUBMIT_TIME).or_else(|| message.time(id::DELIVERY_TIME)) {
        lines.push(format!("Date: {date}"));
    }
    extracted.sections.extend(headers_section(subject.as_deref(), &lines));
    if let Some(body) = body(&mut message, limits)? {
        add_body(extracted, subject.as_deref(), body);
    }
    for (index, storage) in message.storages("__attach_version1.0_#").into_iter().enumerate() {
        // A damaged attachment is a note; the message and its other attachments stand.
        let path = format!("{root}/{storage}");
        if let Err(e) = read_attached(message.ole, &path, index, message.code_page, limits, extracted) {
            extracted.notes.push(format!("attachment {} was not read: {e}", index + 1));
        }
    }
    Ok(())
}

/// Reads the attachment stored at `path` (the `index`th of its message) into `extracted`.
fn read_attached(
    ole: &mut Ole,
    path: &str,
    index: usize,
    code_page: &'static Encoding,
    limits: &Limits,
    extracted: &mut Extracted,
) -> Result<(), ExtractError> {
    let mut attachment = Object::open(ole, path, 8, code_page)?;
    let file_name = attachment.first_string(&[id::ATTACH_LONG_FILENAME, id::ATTACH_FILENAME, id::DISPLAY_NAME])?;
    let embedded = format!("{path}/__substg1.0_{:04X}000D", id::ATTACH_DATA);
    if attachment.ole.has(&format!("{embedded}/__properties_version1.0")) {
        let name = file_name.unwrap_or_else(|| format!("message {}.msg", index + 1));
        let mut inner = Extracted::default();
        match one_message_deeper(|| read_message(attachment.ole, &embedded, false, limits, &mut inner)) {
            Ok(()) => add_attachment(extracted, &name, inner),
            Err(e) => extracted.notes.push(format!("attachment {name} was not read: {e}")),
        }
        return Ok(());
    }
    let name = file_name.unwrap_or_else(|| format!("attachment {}", index + 1));
    let mimetype = attachment.string(id::ATTACH_MIME_TAG)?.unwrap_or_else(|| "application/octet-stream".into());
    match attachment.stream(id::ATTACH_DATA, "0102")? {
        Some(data) => read_attachment(extracted, &name, &data, &mimetype, None, limits),
        None => extracted
            .notes
            .push(format!("attachment {name} was not read: it holds no file (an embedded object or a link)")),
    }
    Ok(())
}

/// `Name <address>`, or whichever of the two the message has.
fn person(name: Option<String>, address: Option<String>) -> Option<String> {
    match (name, address) {
        (Some(name), Some(address)) if name != address => Some(format!("{name} <{address}>")),
        (name, address) => name.or(address),
    }
}

/// The message's To and Cc recipients from its recipient storages (Bcc is left out).
fn recipients(message: &mut Object) -> Result<(Vec<String>, Vec<String>), ExtractError> {
    let (mut to, mut cc) = (Vec::new(), Vec::new());
    for storage in message.storages("__recip_version1.0_#") {
        let path = format!("{}/{storage}", message.root);
        let mut recipient = Object::open(message.ole, &path, 8, message.code_page)?;
        let address = recipient.first_string(&[id::SMTP_ADDRESS, id::EMAIL_ADDRESS])?;
        let Some(who) = person(recipient.string(id::DISPLAY_NAME)?, address) else { continue };
        match recipient.long(id::RECIPIENT_TYPE) {
            Some(2) => cc.push(who),
            Some(3) => {}
            _ => to.push(who),
        }
    }
    Ok((to, cc))
}

/// The body: the plain text, else the HTML, else the compressed RTF.
fn body(message: &mut Object, limits: &Limits) -> Result<Option<Extracted>, ExtractError> {
    if let Some(body) = message.string(id::BODY)? {
        return Ok(Some(text::read_plain(body.as_bytes(), Some(UTF_8))));
    }
    if let Some(page) = message.stream(id::HTML, "0102")? {
        let charset = message.long(id::INTERNET_CPID).and_then(|page| code_page(i64::from(page)));
        return Ok(Some(html::read(&page, charset)));
    }
    if let Some(page) = message.string(id::HTML)? {
        return Ok(Some(html::read(page.as_bytes(), Some(UTF_8))));
    }
    let Some(compressed) = message.stream(id::RTF_COMPRESSED, "0102")? else { return Ok(None) };
    let max = usize::try_from(limits.max_uncompressed_bytes).unwrap_or(usize::MAX);
    match decompressed_rtf(&compressed, max) {
        Some(document) => super::extract(Format::Rtf, &document, limits).map(Some),
        None => Err(ExtractError::Malformed("the message's body (compressed RTF) is damaged".into())),
    }
}

/// The dictionary compressed RTF starts from (MS-OXRTFCP 2.1.2.1).
const RTF_DICTIONARY: &[u8] = b"{\\rtf1\\ansi\\mac\\deff0\\deftab720{\\fonttbl;}{\\f0\\fnil \\froman \\fswiss \\fmodern \\fscript \\fdecor MS Sans SerifSymbolArialTimes New RomanCourier{\\colortbl\\red0\\green0\\blue0\r\n\\par \\pard\\plain\\f0\\fs20\\b\\i\\u\\tab\\tx";

/// Compressed RTF (`LZFu`, or `MELA` stored) decompressed: at most `max` bytes; `None`
/// when it is neither.
fn decompressed_rtf(data: &[u8], max: usize) -> Option<Vec<u8>> {
    let compressed_size = le_u32(data, 0)? as usize;
    let raw_size = (le_u32(data, 4)? as usize).min(max);
    let body = data.get(16..compressed_size.saturating_add(4).min(data.len()))?;
    match data.get(8..12)? {
        b"MELA" => return Some(body[..raw_size.min(body.len())].to_vec()),
        b"LZFu" => {}
        _ => return None,
    }
    let mut dictionary = [0u8; 4096];
    dictionary[..RTF_DICTIONARY.len()].copy_from_slice(RTF_DICTIONARY);
    let mut write = RTF_DICTIONARY.len();
    let mut out = Vec::with_capacity(raw_size.min(16 << 20));
    let mut input = body.iter().copied();
    'blocks: while let Some(control) = input.next() {
        for bit in 0..8 {
            if out.len() >= raw_size {
                break 'blocks;
            }
            if control & (1 << bit) == 0 {
                let Some(byte) = input.next() else { break 'blocks };
                out.push(byte);
                dictionary[write] = byte;
                write = (write + 1) % dictionary.len();
                continue;
            }
            let (Some(high), Some(low)) = (input.next(), input.next()) else { break 'blocks };
            let token = u16::from_be_bytes([high, low]);
            let (offset, length) = (usize::from(token >> 4), usize::from(token & 0xF) + 2);
            if offset == write {
                break 'blocks;
            }
            for k in 0..length {
                let byte = dictionary[(offset + k) % dictionary.len()];
                out.push(byte);
                dictionary[write] = byte;
                write = (write + 1) % dictionary.len();
            }
        }
    }
    out.truncate(raw_size);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::super::{Format, extract, fixture};
    use super::*;

    #[test]
    fn compressed_rtf_decompresses_as_the_specification_shows() {
        // MS-OXRTFCP 3.1.1's example: "{\rtf1\ansi\ansicpg1252\pard hello world}\r\n".
        let compressed = [
            0x2d, 0x00, 0x00, 0x00, 0x2b, 0x00, 0x00, 0x00, 0x4c, 0x5a, 0x46, 0x75, 0xf1, 0xc5, 0xc7, 0xa7, 0x03, 0x00,
            0x0a, 0x00, 0x72, 0x63, 0x70, 0x67, 0x31, 0x32, 0x35, 0x42, 0x32, 0x0a, 0xf3, 0x20, 0x68, 0x65, 0x6c, 0x09,
            0x00, 0x20, 0x62, 0x77, 0x05, 0xb0, 0x6c, 0x64, 0x7d, 0x0a, 0x80, 0x0f, 0xa0,
        ];
        let rtf = decompressed_rtf(&compressed, 1 << 20).unwrap();
        assert_eq!(String::from_utf8_lossy(&rtf), "{\\rtf1\\ansi\\ansicpg1252\\pard hello world}\r\n");
        assert_eq!(decompressed_rtf(&compressed, 10).unwrap().len(), 10, "held to the limit");
        assert!(decompressed_rtf(b"\x10\0\0\0\x10\0\0\0ABCD\0\0\0\0", 100).is_none(), "not compressed RTF");
    }

    #[test]
    fn an_outlook_message_gives_its_headers_body_and_an_attached_message_with_its_pdf() {
        let message = fixture("msg/delivery-failure.msg");
        assert_eq!(Format::detect("saved", &message), Some(Format::Msg), "sniffed from its streams");
        let extracted = extract(Format::Msg, &message, &Limits::default()).unwrap();
        let headers = &extracted.sections[0];
        assert_eq!(headers.anchor.part.as_deref(), Some("headers"));
        assert!(headers.text.starts_with("Subject: 投递状态通知 (Failure Notice)\nFrom: Mail Delivery Subsystem <mailer-daemon@tjdpf.org.cn>\nTo: "), "{}", headers.text);
        assert!(headers.text.contains("\nDate: "), "{}", headers.text);
        let body = &extracted.sections[1];
        assert_eq!(body.anchor.headings, ["投递状态通知 (Failure Notice)"]);
        assert!(body.text.contains("I'm afraid I was not able to deliver your message"), "{}", body.text);
        let inner: Vec<_> = extracted
            .sections
            .iter()
            .filter(|s| s.anchor.part.as_deref().is_some_and(|p| p.starts_with("attachment default_attachment.eml")))
            .collect();
        assert!(
            inner.iter().any(|s| s.text.contains("Subject: 回复：转发：反馈·北京 2017年12月02-03日 销售")),
            "{extracted:?}"
        );
        assert!(inner.iter().any(|s| s.text.contains("FYI...")), "the attached message's body");
        let pdf = inner
            .iter()
            .find(|s| s.anchor.part.as_deref().is_some_and(|p| p.contains(".pdf")) && s.anchor.page.is_some());
        assert!(
            pdf.is_some_and(|s| !s.text.trim().is_empty()),
            "the PDF attached to the attached message, page by page: {:?}\n{:?}",
            extracted.notes,
            inner.iter().map(|s| &s.anchor).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_body_only_in_rtf_and_an_attached_message_are_read() {
        let mut message = fixture("msg/outer.msg");
        // Drop the plain-text body, so the compressed RTF is what is left to read.
        message = super::super::ole::with_stream(&message, "/__substg1.0_1000001F", |body| body.clear());
        let extracted = extract(Format::Msg, &message, &Limits::default()).unwrap();
        let text = extracted.text();
        assert!(text.contains("Subject: outer subject"), "{text}");
        let body =
            extracted.sections.iter().find(|s| s.text.contains("Outer body")).unwrap_or_else(|| panic!("{text}"));
        assert_eq!(
            (body.anchor.range.as_deref(), body.anchor.part.as_deref()),
            (None, None),
            "from the RTF, not the text"
        );
        let inner = extracted
            .sections
            .iter()
            .find(|s| s.anchor.part.as_deref() == Some("attachment test"))
            .unwrap_or_else(|| panic!("{extracted:?}"));
        assert_eq!(inner.anchor.headings, ["test"]);
        assert!(inner.text.contains("body"));
    }

    /// A minimal Outlook message: a subject, and `attached` (a file name and its bytes) in
    /// its one attachment if given.
    fn message(subject: &str, attached: Option<(&str, &[u8])>) -> Vec<u8> {
        use std::io::Write;
        let utf16 = |text: &str| text.encode_utf16().flat_map(u16::to_le_bytes).collect::<Vec<u8>>();
        let mut file = cfb::CompoundFile::create(std::io::Cursor::new(Vec::new())).unwrap();
        let mut write = |path: &str, bytes: &[u8]| file.create_stream(path).unwrap().write_all(bytes).unwrap();
        write("/__properties_version1.0", &[0; 32]);
        write(&format!("/__substg1.0_{:04X}001F", id::SUBJECT), &utf16(subject));
        if let Some((name, bytes)) = attached {
            let storage = "/__attach_version1.0_#00000000";
            file.create_storage(storage).unwrap();
            let mut write = |path: &str, bytes: &[u8]| file.create_stream(path).unwrap().write_all(bytes).unwrap();
            write(&format!("{storage}/__properties_version1.0"), &[0; 8]);
            write(&format!("{storage}/__substg1.0_{:04X}001F", id::ATTACH_LONG_FILENAME), &utf16(name));
            write(&format!("{storage}/__substg1.0_{:04X}0102", id::ATTACH_DATA), bytes);
        }
        file.flush().unwrap();
        file.into_inner().into_inner()
    }

    #[test]
    fn messages_attached_as_files_nest_under_the_same_limit_as_emails() {
        // Each message attaches the one before it as a .msg file (not a storage): read one
        // by one, each would start its count afresh and the chain could overflow the stack.
        let mut chain = message("innermost", None);
        for level in 0..12 {
            chain = message(&format!("level {level}"), Some((&format!("level {level}.msg"), &chain)));
        }
        let extracted = extract(Format::Msg, &chain, &Limits::default()).unwrap();
        let text = extracted.text();
        assert!(text.contains("Subject: level 11") && text.contains("Subject: level 4"), "{text}");
        assert!(!text.contains("Subject: level 3"), "eight messages deep at most: {text}");
        assert!(!text.contains("innermost"));
        assert!(extracted.notes.iter().any(|n| n.contains("more than 8 deep")), "{:?}", extracted.notes);

        // An email attaching the chain counts in the same levels.
        let encoded = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &chain);
        let email = format!(
            "From: a@example.com\r\nTo: b@example.com\r\nSubject: the email\r\n\
             Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n\
             Content-Type: application/vnd.ms-outlook; name=\"chain.msg\"\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{encoded}\r\n--b--\r\n"
        );
        let text = extract(Format::Email, email.as_bytes(), &Limits::default()).unwrap().text();
        assert!(text.contains("Subject: the email") && text.contains("Subject: level 5"), "{text}");
        assert!(!text.contains("Subject: level 4"), "the email is one of the eight: {text}");
    }

    #[test]
    fn a_compound_file_without_message_properties_is_not_a_message() {
        let error = extract(Format::Msg, &fixture("doc/gen-docx-003-4p.doc"), &Limits::default());
        let error = error.map(|_| ()).unwrap_err().to_string();
        assert!(error.contains("not an Outlook message"), "{error}");
    }
}
