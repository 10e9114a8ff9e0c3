//! The HTTP surface: one module per concern, all mounted by [`configure`].

mod error;
mod health;
mod webhook;
pub mod wechat;

pub use error::WebhookError;

use actix_web::web;

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/metrics", web::get().to(health::metrics))
        .route("/wechat/{bot}", web::get().to(wechat::verify))
        .route("/wechat/{bot}", web::post().to(wechat::receive))
        .route("/webhook/{bot}", web::post().to(webhook::receive));
}
