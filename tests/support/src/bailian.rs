//! `FakeBailian`: a loopback server speaking the Bailian application API (outbound.md §1).
//!
//! The native route is `POST /api/v1/apps/{app_id}/completion` (JSON, or the quirky SSE of
//! §1.5); the OpenAI-compatible route of §1.8 is `POST /compatible-mode/v1/chat/completions`.
//! Both accept only [`FakeBailian::api_key`], answer with the current [`Answer`] and fail as
//! scripted with [`FakeBailian::push_failures`].

mod compat;
mod native;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, HttpRequest};
use tokio::sync::watch;

use crate::server::{header_pairs, lock, parse_body, uuid_like, wait_until, RunningServer};

/// The only API key the fake accepts.
pub const API_KEY: &str = "sk-test-bailian";
/// The only app id the fake serves; others get 403 `App.AccessDenied`.
pub const APP_ID: &str = "app-test";
/// The model reported in `usage` and in OpenAI-style answers.
const MODEL_ID: &str = "qwen-max";
/// Characters per streamed chunk: small, so even a short answer spans several frames.
const CHUNK_CHARS: usize = 3;

/// How successful calls answer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Answer {
    /// `format!("echo: {last} (history: {n})")`: `last` is the last user content and `n` the
    /// number of messages before it (native: in `input.messages`, 0 for a lone `input.prompt`;
    /// OpenAI route: not counting a leading system message).
    #[default]
    Echo,
    /// Always this text.
    Fixed(String),
    /// This text, with `doc_references` (native route; final frame when streaming).
    WithReferences {
        text: String,
        /// `(doc_name, title)` per reference, numbered from 1 in `index_id`.
        references: Vec<(String, String)>,
    },
    /// `format!("{text} #{n}")`, `n` counting the calls planned so far (1, 2, …): every call
    /// answers differently, so a test can tell which call a delivered text came from.
    Numbered(String),
}

/// How one call fails. Each is consumed by one completion call that passed the key, app and
/// body checks; normal answers resume once the queue is empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// HTTP 429 `Throttling.RateQuota`.
    Throttled,
    /// HTTP 500 `InternalError`.
    ServerError,
    /// HTTP 400 `DataInspectionFailed`, "Input data may contain inappropriate content.".
    DataInspection,
    /// HTTP 401 `InvalidApiKey`, whatever key was sent.
    InvalidApiKey,
    /// HTTP 403 `App.AccessDenied`, whatever app was called.
    AppAccessDenied,
    /// Streaming: HTTP 200 SSE with one normal frame, then an `event:error` frame
    /// (`:HTTP_STATUS/400`, `DataInspectionFailed`, "Output data may contain…").
    /// Not streaming: HTTP 400 `DataInspectionFailed` with the "Output data…" message.
    StreamError,
    /// HTTP 200 `application/json` carrying `{"code":"InternalError",…}` and no `output`,
    /// for streaming requests too.
    BusinessErrorIn200,
    /// Accepts the request, sends nothing for this long, then answers normally.
    Hang(Duration),
    /// Any other error: this HTTP status with a JSON error body (e.g. 400 `Arrearage`,
    /// 503 `ServiceUnavailable`). On the OpenAI route `code` is also the error `type`.
    Custom {
        status: u16,
        code: String,
        message: String,
    },
    /// Streaming native requests: this HTTP status with an SSE body holding a single
    /// `event:error` frame (`:HTTP_STATUS/{status}`), the shape proxies report for 429s (§1.5).
    /// Otherwise the same as [`Failure::Custom`].
    SseError {
        status: u16,
        code: String,
        message: String,
    },
}

/// One request as the fake received it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    pub path: String,
    /// Header names in lowercase, in the order received.
    pub headers: Vec<(String, String)>,
    /// The JSON body; `Value::String` if it was not JSON, `Null` if empty.
    pub body: serde_json::Value,
    /// Native route: `X-DashScope-SSE: enable` or `Accept: text/event-stream`;
    /// OpenAI route: `"stream": true`.
    pub streaming: bool,
    /// The HTTP version the request arrived over (`HTTP/1.1`, `HTTP/2.0`).
    pub http_version: String,
}

