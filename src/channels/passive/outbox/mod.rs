//! The per-user outbox behind WeChat's passive mode: what a user is owed, in order, and which
//! request carried which part. Redis (Lua scripts, atomic across replicas) or in process.
//!
//! Every message the user sends is one of:
//! - a **question**: its answer joins the back of the user's outbox and is generated after
//!   every answer before it (one at a time, so each sees the memory of the one before);
//! - a **pull**, when the user was told to reply for what is owed (a placeholder was sent, or
//!   an answer's next part waits): it is answered with the next owed part and asks nothing;
//! - a **restart** (`/reset`, a farewell): what is owed is dropped, then it is answered.
//!
//! Each delivery of a message carries at most one piece of the outbox, front first, so the
//! user reads the answers in the order they asked. A delivery ends with the placeholder only
//! when something is owed and on its way; the user's next message then pulls it.
//!
//! The common case costs two round trips: [`Outbox::arrive`] claims the message and reads the
//! conversation's memory, and [`Outbox::commit`] stores the answer, appends the turn to memory
//! and binds the answer to the request that is still waiting for it.

mod memory;
mod scripts;
mod upgrade;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::OnceCell;

use crate::core::PendingTurn;
use crate::keyspace::KeySpace;
use crate::store::{
    append_turn_args, decode_history, history_start, RedisConnection, Store, StoreError, Turn,
};
use botgate_contract::Platform;
use memory::MemoryOutbox;
use scripts::{
    ARRIVE_SCRIPT, COMMIT_SCRIPT, PUSH_PARTS_SCRIPT, RENEW_SCRIPT, TAKEOVER_SCRIPT, TAKE_SCRIPT,
};
use upgrade::legacy;

/// How long a message's delivery state lives: longer than WeChat's retry span (15 s).
pub const REQUEST_STATE_TTL: Duration = Duration::from_secs(600);
/// Once a message was answered, its state only serves WeChat's retries of that answer.
pub const BOUND_STATE_TTL: Duration = Duration::from_secs(60);
/// How long undelivered content waits for the user's next message.
pub const OUTBOX_TTL: Duration = Duration::from_secs(48 * 3600);
/// The generator of an answer holds this lease and renews it every third of it. A lapsed lease
/// means the generator died (kill -9, OOM): any replica's waiting request then takes over.
pub const GENERATION_LEASE: Duration = Duration::from_secs(10);

/// Whose outbox: a user of a bot (the same user of two bots has two).
#[derive(Debug, Clone, Copy)]
pub struct Mailbox<'a> {
    pub bot: &'a str,
    pub user: &'a str,
}

/// What a message is, as the user's first delivery of it decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Anything the user asks.
    Question,
    /// `/reset`, `/new` or a farewell: drops what is owed before it is answered.
    Restart,
}

/// What this delivery of a message is to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A later delivery of a message already claimed (a retry, on any replica): wait.
    Retry,
    /// The first delivery of a question whose turn it is: generate its answer.
    Generate,
    /// The first delivery of a question behind answers still in the making: its answer is
    /// generated when the one before it is committed.
    Queued,
    /// The first delivery of a pull: carry what is owed; nothing to generate.
    Pull,
}

/// What the first look at a request found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrival {
    /// 1 for the first delivery of this message id, 2 and 3 for WeChat's retries.
    pub attempt: u64,
    pub role: Role,
    /// The conversation's memory, read in the same round trip when this request generates and
    /// a history key was given (Redis only; the in-process store is read where it is needed).
    pub history: Option<Vec<Turn>>,
}

/// What a request answers with, when it stops waiting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Take {
    /// This text (bound to the message, so every retry of it gets the same bytes).
    Text(String),
    /// Something is owed and on its way; the user is now promised it for their next message.
    Placeholder,
    /// Something is owed, not ready yet, and this was not the last delivery.
    Pending,
    /// Nothing is owed at all.
    Empty,
}

/// How a [`Outbox::take`] ends the request's wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TakeMode {
    /// Only look; the request goes on waiting.
    Look,
    /// The request stops waiting: nothing is bound to it afterwards.
    GiveUp,
    /// The same, on WeChat's last delivery: when nothing is ready but something is owed, the
    /// user is promised it ([`Take::Placeholder`]).
    Last,
}

/// What [`Outbox::commit`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Committed {
    /// The first part, bound to the message's first delivery, still waiting for it.
    pub bound: Option<String>,
    /// The next answer to generate (its message id and stored question), its lease now held
    /// by the caller.
    pub next: Option<(String, String)>,
}

