//! The closed-loop load generator: N keep-alive connections, each with one request in flight,
//! requests built before the run, every response kept and checked after it, latencies and
//! failures tallied.
//!
//! The generator shares the measured cores with the gateway, so the expensive parts of an
//! exchange (encrypting and signing a request, decrypting and comparing a reply) are done while
//! the gateway is idle: [`prepare`] before, [`verify`] after. During the run a connection only
//! writes bytes it has, reads the response and checks its status.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::task::JoinSet;

use crate::http::Connection;

/// A request not answered within this long is a failure (and its connection is replaced).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Failure messages kept to show what went wrong.
const SAMPLES_KEPT: usize = 5;
/// Each prepared request's buffer is made at least this large: the reply is kept in it, and
/// safe-mode replies (961 bytes) are larger than their requests (839), so without the room
/// every kept reply would cost a reallocation during the run.
const KEEP_BYTES: usize = 1536;

/// What one scenario sends and expects back.
pub trait Exchange: Send + Sync + 'static {
    /// The bytes of request number `sequence` on connection `connection` (numbers start at 0;
    /// in [`Length::Count`] mode `sequence` is unique across connections).
    fn request(&self, connection: usize, sequence: u64) -> anyhow::Result<Vec<u8>>;
    /// The status every response must have; any other fails at once.
    fn status(&self) -> u16;
    /// Whether the body of a response with [`Self::status`] is the one expected; the error says
    /// what was wrong. Called after the run, from several threads.
    fn verify(&self, body: &[u8]) -> Result<(), String>;
    /// Request `sequence` of `connection` goes out now: for scenarios that time what the
    /// response only starts (an answer delivered later). Nothing by default.
    fn sending(&self, _connection: usize, _sequence: u64, _at: Instant) {}
}

/// Requests built before a [`Length::Timed`] run: per connection, sequences 0, 1, … in order.
/// A build error is kept, to be counted when its turn comes, as if built then.
#[derive(Default)]
pub struct Prepared {
    connections: Vec<Vec<Result<Vec<u8>, String>>>,
}

impl Prepared {
    pub fn requests(&self) -> u64 {
        self.connections
            .iter()
            .map(|requests| requests.len() as u64)
            .sum()
    }
}

