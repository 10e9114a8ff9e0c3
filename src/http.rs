//! The outbound HTTP clients: one for the channels' platform APIs, one per thread for LLMs.

use std::time::Duration;

use anyhow::Context;

/// Keep-alive connections to the LLM are reused across answers; the pool holds idle ones this long.
const HTTP_POOL_IDLE: Duration = Duration::from_secs(90);
const HTTP_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const HTTP_POOL_MAX_IDLE_PER_HOST: usize = 256;
/// How botgate names itself to every server it calls.
pub(crate) const USER_AGENT: &str = concat!("botgate/", env!("CARGO_PKG_VERSION"));

/// An HTTP client for outbound calls (keep-alive pool, TLS, timeouts), shared by the channels.
/// LLM providers use [`llm_client`]s, one per thread, or HTTP/2 connections on `h2` directly.
pub fn http_client() -> anyhow::Result<reqwest::Client> {
    client_builder().build().context("build the HTTP client")
}

/// An HTTP/1.1 client for LLM calls ([`crate::llm::LlmHttp`]; HTTP/2 ones skip reqwest).
pub fn llm_client() -> anyhow::Result<reqwest::Client> {
    llm_client_builder()
        .build()
        .context("build the LLM's HTTP client")
}

/// HTTP/1.1 only: reqwest would otherwise offer HTTP/2 in the TLS handshake and put every call
/// of a thread on one connection, behind the server's concurrent-stream limit.
pub(crate) fn llm_client_builder() -> reqwest::ClientBuilder {
    client_builder().http1_only()
}

fn client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .connect_timeout(HTTP_CONNECT_TIMEOUT)
        .pool_idle_timeout(HTTP_POOL_IDLE)
        // Each in-flight or idle HTTP/1.1 connection holds ~25 KiB of hyper's buffers and
        // channels (massif); after a burst of thousands of slow answers, keep enough for steady
        // traffic and let the rest close.
        .pool_max_idle_per_host(HTTP_POOL_MAX_IDLE_PER_HOST)
        .tcp_nodelay(true)
        // reqwest retries a request an HTTP/2 server refused (REFUSED_STREAM, GOAWAY) and, to
        // be able to, clones its headers and body before every call. Without it a refused
        // request fails like any transport error, which LLM calls (`retries`) and deliveries
        // (`send_attempts`, then the job's own retry) already retry with backoff and a deadline.
        .retry(reqwest::retry::never().max_retries_per_request(0))
        .user_agent(USER_AGENT)
}

#[cfg(test)]
mod tests;
