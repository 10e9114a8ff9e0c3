//! HTTP/2 calls to an LLM on the `h2` crate: per thread and origin, as few connections as
//! carry the calls in flight at up to [`MAX_STREAMS`] each.
//!
//! reqwest's client holds ~9 KiB per call in flight (its boxed pool checkout, its pending
//! request, hyper-util's dispatch), 90 MiB for 10,000 conversations waiting on slow answers,
//! and hyper's own HTTP/2 client two tasks per call ([`connection`] says why that matters). An
//! HTTP/2 connection needs no pool of its own, since every call is a stream on it, so a call
//! here is a stream that the caller's future polls itself.
//!
//! Under `auto` (no `http2` set) the TLS handshake offers HTTP/1.1 too; a server that picks it
//! is remembered, and its calls go to the caller's HTTP/1.1 client from then on.

use std::cell::RefCell;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::Either;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

use super::LlmError;
use connection::{Connection, Pings, ResponseBody, SendError, Slot};
use tls::{no_h2, refused_h2, web_tls};

mod connection;
mod tls;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Calls in flight on one connection before the next call opens another, unless the server
/// allows fewer. RFC 9113 §6.5.2 asks servers to allow at least 100 concurrent streams, so
/// calls rarely wait behind a server's limit for a free stream (h2 would queue them, each
/// waiting for an earlier answer to end).
pub(super) const MAX_STREAMS: usize = 100;

thread_local! {
    /// This thread's connections, one per origin (a deployment talks to one or two).
    static ORIGINS: RefCell<Vec<Arc<Origin>>> = const { RefCell::new(Vec::new()) };
}

/// Sends one request on this thread's connection to its origin, connecting first if there is
/// none with a free stream. `fallback`: `auto`'s HTTP/1.1 client, for a server that picks
/// HTTP/1.1 when offered both; `None` offers HTTP/2 only.
///
/// Not an `async fn`: the request is prepared here and boxed, so the future, which a job's
/// task holds for the whole wait on the answer, does not keep room for it: an `async fn`
/// keeps its arguments' room for its whole life (0.6 KiB per waiting call, measured).
pub(super) fn send(
    request: reqwest::Result<reqwest::Request>,
    fallback: Option<reqwest::Client>,
) -> impl Future<Output = Result<reqwest::Response, LlmError>> + Send {
    let prepared = request
        .map_err(|error| LlmError::transport(&error))
        .and_then(|request| {
            let origin = local_origin(request.url(), fallback.is_some())?;
            Ok((origin, h2_request(request)?))
        });
    match prepared {
        Ok((origin, request)) => Either::Right(send_on(origin, request, fallback)),
        Err(error) => Either::Left(std::future::ready(Err(error))),
    }
}

async fn send_on(
    origin: Arc<Origin>,
    request: Request,
    fallback: Option<reqwest::Client>,
) -> Result<reqwest::Response, LlmError> {
    let sent = match fallback {
        Some(client) if origin.http1.load(Ordering::Relaxed) => Sent::Http1(request, client),
        fallback => origin.send(request, fallback).await?,
    };
    match sent {
        Sent::Http2(response) => Ok(reqwest::Response::from(response.map(reqwest::Body::wrap))),
        // Boxed: once per thread and origin, and inline it would size every waiting call.
        Sent::Http1(request, client) => Box::pin(send_http1(*request, client)).await,
    }
}

/// What [`Origin::send`] did with a request.
enum Sent {
    Http2(http::Response<ResponseBody>),
    /// The server chose HTTP/1.1: the request, untouched, for the fallback client.
    Http1(Request, reqwest::Client),
}

async fn send_http1(
    mut request: http::Request<Bytes>,
    client: reqwest::Client,
) -> Result<reqwest::Response, LlmError> {
    *request.version_mut() = http::Version::HTTP_11;
    let request = reqwest::Request::try_from(request)
        .map_err(|error| LlmError::Transport(error.to_string()))?;
    client
        .execute(request)
        .await
        .map_err(|error| LlmError::transport(&error))
}

type Request = Box<http::Request<Bytes>>;

