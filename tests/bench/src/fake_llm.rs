//! A lean fake Bailian for the WeChat scenarios: raw HTTP/1.1 on a thread of its own
//! ([`platform_server`](crate::platform_server)), every answer rendered once at start-up and
//! written as is.
//!
//! The test kit's fake (actix-web, every body parsed and recorded, a write per SSE frame) costs
//! more CPU per call than the gateway it stands behind, on the same two cores. This one checks
//! what real Bailian would refuse (method, path, API key, a body with `messages`), counts, and
//! answers with bytes it already has. It speaks HTTP/1.1 only: `--llm-http2` uses the test kit's.
//!
//! It also answers OpenAI-compatible `POST /v1/chat/completions` (non-streaming, one JSON
//! answer with the same text), the call the `compare` scenario's peers make, from the same
//! thread and with bytes rendered the same way, so that botgate and the peers wait equally
//! little. Calls are counted per protocol, to say which one a gateway used.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::platform_server::{Request, Respond, Server};

/// The app id and key botgate's config gets; anything else is refused as Bailian would.
const APP_ID: &str = "app-bench";
const API_KEY: &str = "sk-bench-bailian";
/// Fixed ids: nothing downstream compares them across calls.
const REQUEST_ID: &str = "5b0c2c43-6a2e-9c1f-a1d4-7e3f0b9d8c21";
const SESSION_ID: &str = "9f2d6c1e4b7a40c8a3e5d7f1b2c4e6a8";
const MODEL_ID: &str = "qwen-max";
/// A plausible prompt size: botgate does not read it, Bailian always sends it.
const INPUT_TOKENS: usize = 56;
/// Characters per streamed delta, as the test kit's fake splits its answers.
const DELTA_CHARS: usize = 3;
/// reqwest sends about six headers; a request with more than this is malformed here.
const MAX_HEADERS: usize = 32;
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Twenty turns of history are about 10 KB; far more means something is wrong.
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// How often [`LeanBailian::wait_for_calls`] looks at the counters (after the load, unmeasured).
const WAIT_POLL: Duration = Duration::from_millis(1);
const NO_INPUT: &str = r#"Either "prompt" or "messages" must exist and cannot both be none"#;
/// OpenAI's chat completions, under the `/v1` a client's base URL ends with.
const OPENAI_PATH: &str = "/v1/chat/completions";

/// How a streamed answer goes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameWrites {
    /// The whole response in one write: an LLM that has every token at once.
    One,
    /// A write (and a TCP segment) per event, as a token-by-token LLM sends them: the head goes
    /// with the first event, the chunked terminator with the last.
    PerFrame,
}

impl FrameWrites {
    pub fn describe(self) -> &'static str {
        match self {
            FrameWrites::One => "one write",
            FrameWrites::PerFrame => "a write per frame",
        }
    }
}

/// The successful responses, rendered once.
struct Answers {
    /// SSE head and every event, chunked, as one buffer.
    stream: Bytes,
    /// The same bytes, one piece per write for [`FrameWrites::PerFrame`].
    stream_writes: Vec<Bytes>,
    json: Bytes,
    /// OpenAI's non-streaming `chat.completion` object.
    openai: Bytes,
}

/// Accepted calls per protocol.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Protocols {
    pub bailian_sse: u64,
    pub bailian_json: u64,
    pub openai_json: u64,
}

impl Protocols {
    /// The protocols seen, e.g. "Bailian SSE" (or "none").
    pub fn describe(&self) -> String {
        let seen: Vec<&str> = [
            (self.bailian_sse, "Bailian SSE"),
            (self.bailian_json, "Bailian JSON"),
            (self.openai_json, "OpenAI chat/completions JSON"),
        ]
        .iter()
        .filter(|(count, _)| *count > 0)
        .map(|(_, name)| *name)
        .collect();
        if seen.is_empty() {
            "none".to_owned()
        } else {
            seen.join(" + ")
        }
    }
}

