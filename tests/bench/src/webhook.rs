//! `slow-webhook`: many conversations waiting at once on a slow LLM, through the generic signed
//! webhook channel (acknowledge with 202, deliver the answer to `deliver_url` later).
//!
//! Inbound: `POST /webhook/{bot}` with `{"conversation","sender","message_id","text"}` and
//! `X-Botgate-Signature: sha256=<hex HMAC-SHA256(secret, body)>`; `202 {"status":"accepted"}`.
//! Outbound: `POST deliver_url` with `{"bot","conversation","message_id","chunk","chunks","text"}`,
//! the same signature header and `Idempotency-Key: <message_id>:<chunk>`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use botgate_testkit::FakePlatform;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::fixture::{LlmOptions, Upstreams, BOT};
use crate::http::{self, Connection};
use crate::load::{self, Exchange, Length, Outcome, Prepared};
use crate::report::{mark, mib, round, Report};
use crate::stack::{Botgate, RssPeak, StartError};
use crate::Options;
use deliveries::Checked;

mod deliveries;

const SCENARIO: &str = "slow-webhook";
const SECRET: &str = "bench-webhook-secret";
/// Message ids are `bench-<run>-<index>`: unique per run, and mapped back to a conversation.
const MESSAGE_ID_PREFIX: &str = "bench-";
const SIGNATURE_HEADER: &str = "X-Botgate-Signature";
const DELIVER_PATH: &str = "/deliver";
/// How long the deliveries may take after the last message was accepted.
const DELIVERY_DEADLINE: Duration = Duration::from_secs(60);
/// Memory is read this long before the first answers are due at the latest.
const HOLD_MARGIN: Duration = Duration::from_millis(500);
/// After the last expected delivery, how long to watch for extra (duplicate) ones.
const DUPLICATE_WATCH: Duration = Duration::from_millis(500);
/// The targets from the issue (#15): RSS while the conversations wait, by HTTP version.
const TARGET_WAITING_MIB_HTTP2: f64 = 100.0;
const TARGET_WAITING_MIB_HTTP1: f64 = 200.0;

/// One message per conversation, each signed with the bot's secret.
struct WebhookExchange {
    run: u64,
}

impl WebhookExchange {
    fn message_id(&self, index: u64) -> String {
        format!("{MESSAGE_ID_PREFIX}{}-{index}", self.run)
    }
}

impl Exchange for WebhookExchange {
    fn request(&self, _connection: usize, sequence: u64) -> anyhow::Result<Vec<u8>> {
        let body = json!({
            "conversation": format!("conversation-{sequence}"),
            "sender": format!("user-{sequence}"),
            "message_id": self.message_id(sequence),
            "text": format!("第{sequence}个问题：请问门店周末几点开门？"),
        })
        .to_string();
        let signature = sign(body.as_bytes());
        Ok(http::post(
            &format!("/webhook/{BOT}"),
            "application/json",
            &[(SIGNATURE_HEADER, &signature)],
            body.as_bytes(),
        ))
    }

    fn status(&self) -> u16 {
        202
    }

    fn verify(&self, body: &[u8]) -> Result<(), String> {
        let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        if parsed["status"] == "accepted" {
            Ok(())
        } else {
            Err(format!("HTTP 202: {}", String::from_utf8_lossy(body)))
        }
    }
}