/// Where a platform's outboxes are kept. The user is the conversation (the reply windows are
/// one-to-one chats), so an outbox shares its conversation's shard with the memory that its
/// scripts write.
#[derive(Clone)]
pub struct PassiveKeys {
    keys: KeySpace,
    platform: &'static str,
    /// Each shard's segment (`{shard prefix}:{platform}`), built once rather than per call.
    segments: Arc<[String]>,
}

impl PassiveKeys {
    fn new(keys: KeySpace, platform: Platform) -> Self {
        let platform = platform.as_str();
        let segments = (0..keys.shard_count())
            .map(|shard| crate::keys::passive(keys.shard(shard), platform))
            .collect();
        PassiveKeys {
            keys,
            platform,
            segments,
        }
    }

    fn segment(&self, mailbox: Mailbox<'_>) -> &str {
        &self.segments[self.keys.shard_of(mailbox.bot, self.platform, mailbox.user)]
    }
}

#[derive(Clone)]
pub enum Outbox {
    Memory(Arc<Mutex<MemoryOutbox>>),
    Redis {
        connection: RedisConnection,
        keys: PassiveKeys,
        /// Appended to a part when more is owed than the user's open requests will carry.
        hint: &'static str,
        /// Until when (Unix ms) what an older botgate left may still be found; read once.
        upgrade: Arc<OnceCell<u64>>,
    },
}

/// The keys and the leading arguments of one script call: the user's box, the message's record
/// (`record_of`), then, while an upgrade's window lasts (`upgrade`, for the scripts that fold),
/// the older layout's outbox and state for the script to fold in; the legacy flag and the
/// replica's clock.
async fn prepare<'a>(
    script: &'a redis::Script,
    connection: &RedisConnection,
    keys: &PassiveKeys,
    upgrade: Option<&OnceCell<u64>>,
    mailbox: Mailbox<'_>,
    record_of: Option<&str>,
) -> Result<redis::ScriptInvocation<'a>, StoreError> {
    let legacy = match upgrade {
        Some(upgrade) => legacy(connection, keys, upgrade).await?,
        None => false,
    };
    let segment = keys.segment(mailbox);
    let mut invocation = script.prepare_invoke();
    invocation.key(crate::keys::passive_box(segment, mailbox.bot, mailbox.user));
    if let Some(message_id) = record_of {
        invocation.key(crate::keys::passive_message(
            segment,
            mailbox.bot,
            message_id,
        ));
    }
    if legacy {
        let outbox = crate::keys::outbox(segment, mailbox.bot, mailbox.user);
        let state = crate::keys::outbox_state(&outbox);
        invocation.key(outbox).key(state);
    }
    invocation
        .arg(if legacy { "1" } else { "0" })
        .arg(crate::clock::unix_ms());
    Ok(invocation)
}

impl Outbox {
    pub fn memory(hint: &'static str) -> Self {
        Outbox::Memory(Arc::new(Mutex::new(MemoryOutbox::new(hint))))
    }

    /// The outbox of `platform`'s reply windows, its keys in each user's conversation shard.
    pub fn redis(
        connection: RedisConnection,
        keys: KeySpace,
        platform: Platform,
        hint: &'static str,
    ) -> Self {
        Outbox::Redis {
            connection,
            keys: PassiveKeys::new(keys, platform),
            hint,
            upgrade: Arc::new(OnceCell::new()),
        }
    }

    /// Records one delivery (`request`: an id unique to this HTTP request) of `message_id`.
    /// The first delivery decides what the message is (see [`Role`]); a question's first
    /// delivery is marked as waiting for `wait`, and when it generates it gets the memory
    /// (`history`: its key and the turns kept) read in the same round trip.
    #[allow(clippy::too_many_arguments)]
    pub async fn arrive(
        &self,
        mailbox: Mailbox<'_>,
        message_id: &str,
        request: &str,
        question: &str,
        kind: Kind,
        history: Option<(&str, usize)>,
        wait: Duration,
    ) -> Result<Arrival, StoreError> {
        match self {
            Outbox::Memory(memory) => {
                Ok(lock(memory).arrive(mailbox, message_id, question, kind, wait))
            }
            Outbox::Redis {
                connection,
                keys,
                upgrade,
                ..
            } => {
                let mut connection = connection.clone();
                let mut invocation = prepare(
                    &ARRIVE_SCRIPT,
                    &connection,
                    keys,
                    Some(upgrade),
                    mailbox,
                    Some(message_id),
                )
                .await?;
                invocation
                    .arg(request)
                    .arg(message_id)
                    .arg(question)
                    .arg(match kind {
                        Kind::Question => "q",
                        Kind::Restart => "r",
                    })
                    .arg(crate::clock::millis(GENERATION_LEASE))
                    .arg(crate::clock::millis(wait));
                let mut pipeline = redis::pipe();
                pipeline.invoke_script(&invocation);
                if let Some((history_key, turns)) = history {
                    pipeline.lrange(history_key, history_start(turns), -1);
                }
                let ((attempt, role), items): ((u64, u8), Vec<Vec<u8>>) = match history {
                    Some(_) => query_loading(&mut connection, &pipeline, &invocation).await?,
                    None => {
                        let (arrived,): ((u64, u8),) =
                            query_loading(&mut connection, &pipeline, &invocation).await?;
                        (arrived, Vec::new())
                    }
                };
                let role = match role {
                    1 => Role::Generate,
                    2 => Role::Queued,
                    3 => Role::Pull,
                    _ => Role::Retry,
                };
                let history = match history {
                    Some((key, _)) if role == Role::Generate => Some(decode_history(key, &items)?),
                    _ => None,
                };
                Ok(Arrival {
                    attempt,
                    role,
                    history,
                })
            }
        }
    }

