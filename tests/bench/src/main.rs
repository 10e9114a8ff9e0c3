//! `botgate-bench`: botgate's release binary under load, end to end, with one command.
//!
//! ```sh
//! cargo run --release -p botgate-bench -- wechat-safe       # the target scenario
//! cargo run --release -p botgate-bench -- wecom-app         # WeCom app members, answered later
//! cargo run --release -p botgate-bench -- wecom-kf          # 微信客服 customers in bursts
//! cargo run --release -p botgate-bench -- dingtalk-http     # DingTalk robot callbacks, signed
//! cargo run --release -p botgate-bench -- dingtalk-stream   # DingTalk Stream frames, ACKed
//! cargo run --release -p botgate-bench -- all --seconds 10  # every scenario
//! cargo run --release -p botgate-bench -- compare --runs 3  # botgate vs the Python and Go peers
//! cargo run --release -p botgate-bench -- web --llm-http2   # 10,000 open web chat answer streams
//! ```
//!
//! Each scenario starts what it needs: a private `redis-server`, a fake Bailian answering at
//! once (or after `--llm-delay` for `slow-webhook`), a fake WeCom API for the WeCom scenarios,
//! and `target/release/botgate` as a child process with a generated config on a free loopback
//! port. Under `cargo run` the bench first
//! runs `cargo build --release --bin botgate` (a no-op when fresh), so it never measures a stale
//! gateway. It then drives distinct, signed messages at a fixed concurrency, checks every
//! reply (after the load: the bench shares the cores it measures), and prints a table and one
//! JSON line per scenario. It exits 1 when a check fails.
//!
//! The WeCom scenarios acknowledge first and answer later: `wecom-app` reports acknowledgements
//! per second and their latency, answers per second, and the time from a callback going out to
//! its answer reaching `message/send`; `wecom-kf` reports callbacks per second, the time from a
//! burst of customer messages to each answer, and the `kf/sync_msg` pulls. Both check every
//! answer: once per message, to the right member or customer, with the fake Bailian's text (and
//! for customers, in the order they wrote). With `--redis-stats` (Redis store), `wecom-app` and
//! `dingtalk-http` also report Redis commands per message, per command, from `INFO commandstats`
//! reset just before the first callback and read after the last answer.
//!
//! The DingTalk scenarios acknowledge first too, and answer through each message's session
//! webhook, pointed at a fake DingTalk: `dingtalk-http` posts signed robot callbacks (one-to-one,
//! and a group @-mention in every fourth conversation) and reports acknowledgements per second,
//! their latency, and the time from a callback to its answer reaching the webhook;
//! `dingtalk-stream` is DingTalk's Stream gateway, pushing CALLBACK frames to botgate's
//! WebSocket with `--window` in flight, and reports frames ACKed per second, the ACK latency and
//! the time from a frame to its answer. Both check every answer: once per message, on its
//! conversation's webhook, with the fake Bailian's text, @-mentioning the sender in a group; the
//! Stream one also that every frame was ACKed.
//!
//! `web` opens `--streams` (10,000) website chat answer streams (`POST /web/{bot}/messages`,
//! server-sent events), one connection per visitor at `--connect-rate`, against a slow fake
//! Bailian (first token after `--first-token-ms`, the rest over `--answer-ms`), so that all are
//! open at once; it reports the time from a request to its first `delta` and to `done`,
//! botgate's RSS with every stream open against idle (memory per open stream), VmHWM and CPU
//! per stream, and checks every `done` is the fake's answer. Over HTTP/1.1 each stream also
//! holds a connection to the fake (two descriptors per stream in botgate and in the bench; the
//! bench raises `RLIMIT_NOFILE` with `prlimit` if it may); `--llm-http2` multiplexes the calls
//! over h2c connections to the test kit's fake, up to 100 calls each.
//!
//! `compare` runs the two peers of `../shared/bench/peers` (a wechatpy + aiohttp bot and a Go
//! standard-library bot, both calling an OpenAI-compatible `chat/completions`) and botgate back
//! to back with `wechat-safe`'s load, `--runs` times, and prints each one's messages/s, p50/p99,
//! errors, peak RSS and CPU per message, botgate's Redis CPU and commands per message, the
//! ratios, and the issue's targets as PASS/FAIL. It sets the peers up under
//! `target/bench-peers/` when missing (a venv with wechatpy and aiohttp; Debian's `golang-go`).
//!
//! # Layout
//!
//! - [`stack`]: the botgate child process: config, readiness, memory, log.
//! - [`cpu`]: CPU time per process, and `perf record` attached to botgate.
//! - [`fixture`]: redis-server and the fake Bailian, and the config tables pointing at them.
//! - [`fake_llm`]: the lean fake Bailian of the WeChat and WeCom scenarios.
//! - [`http`]: a minimal keep-alive HTTP/1.1 client, cheap enough to share the cores.
//! - [`load`]: the closed-loop (optionally paced) driver and its latency statistics.
//! - [`wechat`], [`webhook`], [`wecom`], [`dingtalk`]: the scenarios.
//! - [`web`], [`sse_client`]: the web chat scenario and its slow fake Bailian, and the light
//!   client holding one server-sent event stream per connection.
//! - [`compare`], [`peers`], [`redis_stats`]: botgate against the peers, the peers' setup and
//!   processes, and what botgate asks of Redis.
//! - [`report`]: the table and the JSON line.

