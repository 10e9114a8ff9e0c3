//! Answers to DingTalk: through the message's session webhook while it lives, then through the
//! robot OpenAPI (one-to-one `batchSend`, group `groupMessages/send`); with `reply = "card"`,
//! in an AI card ([`DingtalkCard`]) and only as markdown when the card fails.

use std::sync::Arc;
use std::time::Duration;

use botgate_contract::{Content, InboundMessage};
use botgate_dingtalk::outbound::{preview_title, OutgoingMessage, PARTS};
use botgate_dingtalk::ReplyContext;
use botgate_text::PartsPolicy;

use super::api::{DingtalkApi, WebhookOutcome};
use super::card::{CardSettings, DingtalkCard};
use super::hosts::WebhookHosts;
use crate::channels::channel::Deliver;
use crate::channels::send::SendError;
use crate::config::DingtalkReply;
use crate::core::job::JobPayload;
use crate::store::{Store, StoreError};
use crate::telemetry::log_message_id;

/// How long a message's reply context is kept: far beyond any retry of its job; the webhook's
/// own expiry (about 90 minutes) is checked when sending.
pub const REPLY_CONTEXT_TTL: Duration = Duration::from_secs(24 * 3600);

#[derive(Clone)]
pub struct DingtalkSender {
    pub(super) api: Arc<DingtalkApi>,
    pub(super) store: Store,
    pub(super) prefix: String,
    pub(super) bot: String,
    pub(super) robot_code: String,
    pub(super) hosts: Arc<WebhookHosts>,
    pub(super) reply: DingtalkReply,
    /// `reply = "card"`: the answer goes in an AI card, as markdown when the card fails.
    pub(super) card: Option<Arc<CardSettings>>,
}

impl DingtalkSender {
    fn key(&self, message_id: &str) -> String {
        crate::keys::dingtalk_reply(&self.prefix, &self.bot, message_id)
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
        let key = self.key(&message.message_id);
        let json = serde_json::to_string(reply).map_err(|error| StoreError::Corrupt {
            key: key.clone(),
            reason: crate::store::json_reason(&error),
        })?;
        self.store.set(&key, &json, REPLY_CONTEXT_TTL).await
    }

    pub(super) async fn context(&self, job: &JobPayload) -> Result<ReplyContext, SendError> {
        let key = self.key(&job.message_id);
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

    fn policy(&self) -> PartsPolicy {
        PartsPolicy {
            plain_text: self.reply == DingtalkReply::Text,
            ..PARTS
        }
    }
}

impl Deliver for DingtalkSender {
    type Live = DingtalkCard;

    fn live(&self, job: &JobPayload) -> Option<DingtalkCard> {
        let settings = self.card.clone()?;
        Some(DingtalkCard::new(self.clone(), settings, job))
    }

    fn parts(&self, _job: &JobPayload, text: &str) -> Vec<String> {
        self.policy().parts(text)
    }

    async fn send(
        &self,
        job: &JobPayload,
        chunk: usize,
        _chunks: usize,
        part: &str,
    ) -> Result<(), SendError> {
        let context = self.context(job).await?;
        let title = preview_title(part);
        let message = match self.reply {
            // A card bot's parts are its fallback when the card could not take the answer.
            DingtalkReply::Markdown | DingtalkReply::Card => OutgoingMessage::Markdown {
                title: &title,
                text: part,
            },
            DingtalkReply::Text => OutgoingMessage::Text(part),
        };
        let message_id = log_message_id(&job.message_id);
        let usable = context
            .session_webhook
            .as_deref()
            .filter(|url| self.hosts.allow(url))
            .zip(context.session_webhook_expires_ms)
            .filter(|(_, expires_ms)| {
                let margin = botgate_dingtalk::outbound::WEBHOOK_SAFETY_MARGIN.as_millis() as u64;
                crate::clock::unix_ms().saturating_add(margin) < *expires_ms
            })
            .map(|(url, _)| url);
        if let Some(url) = usable {
            match self
                .api
                .post_webhook(url, context.webhook_body(&message))
                .await?
            {
                WebhookOutcome::Sent => {
                    tracing::debug!(message_id = %message_id, chunk, "part sent through the session webhook");
                    return Ok(());
                }
                WebhookOutcome::Refused(reason) => {
                    tracing::info!(message_id = %message_id, chunk, %reason, "session webhook refused the part; sending through the robot OpenAPI");
                }
            }
        } else if context.session_webhook.is_some() {
            tracing::debug!(message_id = %message_id, chunk, "session webhook expired or not allowed; sending through the robot OpenAPI");
        }
        let send = context
            .openapi_send(&message)
            .ok_or_else(|| SendError::Permanent {
                code: "no_recipient".into(),
                message: "no usable session webhook, and the sender has no userid for the OpenAPI"
                    .into(),
            })?;
        self.api.send(&send).await?;
        tracing::debug!(message_id = %message_id, chunk, "part sent through the robot OpenAPI");
        Ok(())
    }
}
