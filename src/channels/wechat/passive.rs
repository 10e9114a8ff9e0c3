//! Passive mode: the answer travels inside WeChat's own HTTP request, within its 5-second limit.
//!
//! WeChat delivers a message up to three times, 5 s apart, until one response arrives in time.
//! The first delivery claims the message and starts the answer; every delivery (on any replica)
//! waits up to `passive_wait_ms` for it. Content is bound to a request only when that request
//! is answered in time, so nothing is shown twice and nothing is lost: on the last delivery the
//! user gets the placeholder and the answer waits in their outbox for their next message.
//! Long answers go out one part per message, each asking the user to reply for more.
//!
//! The request that generates an answer is handed it directly by its generator (which bound it
//! in Redis in the same round trip that stored it), so the usual message costs two round trips:
//! arrive, commit.

use std::sync::Arc;
use std::time::{Duration, Instant};

use botgate_contract::{Content, InboundMessage};
use botgate_wechat::{Decoded, ACKNOWLEDGE};
use tokio::sync::oneshot;

use super::outbox::{Outbox, GENERATION_LEASE};
use super::{answer_parts, WechatChannel};
use crate::channels::Signals;
use crate::core::{Conversations, CoreError};
use crate::delivery::job::{JobContent, JobPayload};
use crate::metrics::{PassiveLabels, PlatformLabels};
use crate::store::{StoreError, Turn};

/// WeChat's last delivery of a message is its third.
const LAST_ATTEMPT: u64 = 3;
/// Between two readiness checks when the answer is produced on another replica.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// A waiting request checks for an orphaned answer on its first miss, then every this many
/// polls (about a second).
const TAKEOVER_EVERY_POLLS: u32 = 10;
/// After the wait, earlier deliveries keep the connection open past WeChat's 5 s, so that
/// WeChat retries instead of taking an empty answer as final.
const HOLD_PAST_WAIT: Duration = Duration::from_millis(1000);

#[derive(Clone)]
pub struct Passive {
    outbox: Outbox,
    signals: Signals,
}

impl Passive {
    pub fn new(outbox: Outbox) -> Self {
        Passive {
            outbox,
            signals: Signals::default(),
        }
    }

    /// The response body for one delivery: a passive reply, or `success`.
    #[tracing::instrument(skip_all, fields(bot = bot, message_id = %decoded.message.message_id))]
    pub async fn respond(
        &self,
        conversations: &Arc<Conversations>,
        bot: &str,
        channel: &WechatChannel,
        decoded: &Decoded,
        received: Instant,
    ) -> Result<String, CoreError> {
        let message = &decoded.message;
        let user = format!("{bot}:{}", message.sender);
        match &message.content {
            Content::Ignored { .. } => return Ok(ACKNOWLEDGE.to_owned()),
            Content::Left => {
                self.outbox.clear(&user).await?;
                conversations.handle(bot, message, None).await?;
                return Ok(ACKNOWLEDGE.to_owned());
            }
            _ => {}
        }
        let question = question_of(bot, message);
        let wait = Duration::from_millis(channel.settings.passive_wait_ms);
        let deadline = received + wait;
        let history_key = conversations.history_key(bot, message);
        let arrival = self
            .outbox
            .arrive(
                &user,
                &message.message_id,
                &question,
                history_key.as_deref(),
                deadline.saturating_duration_since(Instant::now()),
            )
            .await?;
        tracing::debug!(
            attempt = arrival.attempt,
            generate = arrival.generate,
            "wechat delivery"
        );
        // Held across the spawn, so the answer's wake-up finds a holder and leaves its permit
        // even if the answer is ready before this request starts waiting.
        let signal = self.signals.get(&user);
        let own_answer = arrival.generate.then(|| {
            let (handed, receive) = oneshot::channel();
            self.start_answer(
                conversations.clone(),
                bot.to_owned(),
                user.clone(),
                message.clone(),
                arrival.history,
                Some(handed),
            );
            receive
        });
        let metrics = conversations.metrics();
        if !arrival.generate && arrival.attempt > 1 {
            metrics
                .duplicates
                .get_or_create(&PlatformLabels { platform: "wechat" })
                .inc();
        }
        let content = match own_answer {
            Some(own_answer) => {
                self.wait_for_own(
                    conversations,
                    bot,
                    &user,
                    &message.message_id,
                    deadline,
                    own_answer,
                )
                .await
            }
            None => {
                self.wait_for_content(conversations, bot, &user, &message.message_id, deadline)
                    .await
            }
        };
        self.signals.release(&user, signal);
        if let Some(text) = content? {
            metrics
                .passive
                .get_or_create(&PassiveLabels { outcome: "in_time" })
                .inc();
            return Ok(render(channel, decoded, &text));
        }
        if arrival.attempt >= LAST_ATTEMPT {
            metrics
                .passive
                .get_or_create(&PassiveLabels {
                    outcome: "placeholder",
                })
                .inc();
            tracing::info!(attempt = arrival.attempt, "answer not ready on the last delivery; placeholder sent, answer kept for the next message");
            return Ok(render(channel, decoded, &channel.settings.placeholder));
        }
        metrics
            .passive
            .get_or_create(&PassiveLabels { outcome: "hold" })
            .inc();
        tokio::time::sleep_until((deadline + HOLD_PAST_WAIT).into()).await;
        Ok(ACKNOWLEDGE.to_owned())
    }

