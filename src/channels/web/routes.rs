//! The web chat's HTTP surface, per configured bot: the page, its assets, the message stream,
//! ratings, and the CORS preflights of the two POSTs.

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, HttpResponseBuilder};
use botgate_contract::AdapterError;
use botgate_web::{Asset, Page, ASSETS};

use super::{WebBot, WebChannel};
use crate::config::routable_bot_name;
use crate::telemetry::log_id;

pub fn mount(channels: &HashMap<String, WebChannel>, config: &mut web::ServiceConfig) {
    for (name, channel) in channels {
        if !routable_bot_name(name) {
            tracing::warn!(bot = %name, "no web chat for a bot whose name is not a plain path segment");
            continue;
        }
        let data = web::Data::from(channel.0.clone());
        let base = format!("/web/{name}");
        config.service(
            web::resource(base.clone())
                .app_data(data.clone())
                .route(web::get().to(page)),
        );
        for asset in ASSETS {
            config.service(
                web::resource(format!("{base}/{}", asset.name))
                    .route(web::get().to(move || serve(asset))),
            );
        }
        config.service(
            web::resource(format!("{base}/messages"))
                .app_data(data.clone())
                .route(web::post().to(message))
                .route(web::method(actix_web::http::Method::OPTIONS).to(preflight)),
        );
        config.service(
            web::resource(format!("{base}/feedback"))
                .app_data(data)
                .route(web::post().to(rate))
                .route(web::method(actix_web::http::Method::OPTIONS).to(preflight)),
        );
    }
}

async fn page(bot: web::Data<WebBot>) -> HttpResponse {
    let html = Page {
        title: &bot.settings.title,
        bot: &bot.name,
        welcome: &bot.welcome,
        max_chars: bot.settings.max_message_chars,
        feedback: bot.settings.feedback,
    }
    .render();
    // Nothing the page shows may run as code, and only the allowed sites may frame it.
    let policy = format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
         img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors {}",
        bot.policy.frame_ancestors()
    );
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, policy))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(html)
}

async fn serve(asset: Asset) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(asset.content_type)
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .body(asset.body)
}

/// `POST /web/{bot}/messages`: the answer as server-sent events.
async fn message(request: HttpRequest, body: web::Bytes, bot: web::Data<WebBot>) -> HttpResponse {
    let bot = bot.into_inner();
    let cors = match allowed_origin(&request, &bot) {
        Ok(cors) => cors,
        Err(OriginRefused) => return origin_refused(),
    };
    let metrics = bot.conversations.metrics().clone();
    let message = match bot.adapter.message(&body, crate::clock::unix_secs()) {
        Ok(message) => message,
        Err(error) => {
            metrics.inbound("web", "rejected");
            return refuse(cors, &bot, &error);
        }
    };
    if let Some(notice) = bot.over_limit(&message).await {
        return match notice {
            Ok(notice) => {
                tracing::info!(bot = %bot.name, visitor = %log_id(&message.conversation), "web visitor over the rate limit");
                json_error(cors, StatusCode::TOO_MANY_REQUESTS, &notice)
            }
            Err(error) => unavailable(cors, &error),
        };
    }
    metrics.inbound("web", "accepted");
    tracing::debug!(bot = %bot.name, message_id = %log_id(&message.message_id), "web message");
    match bot.answer(message).await {
        Ok(progress) => with_cors(HttpResponse::Ok(), cors)
            .content_type("text/event-stream")
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            // nginx would otherwise hold the events back until its buffer fills.
            .insert_header(("X-Accel-Buffering", "no"))
            .streaming(super::stream::events(progress, metrics)),
        Err(error) => unavailable(cors, &error),
    }
}

/// `POST /web/{bot}/feedback`: a thumbs-up or -down on one answer.
async fn rate(request: HttpRequest, body: web::Bytes, bot: web::Data<WebBot>) -> HttpResponse {
    let cors = match allowed_origin(&request, &bot) {
        Ok(cors) => cors,
        Err(OriginRefused) => return origin_refused(),
    };
    let (rating, visitor) = match bot.adapter.feedback(&body, crate::clock::unix_secs()) {
        Ok(decoded) => decoded,
        Err(error) => return refuse(cors, &bot, &error),
    };
    match bot.record_feedback(&rating, &visitor).await {
        Ok(true) => with_cors(HttpResponse::NoContent(), cors).finish(),
        Ok(false) => json_error(cors, StatusCode::NOT_FOUND, "no such answer"),
        Err(error) => unavailable(cors, &error),
    }
}

