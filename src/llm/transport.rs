//! The HTTP client an LLM call goes out on: one per thread, so a streamed answer's connection
//! is driven on the thread that reads it. HTTP/2 calls skip reqwest's pool ([`super::h2`]).
//!
//! actix-web runs each HTTP worker on a single-threaded runtime of its own, and hyper drives a
//! connection on the runtime that opened it. With one shared client, a connection opened on one
//! thread and reused from another hands every SSE frame across threads (a wake-up and a context
//! switch per frame, ~35 per answer). A client per thread keeps the connection, and its frames,
//! on the thread of the request that reads them.

use std::cell::RefCell;
use std::future::Future;

use futures_util::future::Either;

thread_local! {
    /// This thread's HTTP/1.1 client, built on first use.
    static LOCAL: RefCell<Option<reqwest::Client>> = const { RefCell::new(None) };
}

/// How a provider's calls go out: on this thread's reqwest client (HTTP/1.1) or on this
/// thread's HTTP/2 connection to the provider ([`super::h2`]).
#[derive(Debug, Clone)]
pub struct LlmHttp {
    http2: bool,
    /// Used when a thread cannot build its own (it was built the same way at startup), and to
    /// build HTTP/2 requests.
    shared: reqwest::Client,
}

impl LlmHttp {
    /// `shared` must be built like the per-thread clients: [`crate::http::http_client`].
    pub fn new(http2: bool, shared: reqwest::Client) -> LlmHttp {
        LlmHttp { http2, shared }
    }

    /// A request to `url`, for [`LlmHttp::send`].
    pub fn post(&self, url: &str) -> reqwest::RequestBuilder {
        match self.http2 {
            // Only built here: it is sent on this thread's HTTP/2 connection.
            true => self.shared.post(url),
            false => self.client().post(url),
        }
    }

    /// Sends a request made with [`LlmHttp::post`]. Not an `async fn`, so the future held
    /// while the answer is awaited keeps no room for the request (see [`super::h2::send`]).
    pub fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> impl Future<Output = Result<reqwest::Response, super::LlmError>> + Send {
        match self.http2 {
            true => Either::Right(super::h2::send(request.build())),
            false => {
                let pending = request.send();
                Either::Left(async move {
                    pending
                        .await
                        .map_err(|error| super::LlmError::transport(&error))
                })
            }
        }
    }

    /// This thread's client (a cheap handle onto its connection pool).
    fn client(&self) -> reqwest::Client {
        LOCAL.with(|local| {
            let mut slot = local.borrow_mut();
            if let Some(client) = slot.as_ref() {
                return client.clone();
            }
            match crate::http::http_client() {
                Ok(client) => slot.insert(client).clone(),
                Err(error) => {
                    tracing::warn!(error = %format!("{error:#}"), "per-thread HTTP client; using the shared one");
                    self.shared.clone()
                }
            }
        })
    }
}
