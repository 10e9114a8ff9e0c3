//! The callback scenarios (`wecom-app`, `dingtalk-http`): distinct messages at a fixed
//! concurrency (or paced), each acknowledged with an empty 200 once queued and answered later
//! through the platform's API. The platform signs the callbacks and checks the answers
//! ([`Callbacks`]); the load, the timing and the report are here.
//!
//! The callbacks are signed before the run and the acknowledgements read after it; the fake
//! keeps the answers as bytes, checked once the last one arrived. What is measured: how fast
//! botgate acknowledges, how fast it answers, and the time from a callback going out to its
//! answer reaching the platform.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::answers::Checked;
use super::api::{Arrival, Fake};
use super::{summary, Spread, Stack};
use crate::cpu::CpuMeter;
use crate::load::{self, Exchange, Length};
use crate::redis_stats::RedisProbe;
use crate::report::{round, Report};
use crate::Options;

/// At most this many requests are built in advance (about 1.5 KiB each): acknowledging a
/// callback costs botgate more than a WeChat passive reply, so fewer are needed.
const PREPARED_MAX: u64 = 600_000;

/// A platform's side of a callback scenario.
pub trait Callbacks: Send + Sync + 'static {
    type Fake: Fake;
    const SCENARIO: &'static str;
    /// Why an acknowledgement's body must be empty, quoted when one is not.
    const EMPTY_BECAUSE: &'static str;
    /// Where the fake receives an answer, e.g. "message/send".
    const ANSWERED_AT: &'static str;
    /// How a right answer is addressed, e.g. "to their member".
    const ADDRESSED: &'static str;
    /// What the messages are, for the setup line: "2 messages per member".
    fn traffic() -> String;
    /// The signed callback for message `sequence` of `connection`.
    fn request(&self, connection: usize, sequence: u64) -> anyhow::Result<Vec<u8>>;
    /// `sent_at[connection][sequence]`: when each message went out; those within `window`
    /// count towards the end-to-end times.
    fn check(
        sends: &[<Self::Fake as Fake>::Sent],
        sent_at: &[Vec<Instant>],
        window: (Instant, Instant),
    ) -> Checked;
}

/// The platform's callbacks, timed as they go out.
struct Timed<C> {
    callbacks: C,
    /// When each request of each connection went out, by sequence.
    sent_at: Vec<Mutex<Vec<Instant>>>,
}

impl<C> Timed<C> {
    fn take_sent_at(&self) -> Vec<Vec<Instant>> {
        self.sent_at
            .iter()
            .map(|times| std::mem::take(&mut *times.lock().unwrap_or_else(PoisonError::into_inner)))
            .collect()
    }
}

impl<C: Callbacks> Exchange for Timed<C> {
    fn request(&self, connection: usize, sequence: u64) -> anyhow::Result<Vec<u8>> {
        self.callbacks.request(connection, sequence)
    }

    fn status(&self) -> u16 {
        200
    }

    fn verify(&self, body: &[u8]) -> Result<(), String> {
        if body.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "HTTP 200 with a body ({}): {}",
                C::EMPTY_BECAUSE,
                String::from_utf8_lossy(body)
            ))
        }
    }

    fn sending(&self, connection: usize, sequence: u64, at: Instant) {
        // A connection's sequences go out 0, 1, 2, … on its own task: this lock is never
        // contended, and the index is the sequence.
        let mut times = self.sent_at[connection]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if times.len() as u64 == sequence {
            times.push(at);
        }
    }
}

