//! The reply window: the answer travels inside the platform's own HTTP request, within its
//! deadline (WeChat: 5 seconds).
//!
//! WeChat delivers a message up to three times, 5 s apart, until one response arrives in time.
//! The first delivery decides what the message is (a question, a pull of what is owed, a
//! restart; see [`super::outbox`]); every delivery (on any replica) waits up to
//! `passive_wait_ms` for the next piece the user is owed. Content is bound to a request only
//! when that request is answered in time, so nothing is shown twice and nothing is lost: on
//! the last delivery, when something is owed and not ready, the user gets the placeholder and
//! the answer waits in their outbox for their next message.
//!
//! Answers are generated one at a time per user, in the order asked: the task that commits an
//! answer goes on with the next one the outbox names. The request that starts an answer is
//! handed it directly by its generator (which bound it in Redis in the same round trip that
//! stored it), so the usual message costs two round trips: arrive, commit.

use std::sync::Arc;
use std::time::{Duration, Instant};

use botgate_contract::{Adapter, Content, InboundMessage, Outcome, Platform, Response};
use tokio::sync::oneshot;
use tokio_util::task::TaskTracker;

use super::outbox::{Kind, Mailbox, Outbox, Role, Take, TakeMode, GENERATION_LEASE};
use super::signals::Signals;
use crate::core::commands::{self, Command};
use crate::core::job::{JobContent, JobPayload};
use crate::core::{Conversations, CoreError, PendingTurn};
use crate::metrics::{PassiveLabels, PlatformLabels};
use crate::store::{StoreError, Turn};
use crate::telemetry::log_message_id;

/// WeChat's last delivery of a message is its third.
const LAST_ATTEMPT: u64 = 3;
/// Between two readiness checks when the answer is produced on another replica.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// A waiting request checks for an orphaned answer on its first miss, then every this many
/// polls (about a second).
const TAKEOVER_EVERY_POLLS: u32 = 10;

/// One bot's reply window on its platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassiveWindow {
    /// How long one delivery waits for the answer.
    pub wait: Duration,
    /// When the platform hangs up on a delivery.
    pub deadline: Duration,
    /// What the last delivery says when the answer is not ready: reply for it.
    pub placeholder: String,
}

/// The reply window of one platform: its outbox, and how an answer is cut into replies.
#[derive(Clone)]
pub struct Passive {
    platform: Platform,
    outbox: Outbox,
    /// An answer as the platform shows it, one part per reply (the continue hint included).
    parts: fn(&str) -> Vec<String>,
    signals: Signals,
    /// Answers in the making: they finish even when WeChat hangs up, and shutdown waits for
    /// them before it stops the HTTP workers whose runtimes they run on (each stays on the
    /// thread of the request that started it, with that thread's Redis and LLM connections).
    tasks: TaskTracker,
}

/// One answer for a generation task to make.
struct Generation {
    message: InboundMessage,
    /// The memory, when the arriving request read it already.
    history: Option<Vec<Turn>>,
    /// Where the request that started it waits to be handed the answer bound to it.
    handed: Option<oneshot::Sender<Option<String>>>,
}

impl Passive {
    /// `tasks` tracks the answers in the making, for shutdown to wait for.
    pub fn new(
        platform: Platform,
        outbox: Outbox,
        parts: fn(&str) -> Vec<String>,
        tasks: TaskTracker,
    ) -> Self {
        Passive {
            platform,
            outbox,
            parts,
            signals: Signals::default(),
            tasks,
        }
    }

