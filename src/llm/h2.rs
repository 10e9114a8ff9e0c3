//! HTTP/2 calls to an LLM on hyper's connection API: one connection per thread and origin.
//!
//! reqwest's client holds ~9 KiB per call in flight (its boxed pool checkout, its pending
//! request, hyper-util's dispatch), 90 MiB for 10,000 conversations waiting on slow answers.
//! An HTTP/2 connection needs no pool: every call is a stream on it. So calls go straight to
//! hyper's `SendRequest`, which costs what h2 itself needs per stream.

use std::cell::RefCell;
use std::future::Future;
use std::sync::{Arc, OnceLock};
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

thread_local! {
    /// This thread's connections, one per origin (a deployment talks to one or two).
    static ORIGINS: RefCell<Vec<Arc<Origin>>> = const { RefCell::new(Vec::new()) };
}

/// Sends one request on this thread's connection to its origin, connecting first if there is
/// none or the last one closed.
///
/// Not an `async fn`: the request is prepared here and boxed, so the future, which a job's
/// task holds for the whole wait on the answer, does not keep room for it: an `async fn`
/// keeps its arguments' room for its whole life (0.6 KiB per waiting call, measured).
pub(super) fn send(
    request: reqwest::Result<reqwest::Request>,
) -> impl Future<Output = Result<reqwest::Response, LlmError>> + Send {
    let (origin, request) = match prepare(request) {
        Ok(prepared) => prepared,
        Err(error) => return Either::Left(std::future::ready(Err(error))),
    };
    Either::Right(async move {
        let response = origin.send(request).await?;
        Ok(reqwest::Response::from(response.map(reqwest::Body::wrap)))
    })
}

type Request = Box<hyper::Request<reqwest::Body>>;

fn prepare(request: reqwest::Result<reqwest::Request>) -> Result<(Arc<Origin>, Request), LlmError> {
    let request = request.map_err(|error| LlmError::transport(&error))?;
    let origin = local_origin(request.url())?;
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

fn local_origin(url: &reqwest::Url) -> Result<Arc<Origin>, LlmError> {
    let address = Address::of(url)?;
    ORIGINS.with(|origins| {
        let mut origins = origins.borrow_mut();
        if let Some(origin) = origins.iter().find(|origin| origin.address == address) {
            return Ok(origin.clone());
        }
        let tls = address.tls.then(web_tls);
        let origin = Arc::new(Origin::new(address, tls));
        origins.push(origin.clone());
        Ok(origin)
    })
}

/// Where a connection goes: scheme, host and port.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Address {
    tls: bool,
    host: Box<str>,
    port: u16,
}

impl Address {
    fn of(url: &reqwest::Url) -> Result<Address, LlmError> {
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
        })
    }
}

/// One origin's connection, made when first needed and again after it closes.
struct Origin {
    address: Address,
    tls: Option<Arc<rustls::ClientConfig>>,
    /// Held across a connect, so the calls that arrive meanwhile share the new connection.
    current: tokio::sync::Mutex<Option<Connection>>,
}

#[derive(Clone)]
struct Connection {
    /// Tells a failed call's connection from its replacement.
    generation: u64,
    sender: http2::SendRequest<reqwest::Body>,
}

impl Origin {
    /// `tls`: the client configuration for `https` (it must offer ALPN `h2`), none for `http`.
    fn new(address: Address, tls: Option<Arc<rustls::ClientConfig>>) -> Origin {
        Origin {
            address,
            tls,
            current: tokio::sync::Mutex::new(None),
        }
    }

    async fn send(
        &self,
        request: Request,
    ) -> Result<hyper::Response<hyper::body::Incoming>, LlmError> {
        let mut connection = self.connection().await?;
        match connection.sender.send_request(*request).await {
            Ok(response) => Ok(response),
            Err(error) => {
                // The connection may be going away (GOAWAY, reset, broken): the next call,
                // and this one's retry, start on a new one. Calls still running on the old one
                // finish there.
                let mut current = self.current.lock().await;
                if current
                    .as_ref()
                    .is_some_and(|current| current.generation == connection.generation)
                {
                    *current = None;
                }
                Err(LlmError::Transport(format!("HTTP/2 request: {error}")))
            }
        }
    }

    async fn connection(&self) -> Result<Connection, LlmError> {
        let mut current = self.current.lock().await;
        if let Some(connection) = current.as_ref() {
            if !connection.sender.is_closed() {
                return Ok(connection.clone());
            }
        }
        let generation = current.as_ref().map_or(0, |old| old.generation + 1);
        // Boxed: inline, the TLS and HTTP/2 handshakes would make every waiting call's future
        // (and the job task holding it) ~5 KiB larger for a step that runs once per connection.
        let connect = Box::pin(tokio::time::timeout(CONNECT_TIMEOUT, self.connect()));
        let sender = match connect.await {
            Ok(sender) => sender?,
            Err(_) => return Err(LlmError::Timeout),
        };
        let connection = Connection { generation, sender };
        *current = Some(connection.clone());
        Ok(connection)
    }

    async fn connect(&self) -> Result<http2::SendRequest<reqwest::Body>, LlmError> {
        let address = &self.address;
        let tcp = TcpStream::connect((&*address.host, address.port))
            .await
            .map_err(|error| LlmError::Transport(format!("connect: {error}")))?;
        tcp.set_nodelay(true)
            .map_err(|error| LlmError::Transport(format!("connect: {error}")))?;
        match &self.tls {
            None => handshake(TokioIo::new(tcp)).await,
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
                    return Err(no_h2());
                }
                // Boxed: hyper spawns two tasks per request, each allocated at the size of
                // its largest task kind, the connection's own, which holds the I/O inline. A
                // TLS stream inline makes that 2,536 bytes instead of 1,464 (nightly
                // `-Zprint-type-sizes`), ~2 KiB more per call in flight.
                handshake(TokioIo::new(Box::pin(tls))).await
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

/// TLS for public endpoints: the webpki roots, ring, and ALPN `h2` only.
fn web_tls() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            h2_tls(roots)
        })
        .clone()
}

/// A client configuration that offers only `h2`, trusting `roots`.
fn h2_tls(roots: rustls::RootCertStore) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        // The ring provider supports the default versions; this cannot fail.
        .expect("ring supports TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(config)
}

#[cfg(test)]
mod tests;
