//! A server-sent-events frame parser for both Bailian's and OpenAI's streams.
//!
//! Hand-written because it is small and must accept Bailian's dialect exactly: no space after
//! the colon (`data:{..}`), `:HTTP_STATUS/200` comment lines, `id:`/`event:` fields, and a
//! possibly unterminated last frame. Bytes are buffered until a full line, so a UTF-8 character
//! or a JSON document split across TCP chunks is never seen half.

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, when present (`result`, `error`).
    pub event: Option<String>,
    /// `data:` lines joined with `\n`.
    pub data: String,
    /// The status from a `:HTTP_STATUS/NNN` comment line, when present.
    pub status: Option<u16>,
}

/// A line as text: borrowed when it is valid UTF-8, as it always is from a sound server. An
/// answer is mostly CJK text, which the standard library validates a byte at a time.
fn text(line: &[u8]) -> std::borrow::Cow<'_, str> {
    match simdutf8::basic::from_utf8(line) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(line),
    }
}

#[derive(Default)]
pub struct SseParser {
    buffer: Vec<u8>,
    current: SseEvent,
    has_field: bool,
}

/// A stream whose single line grows past this is not a stream we can use.
pub const MAX_LINE_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
#[error("stream line longer than {MAX_LINE_BYTES} bytes")]
pub struct LineTooLong;

impl SseParser {
    /// Feeds a chunk, appending every completed event to `out`.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) -> Result<(), LineTooLong> {
        // Taken out while its lines are handled, so they can be borrowed rather than copied;
        // a chunk that starts on a line boundary is read in place.
        let mut buffer = std::mem::take(&mut self.buffer);
        if buffer.is_empty() {
            let consumed = self.lines(chunk, out);
            buffer.extend_from_slice(&chunk[consumed..]);
        } else {
            buffer.extend_from_slice(chunk);
            let consumed = self.lines(&buffer, out);
            buffer.drain(..consumed);
        }
        self.buffer = buffer;
        if self.buffer.len() > MAX_LINE_BYTES {
            return Err(LineTooLong);
        }
        Ok(())
    }

    /// Handles the complete lines at the start of `bytes`; returns how many bytes they took.
    fn lines(&mut self, bytes: &[u8], out: &mut Vec<SseEvent>) -> usize {
        let mut start = 0;
        while let Some(offset) = memchr::memchr(b'\n', &bytes[start..]) {
            let end = start + offset;
            let line = &bytes[start..end];
            self.line(&text(line.strip_suffix(b"\r").unwrap_or(line)), out);
            start = end + 1;
        }
        start
    }

    /// End of stream: a last frame without its blank line still counts.
    pub fn finish(&mut self, out: &mut Vec<SseEvent>) {
        if !self.buffer.is_empty() {
            let rest = std::mem::take(&mut self.buffer);
            self.line(text(&rest).trim_end_matches('\r'), out);
        }
        self.dispatch(out);
    }

    fn line(&mut self, line: &str, out: &mut Vec<SseEvent>) {
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if let Some(comment) = line.strip_prefix(':') {
            if let Some(code) = comment.strip_prefix("HTTP_STATUS/") {
                self.current.status = code.trim().parse().ok();
                self.has_field = true;
            }
            return;
        }
        // A byte search: `split_once(':')` goes through the general `char` searcher, which
        // was a tenth of this parser's cost at five lines per frame.
        let (field, value) = match memchr::memchr(b':', line.as_bytes()) {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(' ').unwrap_or(value))
            }
            None => (line, ""),
        };
        match field {
            "data" => {
                if !self.current.data.is_empty() {
                    self.current.data.push('\n');
                }
                self.current.data.push_str(value);
                self.has_field = true;
            }
            "event" => {
                self.current.event = Some(value.to_owned());
                self.has_field = true;
            }
            // `id`, `retry` and unknown fields carry nothing we act on.
            _ => {}
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        if self.has_field {
            out.push(std::mem::take(&mut self.current));
        }
        self.current = SseEvent::default();
        self.has_field = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut parser = SseParser::default();
        let mut out = Vec::new();
        for chunk in chunks {
            parser.push(chunk, &mut out).unwrap();
        }
        parser.finish(&mut out);
        out
    }

    #[test]
    fn bailian_frame_with_status_comment() {
        let events = parse_all(&[b"id:1\nevent:result\n:HTTP_STATUS/200\ndata:{\"a\":1}\n\n"]);
        assert_eq!(
            events,
            vec![SseEvent {
                event: Some("result".into()),
                data: "{\"a\":1}".into(),
                status: Some(200)
            }]
        );
    }

    #[test]
    fn split_anywhere_including_inside_a_utf8_character() {
        let whole = "id:1\nevent:result\ndata:{\"text\":\"你好\"}\r\n\r\nid:2\nevent:error\n:HTTP_STATUS/400\ndata:{}\n\n";
        let bytes = whole.as_bytes();
        for cut in 1..bytes.len() {
            let events = parse_all(&[&bytes[..cut], &bytes[cut..]]);
            assert_eq!(events.len(), 2, "cut at {cut}");
            assert_eq!(events[0].data, "{\"text\":\"你好\"}");
            assert_eq!(events[1].event.as_deref(), Some("error"));
            assert_eq!(events[1].status, Some(400));
        }
    }

    #[test]
    fn openai_style_with_space_and_unterminated_last_frame() {
        let events = parse_all(&[b"data: {\"x\":1}\n\ndata: [DONE]"]);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].data, "{\"x\":1}");
        assert_eq!(events[1].data, "[DONE]");
    }

    #[test]
    fn comments_alone_make_no_event() {
        assert!(parse_all(&[b": keep-alive\n\n"]).is_empty());
    }
}
