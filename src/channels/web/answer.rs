//! One message's answer, made once: the first request for it claims it in the store and
//! generates it; the answer is stored when done, so a retry of the message (a dropped stream,
//! on any replica) replays it, joins it while it is made here, or waits for it to be stored
//! elsewhere, and takes it over if the replica making it died.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use botgate_contract::{InboundMessage, Platform};
use botgate_web::Done;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tracing::Instrument;

use super::WebBot;
use crate::core::{Reply, ReplyKind};
use crate::telemetry::log_id;

/// A stored answer lives this long: retries and ratings of it come within the visit.
pub const ANSWER_TTL: Duration = Duration::from_secs(24 * 3600);
/// What the claim holds while the answer is made.
const PENDING: &str = "pending";
/// Between two looks at the store while another replica makes the answer.
const POLL: Duration = Duration::from_millis(200);

/// An answer as it is made: the text so far, then how it ended.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    pub text: String,
    pub end: Option<End>,
}

#[derive(Debug, Clone)]
pub enum End {
    Done(Done),
    /// The visitor is told, and may send the message again.
    Failed(&'static str),
}

/// What is stored of a finished answer: the final event, and the question for ratings.
#[derive(Debug, Serialize, Deserialize)]
pub struct Stored {
    #[serde(flatten)]
    pub done: Done,
    pub question: String,
}

/// Answers being made on this replica, by their store key, for retries to join.
#[derive(Default)]
pub struct InFlight(Mutex<HashMap<String, watch::Receiver<Progress>>>);

impl InFlight {
    fn join(&self, key: &str) -> Option<watch::Receiver<Progress>> {
        self.lock().get(key).cloned()
    }

    fn insert(&self, key: &str, receiver: watch::Receiver<Progress>) {
        self.lock().insert(key.to_owned(), receiver);
    }

