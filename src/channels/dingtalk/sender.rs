//! Answers to DingTalk: through the message's session webhook while it lives, then through the
//! robot OpenAPI (one-to-one `batchSend`, group `groupMessages/send`); with `reply = "card"`,
//! in an AI card ([`DingtalkCard`]) and only as markdown when the card fails.

use std::sync::Arc;

use botgate_dingtalk::outbound::{preview_title, OutgoingMessage, PARTS};
use botgate_text::PartsPolicy;

use super::api::WebhookOutcome;
use super::card::{CardSettings, DingtalkCard};
use super::hosts::WebhookHosts;
use super::robot::Robot;
use crate::channels::channel::Deliver;
use crate::channels::send::SendError;
use crate::config::DingtalkReply;
use crate::core::job::JobPayload;
use crate::telemetry::log_message_id;

#[derive(Clone)]
pub struct DingtalkSender {
    pub(super) robot: Arc<Robot>,
    pub(super) hosts: Arc<WebhookHosts>,
    pub(super) reply: DingtalkReply,
    /// `reply = "card"`: the answer goes in an AI card, as markdown when the card fails.
    pub(super) card: Option<Arc<CardSettings>>,
}

impl DingtalkSender {
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
        Some(DingtalkCard::new(self.robot.clone(), settings, job))
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
        let context = self.robot.context(job).await?;
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
                .robot
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
        self.robot.api.send(&send).await?;
        tracing::debug!(message_id = %message_id, chunk, "part sent through the robot OpenAPI");
        Ok(())
    }
}