struct Shared {
    answers: Answers,
    writes: FrameWrites,
    accepted: AtomicU64,
    bailian_sse: AtomicU64,
    bailian_json: AtomicU64,
    openai_json: AtomicU64,
    rejected: AtomicU64,
    first_rejection: OnceLock<String>,
}

/// The fake, serving on 127.0.0.1 until dropped.
pub struct LeanBailian {
    server: Server,
    shared: Arc<Shared>,
}

impl LeanBailian {
    /// Binds a free port and starts serving `answer`.
    pub fn start(answer: &str, writes: FrameWrites) -> io::Result<LeanBailian> {
        let shared = Arc::new(Shared {
            answers: Answers::render(answer),
            writes,
            accepted: AtomicU64::new(0),
            bailian_sse: AtomicU64::new(0),
            bailian_json: AtomicU64::new(0),
            openai_json: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            first_rejection: OnceLock::new(),
        });
        let server = Server::start("fake-bailian", "fake Bailian", Arc::clone(&shared))?;
        Ok(LeanBailian { server, shared })
    }

    pub fn base_url(&self) -> String {
        self.server.url()
    }

    /// The base URL an OpenAI-compatible client is given (`…/v1`).
    pub fn openai_base_url(&self) -> String {
        format!("{}/v1", self.server.url())
    }

    /// The model name OpenAI clients may send (any is accepted).
    pub fn model(&self) -> &'static str {
        MODEL_ID
    }

    /// Accepted calls by protocol.
    pub fn protocols(&self) -> Protocols {
        Protocols {
            bailian_sse: self.shared.bailian_sse.load(Ordering::Relaxed),
            bailian_json: self.shared.bailian_json.load(Ordering::Relaxed),
            openai_json: self.shared.openai_json.load(Ordering::Relaxed),
        }
    }

    pub fn app_id(&self) -> &'static str {
        APP_ID
    }

    pub fn api_key(&self) -> &'static str {
        API_KEY
    }

    pub fn writes(&self) -> FrameWrites {
        self.shared.writes
    }

    /// Completion calls answered 200.
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::Relaxed)
    }

    /// Requests refused (bad method, path, key, body or framing).
    pub fn rejected(&self) -> u64 {
        self.shared.rejected.load(Ordering::Relaxed)
    }

    /// Why the first refused request was refused.
    pub fn first_rejection(&self) -> Option<&str> {
        self.shared.first_rejection.get().map(String::as_str)
    }

    /// Waits until `n` requests were answered, accepted or not; false if `timeout` passes first.
    pub async fn wait_for_calls(&self, n: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.accepted() + self.rejected() < n {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(WAIT_POLL).await;
        }
        true
    }
}

impl Respond for Shared {
    type Answer = Verdict;

    fn next(&self, buffer: &[u8]) -> Option<Request<Verdict>> {
        let Parsed::Complete {
            length,
            verdict,
            close,
        } = parse(buffer)
        else {
            return None;
        };
        let close = close || verdict.closes();
        Some(Request {
            length,
            answer: verdict,
            close,
        })
    }

    async fn answer(&self, stream: &mut TcpStream, verdict: Verdict) -> io::Result<()> {
        match verdict {
            Verdict::Stream => {
                self.accepted.fetch_add(1, Ordering::Relaxed);
                self.bailian_sse.fetch_add(1, Ordering::Relaxed);
                match self.writes {
                    FrameWrites::One => stream.write_all(&self.answers.stream).await,
                    FrameWrites::PerFrame => {
                        for piece in &self.answers.stream_writes {
                            stream.write_all(piece).await?;
                            stream.flush().await?;
                        }
                        Ok(())
                    }
                }
            }
            Verdict::Json => {
                self.accepted.fetch_add(1, Ordering::Relaxed);
                self.bailian_json.fetch_add(1, Ordering::Relaxed);
                stream.write_all(&self.answers.json).await
            }
            Verdict::OpenAi => {
                self.accepted.fetch_add(1, Ordering::Relaxed);
                self.openai_json.fetch_add(1, Ordering::Relaxed);
                stream.write_all(&self.answers.openai).await
            }
            Verdict::Reject(rejection) => {
                self.rejected.fetch_add(1, Ordering::Relaxed);
                let _ = self.first_rejection.set(format!(
                    "{} {}: {}",
                    rejection.status, rejection.code, rejection.message
                ));
                stream.write_all(&rejection.render()).await
            }
        }
    }
}

