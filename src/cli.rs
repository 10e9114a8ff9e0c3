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
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = match cli.command {
        Command::Serve => "info",
        // Logs would interleave with the conversation; only problems are worth showing there.
        Command::Chat { .. } | Command::CheckConfig => "warn",
    };
    crate::telemetry::init(default_level);
    let (settings, source) = match config::load(cli.config.as_deref()) {
        Ok(loaded) => loaded,
        Err(error) => {
            eprintln!("botgate: invalid configuration: {error}");
            return ExitCode::from(2);
        }
    };
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
    let store = if settings.store.redis_url.is_some() {
        "redis"
    } else {
        "embedded"
    };
    let bots: Vec<String> = settings.bots.keys().cloned().collect();
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
    application.run_until_stopped().await?;
    tracing::info!("botgate stopped");
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
        let channels = if bot.wechat.is_some() {
            "wechat"
        } else {
            "console only"
        };
        println!("  bots.{name}: llm={llm} channels={channels}");
    }
}
