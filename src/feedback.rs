//! `botgate feedback list`: the ratings visitors gave answers in the web chat, newest first,
//! with the question and the answer, for whoever improves the Bailian application. Needs
//! Redis: the embedded store keeps them only inside the serving process.

use anyhow::{bail, Context};

use crate::channels::web::{FeedbackEntry, FEEDBACK_KEPT};
use crate::config::Settings;
use crate::store::{RedisStore, Store};

#[derive(clap::Subcommand)]
pub enum FeedbackCommand {
    /// Ratings, newest first.
    List {
        /// Only this bot's.
        #[arg(long)]
        bot: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// One JSON object per line instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[allow(clippy::print_stdout)]
pub async fn run(settings: Settings, command: FeedbackCommand) -> anyhow::Result<()> {
    let FeedbackCommand::List { bot, limit, json } = command;
    if settings.store.redis_url.is_none() {
        bail!("feedback is kept in Redis (store.redis_url); the embedded store keeps it only inside the serving process, where /metrics counts it as botgate_feedback_total");
    }
    let bots: Vec<&String> = match &bot {
        Some(name) if settings.bots.contains_key(name) => vec![name],
        Some(name) => bail!("no bot named `{name}`"),
        None => settings.bots.keys().collect(),
    };
    let store = RedisStore::open(&settings.store)
        .await
        .context("connect to Redis (store.redis_url)")?
        .map(Store::Redis)
        .context("store.redis_url is set")?;
    let entries = newest(&store, &settings.store.key_prefix, &bots, limit).await?;
    if entries.is_empty() && !json {
        println!("no feedback yet");
    }
    for entry in entries {
        if json {
            println!("{}", serde_json::to_string(&entry)?);
        } else {
            print!("{}", render(&entry));
        }
    }
    Ok(())
}

/// The newest `limit` ratings of these bots, merged newest first.
pub async fn newest(
    store: &Store,
    prefix: &str,
    bots: &[&String],
    limit: usize,
) -> anyhow::Result<Vec<FeedbackEntry>> {
    let mut entries = Vec::new();
    for bot in bots {
        let key = crate::keys::feedback(prefix, bot);
        for item in store.recent(&key, limit.min(FEEDBACK_KEPT)).await? {
            match serde_json::from_str::<FeedbackEntry>(&item) {
                Ok(entry) => entries.push(entry),
                Err(error) => tracing::warn!(%error, "skipping a damaged feedback entry"),
            }
        }
    }
    // Each bot's list is newest first already; a stable sort keeps that order within a second.
    entries.sort_by_key(|entry| std::cmp::Reverse(entry.at));
    entries.truncate(limit);
    Ok(entries)
}

fn render(entry: &FeedbackEntry) -> String {
    let thumb = if entry.rating == "up" { "👍" } else { "👎" };
    format!(
        "{} {thumb} {}  bot={} {} conversation={} message={}\n  Q: {}\n  A: {}\n\n",
        crate::clock::format_unix_secs(entry.at),
        entry.rating,
        entry.bot,
        entry.platform,
        entry.conversation,
        entry.message_id,
        indent(&entry.question),
        indent(&entry.answer),
    )
}

fn indent(text: &str) -> String {
    text.trim().replace('\n', "\n     ")
}