/// What the buffered bytes hold.
#[derive(Debug, PartialEq, Eq)]
enum Parsed {
    /// Not a whole request yet.
    Partial,
    /// A whole request of `length` bytes, head and body.
    Complete {
        length: usize,
        verdict: Verdict,
        close: bool,
    },
}

#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Stream,
    Json,
    /// An OpenAI-compatible, non-streaming chat completion.
    OpenAi,
    Reject(Rejection),
}

impl Verdict {
    /// After a framing error the next request's start is unknown: the connection must go.
    fn closes(&self) -> bool {
        matches!(self, Verdict::Reject(rejection) if rejection.close)
    }
}

/// An error answer, with Bailian's JSON error body.
#[derive(Debug, PartialEq, Eq)]
struct Rejection {
    status: u16,
    code: &'static str,
    message: &'static str,
    close: bool,
}

impl Rejection {
    /// A request whose end cannot be found: answered, then the connection is closed.
    fn framing(status: u16, message: &'static str) -> Parsed {
        Parsed::Complete {
            length: 0,
            verdict: Verdict::Reject(Rejection {
                status,
                code: "InvalidParameter",
                message,
                close: true,
            }),
            close: true,
        }
    }

    fn render(&self) -> Bytes {
        let body = json!({"code": self.code, "message": self.message, "request_id": REQUEST_ID})
            .to_string();
        let close = if self.close {
            "Connection: close\r\n"
        } else {
            ""
        };
        Bytes::from(format!(
            "HTTP/1.1 {} {}\r\nContent-Type: application/json;charset=UTF-8\r\n\
             Content-Length: {}\r\nX-Request-Id: {REQUEST_ID}\r\n{close}\r\n{body}",
            self.status,
            reason(self.status),
            body.len()
        ))
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        _ => "Error",
    }
}

/// Parses the request at the start of `buffer` and judges it as Bailian would.
fn parse(buffer: &[u8]) -> Parsed {
    if buffer.is_empty() {
        return Parsed::Partial;
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let head_length = match request.parse(buffer) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) if buffer.len() > MAX_HEAD_BYTES => {
            return Rejection::framing(431, "The request head is too large.");
        }
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Rejection::framing(400, "Malformed HTTP request."),
    };
    let mut body_length = 0;
    let mut key = None;
    let mut streaming = false;
    let mut close = request.version == Some(0);
    for header in request.headers.iter() {
        let name = header.name;
        let value = header.value;
        if name.eq_ignore_ascii_case("content-length") {
            match std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
            {
                Some(length) => body_length = length,
                None => return Rejection::framing(400, "Invalid Content-Length."),
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Rejection::framing(400, "Chunked request bodies are not supported.");
        } else if name.eq_ignore_ascii_case("authorization") {
            key = value.strip_prefix(b"Bearer ");
        } else if name.eq_ignore_ascii_case("x-dashscope-sse") {
            streaming |= value.eq_ignore_ascii_case(b"enable");
        } else if name.eq_ignore_ascii_case("accept") {
            streaming |= contains(&value.to_ascii_lowercase(), b"text/event-stream");
        } else if name.eq_ignore_ascii_case("connection") {
            close = contains(&value.to_ascii_lowercase(), b"close");
        }
    }
    if body_length > MAX_BODY_BYTES {
        return Rejection::framing(413, "The request body is too large.");
    }
    let length = head_length + body_length;
    if buffer.len() < length {
        return Parsed::Partial;
    }
    let body = &buffer[head_length..length];
    let verdict = if request.method != Some("POST") {
        Verdict::Reject(rejection(405, "MethodNotAllowed", "Use POST."))
    } else if request.path == Some(OPENAI_PATH) {
        match key.map(<[u8]>::trim_ascii) {
            None => Verdict::Reject(rejection(401, "invalid_api_key", "No API key provided.")),
            Some(key) if key != API_KEY.as_bytes() => Verdict::Reject(rejection(
                401,
                "invalid_api_key",
                "Incorrect API key provided.",
            )),
            Some(_) if !contains(body, b"\"messages\"") => Verdict::Reject(rejection(
                400,
                "invalid_request_error",
                "'messages' is a required property",
            )),
            Some(_)
                if contains(body, b"\"stream\":true") || contains(body, b"\"stream\": true") =>
            {
                Verdict::Reject(rejection(
                    400,
                    "invalid_request_error",
                    "This fake answers OpenAI calls without streaming only.",
                ))
            }
            Some(_) => Verdict::OpenAi,
        }
    } else if request.path.and_then(app_of) != Some(APP_ID) {
        Verdict::Reject(rejection(404, "NotFound", "No such API."))
    } else {
        match key.map(<[u8]>::trim_ascii) {
            None => Verdict::Reject(rejection(401, "InvalidApiKey", "No API-key provided.")),
            Some(key) if key != API_KEY.as_bytes() => {
                Verdict::Reject(rejection(401, "InvalidApiKey", "Invalid API-key provided."))
            }
            Some(_) if !contains(body, b"\"messages\"") => {
                Verdict::Reject(rejection(400, "InvalidParameter", NO_INPUT))
            }
            Some(_) if streaming => Verdict::Stream,
            Some(_) => Verdict::Json,
        }
    };
    Parsed::Complete {
        length,
        verdict,
        close,
    }
}

