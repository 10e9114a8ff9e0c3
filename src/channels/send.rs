//! Outbound sends per platform, and how their failures are classified.

use std::time::Duration;

use secrecy::ExposeSecret;

use crate::channels::webhook::{self, Outbound};
use crate::config::WebhookSettings;

/// Why a send failed; retry decisions come from the variant.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SendError {
    /// Worth retrying: timeouts, 5xx, throttling, busy.
    #[error("transient failure ({code}): {message}")]
    Transient { code: String, message: String },
    /// Retrying cannot help: user unreachable, window closed, content rejected, bad config.
    #[error("permanent failure ({code}): {message}")]
    Permanent { code: String, message: String },
    /// The channel cannot deliver this way, and its fallback takes the answer instead.
    #[error("falling back ({code}): {message}")]
    Fallback { code: String, message: String },
}

impl SendError {
    pub fn code(&self) -> &str {
        match self {
            SendError::Transient { code, .. }
            | SendError::Permanent { code, .. }
            | SendError::Fallback { code, .. } => code,
        }
    }

    pub fn transport(error: reqwest::Error) -> Self {
        SendError::Transient {
            code: "http".into(),
            message: error.without_url().to_string(),
        }
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
    let signature = webhook::sign(settings.secret.expose_secret().as_bytes(), &body);
    let response = http
        .post(&settings.deliver_url)
        .timeout(WEBHOOK_TIMEOUT)
        .header("Content-Type", "application/json")
        .header(webhook::SIGNATURE_HEADER, signature)
        .header(
            webhook::IDEMPOTENCY_HEADER,
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
