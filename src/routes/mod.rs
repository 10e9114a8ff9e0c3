//! The HTTP surface: one module per concern, all mounted by [`configure`].

mod bot;
mod error;
mod health;
mod span;
mod webhook;
pub mod wechat;

pub use bot::BotName;
pub use error::WebhookError;
pub use span::RequestSpan;

use std::sync::Arc;

use actix_web::web;

use bot::RouteBot;

/// Mounts every route; `wechat_bots` and `webhook_bots` (configured names) get literal routes
/// ahead of the `{bot}` patterns.
pub fn configure<'a>(
    config: &mut web::ServiceConfig,
    wechat_bots: impl IntoIterator<Item = &'a String>,
    webhook_bots: impl IntoIterator<Item = &'a String>,
) {
    for name in wechat_bots
        .into_iter()
        .filter(|name| BotName::routable(name))
    {
        config.service(
            web::resource(format!("/wechat/{name}"))
                .app_data(RouteBot(Arc::from(name.as_str())))
                .route(web::get().to(wechat::verify))
                .route(web::post().to(wechat::receive)),
        );
    }
    for name in webhook_bots
        .into_iter()
        .filter(|name| BotName::routable(name))
    {
        config.service(
            web::resource(format!("/webhook/{name}"))
                .app_data(RouteBot(Arc::from(name.as_str())))
                .route(web::post().to(webhook::receive)),
        );
    }
    config
        .route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/metrics", web::get().to(health::metrics))
        .route("/wechat/{bot}", web::get().to(wechat::verify))
        .route("/wechat/{bot}", web::post().to(wechat::receive))
        .route("/webhook/{bot}", web::post().to(webhook::receive));
}