/// The app id of a native completion path `/api/v1/apps/{app_id}/completion`.
fn app_of(path: &str) -> Option<&str> {
    path.strip_prefix("/api/v1/apps/")?
        .strip_suffix("/completion")
}

fn rejection(status: u16, code: &'static str, message: &'static str) -> Rejection {
    Rejection {
        status,
        code,
        message,
        close: false,
    }
}

/// Whether `needle` occurs in `haystack` (the needle is found near the start of botgate's
/// bodies, so a plain scan is as fast as anything).
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && haystack
            .windows(needle.len())
            .any(|window| window == needle)
}

impl Answers {
    fn render(answer: &str) -> Answers {
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream;charset=UTF-8\r\n\
             Transfer-Encoding: chunked\r\nCache-Control: no-cache\r\nX-Request-Id: {REQUEST_ID}\r\n\r\n"
        );
        let events = events(answer);
        let last = events.len().saturating_sub(1);
        let mut stream_writes = Vec::with_capacity(events.len());
        for (index, event) in events.iter().enumerate() {
            let mut piece = Vec::with_capacity(event.len() + head.len() + 16);
            if index == 0 {
                piece.extend_from_slice(head.as_bytes());
            }
            piece.extend_from_slice(format!("{:x}\r\n", event.len()).as_bytes());
            piece.extend_from_slice(event.as_bytes());
            piece.extend_from_slice(b"\r\n");
            if index == last {
                piece.extend_from_slice(b"0\r\n\r\n");
            }
            stream_writes.push(Bytes::from(piece));
        }
        let stream = Bytes::from(stream_writes.concat());

        let body = format!(
            "{{\"output\":{{\"finish_reason\":\"stop\",\"session_id\":\"{SESSION_ID}\",\"text\":{}}},{},\"request_id\":\"{REQUEST_ID}\"}}",
            Value::from(answer),
            usage(answer.chars().count()),
        );
        let json = Bytes::from(format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json;charset=UTF-8\r\n\
             Content-Length: {}\r\nX-Request-Id: {REQUEST_ID}\r\n\r\n{body}",
            body.len()
        ));
        let chars = answer.chars().count();
        let body = format!(
            "{{\"id\":\"chatcmpl-{SESSION_ID}\",\"object\":\"chat.completion\",\"created\":1700000000,\"model\":\"{MODEL_ID}\",\"choices\":[{{\"index\":0,\"message\":{{\"role\":\"assistant\",\"content\":{}}},\"finish_reason\":\"stop\"}}],\"usage\":{{\"prompt_tokens\":{INPUT_TOKENS},\"completion_tokens\":{chars},\"total_tokens\":{}}}}}",
            Value::from(answer),
            INPUT_TOKENS + chars,
        );
        let openai = Bytes::from(format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nX-Request-Id: {REQUEST_ID}\r\n\r\n{body}",
            body.len()
        ));
        Answers {
            stream,
            stream_writes,
            json,
            openai,
        }
    }
}

