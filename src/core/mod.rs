//! The conversation core: one inbound message in, at most one reply out, for any platform.
//!
//! Policy lives here (commands, farewell, memory, ordering, what to say when the LLM fails);
//! platforms live in the adapters, and the core never sees their wire formats.

mod bot;
pub mod commands;
pub mod job;
mod locks;

pub use bot::Bot;
pub use locks::KeyedLocks;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use botgate_contract::{Content, InboundMessage};

use crate::keyspace::KeySpace;
use crate::limits::Limits;
use crate::llm::Llm;
use crate::llm::{Completion, CompletionRequest, DeltaSink, LlmError};
use crate::metrics::{Metrics, ProviderLabels};
use crate::store::{Store, StoreError, Turn};
use crate::telemetry::{log_id, log_message_id};
use commands::Command;

/// Why a reply says what it says; platforms and metrics use it, users only see the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyKind {
    Answer,
    Rule,
    Command,
    Farewell,
    Welcome,
    Refusal,
    Fallback,
    /// A fixed notice, e.g. "please type" for voice without recognition.
    Notice,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub text: String,
    pub kind: ReplyKind,
}

impl Handled {
    fn say(text: impl Into<String>, kind: ReplyKind) -> Self {
        Handled {
            reply: Some(Reply::new(text, kind)),
            remember: None,
        }
    }

    fn nothing() -> Self {
        Handled {
            reply: None,
            remember: None,
        }
    }
}

impl Reply {
    fn new(text: impl Into<String>, kind: ReplyKind) -> Self {
        Reply {
            text: text.into(),
            kind,
        }
    }
}

/// A turn to append to a conversation's memory, handed to a caller that writes it together with
/// its own state in one round trip ([`Conversations::handle_deferred`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingTurn {
    /// The memory's storage key (`…:history`).
    pub key: String,
    pub turn: Turn,
    pub max_turns: usize,
    pub ttl: Duration,
    /// The list's idle expiry is due to be set again (the turn's `expiry_set` is now). A writer
    /// that sets it on every append may ignore this.
    pub expiry_due: bool,
}

/// What one message produced: the reply, and the memory write it still owes.
#[derive(Debug)]
pub struct Handled {
    pub reply: Option<Reply>,
    pub remember: Option<PendingTurn>,
}

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("no bot named `{0}`")]
    UnknownBot(String),
    #[error("conversation store unavailable: {0}")]
    Store(#[from] StoreError),
}

pub struct Conversations {
    store: Store,
    bots: HashMap<String, Bot>,
    locks: KeyedLocks,
    keys: KeySpace,
    max_turns: usize,
    session_ttl: Duration,
    metrics: Arc<Metrics>,
    limits: Limits,
}

/// How long a message waits for one of its bot's LLM slots before it gets the fallback.
const LLM_SLOT_WAIT: Duration = Duration::from_secs(30);

/// Bailian forgets a `session_id` after an hour; remember it a little less long.
const BAILIAN_SESSION_TTL_CAP: Duration = Duration::from_secs(3500);

impl Conversations {
    pub fn new(
        store: Store,
        bots: HashMap<String, Bot>,
        keys: KeySpace,
        max_turns: usize,
        session_ttl: Duration,
    ) -> Self {
        let limits = match &store {
            Store::Memory(_) => Limits::memory(),
            Store::Redis(redis) => Limits::redis(redis.connection(), keys.prefix()),
        };
        Conversations {
            bots,
            locks: KeyedLocks::default(),
            keys,
            max_turns,
            session_ttl,
            metrics: Arc::new(Metrics::default()),
            limits,
            store,
        }
    }

    /// The bot's polite notice when this sender is over its message rate (then no LLM call is
    /// made); `None` when within the rate or no limit is configured. Shared by all replicas.
    /// Only what asks something counts (text, voice, images, a menu click that asks its key),
    /// each message once however often the platform delivers it; events (subscribe,
    /// unsubscribe, location reports) are never counted nor answered with the notice.
    pub async fn rate_limit_notice(
        &self,
        bot: &str,
        message: &InboundMessage,
    ) -> Result<Option<String>, StoreError> {
        if !matches!(
            message.content,
            Content::Text(_) | Content::Voice { .. } | Content::Image { .. }
        ) {
            return Ok(None);
        }
        let Some(rate) = self
            .bots
            .get(bot)
            .and_then(|bot| bot.settings.rate_limit.as_ref())
        else {
            return Ok(None);
        };
        let key = format!("rate:{bot}:{}:{}", message.platform, message.sender);
        // In the sender's shard: one window per sender, whichever conversation it writes in.
        let prefix = self
            .keys
            .of(bot, message.platform.as_str(), &message.sender);
        let allowed = self
            .limits
            .allow_in(
                prefix,
                &key,
                &message.message_id,
                rate.messages,
                Duration::from_secs(rate.per_secs),
            )
            .await?;
        Ok((!allowed).then(|| rate.reply.clone()))
    }

