//! A lean fake WeCom API: raw HTTP/1.1 on a thread and runtime of its own, because it shares the
//! two cores with the gateway it stands behind (the test kit's fake parses and records every
//! request in full, on the bench's own runtime).
//!
//! `gettoken` hands out one token. `message/send` and `kf/send_msg` are kept as raw bytes with
//! the instant they arrived, and parsed only after the run. `kf/sync_msg` pages through the
//! customer messages the scenario queued ([`SyncLog`]). Anything else is counted as unexpected.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use botgate_wecom::kf::KfMessage;
use bytes::{Buf, Bytes, BytesMut};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinSet;

use super::sync_log::{SyncLog, SyncStats};
use super::{CORP_ID, SECRET};

/// The token `gettoken` hands out; every other call must carry it.
pub const ACCESS_TOKEN: &str = "bench-access-token";
pub const APP_SEND: &str = "/cgi-bin/message/send";
pub const KF_SEND: &str = "/cgi-bin/kf/send_msg";
const GET_TOKEN: &str = "/cgi-bin/gettoken";
const SYNC: &str = "/cgi-bin/kf/sync_msg";
const OK: &str = r#"{"errcode":0,"errmsg":"ok"}"#;
/// WeCom's answer to a stale or unknown token: botgate refreshes it once and retries.
const BAD_TOKEN: &str = r#"{"errcode":40014,"errmsg":"invalid access_token"}"#;
const MAX_HEADERS: usize = 32;
const MAX_HEAD_BYTES: usize = 64 * 1024;
const MAX_BODY_BYTES: usize = 1024 * 1024;
const READ_BYTES: usize = 16 * 1024;
/// How often the waits look at the counters (after the load, unmeasured).
const WAIT_POLL: Duration = Duration::from_millis(5);
const SAMPLES_KEPT: usize = 5;

/// One answer botgate sent.
pub struct Sent {
    /// [`APP_SEND`] or [`KF_SEND`].
    pub path: &'static str,
    pub at: Instant,
    /// Whether the query carried [`ACCESS_TOKEN`].
    pub token_ok: bool,
    pub body: Bytes,
}