    /// Stores the generated answer to `message_id` as its parts, in order, and appends
    /// `remember` to the conversation's memory, in one round trip, and names the next answer
    /// to generate. An answer whose entry was dropped (a restart) is neither stored nor
    /// remembered. `awaited`: the caller knows the message's first delivery is still there to
    /// be handed the answer (its own request), so its waiting time need not be checked.
    pub async fn commit(
        &self,
        store: &Store,
        mailbox: Mailbox<'_>,
        message_id: &str,
        parts: &[String],
        remember: Option<&PendingTurn>,
        awaited: bool,
    ) -> Result<Committed, StoreError> {
        let empty = [String::new()];
        let parts = if parts.is_empty() { &empty[..] } else { parts };
        match self {
            Outbox::Memory(memory) => {
                let (committed, kept) = lock(memory).commit(mailbox, message_id, parts, awaited);
                if let (true, Some(pending)) = (kept, remember) {
                    store
                        .append_turn(&pending.key, &pending.turn, pending.max_turns, pending.ttl)
                        .await?;
                }
                Ok(committed)
            }
            Outbox::Redis {
                connection,
                keys,
                hint,
                upgrade,
            } => {
                let mut connection = connection.clone();
                let encoded =
                    serde_json::to_string(parts).map_err(|error| StoreError::Corrupt {
                        key: message_id.to_owned(),
                        reason: crate::store::json_reason(&error),
                    })?;
                let mut invocation = prepare(
                    &COMMIT_SCRIPT,
                    &connection,
                    keys,
                    Some(upgrade),
                    mailbox,
                    Some(message_id),
                )
                .await?;
                invocation
                    .arg(message_id)
                    .arg(encoded)
                    .arg(crate::clock::millis(GENERATION_LEASE))
                    .arg(*hint)
                    .arg(if awaited { "1" } else { "0" })
                    .arg(match remember {
                        Some(pending) if !pending.expiry_due => "0",
                        _ => "1",
                    });
                if let Some(pending) = remember {
                    append_turn_args(
                        &mut invocation,
                        &pending.key,
                        &pending.turn,
                        pending.max_turns,
                        pending.ttl,
                    )?;
                }
                let (bound, next_id, next_question): (
                    Option<String>,
                    Option<String>,
                    Option<String>,
                ) = invocation.invoke_async(&mut connection).await?;
                Ok(Committed {
                    bound,
                    next: next_id.zip(next_question),
                })
            }
        }
    }

    /// The generator of `message_id` is alive: keep its lease.
    pub async fn renew(&self, mailbox: Mailbox<'_>, message_id: &str) -> Result<(), StoreError> {
        match self {
            Outbox::Memory(memory) => {
                lock(memory).renew(mailbox, message_id);
                Ok(())
            }
            Outbox::Redis {
                connection, keys, ..
            } => {
                let mut connection = connection.clone();
                // The box exists: the generator's own arrival or takeover wrote it.
                prepare(&RENEW_SCRIPT, &connection, keys, None, mailbox, None)
                    .await?
                    .arg(message_id)
                    .arg(crate::clock::millis(GENERATION_LEASE))
                    .invoke_async::<u8>(&mut connection)
                    .await?;
                Ok(())
            }
        }
    }