/// Builds `per_connection` requests for each of `connections`, on every core (nothing else is
/// running yet).
pub async fn prepare<E: Exchange>(
    exchange: &Arc<E>,
    connections: usize,
    per_connection: u64,
) -> anyhow::Result<Prepared> {
    let exchange = Arc::clone(exchange);
    let threads = parallelism().min(connections.max(1));
    tokio::task::spawn_blocking(move || {
        let mut prepared = Prepared {
            connections: (0..connections).map(|_| Vec::new()).collect(),
        };
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|thread| {
                    let exchange = &*exchange;
                    scope.spawn(move || {
                        (thread..connections)
                            .step_by(threads)
                            .map(|connection| {
                                (connection, build(exchange, connection, per_connection))
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            for worker in workers {
                let built = worker
                    .join()
                    .map_err(|_| anyhow::anyhow!("a request-building thread panicked"))?;
                for (connection, requests) in built {
                    prepared.connections[connection] = requests;
                }
            }
            anyhow::Ok(())
        })?;
        Ok(prepared)
    })
    .await
    .context("build the requests")?
}

/// Requests 0..`count` of `connection`, each with room for its reply.
fn build<E: Exchange>(exchange: &E, connection: usize, count: u64) -> Vec<Result<Vec<u8>, String>> {
    (0..count)
        .map(|sequence| {
            let mut request = exchange
                .request(connection, sequence)
                .map_err(|error| format!("build request: {error:#}"))?;
            request.reserve(KEEP_BYTES.saturating_sub(request.len()));
            Ok(request)
        })
        .collect()
}

/// Checks every body kept by the run against [`Exchange::verify`], on every core (the load has
/// stopped), and adds the failures to the outcome's.
pub async fn verify<E: Exchange>(exchange: &Arc<E>, outcome: &mut Outcome) -> anyhow::Result<()> {
    let exchange = Arc::clone(exchange);
    let kept = std::mem::take(&mut outcome.kept);
    let unsent = std::mem::take(&mut outcome.unsent);
    let checked = kept.len() as u64;
    let threads = parallelism();
    let failures = tokio::task::spawn_blocking(move || {
        drop(unsent);
        let kind = status_kind(exchange.status());
        let share = kept.len().div_ceil(threads).max(1);
        std::thread::scope(|scope| {
            let workers: Vec<_> = kept
                .chunks(share)
                .map(|bodies| {
                    let exchange = &*exchange;
                    scope.spawn(move || {
                        let mut failures = Failures::default();
                        for body in bodies {
                            if let Err(message) = exchange.verify(body) {
                                failures.count(kind, message);
                            }
                        }
                        failures
                    })
                })
                .collect();
            let mut failures = Failures::default();
            for worker in workers {
                match worker.join() {
                    Ok(found) => failures.merge(found),
                    Err(_) => failures.count(kind, "a verifying thread panicked".to_owned()),
                }
            }
            failures
        })
    })
    .await
    .context("verify the replies")?;
    outcome.failures.merge(failures);
    outcome.verified += checked;
    Ok(())
}

fn parallelism() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// How an unexpected status counts: a 2xx other than the expected one is a wrong reply.
fn status_kind(status: u16) -> Kind {
    if (200..300).contains(&status) {
        Kind::Reply
    } else {
        Kind::Status
    }
}

/// How long a run lasts.
#[derive(Debug, Clone, Copy)]
pub enum Length {
    /// Send for `warmup + measure`; only requests completing inside `measure` are counted.
    /// With a `rate` (requests per second, all connections together), each connection waits
    /// for its turn in an even schedule instead of sending as soon as its last response came,
    /// so a gateway that acknowledges faster than it answers is not buried in a backlog; a
    /// connection behind schedule sends at once.
    Timed {
        warmup: Duration,
        measure: Duration,
        rate: Option<f64>,
    },
    /// Send exactly this many requests, all counted.
    Count(u64),
}

/// Why requests failed, by kind.
#[derive(Debug, Default, Clone)]
pub struct Failures {
    /// Answered with an unexpected status.
    pub status: u64,
    /// Answered 2xx, but not with what was expected.
    pub reply: u64,
    pub timeout: u64,
    /// Connection refused, reset, or a malformed response.
    pub io: u64,
    /// The request could not even be built (signing, encryption).
    pub build: u64,
    pub samples: Vec<String>,
}

impl Failures {
    pub fn total(&self) -> u64 {
        self.status + self.reply + self.timeout + self.io + self.build
    }

    fn note(&mut self, message: String) {
        if self.samples.len() < SAMPLES_KEPT {
            self.samples.push(message);
        }
    }

    fn merge(&mut self, other: Failures) {
        self.status += other.status;
        self.reply += other.reply;
        self.timeout += other.timeout;
        self.io += other.io;
        self.build += other.build;
        for sample in other.samples {
            self.note(sample);
        }
    }
}

/// What a run measured.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Latency of every counted request, failed ones included, in microseconds, sorted.
    pub latencies_us: Vec<u32>,
    /// Failures among all requests sent, warm-up included.
    pub failures: Failures,
    /// Requests sent in all, warm-up included (each should cost exactly one LLM call).
    pub sent: u64,
    /// The counted window: `measure`, or from the first send to the last response.
    pub elapsed: Duration,
    /// Requests built during the run, because none was prepared or a connection ran out.
    pub built_on_the_fly: u64,
    /// Bodies checked by [`verify`] so far.
    pub verified: u64,
    /// Bodies of the responses with the expected status, for [`verify`] (which also frees
    /// them, off the measured window).
    kept: Vec<Vec<u8>>,
    /// Prepared requests the run had no time for, freed by [`verify`] too: by the hundred
    /// thousand, just as the measured window closes.
    unsent: Vec<Unsent>,
}

/// What is left of a connection's prepared requests.
type Unsent = std::vec::IntoIter<Result<Vec<u8>, String>>;

impl Outcome {
    pub fn counted(&self) -> u64 {
        self.latencies_us.len() as u64
    }

    pub fn per_second(&self) -> f64 {
        self.counted() as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// The latency below which `quantile` (0..=1) of the counted requests fall, in ms.
    pub fn percentile_ms(&self, quantile: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let rank = (quantile * self.latencies_us.len() as f64).ceil() as usize;
        let index = rank.clamp(1, self.latencies_us.len()) - 1;
        f64::from(self.latencies_us[index]) / 1000.0
    }

    pub fn max_ms(&self) -> f64 {
        self.latencies_us
            .last()
            .map_or(0.0, |&us| f64::from(us) / 1000.0)
    }
}

/// Runs `connections` closed loops against `address` and gathers what they saw. A timed run
/// sends `prepared` requests first and builds the rest as it goes; a counted run builds all
/// (its sequence numbers are shared by the connections, so none can be assigned in advance).
/// Bodies are kept, unchecked: pass the outcome to [`verify`].
pub async fn run<E: Exchange>(
    address: SocketAddr,
    exchange: Arc<E>,
    connections: usize,
    length: Length,
    prepared: Prepared,
) -> Outcome {
    let started = Instant::now();
    let window = match length {
        Length::Timed {
            warmup, measure, ..
        } => Some((started + warmup, started + warmup + measure, measure)),
        Length::Count(_) => None,
    };
    let mut prepared = match length {
        Length::Timed { .. } => prepared.connections.into_iter(),
        Length::Count(_) => Vec::new().into_iter(),
    };
    // Connection `index` sends its sequence `s` at `started + (s × connections + index) / rate`.
    let interval = match length {
        Length::Timed {
            rate: Some(rate), ..
        } if rate > 0.0 => Some(Duration::from_secs_f64(1.0 / rate)),
        _ => None,
    };
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = JoinSet::new();
    for index in 0..connections {
        let exchange = Arc::clone(&exchange);
        let next = Arc::clone(&next);
        let mut ready = prepared.next().unwrap_or_default().into_iter();
        tasks.spawn(async move {
            let mut connection = Connection::new(address);
            let mut tally = Tally {
                kept: Vec::with_capacity(ready.len()),
                ..Tally::default()
            };
            let mut own_sequence = 0_u64;
            loop {
                let sequence = match length {
                    Length::Timed { .. } => {
                        let sequence = own_sequence;
                        own_sequence += 1;
                        sequence
                    }
                    Length::Count(total) => {
                        let sequence = next.fetch_add(1, Ordering::Relaxed);
                        if sequence >= total {
                            break;
                        }
                        sequence
                    }
                };
                if let Some(interval) = interval {
                    let slot = sequence as f64 * connections as f64 + index as f64;
                    let due = started + interval.mul_f64(slot);
                    tokio::time::sleep_until(due.into()).await;
                }
                let sent = Instant::now();
                if let Some((_, end, _)) = window {
                    if sent >= end {
                        break;
                    }
                }
                exchange.sending(index, sequence, sent);
                let request = match ready.next() {
                    Some(request) => request,
                    None => {
                        tally.built_on_the_fly += 1;
                        exchange
                            .request(index, sequence)
                            .map_err(|error| format!("build request: {error:#}"))
                    }
                };
                let result = exchange_once(&*exchange, &mut connection, request).await;
                let done = Instant::now();
                tally.sent += 1;
                let counted = match window {
                    Some((from, until, _)) => done >= from && done < until,
                    None => true,
                };
                if counted {
                    let micros =
                        u32::try_from(done.duration_since(sent).as_micros()).unwrap_or(u32::MAX);
                    tally.latencies_us.push(micros);
                }
                // Failures count wherever they happen, warm-up included: every reply is checked.
                match result {
                    Ok(body) => tally.kept.push(body),
                    Err((kind, message)) => tally.failures.count(kind, message),
                }
                tally.last_done = Some(done);
            }
            tally.unsent = ready;
            tally
        });
    }
    let mut outcome = Outcome::default();
    let mut last_done = started;
    while let Some(joined) = tasks.join_next().await {
        let Ok(tally) = joined else {
            outcome.failures.io += 1;
            outcome
                .failures
                .note("a connection task panicked".to_owned());
            continue;
        };
        outcome.sent += tally.sent;
        outcome.built_on_the_fly += tally.built_on_the_fly;
        outcome.latencies_us.extend(tally.latencies_us);
        outcome.kept.extend(tally.kept);
        outcome.unsent.push(tally.unsent);
        outcome.failures.merge(tally.failures);
        if let Some(done) = tally.last_done {
            last_done = last_done.max(done);
        }
    }
    outcome.latencies_us.sort_unstable();
    outcome.elapsed = match window {
        Some((_, _, measure)) => measure,
        None => last_done.duration_since(started),
    };
    outcome
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Status,
    Reply,
    Timeout,
    Io,
    Build,
}

#[derive(Default)]
struct Tally {
    sent: u64,
    built_on_the_fly: u64,
    latencies_us: Vec<u32>,
    kept: Vec<Vec<u8>>,
    unsent: Unsent,
    failures: Failures,
    last_done: Option<Instant>,
}

impl Failures {
    fn count(&mut self, kind: Kind, message: String) {
        match kind {
            Kind::Status => self.status += 1,
            Kind::Reply => self.reply += 1,
            Kind::Timeout => self.timeout += 1,
            Kind::Io => self.io += 1,
            Kind::Build => self.build += 1,
        }
        self.note(message);
    }
}

/// Sends one request; the body of a response with the expected status, to verify later, in the
/// request's buffer.
async fn exchange_once<E: Exchange>(
    exchange: &E,
    connection: &mut Connection,
    request: Result<Vec<u8>, String>,
) -> Result<Vec<u8>, (Kind, String)> {
    let request = request.map_err(|message| (Kind::Build, message))?;
    let response = match tokio::time::timeout(REQUEST_TIMEOUT, connection.send(&request)).await {
        Ok(Ok(response)) => response,
        Ok(Err(error)) => return Err((Kind::Io, format!("connection: {error}"))),
        Err(_) => {
            connection.reset();
            return Err((
                Kind::Timeout,
                format!("no response within {REQUEST_TIMEOUT:?}"),
            ));
        }
    };
    if response.status != exchange.status() {
        return Err((
            status_kind(response.status),
            format!(
                "HTTP {}: {}",
                response.status,
                String::from_utf8_lossy(&response.body)
            ),
        ));
    }
    // The body goes where the request was: a slice of the response would pin the connection's
    // read buffer, and a fresh allocation would grow the heap, page faults and all, on the
    // measured cores; the request's buffer is already there and about the size of a reply.
    let mut kept = request;
    kept.clear();
    kept.extend_from_slice(&response.body);
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let outcome = Outcome {
            latencies_us: (1..=100).map(|ms| ms * 1000).collect(),
            elapsed: Duration::from_secs(1),
            ..Outcome::default()
        };
        assert_eq!(outcome.percentile_ms(0.5), 50.0);
        assert_eq!(outcome.percentile_ms(0.99), 99.0);
        assert_eq!(outcome.max_ms(), 100.0);
        assert_eq!(outcome.per_second(), 100.0);
    }

    /// Requests whose body is `connection-sequence`; a reply is good unless its sequence is a
    /// multiple of 10, and the server answers 500 to sequence 7.
    struct Echo;

    impl Exchange for Echo {
        fn request(&self, connection: usize, sequence: u64) -> anyhow::Result<Vec<u8>> {
            let body = format!("{connection}-{sequence}");
            Ok(crate::http::post("/", "text/plain", &[], body.as_bytes()))
        }

        fn status(&self) -> u16 {
            200
        }

        fn verify(&self, body: &[u8]) -> Result<(), String> {
            let text = std::str::from_utf8(body).map_err(|error| error.to_string())?;
            let (_, sequence) = text.split_once('-').ok_or("no sequence")?;
            match sequence.parse::<u64>() {
                Ok(sequence) if sequence % 10 == 0 => Err(format!("bad {text}")),
                Ok(_) => Ok(()),
                Err(error) => Err(error.to_string()),
            }
        }
    }

    /// A server answering each request with its own body (500 for sequence 7).
    async fn echo_server() -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::task::spawn_local(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                tokio::task::spawn_local(async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let mut buffer = Vec::new();
                    loop {
                        let mut headers = [httparse::EMPTY_HEADER; 8];
                        let mut request = httparse::Request::new(&mut headers);
                        if let Ok(httparse::Status::Complete(head)) = request.parse(&buffer) {
                            let length: usize = request
                                .headers
                                .iter()
                                .find(|header| header.name.eq_ignore_ascii_case("content-length"))
                                .map(|header| std::str::from_utf8(header.value).unwrap())
                                .unwrap()
                                .parse()
                                .unwrap();
                            if buffer.len() >= head + length {
                                let body: Vec<u8> =
                                    buffer.drain(..head + length).skip(head).collect();
                                let status = if body.ends_with(b"-7") { 500 } else { 200 };
                                let mut response = format!(
                                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\n\r\n",
                                    body.len()
                                )
                                .into_bytes();
                                response.extend_from_slice(&body);
                                stream.write_all(&response).await.unwrap();
                                continue;
                            }
                        }
                        let mut more = [0_u8; 4096];
                        match stream.read(&mut more).await {
                            Ok(0) | Err(_) => return,
                            Ok(read) => buffer.extend_from_slice(&more[..read]),
                        }
                    }
                });
            }
        });
        address
    }

    #[tokio::test]
    async fn prepared_requests_go_first_and_every_reply_is_verified_after() {
        tokio::task::LocalSet::new()
            .run_until(async {
                let address = echo_server().await;
                let exchange = Arc::new(Echo);
                let prepared = prepare(&exchange, 2, 5).await.unwrap();
                assert_eq!(prepared.requests(), 10);
                let length = Length::Timed {
                    warmup: Duration::ZERO,
                    measure: Duration::from_millis(300),
                    rate: None,
                };
                let mut outcome = run(address, Arc::clone(&exchange), 2, length, prepared).await;
                // Both connections got past their five prepared requests in 300 ms.
                assert!(outcome.sent > 20, "{outcome:?}");
                assert_eq!(outcome.built_on_the_fly, outcome.sent - 10);
                // Sequence 7 failed on its status, at once, on each connection.
                assert_eq!(outcome.failures.status, 2);
                assert_eq!(outcome.failures.reply, 0);
                assert_eq!(outcome.verified, 0);
                verify(&exchange, &mut outcome).await.unwrap();
                assert_eq!(outcome.verified, outcome.sent - 2);
                // Sequence 0 (and 10, 20, …) of each connection is a wrong reply, found only now.
                assert!(outcome.failures.reply >= 2);
                assert_eq!(outcome.failures.total(), 2 + outcome.failures.reply);
                assert!(outcome
                    .failures
                    .samples
                    .iter()
                    .any(|sample| sample.starts_with("bad ")));
            })
            .await;
    }

    #[tokio::test]
    async fn a_paced_run_sends_at_its_rate_whatever_the_server_could_take() {
        tokio::task::LocalSet::new()
            .run_until(async {
                let address = echo_server().await;
                let length = Length::Timed {
                    warmup: Duration::ZERO,
                    measure: Duration::from_millis(500),
                    rate: Some(40.0),
                };
                let outcome = run(address, Arc::new(Echo), 2, length, Prepared::default()).await;
                // 40 a second for half a second: 20 slots, each connection taking every other.
                assert!((19..=21).contains(&outcome.sent), "{outcome:?}");
            })
            .await;
    }

    #[tokio::test]
    async fn a_counted_run_builds_every_request_as_it_goes() {
        tokio::task::LocalSet::new()
            .run_until(async {
                let address = echo_server().await;
                let exchange = Arc::new(Echo);
                let mut outcome = run(
                    address,
                    Arc::clone(&exchange),
                    3,
                    Length::Count(25),
                    Prepared::default(),
                )
                .await;
                verify(&exchange, &mut outcome).await.unwrap();
                assert_eq!((outcome.sent, outcome.built_on_the_fly), (25, 25));
                assert_eq!(outcome.counted(), 25);
                // Sequence 7 answered 500; 0, 10 and 20 answered the wrong body.
                assert_eq!(outcome.failures.status, 1);
                assert_eq!(outcome.failures.reply, 3);
                assert_eq!(outcome.verified, 24);
            })
            .await;
    }
}
