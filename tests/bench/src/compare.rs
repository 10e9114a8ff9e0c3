//! `compare`: botgate against the two peers of `../shared/bench/peers` (a Python wechatpy +
//! aiohttp bot and a Go standard-library bot), back to back, with the same load.
//!
//! Each run measures the Python peer, then the Go peer, then botgate, each against a fresh lean
//! fake LLM (the peers call its OpenAI-compatible `chat/completions`, botgate its Bailian
//! endpoint, both answered at once with pre-rendered bytes from the same thread) and, for
//! botgate, a fresh private redis-server. The load is `wechat-safe`'s: safe mode (`encrypt_type=aes`,
//! `msg_signature`), `--connections` keep-alive connections each with one request in flight, a
//! distinct MsgId per request from 50 users per connection (or a new user per request with
//! `--user-per-message`), built before the run, `--warmup` seconds then `--seconds` measured,
//! every reply decrypted and compared with the fake's answer after the run.
//!
//! Per server it reports messages/s, p50/p99, errors, peak RSS (`VmHWM`) and the server's CPU
//! per message (utime + stime over the measured window, from `/proc/PID/stat`); for botgate also
//! its redis-server's CPU per message and Redis commands per message (`CONFIG RESETSTAT` at the
//! start of the window, `INFO commandstats` at its end), per command, with a slowlog sample
//! taken during the warm-up to tell the commands botgate sent from those its scripts ran. After
//! `--runs` runs: ranges, medians, the ratios botgate/Go and botgate/Python, the targets
//! as PASS/FAIL lines, and one JSON line.

// The bench is a command-line tool: standard output is its interface.
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use botgate_wechat::{markdown_to_text, CallbackMode, WechatAccount};
use botgate_wxcrypt::EncodingAesKey;
use serde_json::{json, Map, Value};

use crate::cpu::{cpu_split, cpu_time};
use crate::fake_llm::{FrameWrites, LeanBailian, Protocols};
use crate::fixture::{Fake, LlmOptions, StoreKind, Upstreams, ANSWER, BOT};
use crate::load::{self, Exchange, Length, Outcome};
use crate::peers::{self, Kind, PeerEnv, Peers};
use crate::redis_stats::{redis_pid, CommandCounts, Origins, RedisProbe};
use crate::report::round;
use crate::stack::{self, Botgate};
use crate::Options;

const TOKEN: &str = "benchtoken";
const AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
const APP_ID: &str = "wxbench0000000001";
/// As `wechat-safe`: each user comes back every 50 requests of its connection, so memory (the
/// Go peer's and botgate's) fills and every LLM call carries a history.
const USERS_PER_CONNECTION: u64 = 50;
const CALLS_SETTLE: Duration = Duration::from_secs(2);
const PREPARED_MAX: u64 = 1_000_000;
/// The peers' callback path.
const PEER_PATH: &str = "/wx";

/// The targets.
const TARGET_CPU_VS_GO: f64 = 1.0 / 3.0;
const TARGET_CPU_VS_PYTHON: f64 = 1.0 / 10.0;
const TARGET_RATE_VS_GO: f64 = 1.5;
const TARGET_P99_MS: f64 = 10.0;
const TARGET_RSS_MIB: f64 = 30.0;
const TARGET_REDIS_COMMANDS: f64 = 8.0;

/// Commands that botgate's delivery engine sends on a clock whatever the load (its fetchers'
/// `XREADGROUP … BLOCK 1000` and the reclaimer's `XAUTOCLAIM`): the passive path sends neither,
/// so they are shown per second and left out of the commands per message.
const BACKGROUND_COMMANDS: [&str; 2] = ["xreadgroup", "xautoclaim"];

/// A server under comparison, in the order each run measures them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Server {
    Python,
    Go,
    Botgate,
}

const SERVERS: [Server; 3] = [Server::Python, Server::Go, Server::Botgate];

impl Server {
    fn name(self) -> &'static str {
        match self {
            Server::Python => "python",
            Server::Go => "go",
            Server::Botgate => "botgate",
        }
    }
}

/// Distinct signed, encrypted text messages, to botgate's or a peer's callback path.
struct CompareExchange {
    account: WechatAccount,
    path: String,
    user_per_message: bool,
    next_msg_id: AtomicU64,
}

