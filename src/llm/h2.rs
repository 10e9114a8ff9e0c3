//! HTTP/2 calls to an LLM on hyper's connection API: per thread and origin, as few connections
//! as carry the calls in flight at up to [`MAX_STREAMS`] each.
//!
//! reqwest's client holds ~9 KiB per call in flight (its boxed pool checkout, its pending
//! request, hyper-util's dispatch), 90 MiB for 10,000 conversations waiting on slow answers.
//! An HTTP/2 connection needs no pool of its own: every call is a stream on it. So calls go
//! straight to hyper's `SendRequest`, which costs what h2 itself needs per stream.
//!
//! Under `auto` (no `http2` set) the TLS handshake offers HTTP/1.1 too; a server that picks it
//! is remembered, and its calls go to the caller's HTTP/1.1 client from then on.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::Either;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

use super::LlmError;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection quiet this long is pinged, so a dead one is noticed.
const PING_INTERVAL: Duration = Duration::from_secs(20);
const PING_TIMEOUT: Duration = Duration::from_secs(10);
/// Calls in flight on one connection before the next call opens another. RFC 9113 §6.5.2 asks
/// servers to allow at least 100 concurrent streams, so calls never wait behind a server's
/// limit for a free stream (hyper would queue them, each answer waiting for an earlier one).
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
    match prepare(request, fallback.is_some()) {
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
        Sent::Http2(response, stream) => Ok(reqwest::Response::from(response.map(|body| {
            reqwest::Body::wrap(Counted {
                body,
                _stream: stream,
            })
        }))),
        // Boxed: once per thread and origin, and inline it would size every waiting call.
        Sent::Http1(request, client) => Box::pin(send_http1(*request, client)).await,
    }
}

/// What [`Origin::send`] did with a request.
enum Sent {
    Http2(hyper::Response<hyper::body::Incoming>, Stream),
    /// The server chose HTTP/1.1: the request, untouched, for the fallback client.
    Http1(Request, reqwest::Client),
}

async fn send_http1(
    mut request: hyper::Request<reqwest::Body>,
    client: reqwest::Client,
) -> Result<reqwest::Response, LlmError> {
    *request.version_mut() = hyper::Version::HTTP_11;
    let request = reqwest::Request::try_from(request)
        .map_err(|error| LlmError::Transport(error.to_string()))?;
    client
        .execute(request)
        .await
        .map_err(|error| LlmError::transport(&error))
}

type Request = Box<hyper::Request<reqwest::Body>>;

fn prepare(
    request: reqwest::Result<reqwest::Request>,
    offer_http1: bool,
) -> Result<(Arc<Origin>, Request), LlmError> {
    let request = request.map_err(|error| LlmError::transport(&error))?;
    let origin = local_origin(request.url(), offer_http1)?;
    let mut request = hyper::Request::try_from(request)
        .map_err(|error| LlmError::Transport(error.to_string()))?;
    *request.version_mut() = hyper::Version::HTTP_2;
    request
        .headers_mut()
        .entry(hyper::header::USER_AGENT)
        .or_insert(hyper::header::HeaderValue::from_static(USER_AGENT));
    Ok((origin, Box::new(request)))
}

const USER_AGENT: &str = concat!("botgate/", env!("CARGO_PKG_VERSION"));

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
    pool: tokio::sync::Mutex<Pool>,
    /// The server picked HTTP/1.1 when offered both: its calls go to the fallback client.
    http1: AtomicBool,
}

#[derive(Default)]
struct Pool {
    connections: Vec<Connection>,
    /// The next connection's generation.
    generations: u64,
}

#[derive(Clone)]
struct Connection {
    /// Tells a failed call's connection from its replacement.
    generation: u64,
    sender: http2::SendRequest<reqwest::Body>,
    /// Calls whose response has not been dropped yet.
    in_flight: Arc<AtomicUsize>,
}

impl Connection {
    /// Counts one more call on this connection, until the returned [`Stream`] is dropped.
    fn open_stream(&self) -> (Connection, Stream) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        (self.clone(), Stream(self.in_flight.clone()))
    }
}

/// A call's place on its connection: counted there until its response body is dropped.
struct Stream(Arc<AtomicUsize>);

impl Drop for Stream {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A response body that keeps its call counted on its connection while it is read.
struct Counted {
    body: hyper::body::Incoming,
    _stream: Stream,
}

impl hyper::body::Body for Counted {
    type Data = hyper::body::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// What a TLS handshake settled on.
enum Negotiated {
    Http2(http2::SendRequest<reqwest::Body>),
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
            pool: tokio::sync::Mutex::new(Pool::default()),
            http1: AtomicBool::new(false),
        }
    }

