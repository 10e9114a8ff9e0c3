//! Which bot a request is for: fixed by a configured bot's own route, else the `{bot}` segment.
//!
//! Each configured bot gets static routes (`/wechat/shop`), matched by comparing strings; the
//! `{bot}` pattern behind them, which actix-router matches with a regular expression (3.4% of
//! the instructions of a whole WeChat message), only sees names no bot has.

use std::fmt;
use std::future::{ready, Ready};
use std::ops::Deref;
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};

/// Route data naming the bot of a static route.
#[derive(Clone)]
pub struct RouteBot(pub Arc<str>);

pub struct BotName(Arc<str>);

impl BotName {
    /// Names that are safe to register as a literal path (no pattern syntax, no separators).
    pub fn routable(name: &str) -> bool {
        crate::config::routable_bot_name(name)
    }
}

impl FromRequest for BotName {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let name = match request.app_data::<RouteBot>() {
            Some(route) => Some(route.0.clone()),
            None => request.match_info().get("bot").map(Arc::from),
        };
        ready(
            name.map(BotName)
                .ok_or_else(|| actix_web::error::ErrorNotFound("no bot named in the path")),
        )
    }
}

impl Deref for BotName {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BotName {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_become_literal_routes() {
        assert!(BotName::routable("shop-1.cn_2"));
        for name in ["", "a/b", "{x}", "a*", "店铺", "a b"] {
            assert!(!BotName::routable(name), "{name}");
        }
    }
}
