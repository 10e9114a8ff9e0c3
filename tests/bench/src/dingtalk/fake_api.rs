//! A lean fake DingTalk: raw HTTP/1.1 on a thread and runtime of its own (it shares the cores
//! with the gateway), parsed with the fake WeCom API's reader.
//!
//! `POST /robot/sendBySession?session=…` (every message's session webhook points here) is kept
//! as raw bytes with the instant it arrived, parsed only after the run.
//! `POST /v1.0/gateway/connections/open` hands out the fake Stream gateway's endpoint and a
//! fresh ticket. Anything else is counted as unexpected.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinSet;

use super::{APP_KEY, APP_SECRET};
use crate::wecom::fake_api::{http_response, parse, query_param, Parsed};

pub const SEND_BY_SESSION: &str = "/robot/sendBySession";
const OPEN: &str = "/v1.0/gateway/connections/open";
/// Every ticket handed out starts so, followed by its number.
pub const TICKET_PREFIX: &str = "bench-ticket-";
const OK: &str = r#"{"errcode":0,"errmsg":"ok"}"#;
const READ_BYTES: usize = 16 * 1024;
const WAIT_POLL: Duration = Duration::from_millis(5);
const SAMPLES_KEPT: usize = 5;

/// One answer botgate posted to a session webhook.
pub struct Sent {
    /// The `session` query parameter, as given (None: there was none).
    pub session: Option<String>,
    pub at: Instant,
    pub body: Bytes,
}

