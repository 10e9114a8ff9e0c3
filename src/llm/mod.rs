//! LLM providers behind one closed enum, and the one retry loop they all share.

mod bailian;
mod error;
mod h2;
mod openai;
mod rules;
pub mod sse;
mod transport;

pub use bailian::Bailian;
pub use error::LlmError;
pub use openai::OpenAi;
pub use rules::Rules;
pub use transport::{LlmHttp, LlmProtocol};

use std::future::Future;
use std::time::{Duration, Instant};

use crate::config::CallLimits;
use crate::store::Turn;

/// Everything a provider needs for one answer.
pub struct CompletionRequest<'a> {
    pub history: &'a [Turn],
    pub user: &'a str,
    /// Image URLs for vision applications.
    pub images: &'a [String],
    /// Bailian's own session, when the bot keeps history there instead of in `history`.
    pub session_id: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub title: String,
    pub doc_name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Completion {
    pub text: String,
    pub session_id: Option<String>,
    pub references: Vec<Reference>,
    pub request_id: Option<String>,
}

/// Receives the answer as it streams; remembers whether anything went out, because a retry
/// after partial output would show the user the beginning twice.
pub struct DeltaSink<'a> {
    callback: Option<&'a mut (dyn FnMut(&str) + Send)>,
    emitted: bool,
    first_at: Option<Instant>,
}

impl<'a> DeltaSink<'a> {
    pub fn new(callback: Option<&'a mut (dyn FnMut(&str) + Send)>) -> Self {
        DeltaSink {
            callback,
            emitted: false,
            first_at: None,
        }
    }

    pub fn none() -> Self {
        DeltaSink {
            callback: None,
            emitted: false,
            first_at: None,
        }
    }

    /// When the first non-empty piece of the answer arrived (time to first token).
    pub fn first_at(&self) -> Option<Instant> {
        self.first_at
    }

    pub fn emit(&mut self, delta: &str) {
        if delta.is_empty() {
            return;
        }
        self.emitted = true;
        self.first_at.get_or_insert_with(Instant::now);
        if let Some(callback) = self.callback.as_mut() {
            callback(delta);
        }
    }

    pub fn emitted(&self) -> bool {
        self.emitted
    }
}

pub enum Llm {
    Bailian(Bailian),
    OpenAi(OpenAi),
    Rules(Rules),
}

const BACKOFF_BASE: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(4);

impl Llm {
    pub fn kind(&self) -> &'static str {
        match self {
            Llm::Bailian(_) => "bailian",
            Llm::OpenAi(_) => "openai",
            Llm::Rules(_) => "rules",
        }
    }

    /// The longest one answer may take, retries included.
    pub fn call_deadline(&self) -> Duration {
        self.limits().map_or(Duration::ZERO, |limits| {
            Duration::from_secs(limits.timeout_secs)
        })
    }

    fn limits(&self) -> Option<&CallLimits> {
        match self {
            Llm::Bailian(provider) => Some(provider.limits()),
            Llm::OpenAi(provider) => Some(provider.limits()),
            Llm::Rules(_) => None,
        }
    }

    /// One answer, with transient failures (throttling, 5xx, timeouts, broken connections)
    /// retried with exponential backoff and jitter, all inside the provider's total deadline.
    pub async fn complete(
        &self,
        request: &CompletionRequest<'_>,
        sink: &mut DeltaSink<'_>,
    ) -> Result<Completion, LlmError> {
        let Some(limits) = self.limits() else {
            let Llm::Rules(rules) = self else {
                unreachable_provider()
            };
            let text = rules.answer(request.user).to_owned();
            sink.emit(&text);
            return Ok(Completion {
                text,
                ..Completion::default()
            });
        };
        let deadline = Instant::now() + Duration::from_secs(limits.timeout_secs);
        let mut attempt = 0u32;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let result =
                match tokio::time::timeout(remaining, self.attempt(request, sink, remaining)).await
                {
                    Ok(result) => result,
                    Err(_) => Err(LlmError::Timeout),
                };
            let error = match result {
                Ok(completion) => return Ok(completion),
                Err(error) => error,
            };
            let backoff = pause(&error, attempt);
            let retry = error.is_retryable()
                && attempt < limits.retries
                && !sink.emitted()
                && Instant::now() + backoff < deadline;
            if !retry {
                return Err(error);
            }
            tracing::warn!(provider = self.kind(), attempt, error = %error, "llm call failed, retrying");
            tokio::time::sleep(backoff).await;
            attempt += 1;
        }
    }

    async fn attempt(
        &self,
        request: &CompletionRequest<'_>,
        sink: &mut DeltaSink<'_>,
        remaining: Duration,
    ) -> Result<Completion, LlmError> {
        match self {
            Llm::Bailian(provider) => provider.attempt(request, sink, remaining).await,
            Llm::OpenAi(provider) => provider.attempt(request, sink, remaining).await,
            Llm::Rules(_) => unreachable_provider(),
        }
    }
}

#[allow(clippy::panic)]
fn unreachable_provider() -> ! {
    // Rules never reach the network path: `limits()` is None for them and only for them.
    panic!("rules provider on the network path")
}