mod compare;
mod cpu;
mod dingtalk;
mod fake_llm;
mod fixture;
mod http;
mod load;
mod peers;
mod platform;
mod platform_server;
mod redis_stats;
mod report;
mod sse_client;
mod stack;
mod web;
mod webhook;
mod wechat;
mod wecom;

use std::path::PathBuf;
use std::process::ExitCode;

use botgate_wechat::CallbackMode;
use clap::{Parser, ValueEnum};

use crate::fixture::StoreKind;
use crate::report::Report;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// WeChat passive replies, safe mode (encrypted): the target scenario.
    WechatSafe,
    /// WeChat passive replies, plaintext mode.
    WechatPlain,
    /// Many conversations waiting on a slow LLM through the signed webhook channel.
    SlowWebhook,
    /// WeCom app members at a fixed concurrency, acknowledged at once, answered through
    /// `message/send`.
    WecomApp,
    /// 微信客服 customers in bursts, pulled through `kf/sync_msg`, answered through `kf/send_msg`.
    WecomKf,
    /// DingTalk HTTP-mode robot callbacks at a fixed concurrency, acknowledged at once, answered
    /// through each message's session webhook.
    DingtalkHttp,
    /// DingTalk Stream mode: CALLBACK frames pushed with a window in flight, each ACKed once
    /// queued, answered through its session webhook.
    DingtalkStream,
    /// The website chat: --streams visitors, each with an answer stream open at once while a
    /// slow fake Bailian streams it; memory per open stream, time to first token.
    Web,
    /// Every scenario, one after the other, each on a fresh stack.
    All,
    /// botgate against the Python (wechatpy + aiohttp) and Go peers of ../shared/bench/peers,
    /// back to back with wechat-safe's load, --runs times (not part of `all`).
    Compare,
}

