//! The HTTP surface: one module per concern, all mounted by [`configure`].

mod bot;
mod error;
mod health;
pub mod inbound;
mod span;
mod state;
mod webhook;
mod wechat;

pub use bot::BotName;
pub use error::CallbackError;
pub use span::RequestSpan;
pub use state::AppState;

use std::sync::Arc;

use actix_web::web;

use crate::channels::webhook::WebhookChannel;
use crate::channels::wechat::WechatChannel;
use bot::RouteBot;
use inbound::Channel;

/// Mounts every route; each platform's configured bots get literal routes ahead of the
/// `{bot}` patterns.
pub fn configure<'a>(
    config: &mut web::ServiceConfig,
    wechat_bots: impl IntoIterator<Item = &'a String>,
    webhook_bots: impl IntoIterator<Item = &'a String>,
) {
    mount::<WechatChannel>(config, wechat_bots);
    mount::<WebhookChannel>(config, webhook_bots);
    config
        .route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/metrics", web::get().to(health::metrics));
}

/// `/{route}/NAME` for each configured bot, then `/{route}/{bot}` for names no bot has (404):
/// POST for messages, and GET too where the platform verifies the URL with one.
fn mount<'a, C: Channel>(
    config: &mut web::ServiceConfig,
    bots: impl IntoIterator<Item = &'a String>,
) {
    let resource = |path: String| {
        let resource = web::resource(path).route(web::post().to(inbound::receive::<C>));
        match C::HANDSHAKE {
            true => resource.route(web::get().to(inbound::receive::<C>)),
            false => resource,
        }
    };
    for name in bots.into_iter().filter(|name| BotName::routable(name)) {
        config.service(
            resource(format!("/{}/{name}", C::ROUTE)).app_data(RouteBot(Arc::from(name.as_str()))),
        );
    }
    config.service(resource(format!("/{}/{{bot}}", C::ROUTE)));
}
