//! A minimal client for one server-sent event stream over its own HTTP/1.1 connection: write
//! one request, read the response head, then the events as they arrive. Light enough to hold
//! ten thousand at once on the cores it shares with the gateway: a task, a socket and a couple
//! of small buffers each.
//!
//! The body may be chunked (what actix-web sends for a streamed body), `Content-Length`, or run
//! until the server closes. Events are `event:`/`data:` lines ended by a blank line; comment
//! lines (`: waiting`) are skipped.

use std::io;
use std::net::SocketAddr;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Response heads larger than this are refused (the gateway's are a few hundred bytes).
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// An error body kept for the report, at most.
const MAX_ERROR_BODY: usize = 4 * 1024;
/// A chunk-size line longer than this is malformed.
const MAX_CHUNK_LINE: usize = 256;
/// An event longer than this is malformed (the answers are a few hundred bytes).
const MAX_EVENT_BYTES: usize = 256 * 1024;
/// Bytes asked of the socket per read: an event or two.
const READ_BYTES: usize = 2 * 1024;

/// Why a stream failed.
#[derive(Debug)]
pub enum ClientError {
    /// The connection could not be made.
    Connect(io::Error),
    /// Reading or writing failed.
    Io(io::Error),
    /// The server closed the connection before the response was whole.
    Closed,
    /// The response is not HTTP or SSE as expected.
    Protocol(String),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Connect(error) => write!(f, "connect: {error}"),
            ClientError::Io(error) => write!(f, "{error}"),
            ClientError::Closed => write!(f, "connection closed mid-response"),
            ClientError::Protocol(reason) => write!(f, "{reason}"),
        }
    }
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `message` when the event has no `event:` line.
    pub name: String,
    /// The `data:` lines, joined with newlines.
    pub data: String,
}

/// What the response head said.
#[derive(Debug)]
pub enum Head {
    /// 200 with `text/event-stream`: read the events.
    Events,
    /// Anything else, with its (small) body.
    Refused { status: u16, body: String },
}

/// How the body's end is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Chunked(Chunk),
    Length(usize),
    UntilClose,
}

/// Where a chunked body's decoder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// Inside a chunk's data, this many bytes to go.
    Data(usize),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
}

/// One stream: the socket, the raw bytes read, and the decoded body not yet parsed into events.
pub struct SseStream {
    stream: TcpStream,
    raw: BytesMut,
    body: BytesMut,
    framing: Framing,
    /// The body's end was seen (the last chunk, or all of `Content-Length`).
    ended: bool,
}

impl SseStream {
    /// Connects (no Nagle: the request goes out in one write anyway).
    pub async fn connect(address: SocketAddr) -> Result<SseStream, ClientError> {
        let stream = TcpStream::connect(address)
            .await
            .map_err(ClientError::Connect)?;
        stream.set_nodelay(true).map_err(ClientError::Connect)?;
        Ok(SseStream {
            stream,
            raw: BytesMut::new(),
            body: BytesMut::new(),
            framing: Framing::UntilClose,
            ended: false,
        })
    }

    /// Writes the whole request.
    pub async fn send(&mut self, request: &[u8]) -> Result<(), ClientError> {
        self.stream
            .write_all(request)
            .await
            .map_err(ClientError::Io)
    }

    /// Reads the response head; for a refusal, its whole body too.
    pub async fn head(&mut self) -> Result<Head, ClientError> {
        let (status, length, event_stream) = loop {
            if let Some(parsed) = self.parse_head()? {
                break parsed;
            }
            if self.raw.len() > MAX_HEAD_BYTES {
                return Err(ClientError::Protocol("response head too large".to_owned()));
            }
            if !self.read().await? {
                return Err(ClientError::Closed);
            }
        };
        self.raw.advance(length);
        if status == 200 && event_stream {
            self.decode()?;
            return Ok(Head::Events);
        }
        // A refusal: read its body (bounded), for the report.
        while !self.ended && self.body.len() < MAX_ERROR_BODY {
            self.decode()?;
            if self.ended || self.body.len() >= MAX_ERROR_BODY {
                break;
            }
            if !self.read().await? {
                break;
            }
        }
        let end = self.body.len().min(MAX_ERROR_BODY);
        let body = String::from_utf8_lossy(&self.body[..end]).into_owned();
        if status == 200 {
            return Err(ClientError::Protocol(format!(
                "200 without text/event-stream: {body}"
            )));
        }
        Ok(Head::Refused { status, body })
    }