#[derive(Debug, Parser)]
#[command(
    name = "botgate-bench",
    about = "Benchmark botgate's release binary end to end"
)]
struct Cli {
    #[arg(value_enum, default_value = "wechat-safe")]
    scenario: Scenario,
    /// Keep-alive connections, each with one request in flight.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Measured seconds (WeChat scenarios, wecom-app, DingTalk scenarios).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Seconds of load before measuring (WeChat scenarios, wecom-app, DingTalk scenarios).
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// botgate's `server.workers` (HTTP worker threads).
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Where botgate keeps memory and claims.
    #[arg(long, value_enum, default_value = "redis")]
    store: StoreKind,
    /// With `--store cluster`: `store.shards`, how many shards conversations are spread over
    /// (1 puts every key in one slot, on one node).
    #[arg(long, default_value_t = 6)]
    shards: usize,
    /// Ask the fake Bailian for one JSON answer instead of botgate's default SSE stream.
    #[arg(long)]
    llm_json: bool,
    /// botgate talks HTTP/2 to the fake Bailian (`http2 = true` on the `[llm]`): multiplexed
    /// connections, up to 100 calls each, instead of one connection per call in flight. WeChat
    /// scenarios then use the test kit's fake (h2c) instead of the lean one.
    #[arg(long)]
    llm_http2: bool,
    /// WeChat scenarios: the fake Bailian writes each SSE frame on its own (a token-by-token
    /// LLM's segments) instead of the whole answer at once.
    #[arg(long)]
    llm_frame_writes: bool,
    /// WeChat scenarios and wecom-app: requests are built before the run for this rate over
    /// warm-up and measured time; a connection that runs out builds the rest as it goes.
    #[arg(long, default_value_t = 30_000)]
    max_rate: u64,
    /// wecom-app, dingtalk-http: messages per second in all, evenly paced, instead of each
    /// connection sending as soon as its last message was acknowledged. botgate acknowledges far
    /// faster than it answers: without a rate the end-to-end times mostly measure the backlog.
    #[arg(long)]
    rate: Option<f64>,
    /// slow-webhook: conversations, one message each, all waiting at once.
    #[arg(long, default_value_t = 10_000)]
    conversations: u64,
    /// botgate's `delivery.workers`. slow-webhook: default one per conversation, so that every
    /// conversation can wait on the LLM at once; WeCom and DingTalk scenarios: default
    /// botgate's own.
    #[arg(long)]
    delivery_workers: Option<u64>,
    /// slow-webhook: seconds before the fake Bailian answers.
    #[arg(long, default_value_t = 10)]
    llm_delay: u64,
    /// dingtalk-stream: CALLBACK frames pushed and not yet ACKed.
    #[arg(long, default_value_t = 64)]
    window: usize,
    /// wecom-kf: customers, each writing --customer-messages messages in a row.
    #[arg(long, default_value_t = 1_000)]
    customers: u64,
    /// wecom-kf: messages per customer.
    #[arg(long, default_value_t = 3)]
    customer_messages: u64,
    /// wecom-kf: customer messages queued in the fake's sync_msg per callback.
    #[arg(long, default_value_t = 50)]
    burst: u64,
    /// WeChat scenarios: attach `perf record` (DWARF call graphs) to botgate for the whole run,
    /// warm-up included, writing this file; read it with `perf report -i FILE`.
    #[arg(long)]
    perf: Option<PathBuf>,
    /// The botgate binary to run (default: target/release/botgate, built first under cargo).
    #[arg(long)]
    botgate: Option<PathBuf>,
    /// Do not run `cargo build --release --bin botgate` first.
    #[arg(long)]
    no_build: bool,
    /// compare: the peers' directory (default: ../shared/bench/peers beside the workspace).
    #[arg(long)]
    peers: Option<PathBuf>,
    /// compare: how many times to run the three back to back.
    #[arg(long, default_value_t = 3)]
    runs: u64,
    /// compare: botgate calls the fake through OpenAI chat/completions without streaming, as the
    /// peers do, instead of Bailian (SSE, or JSON with --llm-json).
    #[arg(long)]
    llm_openai: bool,
    /// compare: a new user for every request, instead of 50 users per connection coming back.
    #[arg(long)]
    user_per_message: bool,
    /// wecom-app, dingtalk-http (acknowledged, answered later), Redis store: Redis commands per
    /// message from `INFO commandstats`, counters reset just before the first callback.
    #[arg(long)]
    redis_stats: bool,
    #[command(flatten)]
    web: web::WebArgs,
}