#[derive(Default)]
struct State {
    sends: Vec<Sent>,
    opens: u64,
    unexpected: u64,
    unexpected_samples: Vec<String>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    sends: AtomicU64,
    /// The Stream gateway's `ws://` endpoint, if the scenario runs one.
    endpoint: Option<String>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The fake, serving on 127.0.0.1 until dropped.
pub struct FakeDingtalk {
    address: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl FakeDingtalk {
    /// `endpoint`: what `connections/open` hands out (`None`: it is unexpected).
    pub fn start(endpoint: Option<String>) -> io::Result<FakeDingtalk> {
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()?;
        let shared = Arc::new(Shared {
            endpoint,
            ..Shared::default()
        });
        let (stop, stopped) = oneshot::channel();
        let serving = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("fake-dingtalk".to_owned())
            .spawn(move || runtime.block_on(accept(listener, serving, stopped)))?;
        Ok(FakeDingtalk {
            address,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT`: the bot's `api_base` and its one allowed webhook origin.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn sends(&self) -> u64 {
        self.shared.sends.load(Ordering::Relaxed)
    }

    /// Waits until `n` answers arrived; false as soon as none arrived for `stall`.
    pub async fn wait_for_sends(&self, n: u64, stall: Duration) -> bool {
        let mut seen = self.sends();
        let mut last_progress = Instant::now();
        while seen < n {
            if last_progress.elapsed() >= stall {
                return false;
            }
            tokio::time::sleep(WAIT_POLL).await;
            let now = self.sends();
            if now != seen {
                seen = now;
                last_progress = Instant::now();
            }
        }
        true
    }

    /// Every answer so far, in arrival order.
    pub fn take_sends(&self) -> Vec<Sent> {
        std::mem::take(&mut self.shared.state().sends)
    }

    /// `connections/open` calls answered with a ticket.
    pub fn opens(&self) -> u64 {
        self.shared.state().opens
    }

    pub fn unexpected(&self) -> (u64, Vec<String>) {
        let state = self.shared.state();
        (state.unexpected, state.unexpected_samples.clone())
    }
}

impl Drop for FakeDingtalk {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn accept(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    mut stopped: oneshot::Receiver<()>,
) {
    let listener = match TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("fake DingTalk: cannot listen: {error}");
            return;
        }
    };
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stopped => return,
            Some(_) = connections.join_next() => {}
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    connections.spawn(serve(stream, Arc::clone(&shared)));
                }
            }
        }
    }
}

async fn serve(mut stream: TcpStream, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let mut buffer = BytesMut::with_capacity(READ_BYTES);
    loop {
        loop {
            let (length, response, close) = match parse(&buffer) {
                Parsed::Partial => break,
                Parsed::Malformed(reason) => {
                    note_unexpected(&shared, reason.to_owned());
                    let body = r#"{"errcode":400,"errmsg":"malformed request"}"#;
                    let _ = stream.write_all(&http_response(400, body)).await;
                    return;
                }
                Parsed::Complete {
                    method,
                    path,
                    query,
                    body,
                    length,
                    close,
                } => {
                    let body = Bytes::copy_from_slice(&buffer[body.0..body.1]);
                    let response = route(&shared, &method, &path, &query, body);
                    (length, response, close)
                }
            };
            buffer.advance(length);
            if stream.write_all(&response).await.is_err() || close {
                return;
            }
        }
        buffer.reserve(READ_BYTES);
        match stream.read_buf(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

fn route(shared: &Shared, method: &str, path: &str, query: &str, body: Bytes) -> Vec<u8> {
    match (method, path) {
        ("POST", SEND_BY_SESSION) => {
            let session = query_param(query, "session").map(str::to_owned);
            shared.state().sends.push(Sent {
                session,
                at: Instant::now(),
                body,
            });
            shared.sends.fetch_add(1, Ordering::Relaxed);
            http_response(200, OK)
        }
        ("POST", OPEN) if shared.endpoint.is_some() => {
            let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            if request["clientId"] != APP_KEY || request["clientSecret"] != APP_SECRET {
                note_unexpected(shared, format!("connections/open with {request}"));
                return http_response(401, r#"{"code":"InvalidAuthentication"}"#);
            }
            let number = {
                let mut state = shared.state();
                state.opens += 1;
                state.opens
            };
            let endpoint = shared.endpoint.as_deref().unwrap_or_default();
            let body = serde_json::json!({
                "endpoint": endpoint,
                "ticket": format!("{TICKET_PREFIX}{number}"),
            });
            http_response(200, &body.to_string())
        }
        _ => {
            note_unexpected(shared, format!("{method} {path}"));
            http_response(
                404,
                r#"{"code":"NotFound","message":"no such API in the fake"}"#,
            )
        }
    }
}

fn note_unexpected(shared: &Shared, what: String) {
    let mut state = shared.state();
    state.unexpected += 1;
    if state.unexpected_samples.len() < SAMPLES_KEPT {
        state.unexpected_samples.push(what);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Connection;

    #[tokio::test]
    async fn answers_are_kept_and_connections_opened() {
        let fake = FakeDingtalk::start(Some("ws://127.0.0.1:1/connect".to_owned())).unwrap();
        let address: SocketAddr = fake.url()["http://".len()..].parse().unwrap();
        let mut connection = Connection::new(address);
        let post = |target: &str, body: &str| {
            crate::http::post(target, "application/json", &[], body.as_bytes())
        };
        let sent = connection
            .send(&post(&format!("{SEND_BY_SESSION}?session=s0-1"), "{}"))
            .await
            .unwrap();
        assert_eq!(&sent.body[..], OK.as_bytes());
        let open = format!(r#"{{"clientId":"{APP_KEY}","clientSecret":"{APP_SECRET}"}}"#);
        let opened = connection.send(&post(OPEN, &open)).await.unwrap();
        let opened: Value = serde_json::from_slice(&opened.body).unwrap();
        assert_eq!(opened["ticket"], format!("{TICKET_PREFIX}1"));
        assert_eq!(opened["endpoint"], "ws://127.0.0.1:1/connect");
        let missing = connection.send(&crate::http::get("/nope")).await.unwrap();
        assert_eq!(missing.status, 404);

        assert!(fake.wait_for_sends(1, Duration::from_secs(1)).await);
        let sends = fake.take_sends();
        assert_eq!(sends[0].session.as_deref(), Some("s0-1"));
        assert_eq!((fake.opens(), fake.unexpected().0), (1, 1));
    }
}
