//! `web`: the website chat with many visitors at once, each holding an open answer stream
//! (`POST /web/{bot}/messages`, answered with server-sent events) while a slow Bailian streams
//! the answer: the first token after `--first-token-ms`, the rest over `--answer-ms`.
//!
//! Visitors connect at `--connect-rate`, each on a connection of its own (a browser's), so that
//! every stream is open at once for a few seconds. The run reports the time from a request
//! written to its first `delta` event and to its `done` event, botgate's resident memory while
//! every stream is open against its idle memory (memory per open stream), and its CPU per
//! stream. Every stream must end with `done` whose text is the fake's answer, its deltas adding
//! up to that text.
//!
//! The fake Bailian here ([`SlowBailian`]) is the lean fake's wire (`fake_llm`: chunked SSE,
//! `id:`/`event:result`/`:HTTP_STATUS/200`/`data:` frames, incremental output, a `stop` frame),
//! with the frames spaced out in time: a few deltas, the first after the first-token delay.
//!
//! Ten thousand streams need about twenty thousand descriptors in botgate (the visitors' and
//! its calls to Bailian, one HTTP/1.1 connection each) and as many in the bench (the visitors'
//! and the fake's ends): the bench raises its `RLIMIT_NOFILE` with `prlimit` before it starts
//! botgate, which inherits it.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use botgate_testkit::{Answer, FakeBailian, RedisServer};
use bytes::{Buf, Bytes, BytesMut};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::oneshot;

use crate::cpu::CpuMeter;
use crate::fixture::{StoreKind, ANSWER, BOT};
use crate::http::{self, Connection};
use crate::report::{mib, round, Report};
use crate::sse_client::{ClientError, Head, SseStream};
use crate::stack::{Botgate, StartError};
use crate::Options;

const SCENARIO: &str = "web";

/// The web scenario's options (flattened into the bench's command line).
#[derive(Debug, Clone, clap::Args)]
pub struct WebArgs {
    /// web: visitors, each with one answer stream open at once.
    #[arg(long, default_value_t = 10_000)]
    pub streams: u64,
    /// web: new visitor connections (each sending its message at once) per second.
    #[arg(long, default_value_t = 2_000.0)]
    pub connect_rate: f64,
    /// web: milliseconds from the fake Bailian receiving a call to its first token.
    #[arg(long, default_value_t = 1_000)]
    pub first_token_ms: u64,
    /// web: milliseconds over which the fake Bailian streams the rest of the answer.
    #[arg(long, default_value_t = 9_000)]
    pub answer_ms: u64,
}

/// The fake's answer goes out in this many deltas (then Bailian's `stop` frame).
const DELTAS: usize = 6;
/// A stream not done this long after its request was written counts as timed out.
const STREAM_DEADLINE: Duration = Duration::from_secs(60);
/// How often connections are started (a batch each time), and memory sampled.
const PACE: Duration = Duration::from_millis(10);
const SAMPLE: Duration = Duration::from_millis(100);
/// Descriptors a process needs beyond those of the streams (redis, log, runtime, listeners).
const FD_MARGIN: u64 = 256;
/// Failures shown in the report, at most.
const FAILURE_SAMPLES: usize = 5;
/// Listen backlog of the fake (capped by `net.core.somaxconn`): botgate opens its calls in
/// bursts.
const FAKE_BACKLOG: u32 = 4_096;

/// The fake's app id and key, in botgate's config.
const APP_ID: &str = "app-bench";
const API_KEY: &str = "sk-bench-bailian";
/// As the lean fake's: nothing downstream compares them.
const REQUEST_ID: &str = "5b0c2c43-6a2e-9c1f-a1d4-7e3f0b9d8c21";
const SESSION_ID: &str = "9f2d6c1e4b7a40c8a3e5d7f1b2c4e6a8";
const MODEL_ID: &str = "qwen-max";
const INPUT_TOKENS: usize = 56;
const MAX_HEAD_BYTES: usize = 64 * 1024;
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

pub async fn run(options: &Options) -> anyhow::Result<Report> {
    let args = &options.web;
    let streams = args.streams.max(1);
    // Each stream is a connection in botgate and in the bench, and over HTTP/1.1 its call to
    // the fake is another in each.
    let per_stream = if options.llm_http2 { 1 } else { 2 };
    let nofile = raise_fd_limit(per_stream * streams + FD_MARGIN);
    let redis = match options.store {
        StoreKind::Redis => Some(RedisServer::start().await),
        StoreKind::Embedded => None,
        StoreKind::Cluster => anyhow::bail!("web: --store cluster is not wired in; use redis"),
    };
    let schedule = Schedule {
        first_token: Duration::from_millis(args.first_token_ms),
        rest: Duration::from_millis(args.answer_ms),
    };
    let fake = if options.llm_http2 {
        Llm::testkit(schedule).await
    } else {
        Llm::Slow(SlowBailian::start(ANSWER, schedule).context("start the slow fake Bailian")?)
    };
    let store = redis
        .as_ref()
        .map(|redis| format!("redis_url = \"{}\"\n", redis.url()))
        .unwrap_or_default();
    let config = format!(
        "[store]\n{store}\n[llm.main]\nkind = \"bailian\"\napp_id = \"{}\"\napi_key = \"{}\"\n\
         base_url = \"{}\"\nstream = true\nhttp2 = {}\n\n\
         [bots.{BOT}]\nllm = \"main\"\n\n[bots.{BOT}.web]\nmessages_per_minute = 1000000\n",
        fake.app_id(),
        fake.api_key(),
        fake.url(),
        options.llm_http2,
    );
    let mut botgate = match Botgate::start(&options.binary, options.workers, &config).await {
        Ok(botgate) => botgate,
        Err(StartError::Exited { log, .. }) if log.contains("web") => {
            let reason = log.lines().last().unwrap_or_default().to_owned();
            return Ok(Report::skipped(
                SCENARIO,
                format!("web chat not available (botgate refused its config: {reason})"),
            ));
        }
        Err(error) => return Err(error.into()),
    };
    if !has_channel(&botgate).await? {
        botgate.stop().await;
        return Ok(Report::skipped(
            SCENARIO,
            format!("web chat not available (404 on /web/{BOT}/messages)"),
        ));
    }
    let observed = observe(&botgate, &fake, args, streams).await?;
    let setup = Setup {
        streams,
        args,
        schedule,
        nofile,
        botgate_nofile: nofile_limit(botgate.pid()),
        store: if redis.is_some() { "redis" } else { "embedded" },
        workers: options.workers,
        pid: botgate.pid(),
        startup: botgate.startup(),
    };
    let mut report = report(&observed, &setup, &fake);
    if !botgate.is_running() {
        report.problem("botgate died during the run".to_owned());
    }
    report.log(botgate.log_tail());
    botgate.stop().await;
    drop(redis);
    Ok(report)
}