/// `request` as h2 sends it: its body in one piece, the version, a user agent and the length.
fn h2_request(mut request: reqwest::Request) -> Result<Request, LlmError> {
    // The providers send JSON they built in memory; nothing streams a request body.
    let body = match request.body_mut().take() {
        None => Bytes::new(),
        Some(body) => Bytes::copy_from_slice(body.as_bytes().ok_or_else(|| {
            LlmError::Transport("a streamed request body cannot go over HTTP/2 here".into())
        })?),
    };
    let mut request = http::Request::try_from(request)
        .map_err(|error| LlmError::Transport(error.to_string()))?
        .map(|_| body);
    *request.version_mut() = http::Version::HTTP_2;
    let length = request.body().len();
    let headers = request.headers_mut();
    headers
        .entry(http::header::USER_AGENT)
        .or_insert(http::HeaderValue::from_static(crate::http::USER_AGENT));
    if length > 0 {
        headers
            .entry(http::header::CONTENT_LENGTH)
            .or_insert(http::HeaderValue::from(length));
    }
    Ok(Box::new(request))
}

fn local_origin(url: &reqwest::Url, offer_http1: bool) -> Result<Arc<Origin>, LlmError> {
    let address = Address::of(url, offer_http1)?;
    ORIGINS.with(|origins| {
        let mut origins = origins.borrow_mut();
        if let Some(origin) = origins.iter().find(|origin| origin.address == address) {
            return Ok(origin.clone());
        }
        let tls = address.tls.then(|| web_tls(offer_http1));
        let origin = Arc::new(Origin::new(address, tls));
        origins.push(origin.clone());
        Ok(origin)
    })
}

/// Where a connection goes: scheme, host and port, and whether HTTP/1.1 is offered too.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Address {
    tls: bool,
    host: Box<str>,
    port: u16,
    offer_http1: bool,
}

impl Address {
    fn of(url: &reqwest::Url, offer_http1: bool) -> Result<Address, LlmError> {
        let tls = match url.scheme() {
            "https" => true,
            "http" => false,
            other => return Err(LlmError::Transport(format!("unsupported scheme {other}"))),
        };
        let host = url
            .host_str()
            .ok_or_else(|| LlmError::Transport("URL without a host".into()))?;
        let port = url
            .port_or_known_default()
            .ok_or_else(|| LlmError::Transport("URL without a port".into()))?;
        Ok(Address {
            tls,
            // IPv6 literals come bracketed in URLs; sockets and TLS want them bare.
            host: host.trim_start_matches('[').trim_end_matches(']').into(),
            port,
            offer_http1,
        })
    }
}

/// One origin's connections, made when needed and dropped once closed.
struct Origin {
    address: Address,
    tls: Option<Arc<rustls::ClientConfig>>,
    /// Held across a connect, so the calls that arrive meanwhile share the new connection.
    pool: tokio::sync::Mutex<Vec<Connection>>,
    /// The server picked HTTP/1.1 when offered both: its calls go to the fallback client.
    http1: AtomicBool,
    pings: Pings,
}

/// What a TLS handshake settled on.
enum Negotiated {
    Http2(Connection),
    /// Offered both, the server chose HTTP/1.1.
    Http1,
}

impl Origin {
    /// `tls`: the client configuration for `https` (it must offer ALPN `h2`, and `http/1.1`
    /// as well when the address offers it), none for `http`.
    fn new(address: Address, tls: Option<Arc<rustls::ClientConfig>>) -> Origin {
        Origin {
            address,
            tls,
            pool: tokio::sync::Mutex::new(Vec::new()),
            http1: AtomicBool::new(false),
            pings: Pings::DEFAULT,
        }
    }

    /// `fallback` takes the request back when the server turns out to speak only HTTP/1.1.
    /// A connection that takes no new calls (GOAWAY) before anything of this one went out
    /// leaves the pool, and the call goes to another: once, so that a server refusing every
    /// connection fails the call rather than looping.
    async fn send(
        &self,
        mut request: Request,
        fallback: Option<reqwest::Client>,
    ) -> Result<Sent, LlmError> {
        let mut refused = false;
        loop {
            let Some((connection, slot)) = self.stream().await? else {
                return match fallback {
                    Some(client) => Ok(Sent::Http1(request, client)),
                    None => Err(no_h2()),
                };
            };
            let error = match connection.send(request, slot).await {
                Ok(response) => return Ok(Sent::Http2(response)),
                Err(SendError::NotSent(back, error)) if !refused => {
                    self.forget(&connection).await;
                    tracing::debug!(%error, "an LLM HTTP/2 connection took no new call; trying another");
                    refused = true;
                    request = back;
                    continue;
                }
                Err(SendError::NotSent(_, error) | SendError::Failed(error)) => error,
            };
            // Unless the server refused only this stream, the connection may be going away
            // (GOAWAY, reset, broken): the next call, and this one's retry, go to another.
            // Calls still running on it finish there.
            if !error.is_reset() || error.is_go_away() {
                self.forget(&connection).await;
            }
            if unprocessed(&error) {
                return Err(LlmError::Unprocessed(format!("HTTP/2: {error}")));
            }
            return Err(LlmError::Transport(format!("HTTP/2 request: {error}")));
        }
    }

