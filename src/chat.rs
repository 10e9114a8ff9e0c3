//! `botgate chat`: a conversation in the terminal through the same core the platforms use.

use std::io::Write;

use anyhow::Context;
use botgate_contract::{Content, InboundMessage, Platform};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::config::Settings;
use crate::core::ReplyKind;

#[allow(clippy::print_stdout)]
pub async fn run(
    settings: Settings,
    bot: Option<String>,
    conversation: Option<String>,
) -> anyhow::Result<()> {
    let bot = match bot {
        Some(bot) => bot,
        None if settings.bots.len() == 1 => {
            settings.bots.keys().next().cloned().unwrap_or_default()
        }
        None => {
            let names: Vec<&String> = settings.bots.keys().collect();
            anyhow::bail!("choose a bot with --bot NAME (configured: {names:?})");
        }
    };
    if !settings.bots.contains_key(&bot) {
        anyhow::bail!("no bot named `{bot}` in the configuration");
    }
    let conversations = crate::startup::build_conversations(&settings).await?;
    let conversation = conversation.unwrap_or_else(|| format!("console-{}", std::process::id()));
    let interactive = std::io::IsTerminal::is_terminal(&std::io::stdin());
    if interactive {
        println!("botgate chat with `{bot}`; /help for commands, Ctrl-D to leave.");
    }
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut sequence = 0u64;
    loop {
        if interactive {
            print!("> ");
            std::io::stdout().flush().ok();
        }
        let Some(line) = lines.next_line().await.context("read from the terminal")? else {
            break;
        };
        if line.trim().is_empty() {
            continue;
        }
        sequence += 1;
        let message = InboundMessage {
            platform: Platform::Console,
            conversation: conversation.clone(),
            sender: conversation.clone(),
            message_id: format!("{conversation}-{sequence}"),
            content: Content::Text(line),
        };
        let mut streamed = String::new();
        let mut print_delta = |delta: &str| {
            print!("{delta}");
            std::io::stdout().flush().ok();
            streamed.push_str(delta);
        };
        let reply = conversations
            .handle(&bot, &message, Some(&mut print_delta))
            .await;
        match reply {
            Ok(Some(reply)) => {
                // What streamed is already on screen; print only what the core added (sources),
                // or the whole reply when it was not streamed (commands, fallback).
                match reply.text.strip_prefix(streamed.as_str()) {
                    Some(rest) if !streamed.is_empty() => println!("{rest}"),
                    _ => {
                        if !streamed.is_empty() {
                            println!();
                        }
                        println!("{}", reply.text);
                    }
                }
                if reply.kind == ReplyKind::Farewell {
                    break;
                }
            }
            Ok(None) => {}
            Err(error) => println!("[error: {error}]"),
        }
    }
    Ok(())
}
