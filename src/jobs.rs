//! `botgate jobs list|show|retry`: what the delivery engine gave up on, for an operator to read
//! and replay. Needs Redis: the embedded store's queue lives and dies inside the serving process.

use std::time::Duration;

use anyhow::{bail, Context};

use crate::config::Settings;
use crate::delivery::{DeadLetter, Queue};
use crate::store::RedisStore;

#[derive(clap::Subcommand)]
pub enum JobsCommand {
    /// Dead letters, newest first.
    List {
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// One dead letter in full: reason, deliveries, payload.
    Show { id: String },
    /// Put a dead letter back on the queue (as a new job) and forget it.
    Retry { id: String },
    /// Jobs waiting or in flight, and the age of the oldest.
    Depth,
}

async fn queue(settings: &Settings) -> anyhow::Result<Queue> {
    let Some(store) = RedisStore::open(&settings.store)
        .await
        .context("connect to Redis (store.redis_url)")?
    else {
        bail!("jobs commands need store.redis_url: the embedded queue exists only inside the serving process");
    };
    let visibility = Duration::from_secs(settings.delivery.visibility_timeout_secs);
    Ok(Queue::redis(
        store.connection(),
        &settings.store.keyspace(),
        visibility,
    ))
}

#[allow(clippy::print_stdout)]
pub async fn run(settings: Settings, command: JobsCommand) -> anyhow::Result<()> {
    let queue = queue(&settings).await?;
    match command {
        JobsCommand::List { limit } => {
            let letters = queue.dead_letters(limit).await?;
            if letters.is_empty() {
                println!("no dead letters");
            }
            for letter in letters {
                println!(
                    "{}  deliveries={}  {}",
                    letter.id, letter.deliveries, letter.reason
                );
            }
        }
        JobsCommand::Show { id } => match queue.dead_letter_by_id(&id).await? {
            Some(letter) => print_letter(&letter),
            None => bail!("no dead letter {id}"),
        },
        JobsCommand::Retry { id } => match queue.retry_dead_letter(&id).await? {
            Some(new_id) => println!("re-enqueued {id} as {new_id}"),
            None => bail!("no dead letter {id}"),
        },
        JobsCommand::Depth => {
            let depth = queue.depth().await?;
            let age = depth
                .oldest_age
                .map(|age| format!("{:.1}s", age.as_secs_f64()))
                .unwrap_or_else(|| "-".into());
            println!("pending={} oldest={age}", depth.pending);
        }
    }
    Ok(())
}

#[allow(clippy::print_stdout)]
fn print_letter(letter: &DeadLetter) {
    println!("id:          {}", letter.id);
    println!("reason:      {}", letter.reason);
    println!("deliveries:  {}", letter.deliveries);
    println!("failed_at:   {} (unix ms)", letter.failed_at_ms);
    // The payload holds the user's message; operators asked for it explicitly here.
    let payload = serde_json::from_str::<serde_json::Value>(&letter.payload)
        .and_then(|value| serde_json::to_string_pretty(&value))
        .unwrap_or_else(|_| letter.payload.clone());
    println!("payload:\n{payload}");
}