/// Bailian's SSE events for `answer` with `incremental_output` (outbound.md §1.5): a delta per
/// event with the string `"null"` as `finish_reason`, then a `"stop"` event with empty text.
fn events(answer: &str) -> Vec<String> {
    let mut events = Vec::new();
    let mut tokens = 0;
    for delta in deltas(answer) {
        tokens += delta.chars().count();
        events.push(event(events.len() + 1, "null", delta, tokens));
    }
    events.push(event(events.len() + 1, "stop", "", tokens));
    events
}

/// No space after the colons, and the `:HTTP_STATUS` comment line, as Bailian writes them.
fn event(id: usize, finish_reason: &str, text: &str, output_tokens: usize) -> String {
    format!(
        "id:{id}\nevent:result\n:HTTP_STATUS/200\ndata:{{\"output\":{{\"session_id\":\"{SESSION_ID}\",\"finish_reason\":\"{finish_reason}\",\"text\":{}}},{},\"request_id\":\"{REQUEST_ID}\"}}\n\n",
        Value::from(text),
        usage(output_tokens),
    )
}

fn usage(output_tokens: usize) -> String {
    format!(
        "\"usage\":{{\"models\":[{{\"input_tokens\":{INPUT_TOKENS},\"output_tokens\":{output_tokens},\"model_id\":\"{MODEL_ID}\"}}]}}"
    )
}

