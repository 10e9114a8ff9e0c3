//! Shared plumbing for the HTTP fakes: an actix-web server on its own thread, ids and locking.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpRequest, HttpServer};

/// Request bodies up to this size are accepted (long histories included).
pub(crate) const BODY_LIMIT: usize = 16 * 1024 * 1024;

/// Workers per fake: enough for concurrent calls from a benchmark, few threads per test.
const WORKERS: usize = 2;

/// An actix-web server bound to `127.0.0.1:0`, stopped (without grace) on drop.
///
/// It runs an actix system on a thread of its own rather than on the caller's runtime: the fake
/// then works under `#[tokio::test]` (current-thread), `#[actix_web::test]` or a benchmark's
/// runtime alike, and handlers that sleep (hangs, delays) never block the test itself.
#[derive(Debug)]
pub(crate) struct RunningServer {
    address: SocketAddr,
    handle: ServerHandle,
    connections: Arc<AtomicU64>,
}

impl RunningServer {
    /// Binds a free loopback port and serves the routes that `configure` registers.
    pub(crate) async fn start<F>(name: &str, configure: F) -> RunningServer
    where
        F: Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port on 127.0.0.1");
        let address = listener.local_addr().expect("read the bound address");
        let (handle_tx, handle_rx) = tokio::sync::oneshot::channel();
        let connections = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&connections);
        std::thread::Builder::new()
            .name(format!("fake-{name}"))
            .spawn(move || {
                actix_web::rt::System::new().block_on(async move {
                    let server = HttpServer::new(move || {
                        App::new()
                            .app_data(web::PayloadConfig::new(BODY_LIMIT))
                            .configure(configure.clone())
                    })
                    .workers(WORKERS)
                    .disable_signals()
                    .shutdown_timeout(1)
                    // Streams are written frame by frame; Nagle would hold small frames back.
                    .tcp_nodelay(true)
                    .on_connect(move |_, _| {
                        counter.fetch_add(1, Ordering::Relaxed);
                    })
                    // HTTP/1.1, or HTTP/2 for clients that speak it with prior knowledge (h2c).
                    .listen_auto_h2c(listener);
                    let server = match server {
                        Ok(server) => server.run(),
                        Err(error) => {
                            let _ = handle_tx.send(Err(error));
                            return;
                        }
                    };
                    let _ = handle_tx.send(Ok(server.handle()));
                    if let Err(error) = server.await {
                        tracing::warn!(%error, "fake server stopped with an error");
                    }
                });
            })
            .expect("spawn the fake server's thread");
        let handle = handle_rx
            .await
            .expect("the fake server's thread ended before it started")
            .expect("start the fake server");
        RunningServer {
            address,
            handle,
            connections,
        }
    }

    /// TCP connections accepted so far.
    pub(crate) fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.address)
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        // `stop` sends the command at once; the returned future only waits for completion.
        drop(self.handle.stop(false));
    }
}

/// Locks a fake's state, ignoring poisoning: a panicking handler must not hide the recording.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// 64 random bits from the standard library's randomly keyed hasher (no `rand` needed).
fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.finish()
}

/// 32 lowercase hex digits, the shape of a Bailian `session_id`.
pub(crate) fn hex32() -> String {
    format!("{:016x}{:016x}", random_u64(), random_u64())
}

/// A UUID-shaped id (`8-4-4-4-12` hex), the shape of a Bailian `request_id`.
pub(crate) fn uuid_like() -> String {
    let hex = hex32();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Seconds since the Unix epoch, for OpenAI's `created`.
pub(crate) fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// A request's headers as `(lowercase name, value)` pairs, in the order received.
pub(crate) fn header_pairs(request: &HttpRequest) -> Vec<(String, String)> {
    request
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// A body as JSON; `Null` when empty, `Value::String` when it is not JSON.
pub(crate) fn parse_body(body: &[u8]) -> serde_json::Value {
    if body.is_empty() {
        return serde_json::Value::Null;
    }
    serde_json::from_slice(body)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(body).into_owned()))
}

/// Waits until a counter reaches `n`; false if `timeout` passes first. A signal, not polling.
pub(crate) async fn wait_until(
    counter: &tokio::sync::watch::Sender<usize>,
    n: usize,
    timeout: std::time::Duration,
) -> bool {
    let mut receiver = counter.subscribe();
    let reached = tokio::time::timeout(timeout, receiver.wait_for(|count| *count >= n)).await;
    matches!(reached, Ok(Ok(_)))
}
