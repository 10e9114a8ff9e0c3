//! `wechat-safe` and `wechat-plain`: WeChat passive replies at a fixed concurrency, every
//! request a distinct signed (and in safe mode encrypted) message, every reply opened and compared.
//!
//! The requests are built before botgate is loaded and the replies opened after, so the bench's
//! share of the two cores during the measured window is little more than moving bytes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use botgate_wechat::{markdown_to_text, CallbackMode, SimulatedMessage, WechatAccount};
use botgate_wxcrypt::EncodingAesKey;

use crate::cpu::{CpuMeter, Profiler};
use crate::fake_llm::FrameWrites;
use crate::fixture::{LlmOptions, Upstreams, ANSWER, BOT};
use crate::http;
use crate::load::{self, Exchange, Length};
use crate::report::{mark, mib, round, Report};
use crate::stack::Botgate;
use crate::Options;

const TOKEN: &str = "benchtoken";
const AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
const APP_ID: &str = "wxbench0000000001";
/// The account's original id, as WeChat puts it in `ToUserName`.
const ACCOUNT: &str = "gh_bench";
/// Real MsgIds are beyond 2^53 (they break JavaScript numbers); so are ours.
const FIRST_MSG_ID: u64 = 6_054_768_590_064_713_728;
/// Users per connection: each sees a message every this many requests, so its memory fills
/// to `max_turns` and stays bounded, and every LLM call carries a real history.
const USERS_PER_CONNECTION: u64 = 50;
/// Time allowed for the last LLM calls to be counted after the load stops.
const CALLS_SETTLE: Duration = Duration::from_secs(2);
/// At most this many requests are built in advance (1.5 KiB each, with room for the reply):
/// 28 s at the default `--max-rate`; longer runs build the rest as they go.
const PREPARED_MAX: u64 = 1_000_000;

/// The targets from the issue (2 cores, safe mode, Redis, 64 connections).
const TARGET_RATE: f64 = 15_000.0;
const TARGET_P99_MS: f64 = 20.0;
const TARGET_RSS_MIB: f64 = 50.0;
const TARGET_STARTUP_MS: f64 = 100.0;