/// How long to wait before retrying after `error` on attempt `attempt` (0 for the first).
fn pause(error: &LlmError, attempt: u32) -> Duration {
    match error.retry_at_once() {
        true => Duration::ZERO,
        false => backoff(attempt),
    }
}

fn backoff(attempt: u32) -> Duration {
    let exponential = BACKOFF_BASE
        .saturating_mul(1u32 << attempt.min(6))
        .min(BACKOFF_MAX);
    // Full jitter in [50%, 100%): replicas throttled together don't retry together.
    let jitter = getrandom::u32().unwrap_or(0) % 1000;
    exponential.mul_f64(0.5 + f64::from(jitter) / 2000.0)
}

/// Feeds a streaming body's SSE events to `on_event` until it reports the last one (`true`):
/// `Ok(true)`. `Ok(false)`: the stream ended first. Silence longer than `idle` is a timeout.
///
/// An `async` block, not an `async fn`: an `async fn` would hold the response twice (its
/// argument and its body's copy), 136 bytes more in every call waiting on its answer.
#[allow(clippy::manual_async_fn)]
pub(crate) fn read_events<F>(
    mut response: reqwest::Response,
    idle: Duration,
    mut on_event: F,
) -> impl Future<Output = Result<bool, LlmError>>
where
    F: FnMut(sse::SseEvent) -> Result<bool, LlmError>,
{
    async move {
        let mut parser = sse::SseParser::default();
        let mut events = Vec::new();
        let mut heard = tokio::time::Instant::now();
        let silence = tokio::time::sleep_until(heard + idle);
        tokio::pin!(silence);
        loop {
            let chunk = next_chunk(&mut response, idle, &mut heard, silence.as_mut()).await?;
            match &chunk {
                Some(chunk) => parser
                    .push(chunk, &mut events)
                    .map_err(|error| LlmError::Protocol(error.to_string()))?,
                None => parser.finish(&mut events),
            }
            for event in events.drain(..) {
                if on_event(event)? {
                    if chunk.is_some() {
                        finish_body(response);
                    }
                    return Ok(true);
                }
            }
            if chunk.is_none() {
                return Ok(false);
            }
        }
    }
}

/// How long, and how much, a body is still read after its last event.
const FINISH_BODY_WITHIN: Duration = Duration::from_secs(2);
const FINISH_BODY_MAX_BYTES: usize = 64 * 1024;

/// Reads what is left of a stream after its last event, so the answer never waits for it.
///
/// The body's end is usually already here (same segment as the last event) and is read
/// without waiting; otherwise a task reads it. Reading to the end lets HTTP/1.1 return the
/// connection to the pool rather than close it, and ends an HTTP/2 stream cleanly: a stream
/// dropped mid-body is reset, and the h2 client closes the whole connection, failing every call
/// on it, after 1,024 late frames arrive for streams it reset (seen with 10,000 calls in flight).
fn finish_body(mut response: reqwest::Response) {
    use futures_util::FutureExt;
    let mut left = FINISH_BODY_MAX_BYTES;
    loop {
        match response.chunk().now_or_never() {
            Some(Ok(Some(chunk))) if chunk.len() <= left => left -= chunk.len(),
            Some(_) => return,
            None => break,
        }
    }
    crate::spawn_traced(async move {
        let drain = async {
            while let Ok(Some(chunk)) = response.chunk().await {
                match left.checked_sub(chunk.len()) {
                    Some(rest) => left = rest,
                    None => return,
                }
            }
        };
        let _ = tokio::time::timeout(FINISH_BODY_WITHIN, drain).await;
    });
}

/// The next chunk of a streaming body, or a timeout once nothing has come for `idle` since
/// `heard`.
///
/// One timer serves the whole stream: it is moved on only when it fires early, because a
/// timer per chunk (a `timeout` around each read) was registered in and removed from tokio's
/// timer wheel for nearly every one of an answer's dozens of frames.
async fn next_chunk(
    response: &mut reqwest::Response,
    idle: Duration,
    heard: &mut tokio::time::Instant,
    mut silence: std::pin::Pin<&mut tokio::time::Sleep>,
) -> Result<Option<bytes::Bytes>, LlmError> {
    loop {
        tokio::select! {
            biased;
            chunk = response.chunk() => {
                *heard = tokio::time::Instant::now();
                return chunk.map_err(|error| LlmError::transport(&error));
            }
            () = silence.as_mut() => {
                let due = *heard + idle;
                if tokio::time::Instant::now() >= due {
                    return Err(LlmError::Timeout);
                }
                silence.as_mut().reset(due);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_the_server_did_not_process_is_sent_again_without_a_backoff() {
        let unprocessed = LlmError::Unprocessed("GOAWAY".into());
        let broken = LlmError::Transport("reset".into());
        for attempt in 0..3 {
            assert_eq!(pause(&unprocessed, attempt), Duration::ZERO);
            assert!(pause(&broken, attempt) >= BACKOFF_BASE / 2);
        }
    }
}