/// The CORS preflight of a POST from another site: allowed origins only.
async fn preflight(request: HttpRequest, bot: web::Data<WebBot>) -> HttpResponse {
    match allowed_origin(&request, &bot) {
        Ok(cors) => with_cors(HttpResponse::NoContent(), cors)
            .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "POST"))
            .insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, "content-type"))
            .insert_header((header::ACCESS_CONTROL_MAX_AGE, "600"))
            .finish(),
        Err(OriginRefused) => origin_refused(),
    }
}

/// A request from a site not in `allowed_origins` (logged where found).
struct OriginRefused;

fn origin_refused() -> HttpResponse {
    json_error(None, StatusCode::FORBIDDEN, "origin not allowed")
}

/// The `Origin` to echo in CORS headers (`None`: not a cross-origin call), or the refusal.
fn allowed_origin(
    request: &HttpRequest,
    bot: &WebBot,
) -> Result<Option<HeaderValue>, OriginRefused> {
    let origin = request.headers().get(header::ORIGIN);
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|host| host.to_str().ok());
    let text = origin.map(|origin| origin.to_str().unwrap_or("\u{0}"));
    if bot.policy.allows(text, host) {
        return Ok(origin.cloned());
    }
    // The origin is a site's address, not a secret or an id: it says whom to add, or who probes.
    tracing::warn!(bot = %bot.name, origin = text.unwrap_or_default(), "web request from an origin not in allowed_origins refused");
    Err(OriginRefused)
}

fn with_cors(mut builder: HttpResponseBuilder, origin: Option<HeaderValue>) -> HttpResponseBuilder {
    if let Some(origin) = origin {
        builder
            .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, origin))
            .insert_header((header::VARY, "Origin"));
    }
    builder
}

fn refuse(cors: Option<HeaderValue>, bot: &WebBot, error: &AdapterError) -> HttpResponse {
    let status = match error {
        AdapterError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        AdapterError::BadSignature | AdapterError::StaleTimestamp { .. } => {
            StatusCode::UNAUTHORIZED
        }
        _ => StatusCode::BAD_REQUEST,
    };
    tracing::warn!(bot = %bot.name, status = status.as_u16(), %error, "web request refused");
    let shown = match error {
        AdapterError::TooLarge => format!(
            "消息太长（最多 {} 字）/ message too long",
            bot.settings.max_message_chars
        ),
        other => other.to_string(),
    };
    json_error(cors, status, &shown)
}

fn unavailable(cors: Option<HeaderValue>, error: &dyn std::fmt::Display) -> HttpResponse {
    tracing::error!(%error, "web request failed");
    json_error(
        cors,
        StatusCode::SERVICE_UNAVAILABLE,
        "服务暂时不可用，请稍后重试",
    )
}

fn json_error(cors: Option<HeaderValue>, status: StatusCode, message: &str) -> HttpResponse {
    with_cors(HttpResponse::build(status), cors).json(serde_json::json!({ "error": message }))
}

impl WebBot {
    /// The visitor's polite notice when over this channel's rate or the bot's own (`None`:
    /// within both). A retried message counts once.
    async fn over_limit(
        self: &Arc<Self>,
        message: &botgate_contract::InboundMessage,
    ) -> Option<Result<String, crate::store::StoreError>> {
        let limits = self.conversations.limits();
        let key = format!("web:{}:{}", self.name, message.conversation);
        let prefix = self.conversations.keys().of(
            &self.name,
            botgate_contract::Platform::Web.as_str(),
            &message.conversation,
        );
        let allowed = limits
            .allow_in(
                prefix,
                &key,
                &message.message_id,
                self.settings.messages_per_minute,
                std::time::Duration::from_secs(60),
            )
            .await;
        match allowed {
            Err(error) => return Some(Err(error)),
            Ok(false) => {
                let notice = self
                    .conversations
                    .bot(&self.name)
                    .and_then(|bot| bot.settings.rate_limit.as_ref())
                    .map_or_else(|| DEFAULT_RATE_NOTICE.to_owned(), |rate| rate.reply.clone());
                return Some(Ok(notice));
            }
            Ok(true) => {}
        }
        self.conversations
            .rate_limit_notice(&self.name, message)
            .await
            .transpose()
    }
}

const DEFAULT_RATE_NOTICE: &str = "您发送得太快了，请稍后再试。";
