//! The end of every platform scenario: waiting for the answers, and the report rows, values and
//! checks they all have (the scenario's own come between).

use std::time::{Duration, Instant};

use super::answers::Checked;
use super::api::Fake;
use super::{Spread, Stack, DELIVERY_STALL, DUPLICATE_WATCH};
use crate::cpu::{CpuMeter, CpuSnapshot};
use crate::report::{mib, round, Report};

/// How the wait for the answers went.
pub struct Awaited {
    /// Whether all the answers expected came (none missing when they stalled).
    pub delivered_all: bool,
    /// From `started` to the last answer (or the stall).
    pub drained: Duration,
    /// botgate's and the harness's cores over `drained`.
    pub cores: Vec<(&'static str, f64)>,
}

/// Waits for `expected` answers, measures the CPU up to the last, then watches for extra ones.
pub async fn await_answers<A: Fake>(
    stack: &Stack<A>,
    expected: u64,
    meter: &CpuMeter,
    before: &CpuSnapshot,
    started: Instant,
) -> Awaited {
    let delivered_all = stack
        .upstreams
        .while_clearing(stack.api.record().wait_for_sends(expected, DELIVERY_STALL))
        .await;
    let drained = started.elapsed();
    let cores = meter.cores(before, &meter.snapshot(), drained);
    tokio::time::sleep(DUPLICATE_WATCH).await;
    Awaited {
        delivered_all,
        drained,
        cores,
    }
}

/// The values of answers matched to their messages.
pub fn answer_values(
    report: &mut Report,
    checked: &Checked,
    end_to_end: &Spread,
    per_sec: f64,
    last: Duration,
) {
    report.value("answers", checked.answered);
    report.value("answers_per_sec", round(per_sec, 0));
    report.value("e2e_p50_ms", round(end_to_end.ms(0.5), 1));
    report.value("e2e_p99_ms", round(end_to_end.ms(0.99), 1));
    report.value("e2e_max_ms", round(end_to_end.max_ms(), 1));
    report.value("last_answer_sec", round(last.as_secs_f64(), 2));
    report.value("extra_answers", checked.duplicates);
    report.value("missing_answers", checked.missing);
    report.value("bad_answers", checked.bad);
}

/// botgate's peak memory and start-up time (`startup_note` follows it).
pub fn resources<A>(
    report: &mut Report,
    stack: &Stack<A>,
    startup_note: &str,
) -> anyhow::Result<()> {
    let peak = mib(stack.botgate.peak_rss_kib()?);
    let startup_ms = round(stack.botgate.startup().as_secs_f64() * 1000.0, 1);
    report.row("peak RSS (VmHWM)", format!("{peak} MiB"));
    report.row("startup to ready", format!("{startup_ms} ms{startup_note}"));
    report.value("peak_rss_mib", peak);
    report.value("startup_ms", startup_ms);
    Ok(())
}

/// The upstream calls for `messages` (`more` follows them in the row); the LLM calls.
pub fn upstream_calls<A: Fake>(
    report: &mut Report,
    stack: &Stack<A>,
    messages: u64,
    more: &str,
) -> u64 {
    let calls = stack.upstreams.fake.calls() as u64;
    let text = match stack.api.token_fetches() {
        Some((fetches, api)) => {
            report.value("token_fetches", fetches);
            format!("{calls} LLM calls, {fetches} {api} for {messages} messages{more}")
        }
        None => format!("{calls} LLM calls for {messages} messages{more}"),
    };
    report.row("upstream calls", text);
    report.value("llm_calls", calls);
    calls
}

/// The answers stopped coming before all `expected` had.
pub fn stalled<A: Fake>(report: &mut Report, stack: &Stack<A>, awaited: &Awaited, expected: u64) {
    if !awaited.delivered_all {
        report.problem(format!(
            "{} answers for {expected} messages: none came for {DELIVERY_STALL:?}",
            stack.api.record().sends()
        ));
    }
}

/// Every message answered once, right, and none more.
pub fn wrong_answers(report: &mut Report, checked: &Checked, expected: u64) {
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
}

pub fn not_one_call_each(report: &mut Report, calls: u64, messages: u64) {
    if calls != messages {
        report.problem(format!(
            "{calls} LLM calls for {messages} messages: each must cost exactly one"
        ));
    }
}

/// The last checks (requests the fake did not expect, botgate still up) and botgate's log.
pub fn close<A: Fake>(report: &mut Report, stack: &mut Stack<A>) {
    let (unexpected, samples) = stack.api.record().unexpected_so_far();
    if unexpected > 0 {
        report.problem(format!(
            "{unexpected} unexpected requests to the {}; first: {}",
            A::NAME,
            samples.join(" | ")
        ));
    }
    if !stack.botgate.is_running() {
        report.problem("botgate died during the run".to_owned());
    }
    report.log(stack.botgate.log_tail());
}