#[derive(Default)]
struct State {
    sends: Vec<Sent>,
    sync: SyncLog,
    token_fetches: u64,
    unexpected: u64,
    unexpected_samples: Vec<String>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    /// Sends so far, read without the lock while waiting.
    sends: AtomicU64,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves counters that are still worth reading.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The fake, serving on 127.0.0.1 until dropped.
pub struct FakeWecom {
    address: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl FakeWecom {
    pub fn start() -> io::Result<FakeWecom> {
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()?;
        let shared = Arc::new(Shared::default());
        let (stop, stopped) = oneshot::channel();
        let serving = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("fake-wecom".to_owned())
            .spawn(move || runtime.block_on(accept(listener, serving, stopped)))?;
        Ok(FakeWecom {
            address,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT`, the bot's `api_base`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn sends(&self) -> u64 {
        self.shared.sends.load(Ordering::Relaxed)
    }

    /// Waits until `n` answers were sent; false as soon as none arrived for `stall` (a backlog
    /// still draining is waited for, however long it takes, a stuck one is not).
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

    /// Every send so far, in arrival order.
    pub fn take_sends(&self) -> Vec<Sent> {
        std::mem::take(&mut self.shared.state().sends)
    }

    /// Customer messages for the next pulls to find.
    pub fn queue_kf(&self, items: Vec<KfMessage>) {
        self.shared.state().sync.queue(items);
    }

    pub fn sync_stats(&self) -> SyncStats {
        self.shared.state().sync.stats()
    }

    pub fn token_fetches(&self) -> u64 {
        self.shared.state().token_fetches
    }

    /// Requests to no API the scenarios use, and the first of them.
    pub fn unexpected(&self) -> (u64, Vec<String>) {
        let state = self.shared.state();
        (state.unexpected, state.unexpected_samples.clone())
    }
}

impl Drop for FakeWecom {
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
            eprintln!("fake WeCom: cannot listen: {error}");
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

/// One keep-alive connection: answers every complete request buffered, in order, then reads.
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

/// What one request gets; sends are recorded here.
fn route(shared: &Shared, method: &str, path: &str, query: &str, body: Bytes) -> Vec<u8> {
    let token_ok = query_param(query, "access_token") == Some(ACCESS_TOKEN);
    match (method, path) {
        ("GET", GET_TOKEN) => {
            shared.state().token_fetches += 1;
            let known = query_param(query, "corpid") == Some(CORP_ID)
                && query_param(query, "corpsecret") == Some(SECRET);
            let body = if known {
                format!(
                    r#"{{"errcode":0,"errmsg":"ok","access_token":"{ACCESS_TOKEN}","expires_in":7200}}"#
                )
            } else {
                note_unexpected(shared, format!("gettoken with {query}"));
                r#"{"errcode":40013,"errmsg":"invalid corpid"}"#.to_owned()
            };
            http_response(200, &body)
        }
        ("POST", APP_SEND | KF_SEND) => {
            let path = if path == APP_SEND { APP_SEND } else { KF_SEND };
            shared.state().sends.push(Sent {
                path,
                at: Instant::now(),
                token_ok,
                body,
            });
            shared.sends.fetch_add(1, Ordering::Relaxed);
            http_response(200, if token_ok { OK } else { BAD_TOKEN })
        }
        ("POST", SYNC) if token_ok => {
            let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let (_, page) = shared.state().sync.pull(&request);
            http_response(200, &page)
        }
        ("POST", SYNC) => http_response(200, BAD_TOKEN),
        _ => {
            note_unexpected(shared, format!("{method} {path}"));
            http_response(404, r#"{"errcode":404,"errmsg":"no such API in the fake"}"#)
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

pub(crate) fn http_response(status: u16, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json; charset=UTF-8\r\n\
         Content-Length: {}\r\n\r\n{body}",
        if status == 200 { "OK" } else { "Error" },
        body.len()
    )
    .into_bytes()
}

/// A query parameter's value, undecoded (the bench's values need no escaping).
pub(crate) fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Parsed {
    Partial,
    /// The next request's start is unknown: answered 400, then the connection goes.
    Malformed(&'static str),
    Complete {
        method: String,
        path: String,
        query: String,
        /// Where the body is in the buffer.
        body: (usize, usize),
        /// Bytes of the whole request.
        length: usize,
        close: bool,
    },
}

pub(crate) fn parse(buffer: &[u8]) -> Parsed {
    if buffer.is_empty() {
        return Parsed::Partial;
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let head = match request.parse(buffer) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) if buffer.len() > MAX_HEAD_BYTES => {
            return Parsed::Malformed("request head too large")
        }
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Malformed("malformed HTTP request"),
    };
    let mut body_length = 0;
    let mut close = request.version == Some(0);
    for header in request.headers.iter() {
        if header.name.eq_ignore_ascii_case("content-length") {
            match std::str::from_utf8(header.value)
                .ok()
                .and_then(|value| value.trim().parse().ok())
            {
                Some(length) => body_length = length,
                None => return Parsed::Malformed("bad Content-Length"),
            }
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            return Parsed::Malformed("chunked request bodies are not supported");
        } else if header.name.eq_ignore_ascii_case("connection") {
            close = header.value.eq_ignore_ascii_case(b"close");
        }
    }
    if body_length > MAX_BODY_BYTES {
        return Parsed::Malformed("request body too large");
    }
    if buffer.len() < head + body_length {
        return Parsed::Partial;
    }
    let target = request.path.unwrap_or_default();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    Parsed::Complete {
        method: request.method.unwrap_or_default().to_owned(),
        path: path.to_owned(),
        query: query.to_owned(),
        body: (head, head + body_length),
        length: head + body_length,
        close,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Connection;

    fn post(target: &str, body: &str) -> Vec<u8> {
        crate::http::post(target, "application/json", &[], body.as_bytes())
    }

    #[tokio::test]
    async fn tokens_sends_and_pulls_are_answered_and_sends_kept() {
        let fake = FakeWecom::start().unwrap();
        let address: SocketAddr = fake.url()["http://".len()..].parse().unwrap();
        let mut connection = Connection::new(address);
        let token = connection
            .send(&crate::http::get(&format!(
                "{GET_TOKEN}?corpid={CORP_ID}&corpsecret={SECRET}"
            )))
            .await
            .unwrap();
        let token: Value = serde_json::from_slice(&token.body).unwrap();
        assert_eq!(token["access_token"], ACCESS_TOKEN);
        let sent = connection
            .send(&post(
                &format!("{APP_SEND}?access_token={ACCESS_TOKEN}"),
                r#"{"touser":"u"}"#,
            ))
            .await
            .unwrap();
        assert_eq!(&sent.body[..], OK.as_bytes());
        let stale = connection
            .send(&post(&format!("{KF_SEND}?access_token=old"), "{}"))
            .await
            .unwrap();
        assert_eq!(&stale.body[..], BAD_TOKEN.as_bytes());
        let page = connection
            .send(&post(
                &format!("{SYNC}?access_token={ACCESS_TOKEN}"),
                &format!(r#"{{"open_kfid":"{}"}}"#, super::super::KF_ACCOUNT),
            ))
            .await
            .unwrap();
        let page: Value = serde_json::from_slice(&page.body).unwrap();
        assert_eq!(page["errcode"], 0);
        let missing = connection.send(&crate::http::get("/nope")).await.unwrap();
        assert_eq!(missing.status, 404);

        assert!(fake.wait_for_sends(2, Duration::from_secs(1)).await);
        let sends = fake.take_sends();
        assert_eq!(sends.len(), 2);
        assert_eq!((sends[0].path, sends[0].token_ok), (APP_SEND, true));
        assert_eq!(&sends[0].body[..], br#"{"touser":"u"}"#);
        assert_eq!((sends[1].path, sends[1].token_ok), (KF_SEND, false));
        assert_eq!(fake.token_fetches(), 1);
        assert_eq!(fake.sync_stats().calls, 1);
        assert_eq!(fake.unexpected().0, 1);
    }
}