/// A message with an empty text: 400 from the web chat, 404 where there is none.
async fn has_channel(botgate: &Botgate) -> anyhow::Result<bool> {
    let probe = http::post(
        &format!("/web/{BOT}/messages"),
        "application/json",
        &[],
        br#"{"visitor":"v-benchprobe","id":"m-benchprobe","text":" "}"#,
    );
    let response = Connection::new(botgate.address()).send(&probe).await?;
    Ok(response.status != 404)
}

/// The descriptors limit the bench got, or why it could not raise it.
struct Nofile {
    soft: u64,
    wanted: u64,
    raised: Result<bool, String>,
}

/// Raises this process's `RLIMIT_NOFILE` to `wanted` with `prlimit` (the hard limit too when
/// allowed, i.e. as root), before botgate is started and inherits it.
fn raise_fd_limit(wanted: u64) -> Nofile {
    let pid = std::process::id();
    let (soft, hard) = nofile_limit(pid).unwrap_or((0, 0));
    if soft >= wanted {
        return Nofile {
            soft,
            wanted,
            raised: Ok(false),
        };
    }
    let prlimit = |limits: String| {
        std::process::Command::new("prlimit")
            .arg(format!("--pid={pid}"))
            .arg(format!("--nofile={limits}"))
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|error| format!("prlimit: {error}"))
            .and_then(|output| {
                output
                    .status
                    .success()
                    .then_some(())
                    .ok_or_else(|| String::from_utf8_lossy(&output.stderr).trim().to_owned())
            })
    };
    // Raising the hard limit needs CAP_SYS_RESOURCE; without it, the soft one goes up to it.
    let raised = prlimit(format!("{wanted}:{}", hard.max(wanted)))
        .or_else(|first| prlimit(format!("{}:{hard}", hard.min(wanted))).map_err(|_| first));
    let soft = nofile_limit(pid).map_or(soft, |(soft, _)| soft);
    let raised = match raised {
        Ok(()) if soft >= wanted => Ok(true),
        Ok(()) => Err(format!("the hard limit is {hard}")),
        Err(error) => Err(error),
    };
    Nofile {
        soft,
        wanted,
        raised,
    }
}

/// `Max open files` (soft, hard) of a process, from `/proc/PID/limits`.
fn nofile_limit(pid: u32) -> Option<(u64, u64)> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))?;
    let mut values = line.split_whitespace().map(|value| match value {
        "unlimited" => Some(u64::MAX),
        value => value.parse().ok(),
    });
    Some((values.next()??, values.next()??))
}

/// One stream, as the visitor saw it; times count from its request written.
#[derive(Debug, Default)]
struct Seen {
    /// The 200 head of the event stream arrived.
    opened: bool,
    first_delta: Option<Duration>,
    done: Option<Duration>,
    failure: Option<Failure>,
}