    /// The response to one delivery of `message`: a reply rendered by `adapter` for `reply`,
    /// or its acknowledgement.
    #[allow(clippy::too_many_arguments)]
    #[tracing::instrument(skip_all, fields(bot = bot, message_id = %log_message_id(&message.message_id)))]
    pub async fn respond<A: Adapter>(
        &self,
        conversations: &Arc<Conversations>,
        bot: &str,
        adapter: &A,
        window: &PassiveWindow,
        message: &InboundMessage,
        reply: &A::Reply,
        received: Instant,
    ) -> Result<Response, CoreError> {
        let mailbox = Mailbox {
            bot,
            user: &message.sender,
        };
        let acknowledged = || adapter.acknowledge(Outcome::Ignored);
        match &message.content {
            Content::Ignored { .. } => return Ok(acknowledged()),
            Content::Left => {
                self.outbox.clear(mailbox).await?;
                conversations.handle(bot, message, None).await?;
                return Ok(acknowledged());
            }
            _ => {}
        }
        let deadline = received + window.wait;
        let history_key = conversations.history_key(bot, message);
        let request = crate::clock::random_id();
        let arrival = self
            .outbox
            .arrive(
                mailbox,
                &message.message_id,
                &request,
                &question_of(bot, message),
                kind_of(conversations, bot, message),
                history_key
                    .as_deref()
                    .map(|key| (key, conversations.max_turns())),
                deadline.saturating_duration_since(Instant::now()),
            )
            .await?;
        tracing::debug!(attempt = arrival.attempt, role = ?arrival.role, "wechat delivery");
        let key = signal_key(mailbox);
        // Held across the spawn, so the answer's wake-up finds a holder and leaves its permit
        // even if the answer is ready before this request starts waiting.
        let signal = self.signals.get(&key);
        let own_answer = (arrival.role == Role::Generate).then(|| {
            let (handed, receive) = oneshot::channel();
            self.start_answer(
                conversations.clone(),
                bot.to_owned(),
                Generation {
                    message: message.clone(),
                    history: arrival.history,
                    handed: Some(handed),
                },
            );
            receive
        });
        let metrics = conversations.metrics();
        if arrival.role == Role::Retry {
            metrics
                .duplicates
                .get_or_create(&PlatformLabels {
                    platform: self.platform.as_str(),
                })
                .inc();
        }
        let waited = match own_answer {
            Some(own_answer) => match tokio::time::timeout_at(deadline.into(), own_answer).await {
                Ok(Ok(Some(text))) => Ok(Some(text)),
                _ => {
                    self.wait_for_content(conversations, mailbox, &message.message_id, deadline)
                        .await
                }
            },
            None => {
                self.wait_for_content(conversations, mailbox, &message.message_id, deadline)
                    .await
            }
        };
        self.signals.release(&key, signal);
        let last = arrival.attempt >= LAST_ATTEMPT;
        let taken = match waited? {
            Some(text) => Take::Text(text),
            None => {
                let mode = if last {
                    TakeMode::Last
                } else {
                    TakeMode::GiveUp
                };
                self.outbox.take(mailbox, &message.message_id, mode).await?
            }
        };
        let outcome = |outcome: &'static str| {
            metrics
                .passive
                .get_or_create(&PassiveLabels { outcome })
                .inc();
        };
        let render = |text: &str| {
            let (now, random) = crate::clock::now_and_random();
            adapter.render(reply, text, now, &random)
        };
        match taken {
            Take::Text(text) => {
                outcome("in_time");
                Ok(render(&text))
            }
            Take::Placeholder => {
                outcome("placeholder");
                tracing::info!(attempt = arrival.attempt, "answer not ready on the last delivery; placeholder sent, answer kept for the next message");
                Ok(render(&window.placeholder))
            }
            Take::Empty => {
                outcome("nothing_owed");
                Ok(acknowledged())
            }
            Take::Pending => {
                outcome("hold");
                // Answered after the platform hung up, so it retries instead of taking an empty
                // answer as final.
                let hold = window.deadline + window.deadline / 5;
                tokio::time::sleep_until((received + hold).into()).await;
                Ok(acknowledged())
            }
        }
    }

    /// Generates answers in a task of their own (they must finish even when WeChat hangs up):
    /// this one, then each next one the outbox names when this one is committed.
    fn start_answer(&self, conversations: Arc<Conversations>, bot: String, first: Generation) {
        let outbox = self.outbox.clone();
        let signals = self.signals.clone();
        let parts = self.parts;
        let platform = self.platform;
        let generate = async move {
            let mut next = Some(first);
            while let Some(generation) = next.take() {
                let user = generation.message.sender.clone();
                let mailbox = Mailbox {
                    bot: &bot,
                    user: &user,
                };
                let message_id = generation.message.message_id.clone();
                let committed = answer_one(
                    &outbox,
                    &conversations,
                    mailbox,
                    generation.message,
                    generation.history,
                    parts,
                    generation.handed.as_ref(),
                )
                .await;
                let committed = committed.unwrap_or_else(|error| {
                    tracing::error!(%error, "could not store the answer for passive delivery");
                    Default::default()
                });
                if let Some(handed) = generation.handed {
                    // The request may have stopped waiting; then the text is in the outbox.
                    let _ = handed.send(committed.bound);
                }
                signals.wake(&signal_key(mailbox));
                next = committed.next.map(|(id, question)| {
                    tracing::debug!(after = %log_message_id(&message_id), next = %log_message_id(&id), "generating the next answer");
                    Generation {
                        message: stored_question(&question, &id, &user, platform),
                        history: None,
                        handed: None,
                    }
                });
            }
        };
        self.tasks
            .spawn(tracing::Instrument::in_current_span(generate));
    }

    /// If the user's next answer to generate lost its generator (the replica died mid-answer),
    /// generate it here. Cheap when nothing is orphaned: one script call, about once a second.
    async fn adopt_orphan(
        &self,
        conversations: &Arc<Conversations>,
        mailbox: Mailbox<'_>,
    ) -> Result<(), StoreError> {
        let Some((message_id, question)) = self.outbox.takeover(mailbox).await? else {
            return Ok(());
        };
        tracing::warn!(message_id = %log_message_id(&message_id), "answer's generator is gone; generating it here");
        let message = stored_question(&question, &message_id, mailbox.user, self.platform);
        self.start_answer(
            conversations.clone(),
            mailbox.bot.to_owned(),
            Generation {
                message,
                history: None,
                handed: None,
            },
        );
        Ok(())
    }

    /// Waits until something is bound to this message (woken by a local commit, else polling
    /// for another replica's), up to `deadline`. `None`: nothing by then.
    async fn wait_for_content(
        &self,
        conversations: &Arc<Conversations>,
        mailbox: Mailbox<'_>,
        message_id: &str,
        deadline: Instant,
    ) -> Result<Option<String>, StoreError> {
        let key = signal_key(mailbox);
        let notify = self.signals.get(&key);
        let mut polls = 0u32;
        let result = loop {
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.outbox.take(mailbox, message_id, TakeMode::Look).await {
                Ok(Take::Text(text)) => break Ok(Some(text)),
                Ok(Take::Empty) => break Ok(None),
                Ok(_) => {}
                Err(error) => break Err(error),
            }
            let now = Instant::now();
            if now >= deadline {
                break Ok(None);
            }
            polls += 1;
            if polls % TAKEOVER_EVERY_POLLS == 1 {
                if let Err(error) = self.adopt_orphan(conversations, mailbox).await {
                    tracing::warn!(%error, "could not check for an orphaned answer");
                }
            }
            let next_poll = (now + POLL_INTERVAL).min(deadline);
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(next_poll.into()) => {}
            }
        };
        self.signals.release(&key, notify);
        result
    }
}

