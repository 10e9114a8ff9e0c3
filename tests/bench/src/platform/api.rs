//! What the fake WeCom API and the fake DingTalk share: routing a parsed request, and the record
//! of the answers botgate sent and of the requests no scenario expects.
//!
//! Answers are kept as raw bytes with the instant they arrived, and parsed only after the run:
//! the fakes share the two cores with the gateway.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::request::{http_response, parse, Parsed};
use crate::platform_server::{Request, Respond};

/// How often the waits look at the counters (after the load, unmeasured).
const WAIT_POLL: Duration = Duration::from_millis(5);
const SAMPLES_KEPT: usize = 5;
const MALFORMED: &str = r#"{"errcode":400,"errmsg":"malformed request"}"#;

/// A fake platform as the scenarios see it.
pub trait Fake: Send + Sync + 'static {
    /// One answer botgate sent, as the fake keeps it.
    type Sent: Arrival;
    /// "fake WeCom API", for the report.
    const NAME: &'static str;
    fn record(&self) -> &Record<Self::Sent>;
    /// Access tokens fetched and the API that hands them out, for a platform that has one.
    fn token_fetches(&self) -> Option<(u64, &'static str)> {
        None
    }
}

/// When a kept answer arrived.
pub trait Arrival {
    fn arrived(&self) -> Instant;
}

/// A fake's routes: the answer to one whole request, recording what it must.
pub trait Route: Send + Sync + 'static {
    type Sent;
    fn record(&self) -> &Record<Self::Sent>;
    fn route(&self, method: &str, path: &str, query: &str, body: Bytes) -> Vec<u8>;
}

impl<R: Route> Respond for R {
    type Answer = Vec<u8>;

    fn next(&self, buffer: &[u8]) -> Option<Request<Vec<u8>>> {
        match parse(buffer) {
            Parsed::Partial => None,
            Parsed::Malformed(reason) => {
                self.record().unexpected(reason.to_owned());
                Some(Request {
                    length: 0,
                    answer: http_response(400, MALFORMED),
                    close: true,
                })
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
                Some(Request {
                    length,
                    answer: self.route(&method, &path, &query, body),
                    close,
                })
            }
        }
    }

    async fn answer(&self, stream: &mut TcpStream, answer: Vec<u8>) -> io::Result<()> {
        stream.write_all(&answer).await
    }
}

/// The answers botgate sent, in arrival order, and the requests nobody expected.
pub struct Record<S> {
    sends: Mutex<Vec<S>>,
    /// Sends so far, read without the lock while waiting.
    count: AtomicU64,
    unexpected: Mutex<(u64, Vec<String>)>,
}

impl<S> Default for Record<S> {
    fn default() -> Self {
        Record {
            sends: Mutex::new(Vec::new()),
            count: AtomicU64::new(0),
            unexpected: Mutex::new((0, Vec::new())),
        }
    }
}

/// A panic while holding a lock leaves records that are still worth reading.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<S> Record<S> {
    pub fn send(&self, sent: S) {
        lock(&self.sends).push(sent);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn sends(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
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

    /// Every answer so far, in arrival order.
    pub fn take_sends(&self) -> Vec<S> {
        std::mem::take(&mut *lock(&self.sends))
    }

    /// A request to no API the scenarios use, or one they use wrongly.
    pub fn unexpected(&self, what: String) {
        let mut unexpected = lock(&self.unexpected);
        unexpected.0 += 1;
        if unexpected.1.len() < SAMPLES_KEPT {
            unexpected.1.push(what);
        }
    }

    /// How many requests were unexpected, and the first of them.
    pub fn unexpected_so_far(&self) -> (u64, Vec<String>) {
        lock(&self.unexpected).clone()
    }
}