#[derive(Debug)]
struct Failure {
    kind: FailureKind,
    detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FailureKind {
    Connect,
    /// Refused with a status other than 200.
    Status,
    /// Closed, reset, or not HTTP/SSE as expected, before `done`.
    Stream,
    Timeout,
    /// `done` with another text, deltas not adding up to it, or an `error` event.
    Answer,
}

/// Streams open right now (200 head seen, not ended), for the sampler.
#[derive(Default)]
struct Live {
    open: AtomicU64,
    opened: AtomicU64,
    first_deltas: AtomicU64,
    done: AtomicU64,
}

/// One visitor: connect, send the message, read the events until `done`, check them.
async fn visit(address: SocketAddr, run: u64, index: u64, live: Arc<Live>) -> Seen {
    let message_id = format!("m-bench-{run}-{index}");
    let body = json!({
        "visitor": format!("v-bench-{run}-{index}"),
        "id": message_id,
        "text": format!("第{index}个问题：请问门店周末几点开门？"),
    })
    .to_string();
    let request = http::post(
        &format!("/web/{BOT}/messages"),
        "application/json",
        &[],
        body.as_bytes(),
    );
    let mut seen = Seen::default();
    let result = tokio::time::timeout(
        STREAM_DEADLINE,
        stream(address, &request, &message_id, &mut seen, &live),
    )
    .await;
    if seen.opened {
        live.open.fetch_sub(1, Ordering::Relaxed);
    }
    seen.failure = match result {
        Ok(Ok(())) => None,
        Ok(Err(failure)) => Some(failure),
        Err(_) => Some(Failure {
            kind: FailureKind::Timeout,
            detail: format!(
                "not done within {STREAM_DEADLINE:?} (first delta: {})",
                if seen.first_delta.is_some() {
                    "seen"
                } else {
                    "none"
                }
            ),
        }),
    };
    seen
}

async fn stream(
    address: SocketAddr,
    request: &[u8],
    message_id: &str,
    seen: &mut Seen,
    live: &Live,
) -> Result<(), Failure> {
    let failed = |kind: FailureKind| {
        move |error: ClientError| Failure {
            kind,
            detail: error.to_string(),
        }
    };
    let mut stream = SseStream::connect(address)
        .await
        .map_err(failed(FailureKind::Connect))?;
    stream
        .send(request)
        .await
        .map_err(failed(FailureKind::Stream))?;
    let sent = Instant::now();
    match stream.head().await.map_err(failed(FailureKind::Stream))? {
        Head::Events => {}
        Head::Refused { status, body } => {
            return Err(Failure {
                kind: FailureKind::Status,
                detail: format!("HTTP {status}: {body}"),
            })
        }
    }
    seen.opened = true;
    live.open.fetch_add(1, Ordering::Relaxed);
    live.opened.fetch_add(1, Ordering::Relaxed);
    let wrong = |detail: String| Failure {
        kind: FailureKind::Answer,
        detail,
    };
    let mut text = String::new();
    loop {
        let Some(event) = stream
            .next_event()
            .await
            .map_err(failed(FailureKind::Stream))?
        else {
            return Err(Failure {
                kind: FailureKind::Stream,
                detail: format!("the stream ended without done, after {:?}", sent.elapsed()),
            });
        };
        let data: Value = serde_json::from_str(&event.data).map_err(|_| {
            wrong(format!(
                "{} event with bad JSON: {}",
                event.name, event.data
            ))
        })?;
        match event.name.as_str() {
            "delta" => {
                if seen.first_delta.is_none() {
                    seen.first_delta = Some(sent.elapsed());
                    live.first_deltas.fetch_add(1, Ordering::Relaxed);
                }
                text.push_str(data["text"].as_str().unwrap_or_default());
            }
            "done" => {
                seen.done = Some(sent.elapsed());
                live.done.fetch_add(1, Ordering::Relaxed);
                return check_done(&data, &text, message_id).map_err(wrong);
            }
            "error" => return Err(wrong(format!("error event: {}", event.data))),
            other => return Err(wrong(format!("unexpected event {other}: {}", event.data))),
        }
    }
}

/// `done` carries the message's id, the fake's answer as an `answer`, and the deltas added up
/// to the same text.
fn check_done(done: &Value, deltas: &str, message_id: &str) -> Result<(), String> {
    if done["text"] != ANSWER {
        return Err(format!("done with another text: {done}"));
    }
    if deltas != ANSWER {
        return Err(format!("the deltas add up to another text: {deltas:?}"));
    }
    if done["id"] != message_id || done["kind"] != "answer" {
        return Err(format!("done with another id or kind: {done}"));
    }
    Ok(())
}

/// What the run saw; times count from the first connection.
struct Observed {
    seen: Vec<Seen>,
    /// Time to start every connection.
    ramp: Duration,
    elapsed: Duration,
    idle_kib: u64,
    /// The most streams open at once, when, and botgate's memory then (the highest sample
    /// taken while that many were open).
    max_open: u64,
    max_open_at: Duration,
    open_kib: u64,
    peak_kib: u64,
    after_kib: u64,
    /// CPU seconds over the run: botgate, redis (if any) and the bench.
    cpu: Vec<(&'static str, f64)>,
}

async fn observe(
    botgate: &Botgate,
    fake: &Llm,
    args: &WebArgs,
    streams: u64,
) -> anyhow::Result<Observed> {
    let idle_kib = botgate.rss_kib()?;
    let meter = CpuMeter::new(botgate.pid());
    let before = meter.snapshot();
    let live = Arc::new(Live::default());
    let started = Instant::now();
    let driver = drive(
        botgate.address(),
        streams,
        args.connect_rate.max(1.0),
        Arc::clone(&live),
    );
    tokio::pin!(driver);
    let mut ticks = tokio::time::interval(SAMPLE);
    let (mut max_open, mut max_open_at, mut open_kib) = (0, Duration::ZERO, 0);
    let (seen, ramp) = loop {
        tokio::select! {
            finished = &mut driver => break finished,
            _ = ticks.tick() => {
                fake.clear_requests();
                let open = live.open.load(Ordering::Relaxed);
                // A failed read (e.g. out of descriptors) keeps the last sample.
                if let (true, Ok(kib)) = (open >= max_open && open > 0, botgate.rss_kib()) {
                    if open > max_open || kib > open_kib {
                        (max_open, max_open_at, open_kib) = (open, started.elapsed(), kib);
                    }
                }
            }
        }
    };
    let elapsed = started.elapsed();
    let after = meter.snapshot();
    let cpu = meter
        .cores(&before, &after, elapsed)
        .into_iter()
        .map(|(label, cores)| (label, cores * elapsed.as_secs_f64()))
        .collect();
    Ok(Observed {
        seen,
        ramp,
        elapsed,
        idle_kib,
        max_open,
        max_open_at,
        open_kib,
        peak_kib: botgate.peak_rss_kib()?,
        after_kib: botgate.rss_kib()?,
        cpu,
    })
}

/// Starts `streams` visitors at `rate` per second, in a batch every [`PACE`], and waits for
/// every one; returns what each saw and the time it took to start them all.
async fn drive(
    address: SocketAddr,
    streams: u64,
    rate: f64,
    live: Arc<Live>,
) -> (Vec<Seen>, Duration) {
    let run = u64::from(std::process::id());
    let started = Instant::now();
    let mut visitors = tokio::task::JoinSet::new();
    let mut spawned = 0;
    let mut ticks = tokio::time::interval(PACE);
    while spawned < streams {
        ticks.tick().await;
        let due = ((started.elapsed().as_secs_f64() * rate).ceil() as u64).clamp(1, streams);
        for index in spawned..due {
            visitors.spawn(visit(address, run, index, Arc::clone(&live)));
        }
        spawned = spawned.max(due);
    }
    let ramp = started.elapsed();
    let mut seen = Vec::with_capacity(streams as usize);
    while let Some(visitor) = visitors.join_next().await {
        seen.push(visitor.unwrap_or_else(|error| Seen {
            failure: Some(Failure {
                kind: FailureKind::Stream,
                detail: format!("the visitor's task failed: {error}"),
            }),
            ..Seen::default()
        }));
    }
    (seen, ramp)
}

/// What the report says the run was.
struct Setup<'a> {
    streams: u64,
    args: &'a WebArgs,
    schedule: Schedule,
    nofile: Nofile,
    botgate_nofile: Option<(u64, u64)>,
    store: &'static str,
    workers: usize,
    pid: u32,
    startup: Duration,
}

/// Nearest-rank percentile in milliseconds of sorted durations (0 when empty).
fn percentile_ms(sorted: &[Duration], quantile: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (quantile * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1].as_secs_f64() * 1000.0
}

/// "p50 / p99 / max ms" of some durations, and the three values.
fn spread(mut times: Vec<Duration>) -> (String, [f64; 3]) {
    times.sort_unstable();
    let values = [
        percentile_ms(&times, 0.50),
        percentile_ms(&times, 0.99),
        percentile_ms(&times, 1.0),
    ];
    (
        format!("{:.0} / {:.0} / {:.0} ms", values[0], values[1], values[2]),
        values,
    )
}

fn report(observed: &Observed, setup: &Setup<'_>, fake: &Llm) -> Report {
    let streams = setup.streams;
    let mut report = Report::new(
        SCENARIO,
        format!(
            "{streams} visitors at {}/s, one stream each; fake Bailian: first token after {} ms, \
             the rest over {} ms in {} deltas, over {}; {} workers, {} store, pid {}",
            setup.args.connect_rate,
            setup.schedule.first_token.as_millis(),
            setup.schedule.rest.as_millis(),
            fake.deltas(),
            fake.describe(),
            setup.workers,
            setup.store,
            setup.pid,
        ),
    );
    let seen = &observed.seen;
    let opened = seen.iter().filter(|seen| seen.opened).count() as u64;
    let completed = seen
        .iter()
        .filter(|seen| seen.done.is_some() && seen.failure.is_none())
        .count() as u64;
    let failures: Vec<&Failure> = seen
        .iter()
        .filter_map(|seen| seen.failure.as_ref())
        .collect();
    let count = |kind: FailureKind| failures.iter().filter(|f| f.kind == kind).count();
    let (first_text, first) = spread(seen.iter().filter_map(|seen| seen.first_delta).collect());
    let (done_text, done) = spread(seen.iter().filter_map(|seen| seen.done).collect());
    let per_stream_kib = observed.open_kib.saturating_sub(observed.idle_kib) as f64
        / observed.max_open.max(1) as f64;
    let cpu_of = |label: &str| {
        observed
            .cpu
            .iter()
            .find(|(name, _)| *name == label)
            .map(|(_, seconds)| *seconds)
    };
    let botgate_cpu = cpu_of("botgate").unwrap_or(0.0);
    let per_stream_cpu_us = botgate_cpu * 1e6 / streams as f64;

    report.row(
        "streams",
        format!(
            "{opened} opened, {completed} completed, {} errors  ({} in {:.1} s, all started in {:.1} s)",
            failures.len(),
            streams,
            observed.elapsed.as_secs_f64(),
            observed.ramp.as_secs_f64()
        ),
    );
    if !failures.is_empty() {
        report.row(
            "errors by kind",
            format!(
                "connect {}, status {}, stream {}, timeout {}, answer {}",
                count(FailureKind::Connect),
                count(FailureKind::Status),
                count(FailureKind::Stream),
                count(FailureKind::Timeout),
                count(FailureKind::Answer)
            ),
        );
    }
    report.row(
        "open at once",
        format!(
            "{} of {streams}, {:.1} s after the first connection",
            observed.max_open,
            observed.max_open_at.as_secs_f64()
        ),
    );
    report.row(
        "first delta p50/p99/max",
        format!(
            "{first_text}  (from the request written; the fake's first token comes {} ms after the call)",
            setup.schedule.first_token.as_millis()
        ),
    );
    report.row("done p50/p99/max", done_text);
    report.row(
        "RSS",
        format!(
            "idle {} MiB; {} MiB with {} streams open: {per_stream_kib:.1} KiB per open stream; {} MiB after",
            mib(observed.idle_kib),
            mib(observed.open_kib),
            observed.max_open,
            mib(observed.after_kib)
        ),
    );
    report.row(
        "peak RSS (VmHWM)",
        format!("{} MiB", mib(observed.peak_kib)),
    );
    let mut cpu_text = format!("botgate {botgate_cpu:.2} s ({per_stream_cpu_us:.0} µs per stream)");
    for label in ["redis", "bench"] {
        if let Some(seconds) = cpu_of(label) {
            cpu_text.push_str(&format!(", {label} {seconds:.2} s"));
        }
    }
    report.row("CPU over the run", cpu_text);
    let (accepted, rejected) = (fake.accepted(), fake.rejected());
    report.row(
        "LLM calls",
        format!("{accepted} for {streams} messages ({rejected} refused)"),
    );
    let botgate_nofile = setup
        .botgate_nofile
        .map_or_else(|| "?".to_owned(), |(soft, _)| soft.to_string());
    report.row(
        "open files limit",
        format!(
            "bench {}, botgate {botgate_nofile} (wanted {}{})",
            setup.nofile.soft,
            setup.nofile.wanted,
            match &setup.nofile.raised {
                Ok(true) => ", raised with prlimit",
                Ok(false) => "",
                Err(_) => ", could not raise it: the hard limit holds",
            }
        ),
    );
    let startup_ms = round(setup.startup.as_secs_f64() * 1000.0, 1);
    report.row("startup to ready", format!("{startup_ms} ms"));

    report.value("streams", streams);
    report.value("connect_rate", setup.args.connect_rate);
    report.value("first_token_ms", setup.args.first_token_ms);
    report.value("answer_ms", setup.args.answer_ms);
    report.value("llm_http2", fake.http2());
    report.value("llm_deltas", fake.deltas() as u64);
    report.value("workers", setup.workers as u64);
    report.value("store", setup.store);
    report.value("opened", opened);
    report.value("completed", completed);
    report.value("errors", failures.len() as u64);
    report.value("max_open", observed.max_open);
    report.value("ramp_sec", round(observed.ramp.as_secs_f64(), 2));
    report.value("elapsed_sec", round(observed.elapsed.as_secs_f64(), 2));
    report.value("first_delta_p50_ms", round(first[0], 1));
    report.value("first_delta_p99_ms", round(first[1], 1));
    report.value("first_delta_max_ms", round(first[2], 1));
    report.value("done_p50_ms", round(done[0], 1));
    report.value("done_p99_ms", round(done[1], 1));
    report.value("done_max_ms", round(done[2], 1));
    report.value("rss_idle_mib", mib(observed.idle_kib));
    report.value("rss_open_mib", mib(observed.open_kib));
    report.value("kib_per_open_stream", round(per_stream_kib, 1));
    report.value("peak_rss_mib", mib(observed.peak_kib));
    report.value("rss_after_mib", mib(observed.after_kib));
    report.value("botgate_cpu_sec", round(botgate_cpu, 2));
    report.value("botgate_cpu_us_per_stream", round(per_stream_cpu_us, 0));
    for label in ["redis", "bench"] {
        if let Some(seconds) = cpu_of(label) {
            report.value(&format!("{label}_cpu_sec"), round(seconds, 2));
        }
    }
    report.value("llm_calls", accepted);
    report.value("nofile_bench", setup.nofile.soft);
    if let Some((soft, _)) = setup.botgate_nofile {
        report.value("nofile_botgate", soft);
    }
    report.value("startup_ms", startup_ms);

    // Short of descriptors is no failure by itself; it explains failures.
    let short = setup.nofile.raised.as_ref().err().map(|reason| {
        format!(
            " (the open files limit is {} and {} are wanted: {reason}; raise the hard limit, \
             lower --streams, or use --llm-http2 for one connection to the LLM)",
            setup.nofile.soft, setup.nofile.wanted
        )
    });
    if !failures.is_empty() {
        let samples: Vec<String> = failures
            .iter()
            .take(FAILURE_SAMPLES)
            .map(|failure| format!("{:?}: {}", failure.kind, failure.detail))
            .collect();
        report.problem(format!(
            "{} of {streams} streams failed{}; first: {}",
            failures.len(),
            short.as_deref().unwrap_or_default(),
            samples.join(" | ")
        ));
    }
    if completed != streams {
        report.problem(format!(
            "{completed} of {streams} streams ended with the fake's answer"
        ));
    }
    if observed.max_open != streams {
        report.problem(format!(
            "at most {} of {streams} streams were open at once: the memory per open stream is \
             not for all of them (start them faster with --connect-rate, or answer slower with \
             --answer-ms)",
            observed.max_open
        ));
    }
    if accepted != streams || rejected > 0 {
        report.problem(format!(
            "{accepted} LLM calls for {streams} messages, {rejected} refused{}: each must cost exactly one",
            fake.first_rejection()
                .map(|why| format!(" (first: {why})"))
                .unwrap_or_default()
        ));
    }
    report
}

/// When the fake's frames go out, counted from the call's arrival.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    first_token: Duration,
    /// From the first delta to the last (which carries `stop` too).
    rest: Duration,
}

