//! `POST /webhook/{bot}`: the generic signed webhook channel; acknowledged once durably queued.

use actix_web::{web, HttpRequest, HttpResponse};
use secrecy::ExposeSecret;
use serde_json::json;

use super::error::{channel_of, WebhookError};
use super::BotName;
use crate::channels::webhook;
use crate::delivery::Accepted;
use crate::startup::AppState;

pub async fn receive(
    bot: BotName,
    request: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebhookError> {
    let metrics = state.conversations.metrics();
    let settings = channel_of(&state.webhooks, "webhook", &bot)?;
    let signature = request
        .headers()
        .get(webhook::SIGNATURE_HEADER)
        .and_then(|value| value.to_str().ok());
    let message =
        match webhook::decode(settings.secret.expose_secret().as_bytes(), signature, &body) {
            Ok(message) => message,
            Err(error) => {
                metrics.inbound("webhook", "rejected");
                return Err(error.into());
            }
        };
    let notice = state.rate_limit_notice(&bot, &message).await?;
    match state.acceptor.accept(&bot, &message, notice).await {
        Ok(Accepted::Enqueued(job)) => {
            metrics.inbound("webhook", "accepted");
            Ok(HttpResponse::Accepted().json(json!({"status": "accepted", "job": job})))
        }
        Ok(Accepted::Duplicate) => {
            metrics.inbound("webhook", "duplicate");
            metrics
                .duplicates
                .get_or_create(&crate::metrics::PlatformLabels {
                    platform: "webhook",
                })
                .inc();
            Ok(HttpResponse::Ok().json(json!({"status": "duplicate"})))
        }
        Ok(Accepted::Ignored) => Ok(HttpResponse::Ok().json(json!({"status": "ignored"}))),
        Err(error) => {
            metrics.inbound("webhook", "error");
            Err(error.into())
        }
    }
}