impl Exchange for CompareExchange {
    fn request(&self, connection: usize, sequence: u64) -> anyhow::Result<Vec<u8>> {
        let user = if self.user_per_message {
            format!("o-bench-{connection}-{sequence}")
        } else {
            format!("o-bench-{connection}-{}", sequence % USERS_PER_CONNECTION)
        };
        let msg_id = self.next_msg_id.fetch_add(1, Ordering::Relaxed);
        crate::wechat::signed_message(
            &self.account,
            CallbackMode::Safe,
            &self.path,
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

/// botgate's Redis over the measured window.
#[derive(Debug, Clone, Default)]
struct RedisFigures {
    cpu_us: f64,
    /// Calls per command over the window.
    commands: CommandCounts,
    total: u64,
    /// Messages counted over the window.
    messages: u64,
    /// Commands per message, [`BACKGROUND_COMMANDS`] left out.
    per_message: f64,
    /// The window's length.
    seconds: f64,
    /// The warm-up's slowlog sample, if one was taken.
    origins: Option<Origins>,
}

/// One server's figures in one run.
struct Measured {
    server: Server,
    rate: f64,
    p50: f64,
    p99: f64,
    max: f64,
    counted: u64,
    sent: u64,
    errors: u64,
    verified: u64,
    peak_mib: f64,
    cpu_us: f64,
    /// The part of `cpu_us` spent in the kernel (system time).
    kernel_us: f64,
    bench_us: f64,
    startup_ms: f64,
    llm: Protocols,
    redis: Option<RedisFigures>,
    problems: Vec<String>,
}

/// A process's CPU time now, zero once it is gone.
fn cpu(pid: Option<u32>) -> Duration {
    pid.and_then(|pid| cpu_time(pid).ok()).unwrap_or_default()
}

/// A process's CPU time now as (all, of it system), from one read; zero once it is gone.
fn cpu_and_kernel(pid: u32) -> (Duration, Duration) {
    cpu_split(pid)
        .map(|(user, system)| (user + system, system))
        .unwrap_or_default()
}

fn per_message(used: Duration, messages: u64) -> f64 {
    used.as_secs_f64() * 1e6 / messages.max(1) as f64
}

/// What a server under test is, for the measuring code.
enum Running {
    Peer(peers::Peer),
    Botgate(Botgate),
}

impl Running {
    fn pid(&self) -> u32 {
        match self {
            Running::Peer(peer) => peer.pid(),
            Running::Botgate(botgate) => botgate.pid(),
        }
    }

    fn address(&self) -> std::net::SocketAddr {
        match self {
            Running::Peer(peer) => peer.address(),
            Running::Botgate(botgate) => botgate.address(),
        }
    }

    fn startup(&self) -> Duration {
        match self {
            Running::Peer(peer) => peer.startup(),
            Running::Botgate(botgate) => botgate.startup(),
        }
    }

    fn is_running(&mut self) -> bool {
        match self {
            Running::Peer(peer) => peer.is_running(),
            Running::Botgate(botgate) => botgate.is_running(),
        }
    }

    fn log_tail(&self) -> String {
        match self {
            Running::Peer(peer) => peer.log_tail(),
            Running::Botgate(botgate) => botgate.log_tail(),
        }
    }

    async fn stop(self) {
        match self {
            Running::Peer(peer) => peer.stop().await,
            Running::Botgate(botgate) => botgate.stop().await,
        }
    }
}

/// How botgate calls the fake LLM in this comparison.
fn botgate_llm(options: &Options) -> &'static str {
    if options.llm_openai {
        "OpenAI chat/completions JSON"
    } else if options.llm_json {
        "Bailian JSON"
    } else {
        "Bailian SSE (botgate's default)"
    }
}

/// Runs the comparison; false if a check failed (errors, wrong replies, missed LLM calls).
pub async fn run(options: &Options) -> anyhow::Result<bool> {
    anyhow::ensure!(
        markdown_to_text(ANSWER) == ANSWER,
        "the fake's answer must survive botgate's markdown-to-text unchanged"
    );
    let dir = peers::locate(options.peers.clone())?;
    eprintln!("compare: peers from {}", dir.display());
    let peers = Peers::set_up(&dir)?;
    let machine = machine();
    let load_text = format!(
        "safe mode (encrypt_type=aes), {} connections, {} s measured after {} s warm-up, \
         distinct MsgId per request, {}, every reply decrypted and compared after the run",
        options.connections,
        options.seconds,
        options.warmup,
        if options.user_per_message {
            "a new user per request".to_owned()
        } else {
            format!(
                "{USERS_PER_CONNECTION} users per connection ({} in all)",
                USERS_PER_CONNECTION * options.connections as u64
            )
        },
    );
    println!("compare: botgate vs the peers of {}", dir.display());
    println!("  machine   {machine}");
    println!("  load      {load_text}");
    println!(
        "  LLM       a lean fake answering at once (one write, {} characters); the peers call \
         OpenAI chat/completions (non-streaming), botgate calls {}",
        ANSWER.chars().count(),
        botgate_llm(options)
    );
    println!(
        "  botgate   {} workers, Redis store (a private redis-server), {}",
        options.workers,
        options.binary.display()
    );
    println!("  python    {}", peers.python_version);
    println!("  go        {}", peers.go_version);

    let mut runs: Vec<Vec<Measured>> = Vec::new();
    let mut inner_counted = None;
    for run in 1..=options.runs {
        let mut measured = Vec::new();
        for server in SERVERS {
            eprintln!(
                "compare: run {run}/{}: {} ({} s warm-up + {} s)",
                options.runs,
                server.name(),
                options.warmup,
                options.seconds
            );
            let result = match server {
                Server::Python => measure_peer(&peers, Kind::Python, options).await?,
                Server::Go => measure_peer(&peers, Kind::Go, options).await?,
                Server::Botgate => {
                    let (result, counted) = measure_botgate(options).await?;
                    inner_counted = inner_counted.or(Some(counted));
                    result
                }
            };
            measured.push(result);
        }
        print_run(run, options.runs, &measured);
        runs.push(measured);
    }
    let passed = runs
        .iter()
        .flatten()
        .all(|measured| measured.problems.is_empty());
    print_summary(&runs, inner_counted, options, &machine, &load_text);
    Ok(passed)
}

/// `N cores, MODEL`.
fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|line| line.strip_prefix("model name")?.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    format!("{cores} cores (nproc), {model}")
}

fn exchange(path: String, options: &Options) -> anyhow::Result<Arc<CompareExchange>> {
    let key = EncodingAesKey::parse(AES_KEY).context("the bench's EncodingAESKey")?;
    Ok(Arc::new(CompareExchange {
        account: WechatAccount::new(TOKEN, Some(key), APP_ID),
        path,
        user_per_message: options.user_per_message,
        next_msg_id: AtomicU64::new(0),
    }))
}

async fn prepare(
    exchange: &Arc<CompareExchange>,
    options: &Options,
) -> anyhow::Result<load::Prepared> {
    let wanted = options.max_rate * (options.warmup + options.seconds);
    let per_connection = wanted
        .min(PREPARED_MAX)
        .div_ceil(options.connections as u64);
    load::prepare(exchange, options.connections, per_connection).await
}

async fn measure_peer(peers: &Peers, kind: Kind, options: &Options) -> anyhow::Result<Measured> {
    let fake = LeanBailian::start(ANSWER, FrameWrites::One).context("start the fake LLM")?;
    let exchange = exchange(PEER_PATH.to_owned(), options)?;
    let prepared = prepare(&exchange, options).await?;
    let env = PeerEnv {
        token: TOKEN,
        aes_key: AES_KEY,
        app_id: APP_ID,
        llm_base: fake.openai_base_url(),
        llm_key: fake.api_key(),
        llm_model: fake.model(),
    };
    let peer = peers.start(kind, &env).await?;
    let server = match kind {
        Kind::Python => Server::Python,
        Kind::Go => Server::Go,
    };
    drive(
        server,
        Running::Peer(peer),
        &fake,
        exchange,
        prepared,
        None,
        options,
    )
    .await
}

/// botgate with its Redis; also whether this Redis counts a script's commands in commandstats.
async fn measure_botgate(options: &Options) -> anyhow::Result<(Measured, bool)> {
    let llm = LlmOptions {
        stream: !options.llm_json && !options.llm_openai,
        http2: false,
        delay: Duration::ZERO,
        lean: Some(FrameWrites::One),
    };
    let upstreams = Upstreams::start(StoreKind::Redis, 1, llm).await?;
    let Fake::Lean(fake) = &upstreams.fake else {
        anyhow::bail!("compare needs the lean fake");
    };
    let port = upstreams.redis_port().context("no redis-server")?;
    let mut probe = RedisProbe::connect(port).await?;
    let inner_counted = probe.inner_counted().await?;
    let llm_table = if options.llm_openai {
        let store = upstreams
            .config(llm)
            .split("[llm.main]")
            .next()
            .unwrap_or_default()
            .to_owned();
        format!(
            "{store}[llm.main]\nkind = \"openai\"\nbase_url = \"{}\"\napi_key = \"{}\"\n\
             model = \"{}\"\nstream = false\n\n",
            fake.openai_base_url(),
            fake.api_key(),
            fake.model()
        )
    } else {
        upstreams.config(llm)
    };
    let config = format!(
        "{llm_table}[bots.{BOT}]\nllm = \"main\"\n\n[bots.{BOT}.wechat]\napp_id = \"{APP_ID}\"\n\
         token = \"{TOKEN}\"\nencoding_aes_key = \"{AES_KEY}\"\n"
    );
    let exchange = exchange(format!("/wechat/{BOT}"), options)?;
    let prepared = prepare(&exchange, options).await?;
    let botgate = Botgate::start(&options.binary, options.workers, &config).await?;
    let redis = RedisSide {
        probe,
        pid: redis_pid(port),
    };
    let measured = drive(
        Server::Botgate,
        Running::Botgate(botgate),
        fake,
        exchange,
        prepared,
        Some(redis),
        options,
    )
    .await?;
    Ok((measured, inner_counted))
}

struct RedisSide {
    probe: RedisProbe,
    pid: Option<u32>,
}

/// Loads `running` for warm-up and measured time, then verifies and gathers the figures.
async fn drive(
    server: Server,
    mut running: Running,
    fake: &LeanBailian,
    exchange: Arc<CompareExchange>,
    prepared: load::Prepared,
    mut redis: Option<RedisSide>,
    options: &Options,
) -> anyhow::Result<Measured> {
    let warmup = Duration::from_secs(options.warmup);
    let measure = Duration::from_secs(options.seconds);
    let pid = running.pid();
    let redis_pid = redis.as_ref().and_then(|redis| redis.pid);
    let me = std::process::id();
    let load = load::run(
        running.address(),
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
        let started = tokio::time::Instant::now();
        let mut origins = None;
        let mut sample_error = None;
        if let Some(redis) = redis.as_mut() {
            // The slowlog sample, inside the warm-up: it costs Redis, so not in the window.
            if warmup >= Duration::from_secs(1) {
                tokio::time::sleep_until(started + warmup.mul_f64(0.3)).await;
                let sampled = async {
                    redis.probe.start_sample().await?;
                    tokio::time::sleep_until(started + warmup.mul_f64(0.6)).await;
                    redis.probe.finish_sample().await
                };
                match sampled.await {
                    Ok(found) => origins = Some(found),
                    Err(error) => sample_error = Some(format!("slowlog sample: {error:#}")),
                }
            }
        }
        tokio::time::sleep_until(started + warmup).await;
        let mut reset = Ok(());
        if let Some(redis) = redis.as_mut() {
            reset = redis.probe.reset_stats().await;
        }
        let before = (cpu_and_kernel(pid), cpu(redis_pid), cpu(Some(me)));
        tokio::time::sleep_until(started + warmup + measure).await;
        let after = (cpu_and_kernel(pid), cpu(redis_pid), cpu(Some(me)));
        let commands = match redis.as_mut() {
            Some(redis) => Some(reset.and(redis.probe.command_stats().await)),
            None => None,
        };
        (before, after, commands, origins, sample_error)
    };
    let (mut outcome, (before, after, commands, origins, sample_error)) =
        tokio::join!(load, sample);
    let ((server_before, kernel_before), redis_before, me_before) = before;
    let ((server_after, kernel_after), redis_after, me_after) = after;
    fake.wait_for_calls(outcome.sent, CALLS_SETTLE).await;
    let calls = fake.accepted();
    let rejected = fake.rejected();
    load::verify(&exchange, &mut outcome).await?;
    let peak_kib = stack::status_kib(pid, "VmHWM").unwrap_or(0);
    let alive = running.is_running();
    let counted = outcome.counted();
    let mut problems = Vec::new();
    check(&outcome, calls, rejected, fake, alive, &mut problems);
    let redis_figures = match commands {
        Some(Ok(commands)) => {
            let total = commands.values().sum();
            let background: u64 = commands
                .iter()
                .filter(|(command, _)| BACKGROUND_COMMANDS.contains(&command.as_str()))
                .map(|(_, calls)| calls)
                .sum();
            Some(RedisFigures {
                cpu_us: per_message(redis_after.saturating_sub(redis_before), counted),
                total,
                messages: counted,
                per_message: (total - background) as f64 / counted.max(1) as f64,
                seconds: options.seconds.max(1) as f64,
                commands,
                origins,
            })
        }
        Some(Err(error)) => {
            problems.push(format!("Redis commandstats: {error:#}"));
            None
        }
        None => None,
    };
    if let Some(error) = sample_error {
        problems.push(error);
    }
    if redis.is_some() && redis_pid.is_none() {
        problems.push("the redis-server's pid was not found: no Redis CPU".to_owned());
    }
    if !problems.is_empty() {
        problems.push(format!(
            "{}'s log (last lines):\n{}",
            server.name(),
            running.log_tail()
        ));
    }
    let measured = Measured {
        server,
        rate: outcome.per_second(),
        p50: outcome.percentile_ms(0.50),
        p99: outcome.percentile_ms(0.99),
        max: outcome.max_ms(),
        counted,
        sent: outcome.sent,
        errors: outcome.failures.total(),
        verified: outcome.verified,
        peak_mib: peak_kib as f64 / 1024.0,
        cpu_us: per_message(server_after.saturating_sub(server_before), counted),
        kernel_us: per_message(kernel_after.saturating_sub(kernel_before), counted),
        bench_us: per_message(me_after.saturating_sub(me_before), counted),
        startup_ms: running.startup().as_secs_f64() * 1000.0,
        llm: fake.protocols(),
        redis: redis_figures,
        problems,
    };
    running.stop().await;
    Ok(measured)
}

/// The checks every server must pass for its figures to count.
fn check(
    outcome: &Outcome,
    calls: u64,
    rejected: u64,
    fake: &LeanBailian,
    alive: bool,
    problems: &mut Vec<String>,
) {
    if outcome.failures.total() > 0 {
        problems.push(format!(
            "{} failed requests (status {}, wrong reply {}, timeout {}, connection {}, build {}); first: {}",
            outcome.failures.total(),
            outcome.failures.status,
            outcome.failures.reply,
            outcome.failures.timeout,
            outcome.failures.io,
            outcome.failures.build,
            outcome.failures.samples.join(" | ")
        ));
    }
    if calls != outcome.sent {
        problems.push(format!(
            "{calls} LLM calls for {} messages sent: every distinct message must cost exactly one",
            outcome.sent
        ));
    }
    if rejected > 0 {
        problems.push(format!(
            "the fake LLM refused {rejected} requests; first: {}",
            fake.first_rejection().unwrap_or("?")
        ));
    }
    if !alive {
        problems.push("the server died during the run".to_owned());
    }
}

fn print_run(run: u64, runs: u64, measured: &[Measured]) {
    println!();
    println!("run {run}/{runs}");
    println!(
        "  {:<8} {:>8} {:>7} {:>7} {:>8} {:>6} {:>9} {:>9} {:>10} {:>9} {:>11} {:>10} {:>10}",
        "server",
        "msgs/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "errors",
        "verified",
        "peak RSS",
        "CPU µs/msg",
        "of it kernel",
        "bench µs/msg",
        "Redis µs/msg",
        "Redis cmds/msg"
    );
    for m in measured {
        let (redis_cpu, redis_commands) = match &m.redis {
            Some(redis) => (
                format!("{:.0}", redis.cpu_us),
                format!("{:.2}", redis.per_message),
            ),
            None => ("-".to_owned(), "-".to_owned()),
        };
        println!(
            "  {:<8} {:>8.0} {:>7.2} {:>7.2} {:>8.2} {:>6} {:>9} {:>5.1} MiB {:>10.0} {:>12.0} {:>12.0} {:>12} {:>14}",
            m.server.name(),
            m.rate,
            m.p50,
            m.p99,
            m.max,
            m.errors,
            m.verified,
            m.peak_mib,
            m.cpu_us,
            m.kernel_us,
            m.bench_us,
            redis_cpu,
            redis_commands
        );
    }
    for m in measured {
        println!(
            "  {:<8} {} messages counted, {} sent, LLM calls: {} ({}), ready in {:.0} ms",
            m.server.name(),
            m.counted,
            m.sent,
            m.llm.bailian_sse + m.llm.bailian_json + m.llm.openai_json,
            m.llm.describe(),
            m.startup_ms
        );
        for problem in &m.problems {
            println!("  FAILED {}: {problem}", m.server.name());
        }
    }
}

/// min, max and median.
#[derive(Debug, Clone, Copy)]
struct Spread {
    min: f64,
    max: f64,
    median: f64,
}

fn spread(values: &[f64]) -> Spread {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return Spread {
            min: f64::NAN,
            max: f64::NAN,
            median: f64::NAN,
        };
    }
    let middle = sorted.len() / 2;
    let median = if sorted.len() % 2 == 1 {
        sorted[middle]
    } else {
        (sorted[middle - 1] + sorted[middle]) / 2.0
    };
    Spread {
        min: sorted[0],
        max: sorted[sorted.len() - 1],
        median,
    }
}