/// What the scenarios need from the command line, with the binary resolved.
pub struct Options {
    pub binary: PathBuf,
    pub connections: usize,
    pub seconds: u64,
    pub warmup: u64,
    pub workers: usize,
    pub store: StoreKind,
    /// `store.shards` on a cluster.
    pub shards: usize,
    pub llm_json: bool,
    pub llm_http2: bool,
    pub llm_frame_writes: bool,
    pub max_rate: u64,
    pub rate: Option<f64>,
    pub conversations: u64,
    pub delivery_workers: u64,
    /// `--delivery-workers` as given (the WeCom and DingTalk scenarios keep botgate's default
    /// without it).
    pub wecom_delivery_workers: Option<u64>,
    pub llm_delay: u64,
    pub customers: u64,
    pub customer_messages: u64,
    pub burst: u64,
    pub window: usize,
    pub perf: Option<PathBuf>,
    pub peers: Option<PathBuf>,
    pub runs: u64,
    pub llm_openai: bool,
    pub user_per_message: bool,
    pub redis_stats: bool,
    pub web: web::WebArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cfg!(debug_assertions) {
        eprintln!("warning: this is a debug build of the bench; its load generator is slow (use --release)");
    }
    let binary = match stack::botgate_binary(cli.botgate.clone(), !cli.no_build) {
        Ok(binary) => binary,
        Err(error) => {
            eprintln!("botgate-bench: {error:#}");
            return ExitCode::from(2);
        }
    };
    let options = Options {
        binary,
        connections: cli.connections.max(1),
        seconds: cli.seconds.max(1),
        warmup: cli.warmup,
        workers: cli.workers.max(1),
        store: cli.store,
        shards: cli.shards,
        llm_json: cli.llm_json,
        llm_http2: cli.llm_http2,
        llm_frame_writes: cli.llm_frame_writes,
        max_rate: cli.max_rate,
        rate: cli.rate.filter(|rate| *rate > 0.0),
        conversations: cli.conversations.max(1),
        delivery_workers: cli.delivery_workers.unwrap_or(cli.conversations).max(1),
        wecom_delivery_workers: cli.delivery_workers.map(|workers| workers.max(1)),
        llm_delay: cli.llm_delay,
        customers: cli.customers.max(1),
        customer_messages: cli.customer_messages.max(1),
        burst: cli.burst.max(1),
        window: cli.window.max(1),
        perf: cli.perf,
        peers: cli.peers,
        runs: cli.runs.max(1),
        llm_openai: cli.llm_openai,
        user_per_message: cli.user_per_message,
        redis_stats: cli.redis_stats,
        web: cli.web,
    };
    // One thread: the generator should take as little of the shared cores as it can, and the
    // fakes run their own threads.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("botgate-bench: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    if cli.scenario == Scenario::Compare {
        return match runtime.block_on(compare::run(&options)) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(error) => {
                eprintln!("botgate-bench: compare: {error:#}");
                ExitCode::FAILURE
            }
        };
    }
    let scenarios: &[Scenario] = match cli.scenario {
        Scenario::All => &[
            Scenario::WechatSafe,
            Scenario::WechatPlain,
            Scenario::SlowWebhook,
            Scenario::WecomApp,
            Scenario::WecomKf,
            Scenario::DingtalkHttp,
            Scenario::DingtalkStream,
            Scenario::Web,
        ],
        _ => std::slice::from_ref(&cli.scenario),
    };
    let mut passed = true;
    for &scenario in scenarios {
        let result = runtime.block_on(run(scenario, &options));
        match result {
            Ok(report) => {
                report.print();
                passed &= report.passed();
            }
            Err(error) => {
                eprintln!("botgate-bench: {scenario:?}: {error:#}");
                passed = false;
            }
        }
    }
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn run(scenario: Scenario, options: &Options) -> anyhow::Result<Report> {
    match scenario {
        Scenario::WechatSafe => wechat::run("wechat-safe", CallbackMode::Safe, options).await,
        Scenario::WechatPlain => {
            wechat::run("wechat-plain", CallbackMode::Plaintext, options).await
        }
        Scenario::SlowWebhook => webhook::run(options).await,
        Scenario::WecomApp => wecom::run_app(options).await,
        Scenario::WecomKf => wecom::run_kf(options).await,
        Scenario::DingtalkHttp => dingtalk::run_http(options).await,
        Scenario::DingtalkStream => dingtalk::run_stream(options).await,
        Scenario::Web => web::run(options).await,
        Scenario::All | Scenario::Compare => unreachable!("handled above"),
    }
}
