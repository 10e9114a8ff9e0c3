//! `dingtalk-http`: distinct signed robot messages from many conversations (one-to-one, and a
//! group @-mention every fourth) at a fixed concurrency, each acknowledged with an empty 200
//! once queued, each answered later through its session webhook.
//!
//! The callbacks are signed before the run and the acknowledgements read after it; the fake
//! keeps the answers as bytes, checked once the last one arrived.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use botgate_dingtalk::{DingtalkRobot, SIGN_HEADER, TIMESTAMP_HEADER};

use super::{
    answers, message, unix_ms, Stack, APP_SECRET, DELIVERY_STALL, DUPLICATE_WATCH,
    MESSAGES_PER_CONVERSATION,
};
use crate::cpu::CpuMeter;
use crate::fixture::BOT;
use crate::load::{self, Exchange, Length};
use crate::report::{mib, round, Report};
use crate::wecom::Spread;
use crate::{http, Options};

const SCENARIO: &str = "dingtalk-http";
/// At most this many requests are built in advance (about 1.5 KiB each).
const PREPARED_MAX: u64 = 600_000;

/// Distinct robot messages, as DingTalk posts them in HTTP mode.
struct CallbackExchange {
    robot: DingtalkRobot,
    /// The fake's origin, where every session webhook points.
    webhook_base: String,
    /// When each request of each connection went out, by sequence.
    sent_at: Vec<Mutex<Vec<Instant>>>,
}

impl CallbackExchange {
    fn take_sent_at(&self) -> Vec<Vec<Instant>> {
        self.sent_at
            .iter()
            .map(|times| std::mem::take(&mut *times.lock().unwrap_or_else(PoisonError::into_inner)))
            .collect()
    }
}

impl Exchange for CallbackExchange {
    fn request(&self, connection: usize, sequence: u64) -> anyhow::Result<Vec<u8>> {
        let message = message(&self.webhook_base, connection, sequence);
        let now = unix_ms()?;
        let signed = self.robot.sign_request(&message, now);
        let find = |name: &str| {
            signed
                .headers
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str())
                .unwrap_or_default()
        };
        Ok(http::post(
            &format!("/dingtalk/{BOT}"),
            "application/json; charset=utf-8",
            &[
                (TIMESTAMP_HEADER, find(TIMESTAMP_HEADER)),
                (SIGN_HEADER, find(SIGN_HEADER)),
            ],
            signed.body.as_bytes(),
        ))
    }

    fn status(&self) -> u16 {
        200
    }

    fn verify(&self, body: &[u8]) -> Result<(), String> {
        if body.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "HTTP 200 with a body (an answer goes to the session webhook): {}",
                String::from_utf8_lossy(body)
            ))
        }
    }

    fn sending(&self, connection: usize, sequence: u64, at: Instant) {
        let mut times = self.sent_at[connection]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if times.len() as u64 == sequence {
            times.push(at);
        }
    }
}