impl Spread {
    fn text(&self, decimals: usize) -> String {
        if self.min == self.max {
            format!("{:.*}", decimals, self.median)
        } else {
            format!(
                "{:.*} ({:.*}–{:.*})",
                decimals, self.median, decimals, self.min, decimals, self.max
            )
        }
    }

    fn json(&self, decimals: i32) -> Value {
        json!({
            "median": round(self.median, decimals),
            "min": round(self.min, decimals),
            "max": round(self.max, decimals),
        })
    }
}

fn figures(runs: &[Vec<Measured>], server: Server) -> impl Iterator<Item = &Measured> {
    runs.iter()
        .flat_map(move |run| run.iter().filter(move |m| m.server == server))
}

fn spread_of(runs: &[Vec<Measured>], server: Server, value: impl Fn(&Measured) -> f64) -> Spread {
    spread(&figures(runs, server).map(value).collect::<Vec<_>>())
}

/// botgate's figure over a peer's, per run.
fn ratio(runs: &[Vec<Measured>], peer: Server, value: impl Fn(&Measured) -> f64) -> Spread {
    let ratios: Vec<f64> = runs
        .iter()
        .filter_map(|run| {
            let botgate = run.iter().find(|m| m.server == Server::Botgate)?;
            let peer = run.iter().find(|m| m.server == peer)?;
            Some(value(botgate) / value(peer))
        })
        .collect();
    spread(&ratios)
}

