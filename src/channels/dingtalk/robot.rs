//! One DingTalk bot's shared parts: its API client, and the reply context of each message
//! (kept by [`Robot::remember`] when the message arrives, read when its answer goes out).

use std::sync::Arc;
use std::time::Duration;

use botgate_contract::{Content, InboundMessage, Platform};
use botgate_dingtalk::ReplyContext;

use super::api::DingtalkApi;
use crate::channels::send::SendError;
use crate::core::job::JobPayload;
use crate::keyspace::KeySpace;
use crate::store::{Store, StoreError};

/// How long a message's reply context is kept: far beyond any retry of its job; the webhook's
/// own expiry (about 90 minutes) is checked when sending.
pub const REPLY_CONTEXT_TTL: Duration = Duration::from_secs(24 * 3600);

pub struct Robot {
    pub(super) api: Arc<DingtalkApi>,
    pub(super) store: Store,
    /// The message's keys sit in its conversation's shard, with the rest of its job's.
    pub(super) keys: KeySpace,
    pub(super) bot: String,
    pub(super) robot_code: String,
}

impl Robot {
    /// The prefix of a conversation's keys.
    pub(super) fn prefix(&self, conversation: &str) -> &str {
        self.keys
            .of(&self.bot, Platform::Dingtalk.as_str(), conversation)
    }

    fn key(&self, conversation: &str, message_id: &str) -> String {
        crate::keys::dingtalk_reply(self.prefix(conversation), &self.bot, message_id)
    }

    /// Keeps `reply` for the job of `message`; nothing for content that gets no job.
    pub async fn remember(
        &self,
        message: &InboundMessage,
        reply: &ReplyContext,
    ) -> Result<(), StoreError> {
        if matches!(message.content, Content::Ignored { .. }) {
            return Ok(());
        }
        let key = self.key(&message.conversation, &message.message_id);
        let json = serde_json::to_string(reply).map_err(|error| StoreError::Corrupt {
            key: key.clone(),
            reason: crate::store::json_reason(&error),
        })?;
        self.store.set(&key, &json, REPLY_CONTEXT_TTL).await
    }

    pub(super) async fn context(&self, job: &JobPayload) -> Result<ReplyContext, SendError> {
        let key = self.key(&job.conversation, &job.message_id);
        let stored = self
            .store
            .get(&key)
            .await
            .map_err(|error| SendError::Transient {
                code: "store".into(),
                message: error.to_string(),
            })?
            .ok_or_else(|| SendError::Permanent {
                code: "no_reply_context".into(),
                message: "the message's reply context is gone (older than a day?)".into(),
            })?;
        let mut context: ReplyContext =
            serde_json::from_str(&stored).map_err(|error| SendError::Permanent {
                code: "reply_context".into(),
                message: crate::store::json_reason(&error),
            })?;
        // Messages carry their robotCode; the configured one serves when one did not.
        context
            .robot_code
            .get_or_insert_with(|| self.robot_code.clone());
        Ok(context)
    }
}
