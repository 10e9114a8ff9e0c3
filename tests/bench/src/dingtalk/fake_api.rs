//! A lean fake DingTalk on the [`platform_server`](crate::platform_server) (it shares the cores
//! with the gateway), routing as the fake WeCom API does ([`Route`]).
//!
//! `POST /robot/sendBySession?session=…` (every message's session webhook points here) is
//! recorded ([`Record`]).
//! `POST /v1.0/gateway/connections/open` hands out the fake Stream gateway's endpoint and a
//! fresh ticket. Anything else is counted as unexpected.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use serde_json::Value;

use super::{APP_KEY, APP_SECRET};
use crate::platform::api::{Arrival, Fake, Record, Route};
use crate::platform::request::{http_response, query_param};
use crate::platform_server::Server;

pub const SEND_BY_SESSION: &str = "/robot/sendBySession";
const OPEN: &str = "/v1.0/gateway/connections/open";
/// Every ticket handed out starts so, followed by its number.
pub const TICKET_PREFIX: &str = "bench-ticket-";
const OK: &str = r#"{"errcode":0,"errmsg":"ok"}"#;

/// One answer botgate posted to a session webhook.
pub struct Sent {
    /// The `session` query parameter, as given (None: there was none).
    pub session: Option<String>,
    pub at: Instant,
    pub body: Bytes,
}

impl Arrival for Sent {
    fn arrived(&self) -> Instant {
        self.at
    }
}

#[derive(Default)]
struct Shared {
    record: Record<Sent>,
    /// `connections/open` calls answered with a ticket.
    opens: AtomicU64,
    /// The Stream gateway's `ws://` endpoint, if the scenario runs one.
    endpoint: Option<String>,
}

/// The fake, serving on 127.0.0.1 until dropped.
pub struct FakeDingtalk {
    server: Server,
    shared: Arc<Shared>,
}

impl FakeDingtalk {
    /// `endpoint`: what `connections/open` hands out (`None`: it is unexpected).
    pub fn start(endpoint: Option<String>) -> io::Result<FakeDingtalk> {
        let shared = Arc::new(Shared {
            endpoint,
            ..Shared::default()
        });
        let server = Server::start("fake-dingtalk", "fake DingTalk", Arc::clone(&shared))?;
        Ok(FakeDingtalk { server, shared })
    }

    /// `http://127.0.0.1:PORT`: the bot's `api_base` and its one allowed webhook origin.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// `connections/open` calls answered with a ticket.
    pub fn opens(&self) -> u64 {
        self.shared.opens.load(Ordering::Relaxed)
    }
}

impl Fake for FakeDingtalk {
    type Sent = Sent;
    const NAME: &'static str = "fake DingTalk";

    fn record(&self) -> &Record<Sent> {
        &self.shared.record
    }
}

impl Route for Shared {
    type Sent = Sent;

    fn record(&self) -> &Record<Sent> {
        &self.record
    }

    fn route(&self, method: &str, path: &str, query: &str, body: Bytes) -> Vec<u8> {
        match (method, path) {
            ("POST", SEND_BY_SESSION) => {
                let session = query_param(query, "session").map(str::to_owned);
                self.record.send(Sent {
                    session,
                    at: Instant::now(),
                    body,
                });
                http_response(200, OK)
            }
            ("POST", OPEN) if self.endpoint.is_some() => {
                let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                if request["clientId"] != APP_KEY || request["clientSecret"] != APP_SECRET {
                    self.record
                        .unexpected(format!("connections/open with {request}"));
                    return http_response(401, r#"{"code":"InvalidAuthentication"}"#);
                }
                let number = self.opens.fetch_add(1, Ordering::Relaxed) + 1;
                let endpoint = self.endpoint.as_deref().unwrap_or_default();
                let body = serde_json::json!({
                    "endpoint": endpoint,
                    "ticket": format!("{TICKET_PREFIX}{number}"),
                });
                http_response(200, &body.to_string())
            }
            _ => {
                self.record.unexpected(format!("{method} {path}"));
                http_response(
                    404,
                    r#"{"code":"NotFound","message":"no such API in the fake"}"#,
                )
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

        assert!(
            fake.record()
                .wait_for_sends(1, Duration::from_secs(1))
                .await
        );
        let sends = fake.record().take_sends();
        assert_eq!(sends[0].session.as_deref(), Some("s0-1"));
        assert_eq!((fake.opens(), fake.record().unexpected_so_far().0), (1, 1));
    }
}
