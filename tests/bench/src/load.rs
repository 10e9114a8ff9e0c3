//! The closed-loop load generator: N keep-alive connections, each with one request in flight,
//! every response checked, latencies and failures tallied.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::http::{Connection, Response};

/// A request not answered within this long is a failure (and its connection is replaced).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Failure messages kept to show what went wrong.
const SAMPLES_KEPT: usize = 5;

/// What one scenario sends and expects back.
pub trait Exchange: Send + Sync + 'static {
    /// The bytes of request number `sequence` on connection `connection` (numbers start at 0;
    /// in [`Length::Count`] mode `sequence` is unique across connections).
    fn request(&self, connection: usize, sequence: u64) -> anyhow::Result<Vec<u8>>;
    /// Whether the response is the one expected; the error says what was wrong.
    fn verify(&self, response: &Response) -> Result<(), String>;
}

/// How long a run lasts.
#[derive(Debug, Clone, Copy)]
pub enum Length {
    /// Send for `warmup + measure`; only requests completing inside `measure` are counted.
    Timed { warmup: Duration, measure: Duration },
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
}

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

/// Runs `connections` closed loops against `address` and gathers what they saw.
pub async fn run<E: Exchange>(
    address: SocketAddr,
    exchange: Arc<E>,
    connections: usize,
    length: Length,
) -> Outcome {
    let started = Instant::now();
    let window = match length {
        Length::Timed { warmup, measure } => {
            Some((started + warmup, started + warmup + measure, measure))
        }
        Length::Count(_) => None,
    };
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = JoinSet::new();
    for index in 0..connections {
        let exchange = Arc::clone(&exchange);
        let next = Arc::clone(&next);
        tasks.spawn(async move {
            let mut connection = Connection::new(address);
            let mut tally = Tally::default();
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
                let sent = Instant::now();
                if let Some((_, end, _)) = window {
                    if sent >= end {
                        break;
                    }
                }
                let result = exchange_once(&*exchange, &mut connection, index, sequence).await;
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
                if let Err((kind, message)) = result {
                    tally.failures.count(kind, message);
                }
                tally.last_done = Some(done);
            }
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
        outcome.latencies_us.extend(tally.latencies_us);
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
    latencies_us: Vec<u32>,
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

async fn exchange_once<E: Exchange>(
    exchange: &E,
    connection: &mut Connection,
    index: usize,
    sequence: u64,
) -> Result<(), (Kind, String)> {
    let request = exchange
        .request(index, sequence)
        .map_err(|error| (Kind::Build, format!("build request: {error:#}")))?;
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
    exchange.verify(&response).map_err(|message| {
        let kind = if (200..300).contains(&response.status) {
            Kind::Reply
        } else {
            Kind::Status
        };
        (kind, message)
    })
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
}
