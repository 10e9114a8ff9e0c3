//! The command line: `botgate [--config PATH] serve | chat --bot NAME | check-config`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config;

#[derive(Parser)]
#[command(
    name = "botgate",
    version,
    about = "One gateway from WeChat, WeCom, DingTalk and the web to a Bailian application"
)]
pub struct Cli {
    /// Configuration file (TOML). Without one, the embedded example runs: in-process store, rules-only bot.
    #[arg(long, short, global = true, env = "BOTGATE_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the gateway (HTTP webhooks, health and readiness endpoints).
    Serve,
    /// Talk to a bot in the terminal through the same conversation core.
    Chat {
        /// The bot to talk to (a [bots.NAME] table).
        #[arg(long)]
        bot: Option<String>,
        /// Conversation id, to continue an earlier conversation kept in Redis.
        #[arg(long)]
        conversation: Option<String>,
    },
    /// Load and validate the configuration, print a summary, and exit (non-zero when invalid).
    CheckConfig,
    /// Inspect and replay what the delivery engine gave up on (needs Redis).
    Jobs {
        #[command(subcommand)]
        command: crate::jobs::JobsCommand,
    },
    /// The ratings web chat visitors gave answers, newest first (needs Redis).
    Feedback {
        #[command(subcommand)]
        command: crate::feedback::FeedbackCommand,
    },
    /// Send a message to a running gateway exactly as a platform would, and print the reply.
    Simulate {
        #[command(subcommand)]
        platform: SimulatePlatform,
    },
}