impl Schedule {
    fn at(&self, frame: usize, frames: usize) -> Duration {
        if frames <= 1 {
            return self.first_token;
        }
        self.first_token + self.rest.mul_f64(frame as f64 / (frames - 1) as f64)
    }
}

/// The fake Bailian of the run: the slow lean one (HTTP/1.1), or the test kit's (h2c) for
/// `--llm-http2`.
enum Llm {
    Slow(SlowBailian),
    Testkit(FakeBailian),
}

impl Llm {
    /// The test kit's fake, its 3-character deltas spaced so that the answer takes as long.
    async fn testkit(schedule: Schedule) -> Llm {
        let fake = FakeBailian::start().await;
        fake.set_answer(Answer::Fixed(ANSWER.to_owned()));
        fake.set_delay(schedule.first_token);
        let intervals = u32::try_from(testkit_deltas()).unwrap_or(u32::MAX).max(1);
        fake.set_chunk_interval(schedule.rest / intervals);
        Llm::Testkit(fake)
    }

    fn url(&self) -> String {
        match self {
            Llm::Slow(fake) => fake.url(),
            Llm::Testkit(fake) => fake.base_url(),
        }
    }

    fn app_id(&self) -> &'static str {
        match self {
            Llm::Slow(_) => APP_ID,
            Llm::Testkit(fake) => fake.app_id(),
        }
    }

    fn api_key(&self) -> &'static str {
        match self {
            Llm::Slow(_) => API_KEY,
            Llm::Testkit(fake) => fake.api_key(),
        }
    }

    fn http2(&self) -> bool {
        matches!(self, Llm::Testkit(_))
    }

    fn describe(&self) -> &'static str {
        match self {
            Llm::Slow(_) => "HTTP/1.1 (a connection per call)",
            Llm::Testkit(_) => "h2c (up to 100 calls per connection, test kit fake)",
        }
    }

    /// Delta frames per answer.
    fn deltas(&self) -> usize {
        match self {
            Llm::Slow(_) => DELTAS,
            Llm::Testkit(_) => testkit_deltas(),
        }
    }

    /// Calls answered (the test kit's fake: every call seen).
    fn accepted(&self) -> u64 {
        match self {
            Llm::Slow(fake) => fake.accepted(),
            Llm::Testkit(fake) => fake.calls() as u64,
        }
    }

    fn rejected(&self) -> u64 {
        match self {
            Llm::Slow(fake) => fake.rejected(),
            Llm::Testkit(_) => 0,
        }
    }

    fn first_rejection(&self) -> Option<&str> {
        match self {
            Llm::Slow(fake) => fake.first_rejection(),
            Llm::Testkit(_) => None,
        }
    }

    /// The test kit's fake keeps every request; ten thousand with their history add up.
    fn clear_requests(&self) {
        if let Llm::Testkit(fake) = self {
            fake.clear_requests();
        }
    }
}