/// `sha256=<lowercase hex HMAC-SHA256(secret, body)>`.
fn sign(body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(SECRET.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut text = String::with_capacity(7 + 64);
    text.push_str("sha256=");
    for byte in digest {
        text.push_str(&format!("{byte:02x}"));
    }
    text
}

pub async fn run(options: &Options) -> anyhow::Result<Report> {
    let llm = LlmOptions {
        stream: !options.llm_json,
        http2: options.llm_http2,
        delay: Duration::from_secs(options.llm_delay),
        lean: None,
    };
    let upstreams = Upstreams::start(options.store, options.shards, llm).await?;
    let platform = FakePlatform::start().await;
    let config = format!(
        "{}[delivery]\nworkers = {}\n\n[bots.{BOT}]\nllm = \"main\"\n\n\
         [bots.{BOT}.webhook]\nsecret = \"{SECRET}\"\ndeliver_url = \"{}{DELIVER_PATH}\"\n",
        upstreams.config(llm),
        options.delivery_workers,
        platform.url(),
    );
    let mut botgate = match Botgate::start(&options.binary, options.workers, &config).await {
        Ok(botgate) => botgate,
        Err(StartError::Exited { log, .. })
            if log.contains("webhook") || log.contains("delivery") =>
        {
            let reason = log.lines().last().unwrap_or_default().to_owned();
            return Ok(Report::skipped(
                SCENARIO,
                format!("webhook channel not available (botgate refused its config: {reason})"),
            ));
        }
        Err(error) => return Err(error.into()),
    };
    if !has_channel(&botgate).await? {
        botgate.stop().await;
        return Ok(Report::skipped(
            SCENARIO,
            format!("webhook channel not available (404 on /webhook/{BOT})"),
        ));
    }
    let observed = observe(&botgate, &upstreams, &platform, options).await?;
    let mut report = report(&observed, &botgate, &upstreams, options);
    if !botgate.is_running() {
        report.problem("botgate died during the run".to_owned());
    }
    report.log(botgate.log_tail());
    botgate.stop().await;
    Ok(report)
}

/// A probe with a bad signature: 404 means there is no such route (yet); the channel refuses
/// it (401) before any LLM call.
async fn has_channel(botgate: &Botgate) -> anyhow::Result<bool> {
    let probe = http::post(
        &format!("/webhook/{BOT}"),
        "application/json",
        &[(SIGNATURE_HEADER, "sha256=00")],
        b"{}",
    );
    let response = Connection::new(botgate.address()).send(&probe).await?;
    Ok(response.status != 404)
}

/// What one run saw, phase by phase; times count from the first message.
struct Observed {
    outcome: Outcome,
    baseline_kib: u64,
    all_acked: Duration,
    /// Conversations waiting on the LLM at once, when and with how much memory.
    waiting: u64,
    waiting_at: Duration,
    waiting_kib: u64,
    delivered_all: bool,
    end_to_end: Duration,
    rss_peak: RssPeak,
    after_kib: u64,
    peak_kib: u64,
    calls: u64,
    checked: Checked,
    received: usize,
}

/// Sends every message, reads memory while they all wait on the LLM, then waits for every
/// answer to be delivered and checks the deliveries.
async fn observe(
    botgate: &Botgate,
    upstreams: &Upstreams,
    platform: &FakePlatform,
    options: &Options,
) -> anyhow::Result<Observed> {
    let conversations = options.conversations;
    let baseline_kib = botgate.rss_kib()?;
    let run = u64::from(std::process::id());
    let exchange = Arc::new(WebhookExchange { run });
    let started = Instant::now();
    let mut outcome = upstreams
        .while_clearing(load::run(
            botgate.address(),
            Arc::clone(&exchange),
            options.connections,
            Length::Count(conversations),
            Prepared::default(),
        ))
        .await;
    let all_acked = started.elapsed();
    // Memory is read when every conversation that can wait at once is waiting on the LLM,
    // before the first answers come back.
    let holding = conversations.min(options.delivery_workers) as usize;
    let answers_due = Duration::from_secs(options.llm_delay).saturating_sub(HOLD_MARGIN);
    upstreams
        .while_clearing(
            upstreams
                .fake
                .wait_for_calls(holding, answers_due.saturating_sub(started.elapsed())),
        )
        .await;
    let waiting_at = started.elapsed();
    let waiting_kib = botgate.rss_kib()?;
    let waiting = upstreams.fake.calls() as u64;
    let (delivered_all, rss_peak) = upstreams
        .while_clearing(botgate.watch_rss(
            platform.wait_for(conversations as usize, DELIVERY_DEADLINE),
            started,
        ))
        .await;
    let end_to_end = started.elapsed();
    tokio::time::sleep(DUPLICATE_WATCH).await;
    load::verify(&exchange, &mut outcome).await?;
    let received = platform.received();
    Ok(Observed {
        outcome,
        baseline_kib,
        all_acked,
        waiting,
        waiting_at,
        waiting_kib,
        delivered_all,
        end_to_end,
        rss_peak,
        after_kib: botgate.rss_kib()?,
        peak_kib: botgate.peak_rss_kib()?,
        calls: upstreams.fake.calls() as u64,
        checked: deliveries::check(&received, run, conversations),
        received: received.len(),
    })
}

fn report(
    observed: &Observed,
    botgate: &Botgate,
    upstreams: &Upstreams,
    options: &Options,
) -> Report {
    let conversations = options.conversations;
    let Observed {
        outcome, checked, ..
    } = observed;
    let mut report = Report::new(
        SCENARIO,
        format!(
            "{conversations} conversations, LLM answer after {} s over HTTP/{}, {} delivery workers, {} connections, {} workers, {} store, pid {}",
            options.llm_delay,
            if options.llm_http2 { "2" } else { "1.1" },
            options.delivery_workers,
            options.connections,
            options.workers,
            upstreams.store_name(),
            botgate.pid(),
        ),
    );
    report.value("conversations", conversations);
    report.value("llm_delay_secs", options.llm_delay);
    report.value("llm_http2", options.llm_http2);
    report.value("delivery_workers", options.delivery_workers);
    report.value("connections", options.connections as u64);
    report.value("workers", options.workers as u64);
    report.value("store", upstreams.store_name());
    report.load(outcome, "acks/s");

    let per_conversation_kib = observed.waiting_kib.saturating_sub(observed.baseline_kib) as f64
        / observed.waiting.max(1) as f64;
    let peak = mib(observed.peak_kib);
    let startup_ms = round(botgate.startup().as_secs_f64() * 1000.0, 1);
    report.row(
        "all acknowledged after",
        format!("{:.2} s", observed.all_acked.as_secs_f64()),
    );
    report.row(
        "waiting on the LLM",
        format!(
            "{} conversations at {:.1} s: RSS {} MiB (baseline {} MiB), {:.1} KiB each",
            observed.waiting,
            observed.waiting_at.as_secs_f64(),
            mib(observed.waiting_kib),
            mib(observed.baseline_kib),
            per_conversation_kib
        ),
    );
    report.row(
        "last delivery after",
        format!(
            "{:.2} s ({} of {conversations} delivered, {} bad)",
            observed.end_to_end.as_secs_f64(),
            checked.complete,
            checked.bad
        ),
    );
    report.row(
        "RSS while answers arrive",
        format!(
            "highest sample {} MiB, {:.1} s after the first message; {} MiB once all are delivered",
            mib(observed.rss_peak.kib),
            observed.rss_peak.at.as_secs_f64(),
            mib(observed.after_kib)
        ),
    );
    report.row("peak RSS (VmHWM)", format!("{peak} MiB"));
    report.row("startup to ready", format!("{startup_ms} ms"));
    report.row(
        "LLM calls",
        format!("{} for {conversations} messages", observed.calls),
    );
    let clean = outcome.failures.total() == 0 && checked.bad == 0 && observed.delivered_all;
    let target = match options.llm_http2 {
        true => TARGET_WAITING_MIB_HTTP2,
        false => TARGET_WAITING_MIB_HTTP1,
    };
    report.row(
        "targets",
        format!(
            "RSS while waiting<{target:.0} MiB {}  zero errors {}",
            mark(mib(observed.waiting_kib) < target),
            mark(clean)
        ),
    );
    report.value("ack_sec", round(observed.all_acked.as_secs_f64(), 2));
    report.value("waiting_conversations", observed.waiting);
    report.value("rss_waiting_mib", mib(observed.waiting_kib));
    report.value(
        "kib_per_waiting_conversation",
        round(per_conversation_kib, 1),
    );
    report.value(
        "end_to_end_sec",
        round(observed.end_to_end.as_secs_f64(), 2),
    );
    report.value("delivered", checked.complete);
    report.value("bad_deliveries", checked.bad);
    report.value("rss_peak_sample_mib", mib(observed.rss_peak.kib));
    report.value(
        "rss_peak_sample_sec",
        round(observed.rss_peak.at.as_secs_f64(), 1),
    );
    report.value("rss_after_mib", mib(observed.after_kib));
    report.value("peak_rss_mib", peak);
    report.value("startup_ms", startup_ms);
    report.value("llm_calls", observed.calls);

    if !observed.delivered_all {
        report.problem(format!(
            "only {} deliveries within {DELIVERY_DEADLINE:?} of the last acknowledgement",
            observed.received
        ));
    }
    if checked.bad > 0 || checked.complete != conversations {
        report.problem(format!(
            "{} answers delivered complete and correct out of {conversations}; first problems: {}",
            checked.complete,
            checked.samples.join(" | ")
        ));
    }
    if observed.calls != conversations {
        report.problem(format!(
            "{} LLM calls for {conversations} messages: each must cost exactly one",
            observed.calls
        ));
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hex_hmac_sha256() {
        // `printf '{}' | openssl dgst -sha256 -hmac bench-webhook-secret`
        assert_eq!(
            sign(b"{}"),
            "sha256=01c7e349e5461a8798146d7933d6ee46cec1a8cb27ae8860deacc9a85d9be3d1"
        );
    }
}