pub async fn run<C: Callbacks>(
    options: &Options,
    mut stack: Stack<C::Fake>,
    callbacks: C,
) -> anyhow::Result<Report> {
    let warmup = Duration::from_secs(options.warmup);
    let measure = Duration::from_secs(options.seconds);
    let connections = options.connections;
    // A paced run needs requests for its rate only (and a few more for the rounding).
    let rate = options
        .rate
        .map_or(options.max_rate, |rate| rate.ceil() as u64 + 1);
    let per_connection = (rate * (options.warmup + options.seconds))
        .min(PREPARED_MAX)
        .div_ceil(connections as u64);
    let exchange = Arc::new(Timed {
        callbacks,
        sent_at: (0..connections)
            .map(|_| Mutex::new(Vec::with_capacity(per_connection as usize)))
            .collect(),
    });
    // Signed now, seconds before they go out: well inside the platforms' timestamp windows
    // (WeCom's 300 s, DingTalk's hour).
    let building = Instant::now();
    let prepared = load::prepare(&exchange, connections, per_connection).await?;
    let (prepared_count, build_time) = (prepared.requests(), building.elapsed());

    // `--redis-stats`: Redis's counters from just before the first callback to the last answer.
    let mut probe = match stack.upstreams.redis_port() {
        Some(port) if options.redis_stats => {
            let mut probe = RedisProbe::connect(port).await?;
            probe.reset_stats().await?;
            Some(probe)
        }
        _ => None,
    };
    let meter = CpuMeter::new(stack.botgate.pid());
    let before = meter.snapshot();
    let started = Instant::now();
    let length = Length::Timed {
        warmup,
        measure,
        rate: options.rate,
    };
    let load = load::run(
        stack.botgate.address(),
        Arc::clone(&exchange),
        connections,
        length,
        prepared,
    );
    let mut outcome = stack.upstreams.while_clearing(load).await;
    let acked = started.elapsed();
    let sent_at = exchange.take_sent_at();
    let expected: u64 = sent_at.iter().map(|times| times.len() as u64).sum();
    let awaited = summary::await_answers(&stack, expected, &meter, &before, started).await;
    let commands = match probe.as_mut() {
        Some(probe) => Some(probe.command_stats().await?),
        None => None,
    };
    load::verify(&exchange, &mut outcome).await?;
    let sends = stack.api.record().take_sends();
    let window = (started + warmup, started + warmup + measure);
    let answered_during_load = sends
        .iter()
        .filter(|sent| sent.arrived() <= started + acked)
        .count() as u64;
    let mut checked = C::check(&sends, &sent_at, window);
    let end_to_end = Spread::new(std::mem::take(&mut checked.end_to_end));
    let last_answer = checked.last.map_or(Duration::ZERO, |last| {
        last.saturating_duration_since(started)
    });

    let mut report = Report::new(
        C::SCENARIO,
        format!(
            "{connections} connections{}, {}, warm-up {} s, {}",
            options
                .rate
                .map(|rate| format!(" paced at {rate} messages/s"))
                .unwrap_or_default(),
            C::traffic(),
            options.warmup,
            stack.setup(options)
        ),
    );
    report.value("connections", connections as u64);
    if let Some(rate) = options.rate {
        report.value("rate", rate);
    }
    report.value("workers", options.workers as u64);
    report.value("store", stack.upstreams.store_name());
    report.value("llm_stream", stack.llm.stream);
    report.value("llm_http2", stack.llm.http2);
    report.load(&outcome, "messages/s acknowledged");
    let answers_per_sec = checked.answered as f64 / last_answer.as_secs_f64().max(f64::EPSILON);
    report.row(
        "answers/s",
        format!(
            "{answers_per_sec:.0}  ({} answers, first callback to last answer {:.1} s; load stopped at {:.1} s)",
            checked.answered,
            last_answer.as_secs_f64(),
            acked.as_secs_f64()
        ),
    );
    let waiting = expected.saturating_sub(answered_during_load);
    report.row(
        "waiting when the load stopped",
        format!("{waiting} messages acknowledged but not answered yet"),
    );
    report.row(
        "end to end p50/p99/max",
        format!(
            "{}  (callback sent → {} received; {} messages sent while measuring)",
            end_to_end.text(),
            C::ANSWERED_AT,
            end_to_end.count()
        ),
    );
    report.row(
        "answers checked",
        format!(
            "{} of {expected} messages answered once, {}, with the fake's text; {} extra, {} missing, {} bad",
            checked.answered, C::ADDRESSED, checked.duplicates, checked.missing, checked.bad
        ),
    );
    report.cpu(&awaited.cores, awaited.drained, expected);
    report.row(
        "CPU window",
        format!(
            "first callback to last answer ({:.1} s), per message answered",
            awaited.drained.as_secs_f64()
        ),
    );
    summary::resources(&mut report, &stack, "")?;
    let calls = summary::upstream_calls(&mut report, &stack, expected, "");
    report.built(&outcome, prepared_count, build_time, options.max_rate);
    summary::answer_values(
        &mut report,
        &checked,
        &end_to_end,
        answers_per_sec,
        last_answer,
    );
    if let Some(commands) = commands {
        let total: u64 = commands.values().sum();
        let per_message = total as f64 / expected.max(1) as f64;
        let mut ordered: Vec<(&String, &u64)> = commands.iter().collect();
        ordered.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let breakdown: Vec<String> = ordered
            .iter()
            .map(|(command, calls)| {
                format!("{command} {:.2}", **calls as f64 / expected.max(1) as f64)
            })
            .collect();
        report.row(
            "Redis commands",
            format!(
                "{per_message:.2} per message ({total} for {expected} messages, first callback to \
                 last answer, warm-up and background polling included, commands run inside \
                 scripts counted too): {}",
                breakdown.join(", ")
            ),
        );
        report.value("redis_commands_per_message", round(per_message, 2));
        report.value(
            "redis_commands",
            serde_json::Value::Object(
                commands
                    .into_iter()
                    .map(|(command, calls)| (command, calls.into()))
                    .collect(),
            ),
        );
    }
    report.value("waiting_at_load_end", waiting);
    report.value("messages_sent", expected);

    if outcome.sent != expected {
        report.problem(format!(
            "{} requests sent but {expected} send times recorded",
            outcome.sent
        ));
    }
    summary::stalled(&mut report, &stack, &awaited, expected);
    summary::wrong_answers(&mut report, &checked, expected);
    summary::not_one_call_each(&mut report, calls, expected);
    summary::close(&mut report, &mut stack);
    stack.botgate.stop().await;
    Ok(report)
}
