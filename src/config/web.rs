//! `[bots.NAME.web]`: the website chat (a page at `/web/NAME` and a one-line embed).

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::ConfigError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebSettings {
    /// The chat page's title and header.
    #[serde(default = "default_title")]
    pub title: String,
    /// The first bubble a visitor sees; left out: the bot's `welcome`.
    #[serde(default)]
    pub welcome: Option<String>,
    /// Sites that may embed the chat and call its API (`https://www.example.com`, or `*` for
    /// any); empty: only pages served by botgate itself.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// The key the site's own server signs logged-in users' ids with, so they keep their
    /// memory across devices; left out: every visitor is an anonymous browser.
    #[serde(default)]
    pub access_key: Option<SecretString>,
    /// Longest message a visitor may send, in characters.
    #[serde(default = "default_max_message_chars")]
    pub max_message_chars: usize,
    /// Messages one visitor may send per minute, across every replica (the bot's own
    /// `rate_limit` applies too).
    #[serde(default = "default_messages_per_minute")]
    pub messages_per_minute: u32,
    /// Thumbs up/down on each answer.
    #[serde(default = "yes")]
    pub feedback: bool,
}

fn default_title() -> String {
    "在线客服".into()
}
fn default_max_message_chars() -> usize {
    2000
}
fn default_messages_per_minute() -> u32 {
    20
}
fn yes() -> bool {
    true
}

impl WebSettings {
    pub(crate) fn validate(&self, bot: &str) -> Result<(), ConfigError> {
        let field = |name: &str| format!("bots.{bot}.web.{name}");
        for origin in &self.allowed_origins {
            if origin != "*" && !is_origin(origin) {
                return Err(ConfigError::invalid(
                    field("allowed_origins"),
                    format!("`{origin}` is not an origin: scheme://host[:port], no path (or `*`)"),
                ));
            }
        }
        if let Some(key) = &self.access_key {
            if key.expose_secret().len() < 16 {
                return Err(ConfigError::invalid(
                    field("access_key"),
                    "must be at least 16 characters (it signs visitor identities)",
                ));
            }
        }
        if self.max_message_chars == 0 || self.messages_per_minute == 0 {
            return Err(ConfigError::invalid(
                field("max_message_chars"),
                "max_message_chars and messages_per_minute must be at least 1",
            ));
        }
        Ok(())
    }
}

fn is_origin(origin: &str) -> bool {
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    matches!(scheme, "http" | "https")
        && !authority.is_empty()
        && !authority.contains(['/', '?', '#', ' ', '*'])
}
