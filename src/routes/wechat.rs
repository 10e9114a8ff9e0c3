//! `/wechat/{bot}`: GET for URL verification, POST for messages (Official Account callbacks).

use std::time::Instant;

use actix_web::{web, HttpRequest, HttpResponse};

use botgate_wechat::ACKNOWLEDGE;

use super::error::{channel_of, WebhookError};
use super::BotName;
use crate::config::ReplyMode;
use crate::delivery::Accepted;
use crate::metrics::PlatformLabels;
use crate::startup::AppState;
use crate::telemetry::log_message_id;

pub async fn verify(
    bot: BotName,
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebhookError> {
    let channel = channel_of(&state.wechat, "wechat", &bot)?;
    let echostr = channel
        .account
        .verify_url(request.query_string(), unix_now())?;
    tracing::info!(bot = %bot, "wechat URL verification answered");
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(echostr))
}

pub async fn receive(
    bot: BotName,
    request: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebhookError> {
    let received = Instant::now();
    let channel = channel_of(&state.wechat, "wechat", &bot)?;
    let metrics = state.conversations.metrics();
    let decoded = match channel
        .account
        .decode(request.query_string(), &body, unix_now())
    {
        Ok(decoded) => decoded,
        Err(error) => {
            metrics.inbound("wechat", "rejected");
            return Err(error.into());
        }
    };
    metrics.inbound("wechat", "accepted");
    tracing::debug!(bot = %bot, kind = decoded.kind.as_str(), message_id = %log_message_id(&decoded.message.message_id), "wechat message");
    if let Some(notice) = state.rate_limit_notice(&bot, &decoded.message).await? {
        let reply = channel
            .account
            .render_reply(&decoded.reply, &notice, unix_now(), &random16());
        return Ok(xml(reply));
    }
    if channel.settings.reply_mode == ReplyMode::Active && !passive_fallback(&state, &bot).await? {
        // Acknowledged only once durably queued; a retry of an accepted message is a duplicate.
        if state.acceptor.accept(&bot, &decoded.message, None).await? == Accepted::Duplicate {
            metrics
                .duplicates
                .get_or_create(&PlatformLabels { platform: "wechat" })
                .inc();
        }
        return Ok(xml(ACKNOWLEDGE.to_owned()));
    }
    let reply = state
        .passive
        .respond(&state.conversations, &bot, channel, &decoded, received)
        .await?;
    Ok(xml(reply))
}

fn xml(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/xml; charset=utf-8")
        .body(body)
}

/// True while the bot answers passively because WeChat refused active sends (48001).
async fn passive_fallback(state: &AppState, bot: &str) -> Result<bool, WebhookError> {
    let key = crate::channels::wechat::active::fallback_key(&state.key_prefix, bot);
    Ok(state.conversations.store().get(&key).await?.is_some())
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

fn random16() -> [u8; 16] {
    let mut random = [0u8; 16];
    let _ = getrandom::fill(&mut random);
    random
}