#[derive(Subcommand)]
pub enum SimulatePlatform {
    /// A WeChat Official Account message: signed, encrypted per the account, retried like WeChat.
    Wechat {
        #[arg(long)]
        bot: String,
        /// The text to send (or, with --event, the event key).
        #[arg(long, default_value = "")]
        text: String,
        /// Send an event instead of a text message: subscribe, unsubscribe, CLICK, …
        #[arg(long)]
        event: Option<String>,
        /// The gateway's base URL.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// The user's OpenID.
        #[arg(long, default_value = "o-simulated-user")]
        user: String,
        /// plaintext | compatible | safe (default: safe when the account has a key).
        #[arg(long)]
        mode: Option<String>,
        /// How long one delivery waits for the reply, as WeChat does (5000).
        #[arg(long, default_value_t = 5000)]
        timeout_ms: u64,
    },
    /// A WeCom app member's message, or with --kf a 微信客服 customer's: signed and encrypted
    /// like WeCom, with a local fake of the WeCom API (the bot's api_base) that prints the answer.
    Wecom {
        #[arg(long)]
        bot: String,
        #[arg(long)]
        text: String,
        /// As a 微信客服 customer: a kf callback, then the message in the sync_msg page.
        #[arg(long)]
        kf: bool,
        /// The gateway's base URL.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// The member's UserID (or the customer's external_userid).
        #[arg(long, default_value = "simulated-user")]
        user: String,
        /// How long to wait for the answer.
        #[arg(long, default_value_t = 30)]
        wait_secs: u64,
    },
    /// A DingTalk robot message (HTTP mode), signed like DingTalk, one-to-one or with --group
    /// @-mentioning the robot; its session webhook is a local server (one of the bot's
    /// session_webhook_hosts must be its origin, e.g. "http://127.0.0.1:18082") that prints
    /// what the gateway posts back.
    Dingtalk {
        #[arg(long)]
        bot: String,
        #[arg(long)]
        text: String,
        /// In a group, @-mentioning the robot.
        #[arg(long)]
        group: bool,
        /// The gateway's base URL.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// How long to wait for the answer.
        #[arg(long, default_value_t = 30)]
        wait_secs: u64,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = match cli.command {
        Command::Serve => "info",
        // Logs would interleave with the conversation; only problems are worth showing there.
        Command::Chat { .. }
        | Command::CheckConfig
        | Command::Simulate { .. }
        | Command::Jobs { .. }
        | Command::Feedback { .. } => "warn",
    };
    crate::telemetry::init(default_level);
    let (settings, source) = match config::load(cli.config.as_deref()) {
        Ok(loaded) => loaded,
        Err(error) => {
            eprintln!("botgate: invalid configuration: {error}");
            return ExitCode::from(2);
        }
    };
    // This process's configuration fixes the key user ids are hashed with in its logs, before
    // anything could log one.
    crate::telemetry::init_log_ids(settings.server.log_id_key.as_ref());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("botgate: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::CheckConfig => {
            print_summary(&settings, &source);
            Ok(())
        }
        Command::Serve => runtime.block_on(serve(settings, source)),
        Command::Chat { bot, conversation } => {
            runtime.block_on(crate::chat::run(settings, bot, conversation))
        }
        Command::Simulate { platform } => runtime.block_on(simulate(settings, platform)),
        Command::Jobs { command } => runtime.block_on(crate::jobs::run(settings, command)),
        Command::Feedback { command } => runtime.block_on(crate::feedback::run(settings, command)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("botgate: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: config::Settings, source: config::Source) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let listen = settings.server.listen.clone();
    let store = match (&settings.store.redis_url, settings.store.cluster) {
        (None, _) => "embedded".to_owned(),
        (Some(_), false) => "redis".to_owned(),
        (Some(_), true) => format!("redis cluster, {} shards", settings.store.shards),
    };
    let bots: Vec<String> = settings.bots.keys().cloned().collect();
    let chats: Vec<String> = settings
        .bots
        .iter()
        .filter(|(_, bot)| bot.web.is_some())
        .map(|(name, _)| name.clone())
        .collect();
    let demo_in_use = demo_tables(&settings);
    let application = crate::startup::Application::build(settings).await?;
    tracing::info!(
        config = %source,
        %listen,
        port = application.port(),
        store,
        bots = ?bots,
        startup_ms = started.elapsed().as_millis() as u64,
        "botgate ready"
    );
    let demo = demo_in_use;
    if !demo.is_empty() {
        tracing::warn!(tables = ?demo, "these channels use the example's published DEMO secrets: anyone can sign requests to them; set your own before a real platform reaches this gateway");
    }
    // A listener on every interface is reachable on this machine's loopback too.
    let host = match listen.rsplit_once(':').map(|(host, _)| host) {
        Some("0.0.0.0" | "[::]" | "") | None => "127.0.0.1",
        Some(host) => host,
    };
    for bot in chats {
        let url = format!("http://{host}:{}/web/{bot}", application.port());
        tracing::info!(bot = %bot, %url, "web chat: open {url} in a browser");
    }
    application.run_until_stopped().await?;
    tracing::info!("botgate stopped");
    Ok(())
}

/// The channel tables whose secrets are the example file's published demo ones (`demo-…`;
/// WeChat and WeCom tokens are alphanumeric, so `demoWe…`).
fn demo_tables(settings: &config::Settings) -> Vec<String> {
    use secrecy::ExposeSecret;
    let mut tables = Vec::new();
    for (name, bot) in &settings.bots {
        let secrets = [
            ("wechat", bot.wechat.as_ref().map(|t| &t.token)),
            ("webhook", bot.webhook.as_ref().map(|t| &t.secret)),
            ("wecom", bot.wecom.as_ref().map(|t| &t.token)),
            ("dingtalk", bot.dingtalk.as_ref().map(|t| &t.app_secret)),
        ];
        for (table, secret) in secrets {
            if secret.is_some_and(|secret| {
                let secret = secret.expose_secret();
                secret.starts_with("demo-") || secret.starts_with("demoWe")
            }) {
                tables.push(format!("bots.{name}.{table}"));
            }
        }
    }
    tables.sort();
    tables
}

#[allow(clippy::print_stdout)]
async fn simulate(settings: config::Settings, platform: SimulatePlatform) -> anyhow::Result<()> {
    use botgate_wechat::{CallbackMode, SimulatedMessage};
    let (bot, text, event, url, user, mode, timeout_ms) = match platform {
        SimulatePlatform::Wechat {
            bot,
            text,
            event,
            url,
            user,
            mode,
            timeout_ms,
        } => (bot, text, event, url, user, mode, timeout_ms),
        SimulatePlatform::Wecom {
            bot,
            text,
            kf,
            url,
            user,
            wait_secs,
        } => {
            let wecom = settings
                .bots
                .get(&bot)
                .and_then(|bot| bot.wecom.as_ref())
                .ok_or_else(|| anyhow::anyhow!("no [bots.{bot}.wecom] in the configuration"))?;
            let simulator = crate::simulate::WecomSimulator::new(&url, &bot, wecom)?;
            let sent = simulator
                .send(&user, &text, kf, std::time::Duration::from_secs(wait_secs))
                .await?;
            if sent.is_empty() {
                println!("(no answer within {wait_secs} s)");
            }
            for (path, body) in &sent {
                eprintln!("{path}");
                println!("{}", crate::simulate::content(body));
            }
            return Ok(());
        }
        SimulatePlatform::Dingtalk {
            bot,
            text,
            group,
            url,
            wait_secs,
        } => {
            let dingtalk = settings
                .bots
                .get(&bot)
                .and_then(|bot| bot.dingtalk.as_ref())
                .ok_or_else(|| anyhow::anyhow!("no [bots.{bot}.dingtalk] in the configuration"))?;
            let simulator = crate::simulate::DingtalkSimulator::new(&url, &bot, dingtalk)?;
            let sent = simulator
                .send(&text, group, std::time::Duration::from_secs(wait_secs))
                .await?;
            if sent.is_empty() {
                println!("(no answer within {wait_secs} s)");
            }
            for message in &sent {
                if let Some(at) = message.at.as_ref().filter(|at| !at.at_user_ids.is_empty()) {
                    eprintln!("@{}", at.at_user_ids.join(" @"));
                }
                println!("{}", message.body_text().unwrap_or_default());
            }
            return Ok(());
        }
    };
    let wechat = settings
        .bots
        .get(&bot)
        .and_then(|bot| bot.wechat.as_ref())
        .ok_or_else(|| anyhow::anyhow!("no [bots.{bot}.wechat] in the configuration"))?;
    let mode = match mode.as_deref() {
        None => None,
        Some("plaintext") => Some(CallbackMode::Plaintext),
        Some("compatible") => Some(CallbackMode::Compatible),
        Some("safe") => Some(CallbackMode::Safe),
        Some(other) => anyhow::bail!("unknown mode `{other}` (plaintext, compatible, safe)"),
    };
    let simulator = crate::simulate::WechatSimulator::new(&url, &bot, wechat, mode)?
        .with_timeout(std::time::Duration::from_millis(timeout_ms));
    let message = match event {
        Some(event) => SimulatedMessage::Event {
            event,
            event_key: text,
        },
        None => {
            let mut id = [0u8; 8];
            getrandom::fill(&mut id)?;
            // Real MsgIds exceed 2^53; keep that property so JSON-number bugs would show.
            let msg_id = u64::from_le_bytes(id) | (1 << 62);
            SimulatedMessage::Text {
                msg_id,
                content: text,
            }
        }
    };
    let delivery = simulator.send(&user, &message).await?;
    match (&delivery.reply, delivery.answered) {
        (Some(reply), _) => println!("{reply}"),
        (None, true) => println!("(acknowledged with success, no reply)"),
        (None, false) => println!("(no answer within {} deliveries)", delivery.attempts),
    }
    eprintln!(
        "deliveries: {}, elapsed: {} ms",
        delivery.attempts,
        delivery.elapsed.as_millis()
    );
    Ok(())
}

#[allow(clippy::print_stdout)]
fn print_summary(settings: &config::Settings, source: &config::Source) {
    println!("configuration OK ({source})");
    println!("  listen: {}", settings.server.listen);
    println!(
        "  store: {}",
        if settings.store.redis_url.is_some() {
            "redis"
        } else {
            "embedded (single instance)"
        }
    );
    for (name, llm) in &settings.llm {
        println!("  llm.{name}: {}", llm.kind());
    }
    for (name, bot) in &settings.bots {
        let llm = bot.llm.as_deref().unwrap_or("(default)");
        let channels: Vec<&str> = [
            ("wechat", bot.wechat.is_some()),
            ("wecom", bot.wecom.is_some()),
            ("dingtalk", bot.dingtalk.is_some()),
            ("webhook", bot.webhook.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, configured)| configured.then_some(name))
        .collect();
        let channels = match channels.is_empty() {
            true => "console only".to_owned(),
            false => channels.join(","),
        };
        println!("  bots.{name}: llm={llm} channels={channels}");
    }
}