/// The test kit's fake streams 3 characters per frame (its `CHUNK_CHARS`), then `stop`.
fn testkit_deltas() -> usize {
    ANSWER.chars().count().div_ceil(3)
}

/// A slow Bailian: the lean fake's SSE wire, each delta on time. HTTP/1.1 on a thread and
/// runtime of its own, as the lean fakes are, with a deep listen backlog.
struct SlowBailian {
    address: SocketAddr,
    shared: Arc<FakeShared>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

struct FakeShared {
    /// The SSE response's head.
    head: Bytes,
    /// A chunk per delta; the last also carries the `stop` frame and the chunked end.
    frames: Vec<Bytes>,
    schedule: Schedule,
    accepted: AtomicU64,
    rejected: AtomicU64,
    first_rejection: OnceLock<String>,
}

impl SlowBailian {
    fn start(answer: &str, schedule: Schedule) -> io::Result<SlowBailian> {
        let shared = Arc::new(FakeShared::render(answer, schedule));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        // Registered with the fake's own runtime (entered, not blocked on: the bench's runs).
        let listener = {
            let _entered = runtime.enter();
            let socket = TcpSocket::new_v4()?;
            socket.bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
            socket.listen(FAKE_BACKLOG)?
        };
        let address = listener.local_addr()?;
        let (stop, mut stopped) = oneshot::channel::<()>();
        let serving = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("slow-bailian".to_owned())
            .spawn(move || {
                runtime.block_on(async move {
                    let mut connections = tokio::task::JoinSet::new();
                    loop {
                        tokio::select! {
                            _ = &mut stopped => return,
                            Some(_) = connections.join_next() => {}
                            accepted = listener.accept() => {
                                if let Ok((stream, _)) = accepted {
                                    connections.spawn(serve(stream, Arc::clone(&serving)));
                                }
                            }
                        }
                    }
                });
            })?;
        Ok(SlowBailian {
            address,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::Relaxed)
    }

    fn rejected(&self) -> u64 {
        self.shared.rejected.load(Ordering::Relaxed)
    }

    fn first_rejection(&self) -> Option<&str> {
        self.shared.first_rejection.get().map(String::as_str)
    }
}

impl Drop for SlowBailian {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One keep-alive connection: each whole request answered in turn.
async fn serve(mut stream: TcpStream, shared: Arc<FakeShared>) {
    let _ = stream.set_nodelay(true);
    let mut buffer = BytesMut::with_capacity(4 * 1024);
    loop {
        while let Some((length, verdict, close)) = parse(&buffer) {
            let arrived = tokio::time::Instant::now();
            buffer.advance(length);
            let answered = match verdict {
                Ok(()) => shared.stream(&mut stream, arrived).await,
                Err(rejection) => {
                    shared.rejected.fetch_add(1, Ordering::Relaxed);
                    let _ = shared.first_rejection.set(format!(
                        "{} {}: {}",
                        rejection.status, rejection.code, rejection.message
                    ));
                    stream.write_all(&rejection.render(close)).await
                }
            };
            if answered.is_err() || close {
                return;
            }
        }
        buffer.reserve(4 * 1024);
        match stream.read_buf(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

impl FakeShared {
    fn render(answer: &str, schedule: Schedule) -> FakeShared {
        let head = Bytes::from(format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream;charset=UTF-8\r\n\
             Transfer-Encoding: chunked\r\nCache-Control: no-cache\r\nX-Request-Id: {REQUEST_ID}\r\n\r\n"
        ));
        let pieces = pieces(answer, DELTAS);
        let mut frames = Vec::with_capacity(pieces.len());
        let mut tokens = 0;
        for (index, piece) in pieces.iter().enumerate() {
            tokens += piece.chars().count();
            let mut frame = chunk(&event(index + 1, "null", piece, tokens));
            if index + 1 == pieces.len() {
                frame.extend_from_slice(&chunk(&event(index + 2, "stop", "", tokens)));
                frame.extend_from_slice(b"0\r\n\r\n");
            }
            frames.push(Bytes::from(frame));
        }
        FakeShared {
            head,
            frames,
            schedule,
            accepted: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            first_rejection: OnceLock::new(),
        }
    }

    /// The head at once, then each delta on its time.
    async fn stream(
        &self,
        stream: &mut TcpStream,
        arrived: tokio::time::Instant,
    ) -> io::Result<()> {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        stream.write_all(&self.head).await?;
        for (index, frame) in self.frames.iter().enumerate() {
            tokio::time::sleep_until(arrived + self.schedule.at(index, self.frames.len())).await;
            stream.write_all(frame).await?;
        }
        Ok(())
    }
}

/// One SSE event as a chunk of a chunked body.
fn chunk(event: &str) -> Vec<u8> {
    let mut chunk = format!("{:x}\r\n", event.len()).into_bytes();
    chunk.extend_from_slice(event.as_bytes());
    chunk.extend_from_slice(b"\r\n");
    chunk
}

/// Bailian's event with `incremental_output`, exactly as the lean fake (`fake_llm`) writes it:
/// no space after the colons, and the `:HTTP_STATUS` comment line.
fn event(id: usize, finish_reason: &str, text: &str, output_tokens: usize) -> String {
    format!(
        "id:{id}\nevent:result\n:HTTP_STATUS/200\ndata:{{\"output\":{{\"session_id\":\"{SESSION_ID}\",\"finish_reason\":\"{finish_reason}\",\"text\":{}}},{},\"request_id\":\"{REQUEST_ID}\"}}\n\n",
        Value::from(text),
        usage(output_tokens),
    )
}

fn usage(output_tokens: usize) -> String {
    format!(
        "\"usage\":{{\"models\":[{{\"input_tokens\":{INPUT_TOKENS},\"output_tokens\":{output_tokens},\"model_id\":\"{MODEL_ID}\"}}]}}"
    )
}

/// `text` in `count` pieces of about as many characters (not bytes: the answer is Chinese).
fn pieces(text: &str, count: usize) -> Vec<&str> {
    let chars = text.chars().count();
    let per_piece = chars.div_ceil(count.max(1)).max(1);
    let mut pieces = Vec::with_capacity(count);
    let mut start = 0;
    for (index, (offset, _)) in text.char_indices().enumerate() {
        if index > 0 && index % per_piece == 0 {
            pieces.push(&text[start..offset]);
            start = offset;
        }
    }
    if start < text.len() {
        pieces.push(&text[start..]);
    }
    pieces
}

/// A refusal, with Bailian's JSON error body.
#[derive(Debug, PartialEq, Eq)]
struct Rejection {
    status: u16,
    code: &'static str,
    message: &'static str,
}

impl Rejection {
    fn render(&self, close: bool) -> Vec<u8> {
        let body = json!({"code": self.code, "message": self.message, "request_id": REQUEST_ID})
            .to_string();
        let reason = match self.status {
            400 => "Bad Request",
            401 => "Unauthorized",
            404 => "Not Found",
            405 => "Method Not Allowed",
            413 => "Payload Too Large",
            _ => "Error",
        };
        let close = if close { "Connection: close\r\n" } else { "" };
        format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: application/json;charset=UTF-8\r\n\
             Content-Length: {}\r\nX-Request-Id: {REQUEST_ID}\r\n{close}\r\n{body}",
            self.status,
            body.len()
        )
        .into_bytes()
    }
}

fn reject(status: u16, code: &'static str, message: &'static str) -> Result<(), Rejection> {
    Err(Rejection {
        status,
        code,
        message,
    })
}

/// The whole request at the start of `buffer`: its length, whether it is a streaming call
/// Bailian would take (or why not), and whether the connection closes after it. `None` until
/// it is all there; a request whose end cannot be found is refused and closes the connection.
#[allow(clippy::type_complexity)]
fn parse(buffer: &[u8]) -> Option<(usize, Result<(), Rejection>, bool)> {
    if buffer.is_empty() {
        return None;
    }
    let framing = |status, message| {
        Some((
            buffer.len(),
            reject(status, "InvalidParameter", message),
            true,
        ))
    };
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut request = httparse::Request::new(&mut headers);
    let head = match request.parse(buffer) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) if buffer.len() > MAX_HEAD_BYTES => {
            return framing(431, "The request head is too large.")
        }
        Ok(httparse::Status::Partial) => return None,
        Err(_) => return framing(400, "Malformed HTTP request."),
    };
    let mut body_length = 0;
    let mut key = None;
    let mut streaming = false;
    let mut close = request.version == Some(0);
    for header in request.headers.iter() {
        let value = String::from_utf8_lossy(header.value);
        if header.name.eq_ignore_ascii_case("content-length") {
            match value.trim().parse() {
                Ok(length) => body_length = length,
                Err(_) => return framing(400, "Invalid Content-Length."),
            }
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            return framing(400, "Chunked request bodies are not supported.");
        } else if header.name.eq_ignore_ascii_case("authorization") {
            key = value
                .strip_prefix("Bearer ")
                .map(|key| key.trim().to_owned());
        } else if header.name.eq_ignore_ascii_case("x-dashscope-sse") {
            streaming |= value.eq_ignore_ascii_case("enable");
        } else if header.name.eq_ignore_ascii_case("accept") {
            streaming |= value.to_ascii_lowercase().contains("text/event-stream");
        } else if header.name.eq_ignore_ascii_case("connection") {
            close = value.to_ascii_lowercase().contains("close");
        }
    }
    if body_length > MAX_BODY_BYTES {
        return framing(413, "The request body is too large.");
    }
    let length = head + body_length;
    if buffer.len() < length {
        return None;
    }
    let body = String::from_utf8_lossy(&buffer[head..length]);
    let path = format!("/api/v1/apps/{APP_ID}/completion");
    let verdict = if request.method != Some("POST") {
        reject(405, "MethodNotAllowed", "Use POST.")
    } else if request.path != Some(path.as_str()) {
        reject(404, "NotFound", "No such API.")
    } else if key.is_none() {
        reject(401, "InvalidApiKey", "No API-key provided.")
    } else if key.as_deref() != Some(API_KEY) {
        reject(401, "InvalidApiKey", "Invalid API-key provided.")
    } else if !body.contains("\"messages\"") {
        reject(
            400,
            "InvalidParameter",
            r#"Either "prompt" or "messages" must exist and cannot both be none"#,
        )
    } else if !streaming {
        reject(
            400,
            "InvalidParameter",
            "This fake answers streaming (SSE) calls only.",
        )
    } else {
        Ok(())
    };
    Some((length, verdict, close))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = r#"{"input":{"messages":[{"role":"user","content":"你好"}]},"parameters":{"incremental_output":true}}"#;