    fn remove(&self, key: &str) {
        self.lock().remove(key);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, watch::Receiver<Progress>>> {
        // Only inserts and removes run under the lock; a poisoned map is still consistent.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl WebBot {
    pub fn answer_key(&self, conversation: &str, message_id: &str) -> String {
        let prefix = self
            .conversations
            .keys()
            .of(&self.name, Platform::Web.as_str(), conversation);
        crate::keys::web_answer(prefix, &self.name, conversation, message_id)
    }

    /// The answer to `message`, from its beginning, whichever request asks.
    pub async fn answer(
        self: &Arc<Self>,
        message: InboundMessage,
    ) -> Result<watch::Receiver<Progress>, crate::store::StoreError> {
        let key = self.answer_key(&message.conversation, &message.message_id);
        if let Some(joined) = self.in_flight.join(&key) {
            return Ok(joined);
        }
        let store = self.conversations.store();
        if store.claim(&key, PENDING, self.lease).await? {
            return Ok(self.generate(key, message));
        }
        match store.get(&key).await? {
            Some(stored) if stored != PENDING => Ok(replayed(&key, &stored)),
            // Made on another replica (or claimed here a moment ago): wait for it to be stored.
            _ => {
                let (sender, receiver) = watch::channel(Progress::default());
                let bot = self.clone();
                self.tasks.spawn(
                    async move { bot.await_stored(key, message, sender).await }.in_current_span(),
                );
                Ok(receiver)
            }
        }
    }

    fn generate(
        self: &Arc<Self>,
        key: String,
        message: InboundMessage,
    ) -> watch::Receiver<Progress> {
        let (sender, receiver) = watch::channel(Progress::default());
        self.in_flight.insert(&key, receiver.clone());
        let bot = self.clone();
        self.tasks.spawn(
            async move {
                bot.make(&key, &message, &sender).await;
                bot.in_flight.remove(&key);
            }
            .in_current_span(),
        );
        receiver
    }

    async fn make(&self, key: &str, message: &InboundMessage, progress: &watch::Sender<Progress>) {
        let mut on_delta = |delta: &str| progress.send_modify(|now| now.text.push_str(delta));
        let handled = self
            .conversations
            .handle(&self.name, message, Some(&mut on_delta))
            .await;
        let store = self.conversations.store();
        let reply = match handled {
            Ok(reply) => reply,
            Err(error) => {
                tracing::error!(bot = %self.name, message_id = %log_id(&message.message_id), %error, "web answer failed");
                // Released, so the visitor's retry tries again.
                if let Err(error) = store.delete(&[key]).await {
                    tracing::warn!(%error, "could not release a failed web answer's claim");
                }
                progress
                    .send_modify(|now| now.end = Some(End::Failed("服务暂时不可用，请稍后重试")));
                return;
            }
        };
        let done = done(&message.message_id, reply);
        let question = match &message.content {
            botgate_contract::Content::Text(text) => text.clone(),
            _ => String::new(),
        };
        let stored = Stored {
            done: done.clone(),
            question,
        };
        // Stored before the visitor sees the end, so a rating right after it finds the answer.
        let record = serde_json::to_string(&stored).unwrap_or_default();
        if let Err(error) = store.set(key, &record, ANSWER_TTL).await {
            tracing::error!(%error, "could not store a web answer; a retry of its message would wait for the claim to lapse");
        }
        progress.send_modify(|now| now.end = Some(End::Done(done)));
    }

    /// Waits for an answer made elsewhere to be stored; takes it over when its claim lapses
    /// (the replica making it died, or failed and released it).
    async fn await_stored(
        self: Arc<Self>,
        key: String,
        message: InboundMessage,
        progress: watch::Sender<Progress>,
    ) {
        let store = self.conversations.store();
        let give_up = tokio::time::Instant::now() + self.lease + POLL;
        while tokio::time::Instant::now() < give_up {
            if progress.is_closed() {
                return;
            }
            match store.get(&key).await {
                Ok(Some(stored)) if stored != PENDING => {
                    let end = replayed(&key, &stored).borrow().clone();
                    progress.send_replace(end);
                    return;
                }
                Ok(Some(_)) => {}
                Ok(None) => match store.claim(&key, PENDING, self.lease).await {
                    Ok(true) => {
                        tracing::info!(bot = %self.name, "took over a web answer whose claim lapsed");
                        self.in_flight.insert(&key, progress.subscribe());
                        self.make(&key, &message, &progress).await;
                        self.in_flight.remove(&key);
                        return;
                    }
                    Ok(false) => {}
                    Err(error) => tracing::warn!(%error, "web answer: store unavailable"),
                },
                Err(error) => tracing::warn!(%error, "web answer: store unavailable"),
            }
            tokio::time::sleep(POLL).await;
        }
        progress.send_modify(|now| now.end = Some(End::Failed("回答超时，请重试")));
    }
}

/// A stored answer as a finished progress; a damaged one is a failure to retry.
fn replayed(key: &str, stored: &str) -> watch::Receiver<Progress> {
    let progress = match serde_json::from_str::<Stored>(stored) {
        Ok(stored) => Progress {
            text: stored.done.text.clone(),
            end: Some(End::Done(stored.done)),
        },
        Err(error) => {
            tracing::error!(key = %crate::store::redacted_key(key), %error, "a stored web answer is damaged");
            Progress {
                text: String::new(),
                end: Some(End::Failed("服务暂时不可用，请稍后重试")),
            }
        }
    };
    watch::channel(progress).1
}

fn done(message_id: &str, reply: Option<Reply>) -> Done {
    let (text, kind) = reply.map_or((String::new(), ReplyKind::Notice), |reply| {
        (reply.text, reply.kind)
    });
    Done {
        id: message_id.to_owned(),
        text,
        kind: kind_name(kind).to_owned(),
        // Only what the application said can be improved by whoever reads the ratings.
        feedback: matches!(kind, ReplyKind::Answer | ReplyKind::Rule),
    }
}

fn kind_name(kind: ReplyKind) -> &'static str {
    match kind {
        ReplyKind::Answer => "answer",
        ReplyKind::Rule => "rule",
        ReplyKind::Command => "command",
        ReplyKind::Farewell => "farewell",
        ReplyKind::Welcome => "welcome",
        ReplyKind::Refusal => "refusal",
        ReplyKind::Fallback => "fallback",
        ReplyKind::Notice => "notice",
    }
}
