//! The HTTP client an LLM call goes out on: one per thread, so a streamed answer's connection
//! is driven on the thread that reads it. HTTP/2 calls skip reqwest's pool ([`super::h2`]);
//! reqwest's per-thread clients speak HTTP/1.1 only.
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

/// Which HTTP a provider's calls speak: its `http2` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LlmProtocol {
    /// `http2 = false`: HTTP/1.1, one connection per call in flight.
    Http1,
    /// `http2 = true`: HTTP/2 only (ALPN `h2` over TLS, prior knowledge over `http://`).
    Http2,
    /// Not set: HTTP/2 where the TLS handshake agrees on it, else HTTP/1.1; HTTP/1.1 over
    /// `http://` (cleartext HTTP/2 cannot be negotiated) and through a proxy.
    Auto,
}

impl LlmProtocol {
    /// From the `http2` setting, as it stands in the config.
    pub fn from_setting(http2: Option<bool>) -> LlmProtocol {
        match http2 {
            Some(true) => LlmProtocol::Http2,
            Some(false) => LlmProtocol::Http1,
            None => LlmProtocol::Auto,
        }
    }
}

/// How a provider's calls go out: on this thread's reqwest client (HTTP/1.1) or on this
/// thread's HTTP/2 connections to the provider ([`super::h2`]).
#[derive(Debug, Clone)]
pub struct LlmHttp {
    protocol: LlmProtocol,
    /// HTTP/1.1 like the per-thread clients: used when a thread cannot build its own, and to
    /// build requests that go out on HTTP/2 connections.
    shared: reqwest::Client,
}

impl LlmHttp {
    /// `auto` becomes HTTP/1.1 when a proxy is set for `https` in the environment: reqwest's
    /// clients use it, the HTTP/2 connections do not.
    pub fn new(protocol: LlmProtocol) -> anyhow::Result<LlmHttp> {
        Ok(LlmHttp {
            protocol: effective(protocol, |name| std::env::var_os(name)),
            shared: crate::http::llm_client()?,
        })
    }

    /// A request to `url`, for [`LlmHttp::send`].
    pub fn post(&self, url: &reqwest::Url) -> reqwest::RequestBuilder {
        // A parsed URL: reqwest parses a `&str` again on every call.
        let url = url.clone();
        match self.protocol {
            LlmProtocol::Http1 => self.client().post(url),
            // Only built here: where it goes is decided in `send`.
            LlmProtocol::Http2 | LlmProtocol::Auto => self.shared.post(url),
        }
    }

    /// Sends a request made with [`LlmHttp::post`]. Not an `async fn`, so the future held
    /// while the answer is awaited keeps no room for the request (see [`super::h2::send`]).
    pub fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> impl Future<Output = Result<reqwest::Response, super::LlmError>> + Send {
        let request = match (self.protocol, request.build()) {
            (LlmProtocol::Http2, request) => {
                return Either::Right(super::h2::send(request, None));
            }
            (LlmProtocol::Auto, Ok(request)) if request.url().scheme() == "https" => {
                return Either::Right(super::h2::send(Ok(request), Some(self.client())));
            }
            (_, Err(error)) => {
                return Either::Left(Either::Left(std::future::ready(Err(
                    super::LlmError::transport(&error),
                ))));
            }
            (_, Ok(request)) => request,
        };
        let pending = self.client().execute(request);
        Either::Left(Either::Right(async move {
            pending
                .await
                .map_err(|error| super::LlmError::transport(&error))
        }))
    }

    /// This thread's client (a cheap handle onto its connection pool).
    fn client(&self) -> reqwest::Client {
        LOCAL.with(|local| {
            let mut slot = local.borrow_mut();
            if let Some(client) = slot.as_ref() {
                return client.clone();
            }
            match crate::http::llm_client() {
                Ok(client) => slot.insert(client).clone(),
                Err(error) => {
                    tracing::warn!(error = %format!("{error:#}"), "per-thread HTTP client; using the shared one");
                    self.shared.clone()
                }
            }
        })
    }
}

/// The protocol `protocol` comes to with the environment `var` reads: `auto` is HTTP/1.1 when
/// reqwest would send `https` requests through a proxy (the HTTP/2 connections would not).
fn effective(
    protocol: LlmProtocol,
    var: impl Fn(&str) -> Option<std::ffi::OsString>,
) -> LlmProtocol {
    let proxy = ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]
        .into_iter()
        .find(|name| var(name).is_some_and(|value| !value.is_empty()));
    match (protocol, proxy) {
        (LlmProtocol::Auto, Some(name)) => {
            tracing::info!(
                variable = name,
                "a proxy is set: LLM calls use HTTP/1.1 through it"
            );
            LlmProtocol::Http1
        }
        (protocol, _) => protocol,
    }
}

#[cfg(test)]
mod tests {
    use super::{effective, LlmProtocol};

    #[test]
    fn a_proxy_in_the_environment_keeps_auto_on_http1_through_reqwest() {
        let proxy =
            |set: &'static str| move |name: &str| (name == set).then(|| "http://proxy:3128".into());

        assert_eq!(
            effective(LlmProtocol::Auto, proxy("HTTPS_PROXY")),
            LlmProtocol::Http1
        );
        assert_eq!(
            effective(LlmProtocol::Auto, proxy("all_proxy")),
            LlmProtocol::Http1
        );
        assert_eq!(
            effective(LlmProtocol::Auto, proxy("HTTP_PROXY")),
            LlmProtocol::Auto
        );
        assert_eq!(
            effective(LlmProtocol::Auto, |_| Some("".into())),
            LlmProtocol::Auto
        );
        assert_eq!(
            effective(LlmProtocol::Http2, proxy("HTTPS_PROXY")),
            LlmProtocol::Http2
        );
    }
}