    fn request(key: &str) -> Vec<u8> {
        format!(
            "POST /api/v1/apps/{APP_ID}/completion HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n\
             X-DashScope-SSE: enable\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{BODY}",
            BODY.len()
        )
        .into_bytes()
    }

    #[test]
    fn the_pieces_add_up_to_the_answer() {
        let pieces = pieces(ANSWER, DELTAS);
        assert_eq!(pieces.len(), DELTAS);
        assert_eq!(pieces.concat(), ANSWER);
        assert_eq!(super::pieces("你好", 6), ["你", "好"]);
    }

    #[test]
    fn the_schedule_spreads_the_rest_after_the_first_token() {
        let schedule = Schedule {
            first_token: Duration::from_secs(1),
            rest: Duration::from_secs(9),
        };
        assert_eq!(schedule.at(0, 4), Duration::from_secs(1));
        assert_eq!(schedule.at(3, 4), Duration::from_secs(10));
        assert_eq!(schedule.at(0, 1), Duration::from_secs(1));
    }

    #[test]
    fn only_a_whole_streaming_call_with_the_key_is_taken() {
        let whole = request(API_KEY);
        assert!(parse(&whole[..whole.len() - 1]).is_none());
        let (length, verdict, close) = parse(&whole).unwrap();
        assert_eq!((length, verdict, close), (whole.len(), Ok(()), false));
        let (_, verdict, _) = parse(&request("sk-other")).unwrap();
        assert_eq!(verdict.unwrap_err().status, 401);
    }

    #[tokio::test]
    async fn the_fake_streams_the_answer_in_bailian_frames_on_time() {
        let schedule = Schedule {
            first_token: Duration::from_millis(100),
            rest: Duration::from_millis(100),
        };
        let fake = SlowBailian::start(ANSWER, schedule).unwrap();
        let sent = Instant::now();
        let mut client = crate::sse_client::SseStream::connect(fake.address)
            .await
            .unwrap();
        client.send(&request(API_KEY)).await.unwrap();
        assert!(matches!(client.head().await.unwrap(), Head::Events));
        let mut text = String::new();
        let mut first = None;
        let mut last = None;
        while let Some(event) = client.next_event().await.unwrap() {
            assert_eq!(event.name, "result");
            let data: Value = serde_json::from_str(&event.data).unwrap();
            first.get_or_insert(sent.elapsed());
            last = Some(data["output"]["finish_reason"].as_str().unwrap().to_owned());
            text.push_str(data["output"]["text"].as_str().unwrap());
        }
        assert_eq!(text, ANSWER);
        assert_eq!(last.as_deref(), Some("stop"));
        assert!(first.unwrap() >= Duration::from_millis(100));
        assert_eq!(fake.accepted(), 1);
    }
}