/// Generates one answer, keeping its lease while the LLM works, and commits it.
async fn answer_one(
    outbox: &Outbox,
    conversations: &Arc<Conversations>,
    mailbox: Mailbox<'_>,
    message: InboundMessage,
    history: Option<Vec<Turn>>,
    parts: fn(&str) -> Vec<String>,
    handed: Option<&oneshot::Sender<Option<String>>>,
) -> Result<super::outbox::Committed, StoreError> {
    let generate = conversations.handle_deferred(mailbox.bot, &message, history, None);
    tokio::pin!(generate);
    let mut renew = tokio::time::interval(GENERATION_LEASE / 3);
    renew.tick().await;
    let result = loop {
        tokio::select! {
            result = &mut generate => break result,
            _ = renew.tick() => {
                if let Err(error) = outbox.renew(mailbox, &message.message_id).await {
                    tracing::warn!(%error, "could not renew the generation lease");
                }
            }
        }
    };
    let (parts, remember): (Vec<String>, Option<PendingTurn>) = match result {
        Ok(handled) => match handled.reply {
            Some(reply) => (parts(&reply.text), handled.remember),
            // Nothing to say (e.g. an empty message): bind an empty acknowledgement.
            None => (vec![String::new()], handled.remember),
        },
        Err(error) => {
            tracing::error!(%error, "conversation failed; answering with the fallback");
            let fallback = conversations
                .bot(mailbox.bot)
                .map(|bot| bot.settings.fallback.clone())
                .unwrap_or_default();
            (vec![fallback], None)
        }
    };
    // The request that started this answer is still there to be handed it: it has not given
    // up waiting, or it will find the answer bound when it does.
    let awaited = handed.is_some_and(|handed| !handed.is_closed());
    outbox
        .commit(
            conversations.store(),
            mailbox,
            &message.message_id,
            &parts,
            remember.as_ref(),
            awaited,
        )
        .await
}

fn signal_key(mailbox: Mailbox<'_>) -> String {
    format!("{}:{}", mailbox.bot, mailbox.user)
}

/// `/reset`, `/new` and farewells restart the conversation: they are never a pull, and what is
/// owed is dropped. Everything else is a question (or a pull, when something is owed).
fn kind_of(conversations: &Conversations, bot: &str, message: &InboundMessage) -> Kind {
    let Content::Text(text) = &message.content else {
        return Kind::Question;
    };
    let text = text.trim();
    let farewell = conversations
        .bot(bot)
        .is_some_and(|bot| commands::is_farewell(text, &bot.farewells));
    match (commands::command(text), farewell) {
        (Some(Command::Reset), _) | (_, true) => Kind::Restart,
        _ => Kind::Question,
    }
}

/// The question as stored beside the outbox, for whoever has to generate its answer.
fn question_of(bot: &str, message: &InboundMessage) -> String {
    let payload = JobContent::from_content(&message.content).map(|content| JobPayload {
        bot: bot.to_owned(),
        platform: message.platform.as_str().to_owned(),
        conversation: message.conversation.clone(),
        sender: message.sender.clone(),
        message_id: message.message_id.clone(),
        content,
        received_at_ms: crate::clock::unix_ms(),
        notice: None,
    });
    payload
        .and_then(|payload| serde_json::to_string(&payload).ok())
        .unwrap_or_default()
}

/// A stored question back as a message. One that cannot be read (written by a future version,
/// damaged) is answered as an empty message, so the answers after it are not held up.
fn stored_question(
    question: &str,
    message_id: &str,
    user: &str,
    platform: Platform,
) -> InboundMessage {
    serde_json::from_str::<JobPayload>(question)
        .ok()
        .and_then(|payload| payload.message())
        .unwrap_or_else(|| {
            tracing::error!(message_id = %log_message_id(message_id), "stored question unreadable; answering it as empty");
            InboundMessage {
                platform,
                conversation: user.to_owned(),
                sender: user.to_owned(),
                message_id: message_id.to_owned(),
                content: Content::Text(String::new()),
            }
        })
}
