//! `/wechat/{bot}`: GET for URL verification, POST for messages (Official Account callbacks).

use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use botgate_contract::AdapterError;

use crate::config::ReplyMode;
use crate::core::CoreError;
use crate::startup::AppState;

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("no WeChat channel for bot `{0}`")]
    UnknownBot(String),
    #[error(transparent)]
    Adapter(#[from] AdapterError),
    #[error(transparent)]
    Core(#[from] CoreError),
}

impl ResponseError for WebhookError {
    fn status_code(&self) -> StatusCode {
        match self {
            WebhookError::UnknownBot(_) => StatusCode::NOT_FOUND,
            WebhookError::Adapter(AdapterError::BadSignature | AdapterError::StaleTimestamp) => {
                StatusCode::UNAUTHORIZED
            }
            WebhookError::Adapter(AdapterError::TooLarge) => StatusCode::PAYLOAD_TOO_LARGE,
            WebhookError::Adapter(_) => StatusCode::BAD_REQUEST,
            // The platform retries a 5xx; the message was not accepted, so nothing is lost.
            WebhookError::Core(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if status.is_server_error() {
            tracing::error!(error = %self, "webhook failed");
            // Opaque: internal details stay in the log.
            return HttpResponse::build(status).body("temporarily unavailable");
        }
        tracing::warn!(error = %self, status = status.as_u16(), "webhook refused");
        HttpResponse::build(status).body(self.to_string())
    }
}

pub async fn verify(
    bot: web::Path<String>,
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebhookError> {
    let channel = state
        .wechat
        .get(bot.as_str())
        .ok_or_else(|| WebhookError::UnknownBot(bot.clone()))?;
    let echostr = channel.account.verify_url(request.query_string())?;
    tracing::info!(bot = %bot, "wechat URL verification answered");
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(echostr))
}

pub async fn receive(
    bot: web::Path<String>,
    request: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebhookError> {
    let received = Instant::now();
    let channel = state
        .wechat
        .get(bot.as_str())
        .ok_or_else(|| WebhookError::UnknownBot(bot.clone()))?;
    let metrics = state.conversations.metrics();
    let decoded = match channel.account.decode(request.query_string(), &body) {
        Ok(decoded) => decoded,
        Err(error) => {
            metrics.inbound("wechat", "rejected");
            return Err(error.into());
        }
    };
    metrics.inbound("wechat", "accepted");
    tracing::debug!(bot = %bot, kind = decoded.kind.as_str(), message_id = %decoded.message.message_id, "wechat message");
    let reply = match channel.settings.reply_mode {
        ReplyMode::Passive | ReplyMode::Active => {
            state
                .passive
                .respond(&state.conversations, &bot, channel, &decoded, received)
                .await?
        }
    };
    Ok(HttpResponse::Ok()
        .content_type("application/xml; charset=utf-8")
        .body(reply))
}