/// `text` in pieces of [`DELTA_CHARS`] characters (not bytes: the answer is Chinese).
fn deltas(text: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut start = 0;
    for (count, (index, _)) in text.char_indices().enumerate() {
        if count > 0 && count % DELTA_CHARS == 0 {
            pieces.push(&text[start..index]);
            start = index;
        }
    }
    if start < text.len() {
        pieces.push(&text[start..]);
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::ANSWER;
    use tokio::io::AsyncReadExt;

    const BODY: &str = r#"{"debug":{},"input":{"messages":[{"role":"user","content":"你好"}]},"parameters":{"incremental_output":true}}"#;

    fn request(key: &str, stream: bool, body: &str) -> Vec<u8> {
        let sse = if stream {
            "X-DashScope-SSE: enable\r\nAccept: text/event-stream\r\n"
        } else {
            ""
        };
        format!(
            "POST /api/v1/apps/{APP_ID}/completion HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n\
             Content-Type: application/json\r\n{sse}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    /// A response as a client sees it: status, headers (names lower-cased), de-chunked body.
    #[derive(Debug)]
    struct Seen {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        /// The chunks, for a chunked body.
        chunks: Vec<Vec<u8>>,
    }

    impl Seen {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str())
        }
    }

    /// Reads one response from `stream`, strictly: a malformed chunk fails the test.
    async fn read_response(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<Seen> {
        loop {
            if let Some((seen, used)) = decode(buffer) {
                buffer.drain(..used);
                return Some(seen);
            }
            let mut more = [0_u8; 8192];
            let read = stream.read(&mut more).await.unwrap();
            if read == 0 {
                assert!(buffer.is_empty(), "connection closed mid-response");
                return None;
            }
            buffer.extend_from_slice(&more[..read]);
        }
    }

    /// A whole response at the start of `buffer` and its length, or `None` if incomplete.
    fn decode(buffer: &[u8]) -> Option<(Seen, usize)> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        let httparse::Status::Complete(head) = response.parse(buffer).unwrap() else {
            return None;
        };
        let headers: Vec<(String, String)> = response
            .headers
            .iter()
            .map(|header| {
                (
                    header.name.to_ascii_lowercase(),
                    String::from_utf8(header.value.to_vec()).unwrap(),
                )
            })
            .collect();
        let status = response.code.unwrap();
        let find = |name: &str| headers.iter().find(|(key, _)| key == name);
        if let Some((_, length)) = find("content-length") {
            let end = head + length.parse::<usize>().unwrap();
            let body = buffer.get(head..end)?.to_vec();
            let seen = Seen {
                status,
                headers,
                body,
                chunks: Vec::new(),
            };
            return Some((seen, end));
        }
        assert_eq!(find("transfer-encoding").unwrap().1, "chunked");
        let mut at = head;
        let mut chunks = Vec::new();
        loop {
            let line_end = at + buffer.get(at..)?.windows(2).position(|w| w == b"\r\n")?;
            let size =
                usize::from_str_radix(std::str::from_utf8(&buffer[at..line_end]).unwrap(), 16)
                    .expect("a hex chunk size");
            let data = line_end + 2;
            let end = data + size;
            let trailer = buffer.get(end..end + 2)?;
            assert_eq!(trailer, b"\r\n", "chunk data must end with CRLF");
            at = end + 2;
            if size == 0 {
                break;
            }
            chunks.push(buffer[data..end].to_vec());
        }
        let seen = Seen {
            status,
            headers,
            body: chunks.concat(),
            chunks,
        };
        Some((seen, at))
    }

    async fn connect(fake: &LeanBailian) -> TcpStream {
        TcpStream::connect(fake.server.address()).await.unwrap()
    }

    async fn exchange(fake: &LeanBailian, request: &[u8]) -> Seen {
        let mut stream = connect(fake).await;
        stream.write_all(request).await.unwrap();
        read_response(&mut stream, &mut Vec::new()).await.unwrap()
    }

    /// The events of an SSE body, each as its JSON `data`, checking Bailian's line format.
    fn events_of(body: &[u8]) -> Vec<Value> {
        let text = std::str::from_utf8(body).unwrap();
        assert!(text.ends_with("\n\n"));
        text.trim_end_matches("\n\n")
            .split("\n\n")
            .enumerate()
            .map(|(index, event)| {
                let lines: Vec<&str> = event.lines().collect();
                assert_eq!(lines.len(), 4, "{event}");
                assert_eq!(lines[0], format!("id:{}", index + 1));
                assert_eq!(lines[1], "event:result");
                assert_eq!(lines[2], ":HTTP_STATUS/200");
                let data = lines[3].strip_prefix("data:").expect("a data line");
                serde_json::from_str(data).unwrap()
            })
            .collect()
    }

    #[tokio::test]
    async fn a_streamed_answer_is_chunked_sse_whose_deltas_make_the_answer() {
        for writes in [FrameWrites::One, FrameWrites::PerFrame] {
            let fake = LeanBailian::start(ANSWER, writes).unwrap();
            let seen = exchange(&fake, &request(API_KEY, true, BODY)).await;
            assert_eq!(seen.status, 200);
            assert_eq!(
                seen.header("content-type"),
                Some("text/event-stream;charset=UTF-8")
            );
            assert_eq!(seen.header("cache-control"), Some("no-cache"));
            assert_eq!(seen.header("x-request-id"), Some(REQUEST_ID));
            let events = events_of(&seen.body);
            let chars = ANSWER.chars().count();
            assert_eq!(events.len(), chars.div_ceil(DELTA_CHARS) + 1);
            // Each event is one HTTP chunk.
            assert_eq!(seen.chunks.len(), events.len());
            assert!(seen.chunks.iter().all(|chunk| chunk.starts_with(b"id:")));
            let (last, deltas) = events.split_last().unwrap();
            let mut text = String::new();
            for event in deltas {
                assert_eq!(event["output"]["finish_reason"], "null");
                let delta = event["output"]["text"].as_str().unwrap();
                assert!(delta.chars().count() <= DELTA_CHARS);
                text.push_str(delta);
            }
            assert_eq!(text, ANSWER);
            assert_eq!(last["output"]["finish_reason"], "stop");
            assert_eq!(last["output"]["text"], "");
            assert_eq!(last["usage"]["models"][0]["output_tokens"], chars);
            assert_eq!(last["request_id"], REQUEST_ID);
            assert_eq!((fake.accepted(), fake.rejected()), (1, 0));
        }
    }

    #[tokio::test]
    async fn a_json_answer_has_its_length_and_the_whole_text() {
        let fake = LeanBailian::start(ANSWER, FrameWrites::One).unwrap();
        let seen = exchange(&fake, &request(API_KEY, false, BODY)).await;
        assert_eq!(seen.status, 200);
        assert_eq!(
            seen.header("content-type"),
            Some("application/json;charset=UTF-8")
        );
        let body: Value = serde_json::from_slice(&seen.body).unwrap();
        assert_eq!(body["output"]["text"], ANSWER);
        assert_eq!(body["output"]["finish_reason"], "stop");
        assert_eq!(fake.accepted(), 1);
    }

    #[tokio::test]
    async fn a_wrong_key_gets_401_invalid_api_key_and_is_counted() {
        let fake = LeanBailian::start(ANSWER, FrameWrites::One).unwrap();
        let seen = exchange(&fake, &request("sk-wrong", true, BODY)).await;
        assert_eq!(seen.status, 401);
        let body: Value = serde_json::from_slice(&seen.body).unwrap();
        assert_eq!(body["code"], "InvalidApiKey");
        assert_eq!(body["message"], "Invalid API-key provided.");
        assert_eq!(body["request_id"], REQUEST_ID);
        assert_eq!((fake.accepted(), fake.rejected()), (0, 1));
        assert!(fake
            .first_rejection()
            .unwrap()
            .starts_with("401 InvalidApiKey"));
    }

    #[tokio::test]
    async fn requests_bailian_would_refuse_are_refused() {
        let fake = LeanBailian::start(ANSWER, FrameWrites::One).unwrap();
        let no_messages = request(API_KEY, true, r#"{"input":{}}"#);
        assert_eq!(exchange(&fake, &no_messages).await.status, 400);
        assert_eq!(
            exchange(&fake, &request(API_KEY, true, "")).await.status,
            400
        );
        let wrong_path = String::from_utf8(request(API_KEY, true, BODY))
            .unwrap()
            .replace("app-bench", "app-other");
        assert_eq!(exchange(&fake, wrong_path.as_bytes()).await.status, 404);
        let no_key = String::from_utf8(request(API_KEY, true, BODY))
            .unwrap()
            .replace("Authorization", "X-Nothing");
        assert_eq!(exchange(&fake, no_key.as_bytes()).await.status, 401);
        assert_eq!((fake.accepted(), fake.rejected()), (0, 4));
    }

    #[tokio::test]
    async fn a_chunked_request_body_gets_400_and_the_connection_closes() {
        let fake = LeanBailian::start(ANSWER, FrameWrites::One).unwrap();
        let mut stream = connect(&fake).await;
        let chunked = format!(
            "POST /api/v1/apps/{APP_ID}/completion HTTP/1.1\r\nAuthorization: Bearer {API_KEY}\r\n\
             Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{BODY}\r\n0\r\n\r\n",
            BODY.len()
        );
        stream.write_all(chunked.as_bytes()).await.unwrap();
        let mut buffer = Vec::new();
        let seen = read_response(&mut stream, &mut buffer).await.unwrap();
        assert_eq!(seen.status, 400);
        assert_eq!(seen.header("connection"), Some("close"));
        assert!(read_response(&mut stream, &mut buffer).await.is_none());
        assert_eq!(fake.accepted(), 0);
    }

    #[tokio::test]
    async fn one_keep_alive_connection_carries_several_requests_pipelined_or_not() {
        let fake = LeanBailian::start(ANSWER, FrameWrites::One).unwrap();
        let mut stream = connect(&fake).await;
        let mut buffer = Vec::new();
        for stream_it in [true, false] {
            stream
                .write_all(&request(API_KEY, stream_it, BODY))
                .await
                .unwrap();
            let seen = read_response(&mut stream, &mut buffer).await.unwrap();
            assert_eq!(seen.status, 200);
        }
        // Two requests in one write: both answered, in order.
        let mut pipelined = request(API_KEY, false, BODY);
        pipelined.extend_from_slice(&request(API_KEY, true, BODY));
        stream.write_all(&pipelined).await.unwrap();
        let first = read_response(&mut stream, &mut buffer).await.unwrap();
        let second = read_response(&mut stream, &mut buffer).await.unwrap();
        assert!(first.header("content-length").is_some());
        assert_eq!(
            second.header("content-type"),
            Some("text/event-stream;charset=UTF-8")
        );
        assert_eq!(fake.accepted(), 4);
    }

    #[tokio::test]
    async fn a_request_split_across_writes_is_answered_once_whole() {
        let fake = LeanBailian::start(ANSWER, FrameWrites::One).unwrap();
        let mut stream = connect(&fake).await;
        stream.set_nodelay(true).unwrap();
        let whole = request(API_KEY, true, BODY);
        let mut buffer = Vec::new();
        // Inside the request line, inside a header, right after the head, inside the body.
        let head_end = whole.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        for split in [3, 40, head_end, head_end + 10] {
            stream.write_all(&whole[..split]).await.unwrap();
            stream.flush().await.unwrap();
            stream.write_all(&whole[split..]).await.unwrap();
            let seen = read_response(&mut stream, &mut buffer).await.unwrap();
            assert_eq!(seen.status, 200, "split at {split}");
        }
        assert_eq!((fake.accepted(), fake.rejected()), (4, 0));
    }

    #[test]
    fn a_request_is_partial_until_its_last_byte() {
        let whole = request(API_KEY, true, BODY);
        for end in 0..whole.len() {
            assert_eq!(parse(&whole[..end]), Parsed::Partial, "at {end}");
        }
        let mut two = whole.clone();
        two.extend_from_slice(&whole[..10]);
        assert_eq!(
            parse(&two),
            Parsed::Complete {
                length: whole.len(),
                verdict: Verdict::Stream,
                close: false
            }
        );
    }

    fn openai_request(key: &str, body: &str) -> Vec<u8> {
        format!(
            "POST {OPENAI_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    #[tokio::test]
    async fn an_openai_call_gets_a_chat_completion_with_the_answer_and_is_counted_apart() {
        let fake = LeanBailian::start(ANSWER, FrameWrites::One).unwrap();
        let body = r#"{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "你好"}]}"#;
        let seen = exchange(&fake, &openai_request(API_KEY, body)).await;
        assert_eq!(seen.status, 200);
        assert_eq!(seen.header("content-type"), Some("application/json"));
        let answer: Value = serde_json::from_slice(&seen.body).unwrap();
        assert_eq!(answer["object"], "chat.completion");
        assert_eq!(answer["choices"][0]["message"]["role"], "assistant");
        assert_eq!(answer["choices"][0]["message"]["content"], ANSWER);
        assert_eq!(answer["choices"][0]["finish_reason"], "stop");
        assert_eq!(
            exchange(&fake, &request(API_KEY, true, BODY)).await.status,
            200
        );
        assert_eq!(
            fake.protocols(),
            Protocols {
                bailian_sse: 1,
                bailian_json: 0,
                openai_json: 1
            }
        );
        assert_eq!(
            fake.protocols().describe(),
            "Bailian SSE + OpenAI chat/completions JSON"
        );
        assert_eq!(fake.accepted(), 2);
        // A wrong key, no messages, or a streaming call are refused.
        assert_eq!(
            exchange(&fake, &openai_request("sk-other", body))
                .await
                .status,
            401
        );
        assert_eq!(
            exchange(&fake, &openai_request(API_KEY, "{}")).await.status,
            400
        );
        let streaming = r#"{"model":"m","messages":[],"stream":true}"#;
        assert_eq!(
            exchange(&fake, &openai_request(API_KEY, streaming))
                .await
                .status,
            400
        );
        assert_eq!((fake.accepted(), fake.rejected()), (2, 3));
    }

    #[test]
    fn deltas_split_on_characters() {
        assert_eq!(deltas("你好，世界！再见"), ["你好，", "世界！", "再见"]);
        assert!(deltas("").is_empty());
    }
}