    /// Takes a connection out of the pool; calls running on it go on.
    async fn forget(&self, gone: &Connection) {
        let mut pool = self.pool.lock().await;
        pool.retain(|open| !open.is(gone));
    }

    /// A stream on an open connection with one free, else on a new connection; `None` when
    /// the server chose HTTP/1.1.
    async fn stream(&self) -> Result<Option<(Connection, Slot)>, LlmError> {
        let mut pool = self.pool.lock().await;
        pool.retain(|open| !open.is_closed());
        // Counted under the lock, so two calls cannot both take a connection's last stream.
        if let Some(open) = pool.iter().find(|open| open.has_room(MAX_STREAMS)) {
            return Ok(Some((open.clone(), open.take_slot())));
        }
        // Boxed: inline, the TLS and HTTP/2 handshakes would make every waiting call's future
        // (and the job task holding it) ~5 KiB larger for a step that runs once per connection.
        let connect = Box::pin(tokio::time::timeout(CONNECT_TIMEOUT, self.connect()));
        let connection = match connect.await {
            Ok(Ok(Negotiated::Http2(connection))) => connection,
            Ok(Ok(Negotiated::Http1)) => {
                tracing::info!(
                    host = %self.address.host,
                    "the LLM endpoint did not agree to HTTP/2; its calls go over HTTP/1.1"
                );
                self.http1.store(true, Ordering::Relaxed);
                return Ok(None);
            }
            Ok(Err(error)) => return Err(error),
            Err(_) => return Err(LlmError::Timeout),
        };
        let slot = connection.take_slot();
        pool.push(connection.clone());
        Ok(Some((connection, slot)))
    }

    async fn connect(&self) -> Result<Negotiated, LlmError> {
        let address = &self.address;
        let tcp = TcpStream::connect((&*address.host, address.port))
            .await
            .map_err(|error| LlmError::Transport(format!("connect: {error}")))?;
        tcp.set_nodelay(true)
            .map_err(|error| LlmError::Transport(format!("connect: {error}")))?;
        let Some(config) = &self.tls else {
            return Connection::handshake(tcp, self.pings)
                .await
                .map(Negotiated::Http2);
        };
        let name = ServerName::try_from(address.host.to_string())
            .map_err(|error| LlmError::Transport(format!("TLS server name: {error}")))?;
        let tls = tokio_rustls::TlsConnector::from(config.clone())
            .connect(name, tcp)
            .await
            .map_err(|error| match refused_h2(&error) {
                true => no_h2(),
                false => LlmError::Transport(format!("TLS: {error}")),
            })?;
        if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
            // Offered both, a server that chose HTTP/1.1 (or nothing) speaks it.
            return match address.offer_http1 {
                true => Ok(Negotiated::Http1),
                false => Err(no_h2()),
            };
        }
        Connection::handshake(tls, self.pings)
            .await
            .map(Negotiated::Http2)
    }
}

/// Whether the server said it did not process the stream because it is closing the
/// connection: a GOAWAY whose last stream id is below the stream's (RFC 9113 §6.8; h2 fails
/// only those streams with the GOAWAY). Such a call is sent again at once, on another
/// connection, rather than kept here: keeping the request until its answer starts would cost
/// every slow call its size while it waits. A `REFUSED_STREAM` reset is not processed either,
/// but comes on a connection that stays, perhaps from a server under load, so it keeps the
/// backoff.
fn unprocessed(error: &h2::Error) -> bool {
    error.is_remote() && error.is_go_away()
}

#[cfg(test)]
mod server_tests;
#[cfg(test)]
mod tests;
