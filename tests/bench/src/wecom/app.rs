//! `wecom-app`: distinct messages from many members of a self-built app at a fixed concurrency,
//! each acknowledged with an empty 200 once queued, each answered later through `message/send`.
//!
//! As in the WeChat scenarios the callbacks are signed and encrypted before the run and the
//! acknowledgements read after it; the fake keeps the answers as bytes, checked once the last
//! one arrived. What is measured: how fast botgate acknowledges, how fast it answers, and the
//! time from a callback going out to its answer reaching WeCom.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use botgate_wecom::{SimulatedCallback, WecomApp};

use super::{
    app_sends, callback_request, Spread, Stack, AGENT_ID, DELIVERY_STALL, DUPLICATE_WATCH,
};
use crate::cpu::CpuMeter;
use crate::load::{self, Exchange, Length};
use crate::report::{mib, round, Report};
use crate::Options;

const SCENARIO: &str = "wecom-app";
/// Members are `bench-<connection>-<n>`, each sending [`MESSAGES_PER_MEMBER`] in a row.
pub const MEMBER_PREFIX: &str = "bench-";
/// A few messages per member: well under the 30 answers a minute botgate allows one member
/// (WeCom drops more), and enough that the second LLM call carries the first turn.
pub const MESSAGES_PER_MEMBER: u64 = 2;
/// Real MsgIds are 19 digits; connection and sequence make each one unique.
const FIRST_MSG_ID: u64 = 7_340_000_000_000_000_000;
/// At most this many requests are built in advance (1.5 KiB each): acknowledging a WeCom
/// message costs botgate more than a WeChat passive reply, so fewer are needed.
const PREPARED_MAX: u64 = 600_000;

/// Distinct text messages from many members, as WeCom posts them.
struct AppExchange {
    app: WecomApp,
    /// When each request of each connection went out, by sequence.
    sent_at: Vec<Mutex<Vec<Instant>>>,
}

impl AppExchange {
    fn take_sent_at(&self) -> Vec<Vec<Instant>> {
        self.sent_at
            .iter()
            .map(|times| std::mem::take(&mut *times.lock().unwrap_or_else(PoisonError::into_inner)))
            .collect()
    }
}

impl Exchange for AppExchange {
    fn request(&self, connection: usize, sequence: u64) -> anyhow::Result<Vec<u8>> {
        let callback = SimulatedCallback::Text {
            user: format!(
                "{MEMBER_PREFIX}{connection}-{}",
                sequence / MESSAGES_PER_MEMBER
            ),
            agent_id: AGENT_ID,
            msg_id: FIRST_MSG_ID + ((connection as u64) << 32) + sequence,
            content: format!("第{sequence}个问题：请问门店周末几点开门？"),
        };
        callback_request(&self.app, &callback)
    }

    fn status(&self) -> u16 {
        200
    }

    fn verify(&self, body: &[u8]) -> Result<(), String> {
        if body.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "HTTP 200 with a body (WeCom wants it empty): {}",
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

pub async fn run(options: &Options) -> anyhow::Result<Report> {
    let mut stack = Stack::start(options, false).await?;
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
    let exchange = Arc::new(AppExchange {
        app: super::app()?,
        sent_at: (0..connections)
            .map(|_| Mutex::new(Vec::with_capacity(per_connection as usize)))
            .collect(),
    });
    // Signed now, seconds before they go out: well inside the 300 s timestamp window.
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
    let mut checked = app_sends::check(&sends, &sent_at, window);
    let end_to_end = Spread::new(std::mem::take(&mut checked.end_to_end));
    let last_answer = checked.last.map_or(Duration::ZERO, |last| {
        last.saturating_duration_since(started)
    });

    let mut report = Report::new(
        SCENARIO,
        format!(
            "{connections} connections{}, {MESSAGES_PER_MEMBER} messages per member, warm-up {} s, {}",
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
            "{}  (callback sent → message/send received; {} messages sent while measuring)",
            end_to_end.text(),
            end_to_end.count()
        ),
    );
    report.row(
        "answers checked",
        format!(
            "{} of {expected} messages answered once, to their member, with the fake's text; {} extra, {} missing, {} bad",
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
    let token_fetches = stack.api.token_fetches();
    report.row(
        "upstream calls",
        format!("{calls} LLM calls, {token_fetches} gettoken for {expected} messages"),
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
    report.value("token_fetches", token_fetches);
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
            stack.api.sends() as usize
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
            "{unexpected} unexpected requests to the fake WeCom API; first: {}",
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
