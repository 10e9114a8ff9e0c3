//! Answers POSTed to the bot's `deliver_url`, one signed part per request.

use std::time::Duration;

use secrecy::ExposeSecret;

use super::Outbound;
use crate::channels::channel::Deliver;
use crate::channels::send::SendError;
use crate::config::WebhookSettings;
use crate::core::job::JobPayload;

/// The webhook channel's sender: each part POSTed to the bot's `deliver_url`.
pub struct WebhookSender {
    pub http: reqwest::Client,
    pub settings: WebhookSettings,
}

impl Deliver for WebhookSender {
    type Live = crate::channels::live::NoLive;

    /// Integrations get the answer as the LLM wrote it (markdown and all), in parts.
    fn parts(&self, _job: &JobPayload, text: &str) -> Vec<String> {
        botgate_text::PartsPolicy {
            max_bytes: self.settings.max_part_bytes,
            max_parts: None,
            continue_hint: None,
            truncated_hint: "",
            plain_text: false,
        }
        .parts(text)
    }

    async fn send(
        &self,
        job: &JobPayload,
        chunk: usize,
        chunks: usize,
        part: &str,
    ) -> Result<(), SendError> {
        let outbound = Outbound {
            bot: &job.bot,
            conversation: &job.conversation,
            message_id: &job.message_id,
            chunk,
            chunks,
            text: part,
        };
        send_webhook(&self.http, &self.settings, &outbound).await
    }
}

const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// POSTs one part to the bot's `deliver_url`, signed, with an idempotency key per part so a
/// receiver can drop the duplicate a reclaimed job may cause.
pub async fn send_webhook(
    http: &reqwest::Client,
    settings: &WebhookSettings,
    part: &Outbound<'_>,
) -> Result<(), SendError> {
    let body = serde_json::to_vec(part).map_err(|error| SendError::Permanent {
        code: "encode".into(),
        message: error.to_string(),
    })?;
    let signature = super::sign(settings.secret.expose_secret().as_bytes(), &body);
    let response = http
        .post(&settings.deliver_url)
        .timeout(WEBHOOK_TIMEOUT)
        .header("Content-Type", "application/json")
        .header(super::SIGNATURE_HEADER, signature)
        .header(
            super::IDEMPOTENCY_HEADER,
            format!("{}:{}", part.message_id, part.chunk),
        )
        .body(body)
        .send()
        .await
        .map_err(SendError::transport)?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let code = status.as_u16().to_string();
    let message = format!("deliver_url answered {status}");
    if status.is_server_error() || status.as_u16() == 408 || status.as_u16() == 429 {
        Err(SendError::Transient { code, message })
    } else {
        Err(SendError::Permanent { code, message })
    }
}