    /// When the user's next answer to generate has no live generator, takes over its
    /// generation: returns the message id and the stored question. `None`: nothing to adopt.
    pub async fn takeover(
        &self,
        mailbox: Mailbox<'_>,
    ) -> Result<Option<(String, String)>, StoreError> {
        match self {
            Outbox::Memory(memory) => Ok(lock(memory).takeover(mailbox)),
            Outbox::Redis {
                connection,
                keys,
                upgrade,
                ..
            } => {
                let mut connection = connection.clone();
                let adopted: Option<(String, String)> = prepare(
                    &TAKEOVER_SCRIPT,
                    &connection,
                    keys,
                    Some(upgrade),
                    mailbox,
                    None,
                )
                .await?
                .arg(crate::clock::millis(GENERATION_LEASE))
                .invoke_async(&mut connection)
                .await?;
                Ok(adopted)
            }
        }
    }

    /// What a delivery of `message_id` answers with: the text bound to the message earlier, or
    /// the ready front of the user's outbox, now bound to it; see [`TakeMode`].
    pub async fn take(
        &self,
        mailbox: Mailbox<'_>,
        message_id: &str,
        mode: TakeMode,
    ) -> Result<Take, StoreError> {
        match self {
            Outbox::Memory(memory) => Ok(lock(memory).take(mailbox, message_id, mode)),
            Outbox::Redis {
                connection,
                keys,
                hint,
                upgrade,
            } => {
                let mut connection = connection.clone();
                let (kind, text): (u8, String) = prepare(
                    &TAKE_SCRIPT,
                    &connection,
                    keys,
                    Some(upgrade),
                    mailbox,
                    Some(message_id),
                )
                .await?
                .arg(match mode {
                    TakeMode::Look => 0,
                    TakeMode::GiveUp => 1,
                    TakeMode::Last => 2,
                })
                .arg(*hint)
                .arg(message_id)
                .invoke_async(&mut connection)
                .await?;
                Ok(match kind {
                    1 => Take::Text(text),
                    2 => Take::Placeholder,
                    3 => Take::Pending,
                    _ => Take::Empty,
                })
            }
        }
    }

    /// Queues ready parts for a user's next messages (an active-mode answer to `message_id`
    /// falling back), once however often it is called for that message.
    pub async fn push_parts(
        &self,
        mailbox: Mailbox<'_>,
        message_id: &str,
        parts: &[String],
    ) -> Result<(), StoreError> {
        match self {
            Outbox::Memory(memory) => {
                lock(memory).push_parts(mailbox, message_id, parts);
                Ok(())
            }
            Outbox::Redis {
                connection,
                keys,
                upgrade,
                ..
            } => {
                let mut connection = connection.clone();
                prepare(
                    &PUSH_PARTS_SCRIPT,
                    &connection,
                    keys,
                    Some(upgrade),
                    mailbox,
                    None,
                )
                .await?
                .arg(message_id)
                .arg(parts)
                .invoke_async::<u8>(&mut connection)
                .await?;
                Ok(())
            }
        }
    }

    /// Forgets what a user is owed (unsubscribe).
    pub async fn clear(&self, mailbox: Mailbox<'_>) -> Result<(), StoreError> {
        match self {
            Outbox::Memory(memory) => {
                lock(memory).clear(mailbox);
                Ok(())
            }
            Outbox::Redis {
                connection, keys, ..
            } => {
                let mut connection = connection.clone();
                let segment = keys.segment(mailbox);
                let outbox = crate::keys::outbox(segment, mailbox.bot, mailbox.user);
                // The older layout's keys too: an unsubscribe during an upgrade drops them.
                redis::cmd("DEL")
                    .arg(crate::keys::passive_box(segment, mailbox.bot, mailbox.user))
                    .arg(crate::keys::outbox_state(&outbox))
                    .arg(outbox)
                    .query_async::<()>(&mut connection)
                    .await?;
                Ok(())
            }
        }
    }
}

/// Runs a pipeline whose first command is `script`. Pipelined scripts are not loaded on demand
/// as a lone `invoke_async` is, so after `NOSCRIPT` (a new or restarted Redis) the script is
/// loaded and the pipeline sent again: the script did not run, and the rest only reads.
async fn query_loading<T: redis::FromRedisValue>(
    connection: &mut RedisConnection,
    pipeline: &redis::Pipeline,
    script: &redis::ScriptInvocation<'_>,
) -> Result<T, StoreError> {
    match pipeline.query_async(connection).await {
        Err(error)
            if error.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
        {
            script.load_async(connection).await?;
            Ok(pipeline.query_async(connection).await?)
        }
        result => Ok(result?),
    }
}

fn lock(memory: &Mutex<MemoryOutbox>) -> std::sync::MutexGuard<'_, MemoryOutbox> {
    memory
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
