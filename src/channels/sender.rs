//! Where answers go when they do not travel in the platform's own request: a closed set of
//! senders, one per bot and platform, with the few operations the delivery engine needs.

use std::sync::Arc;

use botgate_contract::Platform;
use tokio::sync::oneshot;

use super::send::{send_webhook, SendError};
use super::webhook::Outbound;
use super::wechat::{active::WechatActive, active_parts};
use crate::config::WebhookSettings;
use crate::core::job::JobPayload;
use crate::store::StoreError;

pub enum Sender {
    /// The signed webhook channel: each part POSTed to the bot's `deliver_url`.
    Webhook {
        http: reqwest::Client,
        settings: WebhookSettings,
    },
    /// WeChat's customer-service API (active mode).
    Wechat(Arc<WechatActive>),
}

impl Sender {
    pub fn platform(&self) -> Platform {
        match self {
            Sender::Webhook { .. } => Platform::Webhook,
            Sender::Wechat(_) => Platform::Wechat,
        }
    }

    /// The answer as this platform takes it, one part per send.
    pub fn parts(&self, text: &str) -> Vec<String> {
        match self {
            // Integrations get the answer as the LLM wrote it (markdown and all), in parts.
            Sender::Webhook { settings, .. } => botgate_text::PartsPolicy {
                max_bytes: settings.max_part_bytes,
                max_parts: None,
                continue_hint: None,
                truncated_hint: "",
                plain_text: false,
            }
            .parts(text),
            Sender::Wechat(_) => active_parts(text),
        }
    }

    /// Sends part `chunk` of `chunks` of the answer to `job`'s message.
    pub async fn send(
        &self,
        job: &JobPayload,
        chunk: usize,
        chunks: usize,
        part: &str,
    ) -> Result<(), SendError> {
        match self {
            Sender::Webhook { http, settings } => {
                let outbound = Outbound {
                    bot: &job.bot,
                    conversation: &job.conversation,
                    message_id: &job.message_id,
                    chunk,
                    chunks,
                    text: part,
                };
                send_webhook(http, settings, &outbound).await
            }
            Sender::Wechat(active) => active.send_part(&job.sender, part).await,
        }
    }

    /// Shows the user that an answer is coming until the returned sender is dropped, where the
    /// platform has such a thing.
    pub fn typing(&self, job: &JobPayload) -> Option<oneshot::Sender<()>> {
        match self {
            Sender::Webhook { .. } => None,
            Sender::Wechat(active) => Some(active.typing(&job.sender)),
        }
    }

    /// The platform refused to take the answer this way ([`SendError::Fallback`]): its
    /// fallback takes the parts not sent yet, and the job is done.
    pub async fn fall_back(&self, job: &JobPayload, unsent: &[String]) -> Result<(), StoreError> {
        match self {
            // The webhook channel never answers with a fallback.
            Sender::Webhook { .. } => Ok(()),
            Sender::Wechat(active) => active.fall_back(&job.sender, &job.message_id, unsent).await,
        }
    }
}
