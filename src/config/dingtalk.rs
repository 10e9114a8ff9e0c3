//! `[bots.NAME.dingtalk]`: a DingTalk (钉钉) enterprise-internal robot, in HTTP mode (DingTalk
//! posts to `/dingtalk/{bot}`) or Stream mode (botgate connects out).

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::ConfigError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DingtalkSettings {
    /// The robot app's AppKey (Stream mode's clientId).
    pub app_key: String,
    /// The robot app's AppSecret: it signs HTTP-mode callbacks and fetches the access token.
    pub app_secret: SecretString,
    /// The `robotCode` messages must carry and OpenAPI sends name; left out: `app_key`.
    #[serde(default)]
    pub robot_code: Option<String>,
    #[serde(default)]
    pub mode: DingtalkMode,
    #[serde(default)]
    pub reply: DingtalkReply,
    #[serde(default = "default_api_base")]
    pub api_base: String,
    /// Where session-webhook replies may go: exact hosts (over https), or full origins
    /// (`http://127.0.0.1:8080`) for a local test double. A message's `sessionWebhook` is not
    /// covered by HTTP mode's signature, so anything else is refused.
    #[serde(default = "default_session_webhook_hosts")]
    pub session_webhook_hosts: Vec<String>,
    /// The AI card template for `reply = "card"`; left out: DingTalk's public AI markdown card.
    #[serde(default)]
    pub card_template_id: Option<String>,
    /// The template's streaming variable, which receives the answer.
    #[serde(default = "default_card_content_key")]
    pub card_content_key: String,
    /// How far a callback's `timestamp` may be from this server's clock, either way.
    #[serde(default = "default_timestamp_window_secs")]
    pub timestamp_window_secs: u64,
}

/// How messages reach botgate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DingtalkMode {
    /// DingTalk posts each message to `/dingtalk/{bot}` (a public URL is needed).
    #[default]
    Http,
    /// botgate holds a WebSocket to DingTalk's Stream gateway (no public URL needed).
    Stream,
}

/// How answers look in DingTalk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DingtalkReply {
    #[default]
    Text,
    Markdown,
    /// An AI card that shows the answer as it is generated (markdown replies when the card
    /// cannot be used).
    Card,
}

fn default_api_base() -> String {
    botgate_dingtalk::outbound::OPENAPI_BASE.into()
}

fn default_session_webhook_hosts() -> Vec<String> {
    botgate_dingtalk::outbound::DEFAULT_WEBHOOK_HOSTS
        .iter()
        .map(|host| (*host).to_owned())
        .collect()
}

fn default_card_content_key() -> String {
    botgate_dingtalk::outbound::AI_CARD_CONTENT_KEY.into()
}

fn default_timestamp_window_secs() -> u64 {
    botgate_dingtalk::DEFAULT_TIMESTAMP_WINDOW.as_secs()
}

impl DingtalkSettings {
    pub fn robot_code(&self) -> &str {
        self.robot_code.as_deref().unwrap_or(&self.app_key)
    }

    pub fn card_template_id(&self) -> &str {
        self.card_template_id
            .as_deref()
            .unwrap_or(botgate_dingtalk::outbound::AI_MARKDOWN_CARD_TEMPLATE)
    }

    pub(super) fn validate(&self, bot: &str) -> Result<(), ConfigError> {
        let field = |leaf: &str| format!("bots.{bot}.dingtalk.{leaf}");
        if self.app_key.trim().is_empty() {
            return Err(ConfigError::invalid(field("app_key"), "must not be empty"));
        }
        if self.app_secret.expose_secret().trim().is_empty() {
            return Err(ConfigError::invalid(
                field("app_secret"),
                "must not be empty",
            ));
        }
        if self
            .robot_code
            .as_deref()
            .is_some_and(|code| code.trim().is_empty())
        {
            return Err(ConfigError::invalid(
                field("robot_code"),
                "must not be empty (leave it out to use app_key)",
            ));
        }
        if self
            .card_template_id
            .as_deref()
            .is_some_and(|id| id.trim().is_empty())
        {
            return Err(ConfigError::invalid(
                field("card_template_id"),
                "must not be empty (leave it out for DingTalk's public AI markdown card)",
            ));
        }
        if self.card_content_key.trim().is_empty() {
            return Err(ConfigError::invalid(
                field("card_content_key"),
                "must name the template's streaming variable (msgContent for the public AI card)",
            ));
        }
        if !super::validate::http_url(&self.api_base) {
            return Err(ConfigError::invalid(
                field("api_base"),
                "expected an http:// or https:// URL",
            ));
        }
        if self.session_webhook_hosts.is_empty() {
            return Err(ConfigError::invalid(
                field("session_webhook_hosts"),
                "must name at least one host (DingTalk's is oapi.dingtalk.com)",
            ));
        }
        for entry in &self.session_webhook_hosts {
            if !webhook_host_entry(entry) {
                return Err(ConfigError::invalid(
                    field("session_webhook_hosts"),
                    format!("{entry:?}: expected a host name (oapi.dingtalk.com) or an origin (http://127.0.0.1:8080)"),
                ));
            }
        }
        if self.timestamp_window_secs < botgate_dingtalk::MIN_TIMESTAMP_WINDOW.as_secs() {
            return Err(ConfigError::invalid(
                field("timestamp_window_secs"),
                "must be at least 60: the gateway's clock has whole seconds and clocks drift",
            ));
        }
        Ok(())
    }
}

/// A bare host name, or `scheme://host[:port]` with nothing after it.
fn webhook_host_entry(entry: &str) -> bool {
    let host_like = |value: &str| {
        !value.is_empty()
            && value
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b':'))
    };
    match entry
        .strip_prefix("https://")
        .or_else(|| entry.strip_prefix("http://"))
    {
        Some(authority) => host_like(authority),
        None => host_like(entry) && !entry.contains(':'),
    }
}