    /// The next event; `None` once the body ended (or the server closed a body that runs until
    /// then) with no event left.
    pub async fn next_event(&mut self) -> Result<Option<Event>, ClientError> {
        loop {
            if let Some(event) = next_event(&mut self.body)? {
                return Ok(Some(event));
            }
            if self.ended {
                return Ok(None);
            }
            if !self.read().await? {
                if self.framing == Framing::UntilClose {
                    self.ended = true;
                    continue;
                }
                return Err(ClientError::Closed);
            }
            self.decode()?;
        }
    }

    /// Reads what the socket has; false when the server closed it.
    async fn read(&mut self) -> Result<bool, ClientError> {
        self.raw.reserve(READ_BYTES);
        let read = self
            .stream
            .read_buf(&mut self.raw)
            .await
            .map_err(ClientError::Io)?;
        Ok(read > 0)
    }

    /// Status, head length and whether it is an event stream, once the head is whole; sets the
    /// body's framing.
    fn parse_head(&mut self) -> Result<Option<(u16, usize, bool)>, ClientError> {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        let length = match response.parse(&self.raw) {
            Ok(httparse::Status::Complete(length)) => length,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(error) => return Err(ClientError::Protocol(format!("bad response head: {error}"))),
        };
        let status = response.code.unwrap_or(0);
        let mut framing = Framing::UntilClose;
        let mut event_stream = false;
        for header in response.headers.iter() {
            let value = String::from_utf8_lossy(header.value).to_ascii_lowercase();
            if header.name.eq_ignore_ascii_case("transfer-encoding") {
                if value.trim() == "chunked" {
                    framing = Framing::Chunked(Chunk::Size);
                } else {
                    return Err(ClientError::Protocol(format!(
                        "unsupported Transfer-Encoding: {value}"
                    )));
                }
            } else if header.name.eq_ignore_ascii_case("content-length") {
                if framing == Framing::UntilClose {
                    let length = value
                        .trim()
                        .parse()
                        .map_err(|_| ClientError::Protocol("bad Content-Length".to_owned()))?;
                    framing = Framing::Length(length);
                }
            } else if header.name.eq_ignore_ascii_case("content-type") {
                event_stream = value.starts_with("text/event-stream");
            }
        }
        self.framing = framing;
        Ok(Some((status, length, event_stream)))
    }

    /// Moves what `raw` holds of the body into `body`, de-chunked.
    fn decode(&mut self) -> Result<(), ClientError> {
        loop {
            match self.framing {
                Framing::UntilClose => {
                    self.body.extend_from_slice(&self.raw);
                    self.raw.clear();
                    return Ok(());
                }
                Framing::Length(left) => {
                    let take = left.min(self.raw.len());
                    self.body.extend_from_slice(&self.raw.split_to(take));
                    self.framing = Framing::Length(left - take);
                    self.ended |= left == take;
                    return Ok(());
                }
                Framing::Chunked(_) if self.ended => return Ok(()),
                Framing::Chunked(Chunk::Size) => {
                    let Some(end) = self.raw.windows(2).position(|pair| pair == b"\r\n") else {
                        if self.raw.len() > MAX_CHUNK_LINE {
                            return Err(ClientError::Protocol("bad chunk size line".to_owned()));
                        }
                        return Ok(());
                    };
                    let line = String::from_utf8_lossy(&self.raw[..end]).into_owned();
                    let digits = line.split(';').next().unwrap_or_default().trim();
                    let size = usize::from_str_radix(digits, 16).map_err(|_| {
                        ClientError::Protocol(format!("bad chunk size line: {line:?}"))
                    })?;
                    self.raw.advance(end + 2);
                    if size == 0 {
                        // Trailers (none from actix) and the final CRLF are not waited for.
                        self.ended = true;
                        return Ok(());
                    }
                    self.framing = Framing::Chunked(Chunk::Data(size));
                }
                Framing::Chunked(Chunk::Data(left)) => {
                    if self.raw.is_empty() {
                        return Ok(());
                    }
                    let take = left.min(self.raw.len());
                    self.body.extend_from_slice(&self.raw.split_to(take));
                    self.framing = Framing::Chunked(if take == left {
                        Chunk::DataEnd
                    } else {
                        Chunk::Data(left - take)
                    });
                }
                Framing::Chunked(Chunk::DataEnd) => {
                    if self.raw.len() < 2 {
                        return Ok(());
                    }
                    if &self.raw[..2] != b"\r\n" {
                        return Err(ClientError::Protocol(
                            "chunk data not ended by CRLF".to_owned(),
                        ));
                    }
                    self.raw.advance(2);
                    self.framing = Framing::Chunked(Chunk::Size);
                }
            }
        }
    }
}