fn pass(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "FAIL"
    }
}

fn botgate_total_cpu(m: &Measured) -> f64 {
    m.cpu_us + m.redis.as_ref().map_or(0.0, |redis| redis.cpu_us)
}

fn print_summary(
    runs: &[Vec<Measured>],
    inner_counted: Option<bool>,
    options: &Options,
    machine: &str,
    load_text: &str,
) {
    println!();
    println!("summary over {} run(s): median (min–max)", runs.len());
    let mut servers_json = Map::new();
    for server in SERVERS {
        let rate = spread_of(runs, server, |m| m.rate);
        let p50 = spread_of(runs, server, |m| m.p50);
        let p99 = spread_of(runs, server, |m| m.p99);
        let rss = spread_of(runs, server, |m| m.peak_mib);
        let cpu = spread_of(runs, server, |m| m.cpu_us);
        let kernel = spread_of(runs, server, |m| m.kernel_us);
        let errors: u64 = figures(runs, server).map(|m| m.errors).sum();
        let verified: u64 = figures(runs, server).map(|m| m.verified).sum();
        println!(
            "  {:<8} {} msgs/s, p50 {} ms, p99 {} ms, {errors} errors ({verified} replies verified), peak RSS {} MiB, CPU {} µs/msg, of it kernel {}",
            server.name(),
            rate.text(0),
            p50.text(2),
            p99.text(2),
            rss.text(1),
            cpu.text(0),
            kernel.text(0),
        );
        let mut entry = json!({
            "messages_per_sec": rate.json(0),
            "p50_ms": p50.json(2),
            "p99_ms": p99.json(2),
            "peak_rss_mib": rss.json(1),
            "cpu_us_per_message": cpu.json(1),
            "kernel_cpu_us_per_message": kernel.json(1),
            "bench_cpu_us_per_message": spread_of(runs, server, |m| m.bench_us).json(1),
            "errors": errors,
            "replies_verified": verified,
            "llm": figures(runs, server).next().map(|m| m.llm.describe()).unwrap_or_default(),
        });
        if server == Server::Botgate {
            let redis_cpu = spread_of(runs, server, |m| {
                m.redis.as_ref().map_or(f64::NAN, |redis| redis.cpu_us)
            });
            let commands = spread_of(runs, server, |m| {
                m.redis.as_ref().map_or(f64::NAN, |redis| redis.per_message)
            });
            let total = spread_of(runs, server, botgate_total_cpu);
            println!(
                "  {:<8} Redis: CPU {} µs/msg (botgate + Redis {} µs/msg), {} commands/msg",
                "",
                redis_cpu.text(0),
                total.text(0),
                commands.text(2)
            );
            entry["redis_cpu_us_per_message"] = redis_cpu.json(1);
            entry["cpu_with_redis_us_per_message"] = total.json(1);
            entry["redis_commands_per_message"] = commands.json(2);
        }
        servers_json.insert(server.name().to_owned(), entry);
    }

    let cpu_vs_go = ratio(runs, Server::Go, |m| m.cpu_us);
    let cpu_vs_python = ratio(runs, Server::Python, |m| m.cpu_us);
    let with_redis_vs_go = ratio(runs, Server::Go, botgate_total_cpu);
    let with_redis_vs_python = ratio(runs, Server::Python, botgate_total_cpu);
    let rate_vs_go = ratio(runs, Server::Go, |m| m.rate);
    let rate_vs_python = ratio(runs, Server::Python, |m| m.rate);
    println!();
    println!("ratios, per run: median (min–max)");
    println!(
        "  CPU per message    botgate/go {}   botgate/python {}",
        cpu_vs_go.text(2),
        cpu_vs_python.text(3)
    );
    println!(
        "  with botgate's Redis  botgate+redis/go {}   botgate+redis/python {}",
        with_redis_vs_go.text(2),
        with_redis_vs_python.text(3)
    );
    println!(
        "  throughput         botgate/go {}×  botgate/python {}×",
        rate_vs_go.text(2),
        rate_vs_python.text(2)
    );

    let redis_json = print_redis_breakdown(runs, inner_counted);

    let p99 = spread_of(runs, Server::Botgate, |m| m.p99);
    let rss = spread_of(runs, Server::Botgate, |m| m.peak_mib);
    let commands = spread_of(runs, Server::Botgate, |m| {
        m.redis.as_ref().map_or(f64::NAN, |redis| redis.per_message)
    });
    // Commands are counted over the window and messages by their replies in it: each of the
    // connections may have one message's commands counted without its reply, or the reverse.
    let fewest = figures(runs, Server::Botgate)
        .map(|m| m.counted)
        .min()
        .unwrap_or(0);
    let edge = options.connections as f64 * TARGET_REDIS_COMMANDS / fewest.max(1) as f64;
    let targets = [
        (
            "cpu_vs_go",
            cpu_vs_go.median <= TARGET_CPU_VS_GO,
            format!(
                "botgate CPU/msg ≤ 1/3 of Go's: {:.2}× Go's (median)",
                cpu_vs_go.median
            ),
        ),
        (
            "cpu_vs_python",
            cpu_vs_python.median <= TARGET_CPU_VS_PYTHON,
            format!(
                "botgate CPU/msg ≤ 1/10 of Python's: {:.3}× Python's (median)",
                cpu_vs_python.median
            ),
        ),
        (
            "throughput_vs_go",
            rate_vs_go.median >= TARGET_RATE_VS_GO,
            format!(
                "botgate throughput ≥ 1.5× Go's: {:.2}× (median)",
                rate_vs_go.median
            ),
        ),
        (
            "p99",
            p99.median <= TARGET_P99_MS,
            format!(
                "botgate p99 ≤ {TARGET_P99_MS:.0} ms: {:.2} ms (median; worst run {:.2})",
                p99.median, p99.max
            ),
        ),
        (
            "rss",
            rss.max <= TARGET_RSS_MIB,
            format!(
                "botgate peak RSS ≤ {TARGET_RSS_MIB:.0} MiB: {:.1} MiB (highest run)",
                rss.max
            ),
        ),
        (
            "redis_commands",
            commands.median <= TARGET_REDIS_COMMANDS + edge,
            format!(
                "≤ {TARGET_REDIS_COMMANDS:.0} Redis commands per passive message: {:.3} (median, \
                 commands run inside scripts included, the delivery engine's clocked polls not; \
                 ±{edge:.3} for the messages in flight at the window's edges)",
                commands.median
            ),
        ),
    ];
    println!();
    println!("targets (from the issue)");
    let mut targets_json = Map::new();
    for (key, ok, text) in &targets {
        println!("  {} {text}", pass(*ok));
        targets_json.insert((*key).to_owned(), Value::Bool(*ok));
    }

    let runs_json: Vec<Value> = runs
        .iter()
        .map(|run| {
            let mut entry = Map::new();
            for m in run {
                let mut figures = json!({
                    "messages_per_sec": round(m.rate, 0),
                    "p50_ms": round(m.p50, 2),
                    "p99_ms": round(m.p99, 2),
                    "max_ms": round(m.max, 2),
                    "messages": m.counted,
                    "sent": m.sent,
                    "errors": m.errors,
                    "replies_verified": m.verified,
                    "peak_rss_mib": round(m.peak_mib, 1),
                    "cpu_us_per_message": round(m.cpu_us, 1),
                    "kernel_cpu_us_per_message": round(m.kernel_us, 1),
                    "bench_cpu_us_per_message": round(m.bench_us, 1),
                    "startup_ms": round(m.startup_ms, 1),
                    "problems": m.problems.len(),
                });
                if let Some(redis) = &m.redis {
                    figures["redis_cpu_us_per_message"] = json!(round(redis.cpu_us, 1));
                    figures["redis_commands_per_message"] = json!(round(redis.per_message, 2));
                    figures["redis_commands"] = json!(redis.total);
                }
                entry.insert(m.server.name().to_owned(), figures);
            }
            Value::Object(entry)
        })
        .collect();
    let line = json!({
        "scenario": "compare",
        "machine": machine,
        "load": load_text,
        "connections": options.connections,
        "seconds": options.seconds,
        "warmup": options.warmup,
        "workers": options.workers,
        "runs": runs.len(),
        "botgate_llm": botgate_llm(options),
        "peers_llm": "OpenAI chat/completions JSON",
        "servers": servers_json,
        "ratios": {
            "cpu_botgate_over_go": cpu_vs_go.json(3),
            "cpu_botgate_over_python": cpu_vs_python.json(3),
            "cpu_with_redis_botgate_over_go": with_redis_vs_go.json(3),
            "cpu_with_redis_botgate_over_python": with_redis_vs_python.json(3),
            "throughput_botgate_over_go": rate_vs_go.json(3),
            "throughput_botgate_over_python": rate_vs_python.json(3),
        },
        "redis": redis_json,
        "targets": targets_json,
        "per_run": runs_json,
    });
    println!("{line}");
}

