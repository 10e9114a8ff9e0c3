//! The HTTP surface: one module per concern, all mounted by [`configure`].

mod bot;
mod error;
mod health;
pub mod inbound;
mod span;
mod state;

pub use bot::BotName;
pub use error::CallbackError;
pub use span::RequestSpan;
pub use state::AppState;

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::web;

use crate::channels::{Channel, Channels, Registered, Visitor};
use bot::RouteBot;

/// Mounts every route; each platform's configured bots get literal routes ahead of the
/// `{bot}` patterns.
pub fn configure(config: &mut web::ServiceConfig, channels: &Channels) {
    channels.visit(&mut Mount(config));
    config
        .route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/metrics", web::get().to(health::metrics));
}

struct Mount<'a>(&'a mut web::ServiceConfig);

impl Visitor for Mount<'_> {
    fn visit<C: Channel + Registered>(&mut self, channels: &HashMap<String, C>) {
        mount(self.0, channels);
    }
}

/// `/{route}/NAME` for each configured bot, then `/{route}/{bot}` for names no bot has (404):
/// POST for messages, and GET too where the platform verifies the URL with one.
fn mount<C: Channel + Registered>(config: &mut web::ServiceConfig, channels: &HashMap<String, C>) {
    C::mount(channels, config);
    if !C::CALLBACK {
        return;
    }
    let resource = |path: String| {
        let resource = web::resource(path).route(web::post().to(inbound::receive::<C>));
        match C::HANDSHAKE {
            true => resource.route(web::get().to(inbound::receive::<C>)),
            false => resource,
        }
    };
    for name in channels.keys().filter(|name| BotName::routable(name)) {
        config.service(
            resource(format!("/{}/{name}", C::ROUTE)).app_data(RouteBot(Arc::from(name.as_str()))),
        );
    }
    config.service(resource(format!("/{}/{{bot}}", C::ROUTE)));
}