/// Takes the first whole event off `body`, skipping comment-only blocks.
fn next_event(body: &mut BytesMut) -> Result<Option<Event>, ClientError> {
    loop {
        let Some(end) = body.windows(2).position(|pair| pair == b"\n\n") else {
            if body.len() > MAX_EVENT_BYTES {
                return Err(ClientError::Protocol("event too long".to_owned()));
            }
            return Ok(None);
        };
        let block = body.split_to(end + 2);
        let text = std::str::from_utf8(&block[..end])
            .map_err(|_| ClientError::Protocol("event is not UTF-8".to_owned()))?;
        let mut name = None;
        let mut data: Option<String> = None;
        for line in text.split('\n') {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.is_empty() || line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => name = Some(value.to_owned()),
                "data" => match &mut data {
                    Some(data) => {
                        data.push('\n');
                        data.push_str(value);
                    }
                    None => data = Some(value.to_owned()),
                },
                _ => {}
            }
        }
        if name.is_none() && data.is_none() {
            continue;
        }
        return Ok(Some(Event {
            name: name.unwrap_or_else(|| "message".to_owned()),
            data: data.unwrap_or_default(),
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Serves the response in the given pieces to one connection, after reading its request
    /// (a plain thread: the bench's lint keeps `tokio::spawn` out).
    async fn serve(pieces: Vec<&'static [u8]>) -> SocketAddr {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            stream.set_nodelay(true).unwrap();
            let mut request = [0_u8; 1024];
            let _ = stream.read(&mut request).unwrap();
            for piece in pieces {
                stream.write_all(piece).unwrap();
                stream.flush().unwrap();
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        });
        address
    }

    async fn events(pieces: Vec<&'static [u8]>) -> (Head, Vec<Event>) {
        let mut stream = SseStream::connect(serve(pieces).await).await.unwrap();
        stream.send(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let head = stream.head().await.unwrap();
        let mut seen = Vec::new();
        if matches!(head, Head::Events) {
            while let Some(event) = stream.next_event().await.unwrap() {
                seen.push(event);
            }
        }
        (head, seen)
    }

    fn event(name: &str, data: &str) -> Event {
        Event {
            name: name.to_owned(),
            data: data.to_owned(),
        }
    }

    #[tokio::test]
    async fn chunked_events_split_anywhere_are_decoded_comments_skipped() {
        let (head, seen) = events(vec![
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n",
            b"1c\r\nevent: delta\ndata: {\"a\":1}\n\n\r\n",
            b"b\r\n: waiting\n\n\r",
            b"\n1",
            b"6\r\nevent: done\ndata: {}\n\n\r\n0\r\n\r\n",
        ])
        .await;
        assert!(matches!(head, Head::Events));
        assert_eq!(seen, [event("delta", "{\"a\":1}"), event("done", "{}")]);
    }

    #[tokio::test]
    async fn an_event_across_chunks_and_a_body_until_close() {
        let (_, seen) = events(vec![
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\nevent: del",
            b"ta\ndata:x\ndata: y\n\ndata: z\n\n",
        ])
        .await;
        assert_eq!(seen, [event("delta", "x\ny"), event("message", "z")]);
    }

    #[tokio::test]
    async fn a_refusal_comes_with_its_body() {
        let (head, _) = events(vec![
            b"HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\ncontent-length: 13\r\n\r\n{\"error\":\"x\"}",
        ])
        .await;
        match head {
            Head::Refused { status, body } => {
                assert_eq!(status, 429);
                assert_eq!(body, "{\"error\":\"x\"}");
            }
            Head::Events => panic!("not a refusal"),
        }
    }

    #[tokio::test]
    async fn a_chunked_stream_cut_short_is_an_error() {
        let mut stream = SseStream::connect(
            serve(vec![
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n5\r\nda",
            ])
            .await,
        )
        .await
        .unwrap();
        stream.send(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        assert!(matches!(stream.head().await.unwrap(), Head::Events));
        assert!(matches!(
            stream.next_event().await,
            Err(ClientError::Closed)
        ));
    }
}