    /// Generates the answer in its own task: it must finish even when WeChat hangs up. The
    /// generating request passes the memory it read and a channel on which it is handed the
    /// answer when [`Outbox::commit`] bound it to that request.
    fn start_answer(
        &self,
        conversations: Arc<Conversations>,
        bot: String,
        user: String,
        message: InboundMessage,
        history: Option<Vec<Turn>>,
        handed: Option<oneshot::Sender<Option<String>>>,
    ) {
        let outbox = self.outbox.clone();
        let signals = self.signals.clone();
        crate::spawn_traced(async move {
            // Keep the generation lease while the LLM works, so no other replica takes over.
            let generate = conversations.handle_deferred(&bot, &message, history, None);
            tokio::pin!(generate);
            let mut renew = tokio::time::interval(GENERATION_LEASE / 3);
            renew.tick().await;
            let result = loop {
                tokio::select! {
                    result = &mut generate => break result,
                    _ = renew.tick() => {
                        if let Err(error) = outbox.renew(&message.message_id).await {
                            tracing::warn!(%error, "could not renew the generation lease");
                        }
                    }
                }
            };
            let (parts, remember) = match result {
                Ok(handled) => match handled.reply {
                    Some(reply) => (answer_parts(&reply.text), handled.remember),
                    // Nothing to say (e.g. an empty message): bind an empty acknowledgement.
                    None => (vec![String::new()], handled.remember),
                },
                Err(error) => {
                    tracing::error!(%error, "conversation failed; answering with the fallback");
                    let fallback = conversations
                        .bot(&bot)
                        .map(|bot| bot.settings.fallback.clone())
                        .unwrap_or_default();
                    (vec![fallback], None)
                }
            };
            let committed = outbox
                .commit(
                    conversations.store(),
                    &user,
                    &message.message_id,
                    &parts,
                    remember.as_ref(),
                )
                .await;
            let bound = committed.unwrap_or_else(|error| {
                tracing::error!(%error, "could not store the answer for passive delivery");
                None
            });
            if let Some(handed) = handed {
                // The request may have stopped waiting; then the text is in Redis, bound or queued.
                let _ = handed.send(bound);
            }
            signals.wake(&user);
        });
    }

    /// If the answer this user is owed next lost its generator (the replica died mid-answer),
    /// generate it here. Cheap when nothing is orphaned: one script call, about once a second.
    async fn adopt_orphan(
        &self,
        conversations: &Arc<Conversations>,
        bot: &str,
        user: &str,
    ) -> Result<(), StoreError> {
        let Some((message_id, question)) = self.outbox.takeover(user).await? else {
            return Ok(());
        };
        match serde_json::from_str::<JobPayload>(&question)
            .ok()
            .and_then(|payload| payload.message())
        {
            Some(message) => {
                tracing::warn!(%message_id, "answer's generator is gone; generating it here");
                self.start_answer(
                    conversations.clone(),
                    bot.to_owned(),
                    user.to_owned(),
                    message,
                    None,
                    None,
                );
            }
            None => tracing::error!(%message_id, "stored question unreadable; cannot regenerate"),
        }
        Ok(())
    }

    /// The generating request's wait: its generator hands it the answer, bound to it in Redis.
    /// At the deadline it gives up with [`Outbox::take_final`], so the generator binds nothing
    /// to it afterwards; when the generator could not bind (or died), it looks in the outbox
    /// like any other delivery.
    async fn wait_for_own(
        &self,
        conversations: &Arc<Conversations>,
        bot: &str,
        user: &str,
        message_id: &str,
        deadline: Instant,
        own_answer: oneshot::Receiver<Option<String>>,
    ) -> Result<Option<String>, StoreError> {
        match tokio::time::timeout_at(deadline.into(), own_answer).await {
            Ok(Ok(Some(text))) => Ok(Some(text)),
            Ok(_) => {
                self.wait_for_content(conversations, bot, user, message_id, deadline)
                    .await
            }
            Err(_) => self.outbox.take_final(user, message_id).await,
        }
    }

    async fn wait_for_content(
        &self,
        conversations: &Arc<Conversations>,
        bot: &str,
        user: &str,
        message_id: &str,
        deadline: Instant,
    ) -> Result<Option<String>, StoreError> {
        let notify = self.signals.get(user);
        let mut polls = 0u32;
        let result = loop {
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.outbox.take(user, message_id).await {
                Ok(Some(text)) => break Ok(Some(text)),
                Ok(None) => {}
                Err(error) => break Err(error),
            }
            let now = Instant::now();
            if now >= deadline {
                break Ok(None);
            }
            polls += 1;
            if polls % TAKEOVER_EVERY_POLLS == 1 {
                if let Err(error) = self.adopt_orphan(conversations, bot, user).await {
                    tracing::warn!(%error, "could not check for an orphaned answer");
                }
            }
            let next_poll = (now + POLL_INTERVAL).min(deadline);
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(next_poll.into()) => {}
            }
        };
        self.signals.release(user, notify);
        result
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
        seq: 0,
        received_at_ms: crate::delivery::accept::now_ms(),
        notice: None,
    });
    payload
        .and_then(|payload| serde_json::to_string(&payload).ok())
        .unwrap_or_default()
}

fn render(channel: &WechatChannel, decoded: &Decoded, text: &str) -> String {
    if text.is_empty() {
        return ACKNOWLEDGE.to_owned();
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or_default();
    let mut random = [0u8; 16];
    // Only the reply's first 16 bytes are random filler; a failing RNG leaves zeros, which the
    // receiver accepts as well (the protocol does not rely on their secrecy).
    let _ = getrandom::fill(&mut random);
    channel
        .account
        .render_reply(&decoded.reply, text, now, &random)
}
