//! One inbound pipeline for every platform: find the bot's channel, let its adapter verify and
//! decode the request, count it, apply the rate limit, then answer inside the request (the
//! reply window) or claim, queue and acknowledge. Generic over [`Channel`]; nothing here
//! names a platform.

use std::time::Instant;

use actix_web::http::header::HeaderMap;
use actix_web::{web, HttpRequest, HttpResponse};
use botgate_contract::{Adapter, Headers, Inbound, Method, Outcome, RawRequest, Response};

use super::error::CallbackError;
use super::AppState;
use super::BotName;
use crate::channels::{Channel, Registered};
use crate::delivery::Accepted;
use crate::metrics::PlatformLabels;
use crate::telemetry::log_message_id;

/// The handler of every platform callback: `web::to(receive::<SomeChannel>)`.
pub async fn receive<C: Channel + Registered>(
    bot: BotName,
    request: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, CallbackError> {
    let received = Instant::now();
    let channel = C::of(&state.channels, &bot).ok_or_else(|| CallbackError::UnknownBot {
        channel: C::ROUTE,
        bot: bot.to_string(),
    })?;
    let adapter = channel.adapter();
    let platform = adapter.platform().as_str();
    let metrics = state.conversations.metrics();
    let headers = HeaderLookup(request.headers());
    let raw = RawRequest {
        method: method(request.method()),
        query: request.query_string(),
        headers: &headers,
        body: &body,
        now_secs: crate::clock::unix_secs(),
    };
    let (message, reply) = match adapter.accept(&raw) {
        Ok(Inbound::Message { message, reply }) => (message, reply),
        Ok(Inbound::Handshake(answer)) => {
            tracing::info!(bot = %bot, platform, "URL verification answered");
            return Ok(HttpResponse::Ok()
                .content_type("text/plain; charset=utf-8")
                .body(answer));
        }
        Ok(Inbound::Ignore) => return Ok(respond(adapter.acknowledge(Outcome::Ignored))),
        Ok(Inbound::Notice(notice)) => {
            metrics.inbound(platform, "notice");
            channel
                .notice(&bot, notice, std::sync::Arc::new(state.inlet.clone()))
                .await?;
            return Ok(respond(adapter.acknowledge(Outcome::Ignored)));
        }
        Err(error) => {
            metrics.inbound(platform, "rejected");
            return Err(error.into());
        }
    };
    tracing::debug!(bot = %bot, platform, message_id = %log_message_id(&message.message_id), "message");
    if let Some((passive, window)) = channel.window().await? {
        metrics.inbound(platform, "accepted");
        let notice = state
            .conversations
            .rate_limit_notice(&bot, &message)
            .await?;
        if let Some(notice) = notice {
            let (now, random) = crate::clock::now_and_random();
            return Ok(respond(adapter.render(&reply, &notice, now, &random)));
        }
        let response = passive
            .respond(
                &state.conversations,
                &bot,
                adapter,
                window,
                &message,
                &reply,
                received,
            )
            .await?;
        return Ok(respond(response));
    }
    // What the sender needs of the message beyond its job, written before the job exists.
    if let Err(error) = channel.remember(&bot, &message, &reply).await {
        metrics.inbound(platform, "error");
        return Err(error.into());
    }
    // Acknowledged only once durably queued; a retry of an accepted message is a duplicate.
    match state.inlet.admit(&bot, &message).await {
        Ok(Accepted::Enqueued(job)) => {
            metrics.inbound(platform, "accepted");
            Ok(respond(adapter.acknowledge(Outcome::Queued { job: &job })))
        }
        Ok(Accepted::Duplicate) => {
            metrics.inbound(platform, "duplicate");
            metrics
                .duplicates
                .get_or_create(&PlatformLabels { platform })
                .inc();
            Ok(respond(adapter.acknowledge(Outcome::Duplicate)))
        }
        Ok(Accepted::Ignored) => Ok(respond(adapter.acknowledge(Outcome::Ignored))),
        Err(error) => {
            metrics.inbound(platform, "error");
            Err(error.into())
        }
    }
}

fn respond(response: Response) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(response.status)
        .unwrap_or(actix_web::http::StatusCode::OK);
    HttpResponse::build(status)
        .content_type(response.content_type)
        .body(response.body)
}

fn method(method: &actix_web::http::Method) -> Method {
    match *method {
        actix_web::http::Method::GET => Method::Get,
        actix_web::http::Method::POST => Method::Post,
        _ => Method::Other,
    }
}

/// actix's headers behind the adapters' framework-free lookup.
struct HeaderLookup<'a>(&'a HeaderMap);

impl Headers for HeaderLookup<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(|value| value.to_str().ok())
    }
}