pub async fn run(options: &Options) -> anyhow::Result<Report> {
    let mut stack = Stack::start(options, None).await?;
    let warmup = Duration::from_secs(options.warmup);
    let measure = Duration::from_secs(options.seconds);
    let connections = options.connections;
    let rate = options
        .rate
        .map_or(options.max_rate, |rate| rate.ceil() as u64 + 1);
    let per_connection = (rate * (options.warmup + options.seconds))
        .min(PREPARED_MAX)
        .div_ceil(connections as u64);
    let exchange = Arc::new(CallbackExchange {
        robot: DingtalkRobot::new(APP_SECRET),
        webhook_base: stack.api.url(),
        sent_at: (0..connections)
            .map(|_| Mutex::new(Vec::with_capacity(per_connection as usize)))
            .collect(),
    });
    // Signed now, seconds before they go out: well inside DingTalk's one-hour window.
    let building = Instant::now();
    let prepared = load::prepare(&exchange, connections, per_connection).await?;
    let (prepared_count, build_time) = (prepared.requests(), building.elapsed());

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
    let delivered_all = stack
        .upstreams
        .while_clearing(stack.api.wait_for_sends(expected, DELIVERY_STALL))
        .await;
    let drained = started.elapsed();
    let cores = meter.cores(&before, &meter.snapshot(), drained);
    tokio::time::sleep(DUPLICATE_WATCH).await;
    load::verify(&exchange, &mut outcome).await?;
    let sends = stack.api.take_sends();
    let window = (started + warmup, started + warmup + measure);
    let answered_during_load = sends
        .iter()
        .filter(|sent| sent.at <= started + acked)
        .count() as u64;
    let mut checked = answers::check(&sends, &sent_at, window);
    let end_to_end = Spread::new(std::mem::take(&mut checked.end_to_end));
    let last_answer = checked.last.map_or(Duration::ZERO, |last| {
        last.saturating_duration_since(started)
    });

    let mut report = Report::new(
        SCENARIO,
        format!(
            "{connections} connections{}, {MESSAGES_PER_CONVERSATION} messages per conversation, 1 in 4 a group, warm-up {} s, {}",
            options
                .rate
                .map(|rate| format!(" paced at {rate} messages/s"))
                .unwrap_or_default(),
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
    report.row(
        "waiting when the load stopped",
        format!(
            "{} messages acknowledged but not answered yet",
            expected.saturating_sub(answered_during_load)
        ),
    );
    report.row(
        "end to end p50/p99/max",
        format!(
            "{}  (callback sent → session webhook received; {} messages sent while measuring)",
            end_to_end.text(),
            end_to_end.count()
        ),
    );
    report.row(
        "answers checked",
        format!(
            "{} of {expected} messages answered once, on their conversation's webhook, with the fake's text; {} extra, {} missing, {} bad",
            checked.answered, checked.duplicates, checked.missing, checked.bad
        ),
    );
    report.cpu(&cores, drained, expected);
    report.row(
        "CPU window",
        format!(
            "first callback to last answer ({:.1} s), per message answered",
            drained.as_secs_f64()
        ),
    );
    let peak = mib(stack.botgate.peak_rss_kib()?);
    let startup_ms = round(stack.botgate.startup().as_secs_f64() * 1000.0, 1);
    report.row("peak RSS (VmHWM)", format!("{peak} MiB"));
    report.row("startup to ready", format!("{startup_ms} ms"));
    let calls = stack.upstreams.fake.calls() as u64;
    report.row(
        "upstream calls",
        format!("{calls} LLM calls for {expected} messages"),
    );
    report.row(
        "requests built on the fly",
        format!(
            "{} of {} ({prepared_count} built in {:.1} s before the run, for --max-rate {})",
            outcome.built_on_the_fly,
            outcome.sent,
            build_time.as_secs_f64(),
            options.max_rate
        ),
    );
    report.value("answers", checked.answered);
    report.value("answers_per_sec", round(answers_per_sec, 0));
    report.value("e2e_p50_ms", round(end_to_end.ms(0.5), 1));
    report.value("e2e_p99_ms", round(end_to_end.ms(0.99), 1));
    report.value("e2e_max_ms", round(end_to_end.max_ms(), 1));
    report.value("last_answer_sec", round(last_answer.as_secs_f64(), 2));
    report.value(
        "waiting_at_load_end",
        expected.saturating_sub(answered_during_load),
    );
    report.value("extra_answers", checked.duplicates);
    report.value("missing_answers", checked.missing);
    report.value("bad_answers", checked.bad);
    report.value("peak_rss_mib", peak);
    report.value("startup_ms", startup_ms);
    report.value("llm_calls", calls);
    report.value("messages_sent", expected);

    if outcome.sent != expected {
        report.problem(format!(
            "{} requests sent but {expected} send times recorded",
            outcome.sent
        ));
    }
    if !delivered_all {
        report.problem(format!(
            "{} answers for {expected} messages: none came for {DELIVERY_STALL:?}",
            stack.api.sends()
        ));
    }
    if checked.answered != expected || checked.duplicates + checked.bad > 0 {
        report.problem(format!(
            "answers: {} right of {expected}, {} extra, {} missing, {} bad; first problems: {}",
            checked.answered,
            checked.duplicates,
            checked.missing,
            checked.bad,
            checked.samples.join(" | ")
        ));
    }
    if calls != expected {
        report.problem(format!(
            "{calls} LLM calls for {expected} messages: each must cost exactly one"
        ));
    }
    let (unexpected, samples) = stack.api.unexpected();
    if unexpected > 0 {
        report.problem(format!(
            "{unexpected} unexpected requests to the fake DingTalk; first: {}",
            samples.join(" | ")
        ));
    }
    if !stack.botgate.is_running() {
        report.problem("botgate died during the run".to_owned());
    }
    report.log(stack.botgate.log_tail());
    stack.botgate.stop().await;
    Ok(report)
}
