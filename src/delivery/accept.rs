//! The accepting side of the engine: claim the platform message id, take the conversation's next
//! sequence number, and enqueue durably — all before the webhook is acknowledged.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use botgate_contract::InboundMessage;

use super::job::{JobContent, JobPayload};
use super::queue::Queue;
use crate::store::{Store, StoreError};

/// What happened to an inbound message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// Durably enqueued under this job id.
    Enqueued(String),
    /// Seen before (a platform retry, a redelivery, another replica's): nothing to do.
    Duplicate,
    /// Needs no answer (an ignored event).
    Ignored,
}

/// Order counters must outlive any job still waiting on them.
pub const ORDER_TTL: Duration = Duration::from_secs(48 * 3600);

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as u64)
        .unwrap_or_default()
}

pub struct Acceptor {
    store: Store,
    queue: Queue,
    prefix: String,
    dedup_ttl: Duration,
}

impl Acceptor {
    pub fn new(store: Store, queue: Queue, prefix: &str, dedup_ttl: Duration) -> Self {
        Acceptor {
            store,
            queue,
            prefix: prefix.to_owned(),
            dedup_ttl,
        }
    }

    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    pub fn claim_key(&self, bot: &str, message: &InboundMessage) -> String {
        format!(
            "{}:claim:{bot}:{}:{}",
            self.prefix, message.platform, message.message_id
        )
    }

    pub fn order_key(prefix: &str, bot: &str, platform: &str, conversation: &str) -> String {
        format!("{prefix}:order:{bot}:{platform}:{conversation}")
    }

    /// Claims, sequences and enqueues. On any failure after the claim, the claim is released so
    /// the platform's retry can succeed: an accepted message is one that is durably queued.
    pub async fn accept(
        &self,
        bot: &str,
        message: &InboundMessage,
        notice: Option<String>,
    ) -> Result<Accepted, StoreError> {
        let Some(content) = JobContent::from_content(&message.content) else {
            return Ok(Accepted::Ignored);
        };
        let claim = self.claim_key(bot, message);
        if !self.store.claim(&claim, "1", self.dedup_ttl).await? {
            return Ok(Accepted::Duplicate);
        }
        match self.enqueue(bot, message, content, notice).await {
            Ok(id) => Ok(Accepted::Enqueued(id)),
            Err(error) => {
                if let Err(release) = self.store.delete(&[&claim]).await {
                    tracing::error!(%release, "could not release the claim after a failed enqueue");
                }
                Err(error)
            }
        }
    }

    async fn enqueue(
        &self,
        bot: &str,
        message: &InboundMessage,
        content: JobContent,
        notice: Option<String>,
    ) -> Result<String, StoreError> {
        let platform = message.platform.as_str();
        let sequence_key = format!(
            "{}:seq",
            Self::order_key(&self.prefix, bot, platform, &message.conversation)
        );
        let seq = self.store.incr(&sequence_key, ORDER_TTL).await?;
        let payload = JobPayload {
            bot: bot.to_owned(),
            platform: platform.to_owned(),
            conversation: message.conversation.clone(),
            sender: message.sender.clone(),
            message_id: message.message_id.clone(),
            content,
            seq,
            received_at_ms: now_ms(),
            notice,
        };
        let json = serde_json::to_string(&payload).map_err(|error| StoreError::Corrupt {
            key: sequence_key.clone(),
            reason: error.to_string(),
        })?;
        let id = self.queue.enqueue(&json).await?;
        Ok(id)
    }
}
