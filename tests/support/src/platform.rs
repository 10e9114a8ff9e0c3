//! `FakePlatform`: records every outbound send (WeChat, WeCom, DingTalk APIs) and answers "ok".

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::server::{header_pairs, lock, parse_body, wait_until, RunningServer};

/// One request the fake platform received.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    /// `GET`, `POST`, `PUT`…
    pub method: String,
    pub path: String,
    /// The raw query string without `?` (e.g. `access_token=…`); empty when none.
    pub query: String,
    /// Header names in lowercase (DingTalk sends its token in `x-acs-dingtalk-access-token`).
    pub headers: Vec<(String, String)>,
    /// The JSON body; `Value::String` if it was not JSON, `Null` if empty.
    pub body: Value,
    /// When it was recorded, for tests of pacing.
    pub at: std::time::Instant,
}

impl Received {
    /// The value of a query parameter, undecoded.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value)
    }
}

/// A fake chat-platform API on `127.0.0.1`, stopped when dropped.
///
/// Every request, on any path and method, is recorded and answered with the first of:
/// the next response queued for its path ([`Self::push_responses_for`]), the fixed response
/// for its path ([`Self::respond_to`]), the next response queued for any path
/// ([`Self::push_responses`]), or `200 {"errcode":0,"errmsg":"ok"}`.
#[derive(Debug)]
pub struct FakePlatform {
    server: RunningServer,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    count: watch::Sender<usize>,
}

#[derive(Debug, Default)]
struct State {
    received: Vec<Received>,
    queued: VecDeque<(u16, Value)>,
    queued_by_path: HashMap<String, VecDeque<(u16, Value)>>,
    fixed_by_path: HashMap<String, (u16, Value)>,
    /// How long each answer takes after its request was recorded.
    delay: Duration,
}

impl State {
    fn response_for(&mut self, path: &str) -> (u16, Value) {
        if let Some(response) = self
            .queued_by_path
            .get_mut(path)
            .and_then(VecDeque::pop_front)
        {
            return response;
        }
        if let Some(response) = self.fixed_by_path.get(path) {
            return response.clone();
        }
        self.queued
            .pop_front()
            .unwrap_or_else(|| (200, json!({"errcode": 0, "errmsg": "ok"})))
    }
}

impl FakePlatform {
    pub async fn start() -> FakePlatform {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            count: watch::Sender::new(0),
        });
        let data = web::Data::from(Arc::clone(&shared));
        let server = RunningServer::start("platform", move |config: &mut web::ServiceConfig| {
            config
                .app_data(data.clone())
                .default_service(web::to(receive));
        })
        .await;
        FakePlatform { server, shared }
    }

    /// `http://127.0.0.1:PORT`, to use as the platform's API base.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Everything received so far, in order.
    pub fn received(&self) -> Vec<Received> {
        lock(&self.shared.state).received.clone()
    }

    /// What was received on one path, in order.
    pub fn received_on(&self, path: &str) -> Vec<Received> {
        lock(&self.shared.state)
            .received
            .iter()
            .filter(|received| received.path == path)
            .cloned()
            .collect()
    }

    /// Forgets what was received; [`Self::wait_for`] still counts from the start.
    pub fn clear_received(&self) {
        lock(&self.shared.state).received.clear();
    }

    /// Waits until at least `n` requests have been received; false if `timeout` passes first.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> bool {
        wait_until(&self.shared.count, n, timeout).await
    }

    /// Waits up to `within` for `n` requests, then `quiet` longer for any beyond them, and
    /// returns how many arrived (counted like [`Self::wait_for`]): exactly `n` means all came
    /// and none twice.
    pub async fn settle(&self, n: usize, within: Duration, quiet: Duration) -> usize {
        if self.wait_for(n, within).await {
            self.wait_for(n + 1, quiet).await;
        }
        *self.shared.count.borrow()
    }

    /// The next requests (on paths without their own queue or fixed response) get these
    /// statuses and bodies, in order.
    pub fn push_responses(&self, responses: impl IntoIterator<Item = (u16, Value)>) {
        lock(&self.shared.state).queued.extend(responses);
    }

    /// The next requests on `path` get these, in order, before anything else.
    pub fn push_responses_for(
        &self,
        path: &str,
        responses: impl IntoIterator<Item = (u16, Value)>,
    ) {
        lock(&self.shared.state)
            .queued_by_path
            .entry(path.to_owned())
            .or_default()
            .extend(responses);
    }

    /// Every answer from now on comes this long after its request was recorded: a slow
    /// platform, so a sender's parts are still going out when something else happens.
    pub fn set_delay(&self, delay: Duration) {
        lock(&self.shared.state).delay = delay;
    }

    /// Every request on `path` gets this from now on (e.g. a token endpoint's answer).
    pub fn respond_to(&self, path: &str, status: u16, body: Value) {
        lock(&self.shared.state)
            .fixed_by_path
            .insert(path.to_owned(), (status, body));
    }
}

async fn receive(
    request: HttpRequest,
    body: web::Bytes,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let received = Received {
        method: request.method().to_string(),
        path: request.path().to_owned(),
        query: request.query_string().to_owned(),
        headers: header_pairs(&request),
        body: parse_body(&body),
        at: std::time::Instant::now(),
    };
    let (status, body, delay) = {
        let mut state = lock(&shared.state);
        let (status, body) = state.response_for(&received.path);
        state.received.push(received);
        (status, body, state.delay)
    };
    shared.count.send_modify(|count| *count += 1);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .content_type("application/json")
        .body(body.to_string())
}
