//! The accepting side of the engine: claim the platform message id and queue the job in its
//! conversation's order, in one atomic step, before the platform's callback is acknowledged.

use std::time::Duration;

use botgate_contract::InboundMessage;

use super::job::{JobContent, JobPayload};
use super::queue::{Admitted, Queue};
use crate::keyspace::KeySpace;
use crate::store::StoreError;

// Defined with the job so that channels and sources, below the engine, can name it.
pub use super::job::Accepted;

pub struct Acceptor {
    queue: Queue,
    keys: KeySpace,
    dedup_ttl: Duration,
}

impl Acceptor {
    pub fn new(queue: Queue, keys: KeySpace, dedup_ttl: Duration) -> Self {
        Acceptor {
            queue,
            keys,
            dedup_ttl,
        }
    }

    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    /// Claims the message id and queues its job, atomically: an accepted message is one that
    /// is durably queued, and a claim never exists without its job (a crash cannot leave the
    /// platform's retry told "duplicate" for a message nobody will answer).
    pub async fn accept(
        &self,
        bot: &str,
        message: &InboundMessage,
        notice: Option<String>,
    ) -> Result<Accepted, StoreError> {
        let Some(content) = JobContent::from_content(&message.content) else {
            return Ok(Accepted::Ignored);
        };
        let platform = message.platform.as_str();
        let payload = JobPayload {
            bot: bot.to_owned(),
            platform: platform.to_owned(),
            conversation: message.conversation.clone(),
            sender: message.sender.clone(),
            message_id: message.message_id.clone(),
            content,
            received_at_ms: crate::clock::unix_ms(),
            notice,
        };
        // The claim, order and job all in the conversation's shard, the one script's keys
        // together: a platform's retry of a message is in the same conversation, so it finds
        // the claim.
        let shard = self.keys.shard_of(bot, platform, &message.conversation);
        let prefix = self.keys.shard(shard);
        let claim = crate::keys::claim(prefix, bot, platform, &message.message_id);
        let json = serde_json::to_string(&payload).map_err(|error| StoreError::Corrupt {
            key: claim.clone(),
            reason: crate::store::json_reason(&error),
        })?;
        let order = crate::keys::order(prefix, bot, platform, &message.conversation);
        let ticket = crate::clock::random_id();
        let admitted = self
            .queue
            .admit(shard, &claim, self.dedup_ttl, &order, &ticket, &json)
            .await?;
        Ok(match admitted {
            Admitted::Enqueued(ticket) => Accepted::Enqueued(ticket),
            Admitted::Duplicate => Accepted::Duplicate,
        })
    }
}