/// Message `msg_id` (counted from a realistic first MsgId) from `user`, signed (and in safe
/// mode encrypted) as WeChat sends it, POSTed to `path`.
pub(crate) fn signed_message(
    account: &WechatAccount,
    mode: CallbackMode,
    path: &str,
    user: &str,
    msg_id: u64,
    sequence: u64,
) -> anyhow::Result<Vec<u8>> {
    let message = SimulatedMessage::Text {
        msg_id: FIRST_MSG_ID + msg_id,
        content: format!("第{sequence}个问题：请问门店周末几点开门？"),
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("clock before 1970")?
        .as_secs();
    let mut random = [0_u8; 16];
    getrandom::fill(&mut random).context("random bytes")?;
    let nonce = u32::from_le_bytes([random[0], random[1], random[2], random[3]]).to_string();
    let xml = message.to_xml(user, ACCOUNT, now);
    let signed = account.sign_request(mode, &xml, now, &nonce, &random)?;
    let target = format!("{path}?{}", signed.query);
    Ok(http::post(&target, "text/xml", &[], signed.body.as_bytes()))
}

/// Distinct messages from many users, as WeChat would send them.
struct WechatExchange {
    account: WechatAccount,
    mode: CallbackMode,
    next_msg_id: AtomicU64,
}

impl Exchange for WechatExchange {
    fn request(&self, connection: usize, sequence: u64) -> anyhow::Result<Vec<u8>> {
        let user = format!("o-bench-{connection}-{}", sequence % USERS_PER_CONNECTION);
        let msg_id = self.next_msg_id.fetch_add(1, Ordering::Relaxed);
        signed_message(
            &self.account,
            self.mode,
            &format!("/wechat/{BOT}"),
            &user,
            msg_id,
            sequence,
        )
    }

    fn status(&self) -> u16 {
        200
    }

    fn verify(&self, body: &[u8]) -> Result<(), String> {
        match self.account.open_reply(body) {
            Ok(Some(text)) if text == ANSWER => Ok(()),
            Ok(Some(text)) => Err(format!("wrong reply: {text}")),
            Ok(None) => Err("no reply (success or empty body)".to_owned()),
            Err(error) => Err(format!("unreadable reply: {error}")),
        }
    }
}

/// Runs one WeChat passive scenario; `mode` is `Safe` or `Plaintext`.
pub async fn run(
    scenario: &'static str,
    mode: CallbackMode,
    options: &Options,
) -> anyhow::Result<Report> {
    anyhow::ensure!(
        markdown_to_text(ANSWER) == ANSWER,
        "the fake's answer must survive botgate's markdown-to-text unchanged"
    );
    let llm = LlmOptions {
        stream: !options.llm_json,
        http2: options.llm_http2,
        delay: Duration::ZERO,
        // The lean fake speaks HTTP/1.1 only.
        lean: (!options.llm_http2).then_some(if options.llm_frame_writes {
            FrameWrites::PerFrame
        } else {
            FrameWrites::One
        }),
    };
    let upstreams = Upstreams::start(options.store, options.shards, llm).await?;
    let encrypted = mode != CallbackMode::Plaintext;
    let key_line = if encrypted {
        format!("encoding_aes_key = \"{AES_KEY}\"\n")
    } else {
        String::new()
    };
    let config = format!(
        "{}[bots.{BOT}]\nllm = \"main\"\n\n[bots.{BOT}.wechat]\napp_id = \"{APP_ID}\"\n\
         token = \"{TOKEN}\"\n{key_line}",
        upstreams.config(llm)
    );
    let key = if encrypted {
        Some(EncodingAesKey::parse(AES_KEY).context("the bench's EncodingAESKey")?)
    } else {
        None
    };
    let exchange = Arc::new(WechatExchange {
        account: WechatAccount::new(TOKEN, key, APP_ID),
        mode,
        next_msg_id: AtomicU64::new(0),
    });
    let warmup = Duration::from_secs(options.warmup);
    let measure = Duration::from_secs(options.seconds);
    // Timestamps are taken now, seconds before the requests go out: well inside botgate's
    // replay window (`timestamp_window_secs`, 300 s by default) for any run of minutes.
    let wanted = options.max_rate * (options.warmup + options.seconds);
    let per_connection = wanted
        .min(PREPARED_MAX)
        .div_ceil(options.connections as u64);
    let building = Instant::now();
    let prepared = load::prepare(&exchange, options.connections, per_connection).await?;
    let prepared_count = prepared.requests();
    let build_time = building.elapsed();
    let mut botgate = Botgate::start(&options.binary, options.workers, &config).await?;
    let profiler = options
        .perf
        .as_deref()
        .map(|path| Profiler::attach(botgate.pid(), warmup + measure, path))
        .transpose()?;
    let meter = CpuMeter::new(botgate.pid());
    let load = load::run(
        botgate.address(),
        Arc::clone(&exchange),
        options.connections,
        Length::Timed {
            warmup,
            measure,
            rate: None,
        },
        prepared,
    );
    let sample = async {
        tokio::time::sleep(warmup).await;
        let before = meter.snapshot();
        tokio::time::sleep(measure).await;
        meter.cores(&before, &meter.snapshot(), measure)
    };
    let (mut outcome, cores) = upstreams
        .while_clearing(async { tokio::join!(load, sample) })
        .await;
    upstreams
        .fake
        .wait_for_calls(outcome.sent as usize, CALLS_SETTLE)
        .await;
    let calls = upstreams.fake.calls() as u64;
    let rejected = upstreams.fake.rejected();
    let verifying = Instant::now();
    load::verify(&exchange, &mut outcome).await?;
    let verify_time = verifying.elapsed();
    let peak_kib = botgate.peak_rss_kib()?;
    let running = botgate.is_running();

    let mut report = Report::new(
        scenario,
        format!(
            "{} connections, {} workers, {} store, LLM {} over HTTP/{}, warm-up {} s, pid {}",
            options.connections,
            options.workers,
            upstreams.store_name(),
            if llm.stream { "SSE" } else { "JSON" },
            if llm.http2 { "2" } else { "1.1" },
            options.warmup,
            botgate.pid(),
        ),
    );
    report.value("connections", options.connections as u64);
    report.value("workers", options.workers as u64);
    report.value("store", upstreams.store_name());
    report.value("llm_stream", llm.stream);
    report.value("llm_http2", llm.http2);
    report.load(&outcome, "messages/s");
    report.cpu(&cores, measure, outcome.counted());
    let peak = mib(peak_kib);
    let startup_ms = round(botgate.startup().as_secs_f64() * 1000.0, 1);
    report.row("peak RSS (VmHWM)", format!("{peak} MiB"));
    report.row("startup to ready", format!("{startup_ms} ms"));
    let refused = match rejected {
        Some((count, _)) => format!(", {count} rejected"),
        None => String::new(),
    };
    report.row(
        "LLM calls",
        format!("{calls} for {} messages sent{refused}", outcome.sent),
    );
    let frames = if llm.stream {
        upstreams.fake.frames()
    } else {
        "one write (a JSON answer)"
    };
    report.row("LLM frames", frames.to_owned());
    report.built(&outcome, prepared_count, build_time, options.max_rate);
    report.row(
        "replies verified",
        format!(
            "{} after the run, in {:.1} s",
            outcome.verified,
            verify_time.as_secs_f64()
        ),
    );
    report.value("llm_frames", frames);
    report.value("built_on_the_fly", outcome.built_on_the_fly);
    report.value("requests_prepared", prepared_count);
    report.value("replies_verified", outcome.verified);
    report.value("peak_rss_mib", peak);
    report.value("startup_ms", startup_ms);
    report.value("llm_calls", calls);
    if let Some((count, _)) = rejected {
        report.value("llm_rejected", count);
    }
    report.value("messages_sent", outcome.sent);
    if calls != outcome.sent {
        report.problem(format!(
            "{calls} LLM calls for {} messages: every distinct message must cost exactly one",
            outcome.sent
        ));
    }
    if let Some((count, first)) = rejected.filter(|(count, _)| *count > 0) {
        report.problem(format!(
            "the fake Bailian refused {count} requests; first: {}",
            first.unwrap_or("?")
        ));
    }
    if !running {
        report.problem("botgate died during the run".to_owned());
    }
    report.log(botgate.log_tail());
    if mode == CallbackMode::Safe {
        let (rate, p99) = (outcome.per_second(), outcome.percentile_ms(0.99));
        report.row(
            "targets",
            format!(
                "≥{TARGET_RATE:.0} msg/s {}  p99<{TARGET_P99_MS:.0} ms {}  RSS<{TARGET_RSS_MIB:.0} MiB {}  startup<{TARGET_STARTUP_MS:.0} ms {}",
                mark(rate >= TARGET_RATE),
                mark(p99 < TARGET_P99_MS),
                mark(peak < TARGET_RSS_MIB),
                mark(startup_ms < TARGET_STARTUP_MS),
            ),
        );
    }
    if let Some(profiler) = profiler {
        let path = profiler.finish().await?;
        report.row("perf profile", path.display().to_string());
    }
    botgate.stop().await;
    Ok(report)
}
