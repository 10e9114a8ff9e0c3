//! The HTTP client an LLM call goes out on: one per thread, so a streamed answer's connection
//! is driven on the thread that reads it.
//!
//! actix-web runs each HTTP worker on a single-threaded runtime of its own, and hyper drives a
//! connection on the runtime that opened it. With one shared client, a connection opened on one
//! thread and reused from another hands every SSE frame across threads (a wake-up and a context
//! switch per frame, ~35 per answer). A client per thread keeps the connection, and its frames,
//! on the thread of the request that reads them.

use std::cell::RefCell;

thread_local! {
    /// This thread's clients: HTTP/1.1 and HTTP/2, built on first use.
    static LOCAL: RefCell<[Option<reqwest::Client>; 2]> = const { RefCell::new([None, None]) };
}

/// Hands out this thread's client for one HTTP version.
#[derive(Debug, Clone)]
pub struct LlmHttp {
    http2: bool,
    /// Used when a thread cannot build its own (it was built the same way at startup).
    shared: reqwest::Client,
}

impl LlmHttp {
    /// `shared` must be built like the per-thread clients: [`crate::http::http_client`] or,
    /// for `http2`, [`crate::http::http2_client`].
    pub fn new(http2: bool, shared: reqwest::Client) -> LlmHttp {
        LlmHttp { http2, shared }
    }

    /// This thread's client (a cheap handle onto its connection pool).
    pub fn client(&self) -> reqwest::Client {
        LOCAL.with(|local| {
            let mut local = local.borrow_mut();
            let slot = &mut local[usize::from(self.http2)];
            if let Some(client) = slot {
                return client.clone();
            }
            let built = match self.http2 {
                true => crate::http::http2_client(),
                false => crate::http::http_client(),
            };
            match built {
                Ok(client) => slot.insert(client).clone(),
                Err(error) => {
                    tracing::warn!(error = %format!("{error:#}"), "per-thread HTTP client; using the shared one");
                    self.shared.clone()
                }
            }
        })
    }
}