    /// `fallback` takes the request back when the server turns out to speak only HTTP/1.1.
    async fn send(
        &self,
        request: Request,
        fallback: Option<reqwest::Client>,
    ) -> Result<Sent, LlmError> {
        let Some((mut connection, stream)) = self.stream().await? else {
            return match fallback {
                Some(client) => Ok(Sent::Http1(request, client)),
                None => Err(no_h2()),
            };
        };
        match connection.sender.send_request(*request).await {
            Ok(response) => Ok(Sent::Http2(response, stream)),
            Err(error) => {
                // The connection may be going away (GOAWAY, reset, broken): the next call,
                // and this one's retry, go to another. Calls still running on it finish there.
                let mut pool = self.pool.lock().await;
                pool.connections
                    .retain(|open| open.generation != connection.generation);
                Err(LlmError::Transport(format!("HTTP/2 request: {error}")))
            }
        }
    }

    /// A stream on an open connection with one free, else on a new connection; `None` when
    /// the server chose HTTP/1.1.
    async fn stream(&self) -> Result<Option<(Connection, Stream)>, LlmError> {
        let mut pool = self.pool.lock().await;
        pool.connections
            .retain(|connection| !connection.sender.is_closed());
        // Counted under the lock, so two calls cannot both take a connection's last stream.
        if let Some(connection) = pool
            .connections
            .iter()
            .find(|connection| connection.in_flight.load(Ordering::Relaxed) < MAX_STREAMS)
        {
            return Ok(Some(connection.open_stream()));
        }
        let generation = pool.generations;
        pool.generations += 1;
        // Boxed: inline, the TLS and HTTP/2 handshakes would make every waiting call's future
        // (and the job task holding it) ~5 KiB larger for a step that runs once per connection.
        let connect = Box::pin(tokio::time::timeout(CONNECT_TIMEOUT, self.connect()));
        let sender = match connect.await {
            Ok(Ok(Negotiated::Http2(sender))) => sender,
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
        let connection = Connection {
            generation,
            sender,
            in_flight: Arc::new(AtomicUsize::new(0)),
        };
        let opened = connection.open_stream();
        pool.connections.push(connection);
        Ok(Some(opened))
    }

    async fn connect(&self) -> Result<Negotiated, LlmError> {
        let address = &self.address;
        let tcp = TcpStream::connect((&*address.host, address.port))
            .await
            .map_err(|error| LlmError::Transport(format!("connect: {error}")))?;
        tcp.set_nodelay(true)
            .map_err(|error| LlmError::Transport(format!("connect: {error}")))?;
        match &self.tls {
            None => handshake(TokioIo::new(tcp)).await.map(Negotiated::Http2),
            Some(config) => {
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
                // Boxed: hyper spawns two tasks per request, each allocated at the size of
                // its largest task kind, the connection's own, which holds the I/O inline. A
                // TLS stream inline makes that 2,536 bytes instead of 1,464 (nightly
                // `-Zprint-type-sizes`), ~2 KiB more per call in flight.
                handshake(TokioIo::new(Box::pin(tls)))
                    .await
                    .map(Negotiated::Http2)
            }
        }
    }
}

/// A server that offers other protocols refuses ours with this alert; one that offers none
/// completes the handshake without one.
fn refused_h2(error: &std::io::Error) -> bool {
    error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|error| {
            matches!(
                error,
                rustls::Error::AlertReceived(rustls::AlertDescription::NoApplicationProtocol)
            )
        })
}

fn no_h2() -> LlmError {
    LlmError::Transport("the server did not agree to HTTP/2 (ALPN h2); set http2 = false".into())
}

async fn handshake<T>(io: T) -> Result<http2::SendRequest<reqwest::Body>, LlmError>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, connection) = http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .keep_alive_interval(PING_INTERVAL)
        .keep_alive_timeout(PING_TIMEOUT)
        .handshake(io)
        .await
        .map_err(|error| LlmError::Transport(format!("HTTP/2 handshake: {error}")))?;
    // Not in the first call's span (`spawn_traced`): the connection outlives that call and
    // serves every later one.
    #[allow(clippy::disallowed_methods)]
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(error = %error, "LLM HTTP/2 connection ended");
        }
    });
    Ok(sender)
}

/// TLS for public endpoints: the webpki roots, ring, and ALPN `h2`, then `http/1.1` if offered.
fn web_tls(offer_http1: bool) -> Arc<rustls::ClientConfig> {
    static CONFIGS: [OnceLock<Arc<rustls::ClientConfig>>; 2] = [OnceLock::new(), OnceLock::new()];
    CONFIGS[usize::from(offer_http1)]
        .get_or_init(|| {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            h2_tls(roots, offer_http1)
        })
        .clone()
}

/// A client configuration that offers `h2` (and `http/1.1` after it when `offer_http1`),
/// trusting `roots`.
fn h2_tls(roots: rustls::RootCertStore, offer_http1: bool) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        // The ring provider supports the default versions; this cannot fail.
        .expect("ring supports TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    if offer_http1 {
        config.alpn_protocols.push(b"http/1.1".to_vec());
    }
    Arc::new(config)
}

#[cfg(test)]
mod tests;
