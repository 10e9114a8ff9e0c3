//! An answer's progress as a server-sent event body: `delta` events as it grows, then `done`
//! (or `error`), with keep-alive comments while nothing happens.

use std::sync::Arc;
use std::time::Duration;

use botgate_web::{comment, event};
use bytes::Bytes;
use futures_util::Stream;
use tokio::sync::watch;

use super::answer::{End, Progress};
use crate::metrics::Metrics;

/// Proxies and load balancers close connections idle for about a minute; speak before that.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

struct State {
    progress: watch::Receiver<Progress>,
    /// Bytes of the text already sent (the text only grows, by whole deltas).
    sent: usize,
    finished: bool,
    _open: OpenStream,
}

/// Counts the stream in `web_open_streams` while it lives (however the visitor leaves).
struct OpenStream(Arc<Metrics>);

impl OpenStream {
    fn new(metrics: Arc<Metrics>) -> Self {
        metrics.web_streams.inc();
        OpenStream(metrics)
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.web_streams.dec();
    }
}

pub fn events(
    progress: watch::Receiver<Progress>,
    metrics: Arc<Metrics>,
) -> impl Stream<Item = Result<Bytes, std::convert::Infallible>> {
    let state = State {
        progress,
        sent: 0,
        finished: false,
        _open: OpenStream::new(metrics),
    };
    futures_util::stream::unfold(state, |mut state| async move {
        if state.finished {
            return None;
        }
        loop {
            if let Some(chunk) = next_chunk(&mut state) {
                return Some((Ok(Bytes::from(chunk)), state));
            }
            match tokio::time::timeout(KEEP_ALIVE, state.progress.changed()).await {
                Ok(Ok(())) => continue,
                Err(_) => return Some((Ok(Bytes::from(comment("waiting"))), state)),
                // The answer's maker is gone without an end (its task was cancelled): close
                // without `done`, which the page takes as a dropped stream and asks again.
                Ok(Err(_)) => return None,
            }
        }
    })
}

/// What to send now: the text not sent yet, then the end once all text is out.
fn next_chunk(state: &mut State) -> Option<String> {
    let progress = state.progress.borrow_and_update();
    let mut out = String::new();
    if let Some(delta) = progress
        .text
        .get(state.sent..)
        .filter(|delta| !delta.is_empty())
    {
        out.push_str(&event("delta", &serde_json::json!({ "text": delta })));
        state.sent = progress.text.len();
    }
    match &progress.end {
        Some(End::Done(done)) => {
            out.push_str(&event("done", done));
            state.finished = true;
        }
        Some(End::Failed(message)) => {
            out.push_str(&event("error", &serde_json::json!({ "message": message })));
            state.finished = true;
        }
        None => {}
    }
    (!out.is_empty()).then_some(out)
}