impl RecordedRequest {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// A fake Bailian on `127.0.0.1`, stopped when dropped.
#[derive(Debug)]
pub struct FakeBailian {
    server: RunningServer,
    shared: Arc<Shared>,
}

impl FakeBailian {
    /// Starts a fake answering with [`Answer::Echo`], no delay and no failures.
    pub async fn start() -> FakeBailian {
        let shared = Arc::new(Shared::new());
        let data = web::Data::from(Arc::clone(&shared));
        let server = RunningServer::start("bailian", move |config: &mut web::ServiceConfig| {
            config
                .app_data(data.clone())
                .route(native::PATH, web::route().to(native::completion))
                .route(compat::PATH, web::route().to(compat::chat_completions))
                .default_service(web::to(not_found));
        })
        .await;
        FakeBailian { server, shared }
    }

    /// `http://127.0.0.1:PORT`; clients append `/api/v1/apps/{app_id}/completion`.
    pub fn base_url(&self) -> String {
        self.server.url()
    }

    /// The full native completion URL for [`Self::app_id`].
    pub fn completion_url(&self) -> String {
        format!("{}/api/v1/apps/{APP_ID}/completion", self.base_url())
    }

    /// The OpenAI-compatible base URL (`…/compatible-mode/v1`); clients append
    /// `/chat/completions`.
    pub fn compatible_base_url(&self) -> String {
        format!("{}/compatible-mode/v1", self.base_url())
    }

    pub fn api_key(&self) -> &'static str {
        API_KEY
    }

    pub fn app_id(&self) -> &'static str {
        APP_ID
    }

    /// How successful calls answer from now on.
    pub fn set_answer(&self, answer: Answer) {
        lock(&self.shared.state).answer = answer;
    }

    /// The next calls fail this way, in order; then normal answers resume.
    pub fn push_failures(&self, failures: impl IntoIterator<Item = Failure>) {
        lock(&self.shared.state).failures.extend(failures);
    }

    /// Delay before the first byte of a successful answer (JSON or stream). Default zero.
    pub fn set_delay(&self, first_token: Duration) {
        lock(&self.shared.state).first_token_delay = first_token;
    }

    /// Pause between two streamed frames, for idle-timeout and typing-indicator tests.
    /// Default zero: frames are still written separately, without waiting.
    pub fn set_chunk_interval(&self, interval: Duration) {
        lock(&self.shared.state).chunk_interval = interval;
    }

    /// Every request received, in order, including rejected ones and unknown paths.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.state).requests.clone()
    }

    /// Forgets the recorded requests (a long benchmark need not keep every body).
    /// [`Self::calls`] keeps counting.
    pub fn clear_requests(&self) {
        lock(&self.shared.state).requests.clear();
    }

    /// TCP connections accepted so far: one per client connection, however many requests
    /// it carried (keep-alive, HTTP/2 multiplexing).
    pub fn connections(&self) -> u64 {
        self.server.connections()
    }

    /// Completion requests received on either route, rejected ones included.
    pub fn calls(&self) -> usize {
        *self.shared.calls.borrow()
    }

    /// Waits until [`Self::calls`] reaches `n`; false if `timeout` passes first.
    pub async fn wait_for_calls(&self, n: usize, timeout: Duration) -> bool {
        wait_until(&self.shared.calls, n, timeout).await
    }
}

/// State shared between the handle and the server's handlers.
#[derive(Debug)]
pub(crate) struct Shared {
    state: Mutex<State>,
    calls: watch::Sender<usize>,
}

#[derive(Debug, Default)]
struct State {
    answer: Answer,
    failures: VecDeque<Failure>,
    first_token_delay: Duration,
    chunk_interval: Duration,
    requests: Vec<RecordedRequest>,
    planned: usize,
}

