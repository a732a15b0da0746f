//! An incremental parser for server-sent events: bytes go in as they arrive, complete
//! events come out. Events may be split anywhere, even inside a UTF-8 character.

/// One event's data (its `data:` lines joined with newlines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, if any.
    pub event: Option<String>,
    /// The data.
    pub data: String,
}

/// Accumulates bytes and yields complete events.
#[derive(Debug, Default)]
pub struct SseParser {
    buffer: Vec<u8>,
    event: Option<String>,
    data: Vec<String>,
}

/// Refuse to buffer more than this without an event boundary (a broken upstream).
pub const MAX_EVENT_BYTES: usize = 8 * 1024 * 1024;

impl SseParser {
    /// Feeds bytes; returns the events they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, String> {
        self.buffer.extend_from_slice(bytes);
        let mut events = Vec::new();
        let mut start = 0;
        while let Some(pos) = self.buffer[start..].iter().position(|b| *b == b'\n') {
            let end = start + pos;
            let mut line = &self.buffer[start..end];
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            let line = String::from_utf8_lossy(line).into_owned();
            start = end + 1;
            if line.is_empty() {
                if !self.data.is_empty() {
                    events.push(SseEvent { event: self.event.take(), data: self.data.join("\n") });
                    self.data.clear();
                }
                self.event = None;
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) =
                line.split_once(':').map_or((line.as_str(), ""), |(f, v)| (f, v.strip_prefix(' ').unwrap_or(v)));
            match field {
                "data" => self.data.push(value.to_owned()),
                "event" => self.event = Some(value.to_owned()),
                _ => {}
            }
        }
        self.buffer.drain(..start);
        if self.buffer.len() + self.data.iter().map(String::len).sum::<usize>() > MAX_EVENT_BYTES {
            return Err("an event grew past 8 MiB without ending".into());
        }
        Ok(events)
    }

    /// Whatever is left when the stream ends (an event without its blank line).
    pub fn finish(mut self) -> Option<SseEvent> {
        if !self.buffer.is_empty() {
            let _ = self.push(b"\n");
        }
        (!self.data.is_empty()).then(|| SseEvent { event: self.event.take(), data: self.data.join("\n") })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str =
        ": keep-alive\n\ndata: {\"a\":\"é\"}\n\nevent: error\ndata: line1\ndata: line2\r\n\r\ndata: [DONE]\n\n";

    fn parse_in_pieces(size: usize) -> Vec<SseEvent> {
        let mut parser = SseParser::default();
        let mut events = Vec::new();
        for piece in STREAM.as_bytes().chunks(size) {
            events.extend(parser.push(piece).unwrap());
        }
        assert!(parser.finish().is_none());
        events
    }

    #[test]
    fn events_split_anywhere_parse_the_same() {
        let whole = parse_in_pieces(STREAM.len());
        assert_eq!(
            whole,
            [
                SseEvent { event: None, data: "{\"a\":\"é\"}".into() },
                SseEvent { event: Some("error".into()), data: "line1\nline2".into() },
                SseEvent { event: None, data: "[DONE]".into() },
            ]
        );
        for size in 1..8 {
            assert_eq!(parse_in_pieces(size), whole, "pieces of {size} bytes");
        }
    }

    #[test]
    fn an_unterminated_last_event_is_returned_by_finish() {
        let mut parser = SseParser::default();
        assert!(parser.push(b"data: tail").unwrap().is_empty());
        assert_eq!(parser.finish().unwrap().data, "tail");
    }
}
