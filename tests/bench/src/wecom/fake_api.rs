//! A lean fake WeCom API on the [`platform_server`](crate::platform_server), because it shares
//! the two cores with the gateway it stands behind (the test kit's fake parses and records every
//! request in full, on the bench's own runtime).
//!
//! `gettoken` hands out one token. `message/send` and `kf/send_msg` are recorded
//! ([`Record`]). `kf/sync_msg` pages through the
//! customer messages the scenario queued ([`SyncLog`]). Anything else is counted as unexpected.

use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use botgate_wecom::kf::KfMessage;
use bytes::Bytes;
use serde_json::Value;

use super::sync_log::{SyncLog, SyncStats};
use super::{CORP_ID, SECRET};
use crate::platform::api::{Arrival, Fake, Record, Route};
use crate::platform::request::{http_response, query_param};
use crate::platform_server::Server;

/// The token `gettoken` hands out; every other call must carry it.
pub const ACCESS_TOKEN: &str = "bench-access-token";
pub const APP_SEND: &str = "/cgi-bin/message/send";
pub const KF_SEND: &str = "/cgi-bin/kf/send_msg";
const GET_TOKEN: &str = "/cgi-bin/gettoken";
const SYNC: &str = "/cgi-bin/kf/sync_msg";
const OK: &str = r#"{"errcode":0,"errmsg":"ok"}"#;
/// WeCom's answer to a stale or unknown token: botgate refreshes it once and retries.
const BAD_TOKEN: &str = r#"{"errcode":40014,"errmsg":"invalid access_token"}"#;

/// One answer botgate sent.
pub struct Sent {
    /// [`APP_SEND`] or [`KF_SEND`].
    pub path: &'static str,
    pub at: Instant,
    /// Whether the query carried [`ACCESS_TOKEN`].
    pub token_ok: bool,
    pub body: Bytes,
}

impl Arrival for Sent {
    fn arrived(&self) -> Instant {
        self.at
    }
}

#[derive(Default)]
struct State {
    sync: SyncLog,
    token_fetches: u64,
}

#[derive(Default)]
struct Shared {
    record: Record<Sent>,
    state: Mutex<State>,
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
    server: Server,
    shared: Arc<Shared>,
}

impl FakeWecom {
    pub fn start() -> io::Result<FakeWecom> {
        let shared = Arc::new(Shared::default());
        let server = Server::start("fake-wecom", "fake WeCom", Arc::clone(&shared))?;
        Ok(FakeWecom { server, shared })
    }

    /// `http://127.0.0.1:PORT`, the bot's `api_base`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Customer messages for the next pulls to find.
    pub fn queue_kf(&self, items: Vec<KfMessage>) {
        self.shared.state().sync.queue(items);
    }

    pub fn sync_stats(&self) -> SyncStats {
        self.shared.state().sync.stats()
    }
}

impl Fake for FakeWecom {
    type Sent = Sent;
    const NAME: &'static str = "fake WeCom API";

    fn record(&self) -> &Record<Sent> {
        &self.shared.record
    }

    fn token_fetches(&self) -> Option<(u64, &'static str)> {
        Some((self.shared.state().token_fetches, "gettoken"))
    }
}

/// What one request gets; sends are recorded here.
impl Route for Shared {
    type Sent = Sent;

    fn record(&self) -> &Record<Sent> {
        &self.record
    }

    fn route(&self, method: &str, path: &str, query: &str, body: Bytes) -> Vec<u8> {
        let token_ok = query_param(query, "access_token") == Some(ACCESS_TOKEN);
        match (method, path) {
            ("GET", GET_TOKEN) => {
                self.state().token_fetches += 1;
                let known = query_param(query, "corpid") == Some(CORP_ID)
                    && query_param(query, "corpsecret") == Some(SECRET);
                let body = if known {
                    format!(
                        r#"{{"errcode":0,"errmsg":"ok","access_token":"{ACCESS_TOKEN}","expires_in":7200}}"#
                    )
                } else {
                    self.record.unexpected(format!("gettoken with {query}"));
                    r#"{"errcode":40013,"errmsg":"invalid corpid"}"#.to_owned()
                };
                http_response(200, &body)
            }
            ("POST", APP_SEND | KF_SEND) => {
                let path = if path == APP_SEND { APP_SEND } else { KF_SEND };
                self.record.send(Sent {
                    path,
                    at: Instant::now(),
                    token_ok,
                    body,
                });
                http_response(200, if token_ok { OK } else { BAD_TOKEN })
            }
            ("POST", SYNC) if token_ok => {
                let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let (_, page) = self.state().sync.pull(&request);
                http_response(200, &page)
            }
            ("POST", SYNC) => http_response(200, BAD_TOKEN),
            _ => {
                self.record.unexpected(format!("{method} {path}"));
                http_response(404, r#"{"errcode":404,"errmsg":"no such API in the fake"}"#)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Connection;
    use std::net::SocketAddr;
    use std::time::Duration;

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

        assert!(
            fake.record()
                .wait_for_sends(2, Duration::from_secs(1))
                .await
        );
        let sends = fake.record().take_sends();
        assert_eq!(sends.len(), 2);
        assert_eq!((sends[0].path, sends[0].token_ok), (APP_SEND, true));
        assert_eq!(&sends[0].body[..], br#"{"touser":"u"}"#);
        assert_eq!((sends[1].path, sends[1].token_ok), (KF_SEND, false));
        assert_eq!(fake.token_fetches(), Some((1, "gettoken")));
        assert_eq!(fake.sync_stats().calls, 1);
        assert_eq!(fake.record().unexpected_so_far().0, 1);
    }
}