/// What one accepted call does, decided under a single lock.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) failure: Option<Failure>,
    pub(crate) answer: Answer,
    /// 1 for the first call planned, 2 for the next, …
    pub(crate) call: usize,
    pub(crate) first_token_delay: Duration,
    pub(crate) chunk_interval: Duration,
}

impl Shared {
    fn new() -> Shared {
        Shared {
            state: Mutex::new(State::default()),
            calls: watch::Sender::new(0),
        }
    }

    /// Records a request; a completion call also bumps the counter that waiters watch.
    pub(crate) fn record(&self, request: RecordedRequest, is_completion: bool) {
        lock(&self.state).requests.push(request);
        if is_completion {
            self.calls.send_modify(|count| *count += 1);
        }
    }

    /// Takes the next scripted failure, if any, with the current answer and timings.
    pub(crate) fn plan(&self) -> Plan {
        let mut state = lock(&self.state);
        state.planned += 1;
        Plan {
            call: state.planned,
            failure: state.failures.pop_front(),
            answer: state.answer.clone(),
            first_token_delay: state.first_token_delay,
            chunk_interval: state.chunk_interval,
        }
    }
}

/// The text (and references) of one successful answer.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) text: String,
    pub(crate) references: Vec<(String, String)>,
}

impl Answer {
    pub(crate) fn reply(&self, last_user: &str, history: usize, call: usize) -> Reply {
        match self {
            Answer::Echo => Reply {
                text: format!("echo: {last_user} (history: {history})"),
                references: Vec::new(),
            },
            Answer::Fixed(text) => Reply {
                text: text.clone(),
                references: Vec::new(),
            },
            Answer::WithReferences { text, references } => Reply {
                text: text.clone(),
                references: references.clone(),
            },
            Answer::Numbered(text) => Reply {
                text: format!("{text} #{call}"),
                references: Vec::new(),
            },
        }
    }
}

/// Splits text into chunks of [`CHUNK_CHARS`] characters, on char boundaries.
pub(crate) fn chunks(text: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut start = 0;
    for (count, (index, _)) in text.char_indices().enumerate() {
        if count > 0 && count % CHUNK_CHARS == 0 {
            pieces.push(&text[start..index]);
            start = index;
        }
    }
    if start < text.len() {
        pieces.push(&text[start..]);
    }
    pieces
}

/// Token counts are characters: good enough for usage that must be present and grow.
pub(crate) fn tokens(text: &str) -> usize {
    text.chars().count()
}

/// Text of a message's `content`: a string, or the `text` parts of an OpenAI parts array.
pub(crate) fn content_text(content: &serde_json::Value) -> String {
    match content {
        serde_json::Value::String(text) => text.clone(),
        serde_json::Value::Array(parts) => parts
            .iter()
            .filter_map(|part| part.get("text").and_then(serde_json::Value::as_str))
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

/// Builds the record of a request: lowercase headers and the body as JSON if it parses.
pub(crate) fn recorded(request: &HttpRequest, body: &[u8], streaming: bool) -> RecordedRequest {
    RecordedRequest {
        path: request.path().to_owned(),
        headers: header_pairs(request),
        body: parse_body(body),
        streaming,
        http_version: format!("{:?}", request.version()),
    }
}

/// Unknown paths: recorded, then a Bailian-style 404.
async fn not_found(
    request: HttpRequest,
    body: web::Bytes,
    shared: web::Data<Shared>,
) -> actix_web::HttpResponse {
    shared.record(recorded(&request, &body, false), false);
    native::error_response(404, "NotFound", "Not found.", &uuid_like())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_split_on_char_boundaries() {
        assert_eq!(chunks("你好，世界！再见"), ["你好，", "世界！", "再见"]);
        assert_eq!(chunks("abcdef"), ["abc", "def"]);
        assert!(chunks("").is_empty());
    }
}