    /// Limits shared by every replica (rates, concurrent LLM calls).
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn bot(&self, name: &str) -> Option<&Bot> {
        self.bots.get(name)
    }

    pub fn bots(&self) -> impl Iterator<Item = &Bot> {
        self.bots.values()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The prefix of the deployment's shared keys.
    pub fn key_prefix(&self) -> &str {
        self.keys.prefix()
    }

    /// Where each conversation's keys live.
    pub fn keys(&self) -> &KeySpace {
        &self.keys
    }

    /// The storage key of a conversation; everything about it hangs off this.
    pub fn conversation_key(&self, bot: &str, message: &InboundMessage) -> String {
        let platform = message.platform.as_str();
        crate::keys::conversation(
            self.keys.of(bot, platform, &message.conversation),
            bot,
            platform,
            &message.conversation,
        )
    }

    /// The storage key of a conversation's memory, when the bot keeps it here (not when
    /// Bailian keeps it in a cloud session). Callers that can read it for free in a round trip
    /// of their own pass it to [`Conversations::handle_deferred`].
    pub fn history_key(&self, bot: &str, message: &InboundMessage) -> Option<String> {
        let uses_session = self.bots.get(bot)?.uses_bailian_session();
        (!uses_session).then(|| memory_key(&self.conversation_key(bot, message)))
    }

    /// How many turns of memory a conversation keeps and reads.
    pub fn max_turns(&self) -> usize {
        self.max_turns
    }

    /// Handles one message. `on_delta` sees the LLM answer as it streams. Returns `None` when
    /// the message needs no reply (unsubscribe, ignored events, empty text).
    #[tracing::instrument(skip_all, fields(bot = bot_name, platform = %message.platform, message_id = %log_message_id(&message.message_id), conversation = %log_id(&message.conversation)))]
    pub async fn handle(
        &self,
        bot_name: &str,
        message: &InboundMessage,
        on_delta: Option<&mut (dyn FnMut(&str) + Send)>,
    ) -> Result<Option<Reply>, CoreError> {
        let key = self.conversation_key(bot_name, message);
        // Held until the turn is remembered, so the next message of this conversation reads it.
        let _turn = self.locks.lock(&key).await;
        let handled = self.run(bot_name, message, &key, None, on_delta).await?;
        if let Some(pending) = &handled.remember {
            self.remember(pending).await;
        }
        Ok(handled.reply)
    }

    /// [`Conversations::handle`] with the memory already read (`history`, from the key
    /// [`Conversations::history_key`] gave; `None` reads it here) and its write left to the
    /// caller, who must commit [`Handled::remember`] before this conversation's next message is
    /// handled (WeChat's passive outbox lets a user have one answer in the making at a time).
    #[tracing::instrument(skip_all, fields(bot = bot_name, platform = %message.platform, message_id = %log_message_id(&message.message_id), conversation = %log_id(&message.conversation)))]
    pub async fn handle_deferred(
        &self,
        bot_name: &str,
        message: &InboundMessage,
        history: Option<Vec<Turn>>,
        on_delta: Option<&mut (dyn FnMut(&str) + Send)>,
    ) -> Result<Handled, CoreError> {
        let key = self.conversation_key(bot_name, message);
        let _turn = self.locks.lock(&key).await;
        self.run(bot_name, message, &key, history, on_delta).await
    }

    async fn run(
        &self,
        bot_name: &str,
        message: &InboundMessage,
        key: &str,
        history: Option<Vec<Turn>>,
        on_delta: Option<&mut (dyn FnMut(&str) + Send)>,
    ) -> Result<Handled, CoreError> {
        let bot = self
            .bots
            .get(bot_name)
            .ok_or_else(|| CoreError::UnknownBot(bot_name.to_owned()))?;
        let settings = &bot.settings;
        let text = match &message.content {
            Content::Text(text) => text.trim(),
            Content::Voice {
                recognition: Some(text),
            } if !text.trim().is_empty() => text.trim(),
            Content::Voice { .. } => {
                return Ok(Handled::say(
                    &settings.voice_unrecognized,
                    ReplyKind::Notice,
                ))
            }
            Content::Image { url } => {
                if !settings.images {
                    return Ok(Handled::say(&settings.image_unsupported, ReplyKind::Notice));
                }
                let images = [url.clone()];
                return self
                    .ask(
                        bot,
                        message,
                        key,
                        "请描述这张图片。",
                        &images,
                        history,
                        on_delta,
                    )
                    .await;
            }
            Content::FirstContact => {
                return Ok(Handled::say(&settings.welcome, ReplyKind::Welcome))
            }
            Content::Left => {
                self.forget(key).await?;
                return Ok(Handled::nothing());
            }
            Content::Ignored { .. } => return Ok(Handled::nothing()),
        };
        if text.is_empty() {
            return Ok(Handled::nothing());
        }
        match commands::command(text) {
            Some(Command::Reset) => {
                self.forget(key).await?;
                return Ok(Handled::say(
                    commands::RESET_CONFIRMATION,
                    ReplyKind::Command,
                ));
            }
            Some(Command::Help) => {
                return Ok(Handled::say(commands::HELP_TEXT, ReplyKind::Command))
            }
            None => {}
        }
        if commands::is_farewell(text, &bot.farewells) {
            self.forget(key).await?;
            return Ok(Handled::say(&settings.farewell, ReplyKind::Farewell));
        }
        if let Some(answer) = bot.front_rules().and_then(|rules| rules.find(text)) {
            return Ok(Handled {
                reply: Some(Reply::new(answer, ReplyKind::Rule)),
                remember: Some(self.pending_turn(
                    key,
                    history.as_deref().unwrap_or_default(),
                    &message.message_id,
                    text,
                    answer,
                )),
            });
        }
        self.ask(bot, message, key, text, &[], history, on_delta)
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn ask(
        &self,
        bot: &Bot,
        message: &InboundMessage,
        key: &str,
        text: &str,
        images: &[String],
        prefetched: Option<Vec<Turn>>,
        on_delta: Option<&mut (dyn FnMut(&str) + Send)>,
    ) -> Result<Handled, CoreError> {
        let session_key = crate::keys::bailian_session(key);
        let (history, session_id) = if bot.uses_bailian_session() {
            (Vec::new(), self.store.get(&session_key).await?)
        } else {
            match prefetched {
                Some(history) => (history, None),
                None => (
                    self.store.history(&memory_key(key), self.max_turns).await?,
                    None,
                ),
            }
        };
        let slot = match (bot.settings.max_concurrent_llm_calls, &*bot.llm) {
            (Some(max), Llm::Bailian(_) | Llm::OpenAi(_)) => {
                let lease = bot.llm.call_deadline() + Duration::from_secs(10);
                let deadline = tokio::time::Instant::now() + LLM_SLOT_WAIT;
                match self
                    .limits
                    .acquire_wait(&format!("llm:{}", bot.name), max, lease, deadline)
                    .await?
                {
                    Some(slot) => Some(slot),
                    None => {
                        tracing::warn!(
                            max,
                            "all of the bot's LLM slots stayed busy; answering with the fallback"
                        );
                        return Ok(Handled::say(&bot.settings.fallback, ReplyKind::Fallback));
                    }
                }
            }
            _ => None,
        };
        let request = CompletionRequest {
            history: &history,
            user: text,
            images,
            session_id: session_id.as_deref(),
        };
        let mut sink = DeltaSink::new(on_delta);
        let started = std::time::Instant::now();
        let result = bot.llm.complete(&request, &mut sink).await;
        if let Some(slot) = slot {
            if let Err(error) = slot.release().await {
                tracing::warn!(%error, "could not release the LLM slot; it expires with its lease");
            }
        }
        let provider = bot.llm.kind();
        let outcome = match &result {
            Ok(_) => "ok",
            Err(LlmError::ContentRejected { .. }) => "refused",
            Err(_) => "failed",
        };
        let labels = ProviderLabels { provider, outcome };
        self.metrics
            .llm_duration
            .get_or_create(&labels)
            .observe(started.elapsed().as_secs_f64());
        if let Some(first) = sink.first_at() {
            self.metrics
                .llm_first_token
                .get_or_create(&labels)
                .observe((first - started).as_secs_f64());
        }
        match result {
            Ok(completion) => {
                tracing::info!(
                    provider = bot.llm.kind(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    answer_bytes = completion.text.len(),
                    request_id = completion.request_id.as_deref().unwrap_or(""),
                    "answered"
                );
                if completion.text.trim().is_empty() {
                    tracing::warn!(
                        request_id = completion.request_id.as_deref().unwrap_or(""),
                        "llm returned an empty answer"
                    );
                    return Ok(Handled::say(&bot.settings.fallback, ReplyKind::Fallback));
                }
                if let Some(session_id) = &completion.session_id {
                    if bot.uses_bailian_session() {
                        let ttl = self.session_ttl.min(BAILIAN_SESSION_TTL_CAP);
                        if let Err(error) = self.store.set(&session_key, session_id, ttl).await {
                            tracing::error!(%error, "could not remember the bailian session id");
                        }
                    }
                }
                let text = render_answer(bot, &completion);
                let remember = (!bot.uses_bailian_session()).then(|| {
                    self.pending_turn(
                        key,
                        &history,
                        &message.message_id,
                        request.user,
                        &completion.text,
                    )
                });
                let kind = if matches!(*bot.llm, crate::llm::Llm::Rules(_)) {
                    ReplyKind::Rule
                } else {
                    ReplyKind::Answer
                };
                Ok(Handled {
                    reply: Some(Reply::new(text, kind)),
                    remember,
                })
            }
            Err(error) => Ok(Handled {
                reply: Some(self.failure_reply(bot, &error)),
                remember: None,
            }),
        }
    }

    fn failure_reply(&self, bot: &Bot, error: &LlmError) -> Reply {
        let request_id = error.request_id().unwrap_or("");
        match error {
            LlmError::ContentRejected { .. } => {
                tracing::warn!(request_id, "content moderation rejected the exchange");
                Reply::new(&bot.settings.refusal, ReplyKind::Refusal)
            }
            LlmError::Unauthorized { .. } | LlmError::BadRequest { .. } => {
                // An operator must act (bad key, unpublished app, wrong workspace, arrears):
                // loud, with Bailian's request id for the support ticket.
                tracing::error!(provider = bot.llm.kind(), request_id, %error, "llm rejected the call; check the bot's [llm] settings");
                Reply::new(&bot.settings.fallback, ReplyKind::Fallback)
            }
            _ => {
                tracing::warn!(provider = bot.llm.kind(), request_id, %error, "llm call failed");
                Reply::new(&bot.settings.fallback, ReplyKind::Fallback)
            }
        }
    }

    /// The turn to remember after `history` (the memory as this answer read it).
    fn pending_turn(
        &self,
        key: &str,
        history: &[Turn],
        id: &str,
        user: &str,
        assistant: &str,
    ) -> PendingTurn {
        let now = crate::clock::unix_ms();
        let set = history.last().and_then(|turn| turn.expiry_set);
        // Setting the expiry on every append costs a command per message; a twentieth of the
        // TTL early is the most the memory can lapse by skipping it in between.
        let due = set.is_none_or(|set| {
            now.saturating_sub(set) >= crate::clock::millis(self.session_ttl) / 20
        });
        PendingTurn {
            key: memory_key(key),
            turn: Turn {
                user: user.to_owned(),
                assistant: assistant.to_owned(),
                id: Some(id.to_owned()),
                expiry_set: if due { Some(now) } else { set },
            },
            max_turns: self.max_turns,
            ttl: self.session_ttl,
            expiry_due: due,
        }
    }

    /// A failure to remember must not cost the user their answer: log and go on.
    pub async fn remember(&self, pending: &PendingTurn) {
        if let Err(error) = self
            .store
            .append_turn(&pending.key, &pending.turn, pending.max_turns, pending.ttl)
            .await
        {
            tracing::error!(%error, "could not append the turn to the conversation memory");
        }
    }

    async fn forget(&self, key: &str) -> Result<(), StoreError> {
        let history = memory_key(key);
        let session = crate::keys::bailian_session(key);
        self.store.delete(&[&history, &session]).await
    }
}

use crate::keys::memory as memory_key;

/// The answer as the user should see it: the LLM's text, plus its sources when the bot wants them.
fn render_answer(bot: &Bot, completion: &Completion) -> String {
    if !bot.settings.show_sources || completion.references.is_empty() {
        return completion.text.clone();
    }
    let mut text = completion.text.trim_end().to_owned();
    text.push_str("\n\n来源：");
    let mut seen = Vec::new();
    for reference in &completion.references {
        let name = if reference.doc_name.is_empty() {
            &reference.title
        } else {
            &reference.doc_name
        };
        if name.is_empty() || seen.contains(&name) {
            continue;
        }
        seen.push(name);
        text.push_str(&format!("\n{}. {name}", seen.len()));
    }
    text
}