/// Commands per message by command, averaged over the runs, with the slowlog samples' split
/// between commands botgate sent and commands its scripts ran.
fn print_redis_breakdown(runs: &[Vec<Measured>], inner_counted: Option<bool>) -> Value {
    let botgate: Vec<&RedisFigures> = figures(runs, Server::Botgate)
        .filter_map(|m| m.redis.as_ref())
        .collect();
    if botgate.is_empty() {
        return Value::Null;
    }
    let mut per_message: BTreeMap<String, f64> = BTreeMap::new();
    let mut per_second: BTreeMap<String, f64> = BTreeMap::new();
    let mut origins = Origins::default();
    for redis in &botgate {
        for (command, calls) in &redis.commands {
            if BACKGROUND_COMMANDS.contains(&command.as_str()) {
                *per_second.entry(command.clone()).or_default() +=
                    *calls as f64 / redis.seconds / botgate.len() as f64;
                continue;
            }
            *per_message.entry(command.clone()).or_default() +=
                *calls as f64 / redis.messages.max(1) as f64 / botgate.len() as f64;
        }
        if let Some(sample) = &redis.origins {
            for (command, (clients, scripts)) in &sample.commands {
                let entry = origins.commands.entry(command.clone()).or_default();
                entry.0 += clients;
                entry.1 += scripts;
            }
        }
    }
    let mut ordered: Vec<(&String, &f64)> = per_message.iter().collect();
    ordered.sort_by(|a, b| b.1.total_cmp(a.1).then(a.0.cmp(b.0)));
    let total: f64 = per_message.values().sum();
    let sampled = origins.sent_by_clients() + origins.run_by_scripts();
    let script_share = |command: &str| {
        origins
            .commands
            .get(command)
            .filter(|(clients, scripts)| clients + scripts > 0)
            .map(|(clients, scripts)| *scripts as f64 / (clients + scripts) as f64)
    };
    println!();
    println!(
        "botgate's Redis commands per message (INFO commandstats over the window, mean of {} run(s)): {total:.2}",
        botgate.len()
    );
    let mut commands_json = Map::new();
    let mut from_scripts = 0.0;
    for (command, calls) in &ordered {
        let share = script_share(command);
        let origin = match share {
            Some(share) if share >= 0.995 => "run inside scripts".to_owned(),
            Some(share) if share <= 0.005 => "sent by botgate".to_owned(),
            Some(share) => format!("{:.0}% inside scripts", share * 100.0),
            None => "not in the slowlog sample".to_owned(),
        };
        from_scripts += *calls * share.unwrap_or(0.0);
        // Upkeep that comes every so many messages (memory trims, expiries) shows as a small
        // fraction per message.
        let decimals = if **calls < 0.1 { 3 } else { 2 };
        println!("  {command:<22} {calls:>7.decimals$}  ({origin})");
        commands_json.insert(
            (*command).clone(),
            json!({"per_message": round(**calls, 3), "inside_scripts_share": share.map(|s| round(s, 3))}),
        );
    }
    for (command, rate) in &per_second {
        println!(
            "  {command:<22} {rate:>5.1}/s  (the delivery engine's clocked polls, whatever the load: \
             not counted per message)"
        );
        commands_json.insert(
            command.clone(),
            json!({"per_second": round(*rate, 2), "background": true}),
        );
    }
    let counted_text = match inner_counted {
        Some(true) => {
            "yes: this redis-server counted the ECHO run by a test EVAL in commandstats, \
                       besides the EVAL itself"
        }
        Some(false) => "no: a test EVAL's ECHO was not counted",
        None => "not checked",
    };
    println!("  commands run inside scripts are counted in commandstats: {counted_text}");
    if sampled > 0 {
        println!(
            "  slowlog sample during the warm-ups ({sampled} commands): {:.0}% ran inside scripts; \
             so about {:.2} commands/msg are sent by botgate and {:.2} run by its scripts",
            origins.run_by_scripts() as f64 * 100.0 / sampled as f64,
            total - from_scripts,
            from_scripts
        );
    }
    json!({
        "commands_per_message": round(total, 2),
        "sent_by_botgate_per_message": (sampled > 0).then(|| round(total - from_scripts, 2)),
        "inside_scripts_per_message": (sampled > 0).then(|| round(from_scripts, 2)),
        "inner_commands_counted": inner_counted,
        "by_command": commands_json,
    })
}
