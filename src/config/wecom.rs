//! `[bots.NAME.wecom]`: a WeCom (企业微信) self-built app, and the customer-service (微信客服)
//! accounts it manages.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::ConfigError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WecomSettings {
    /// The corp id (`ww…`): every callback's ciphertext is addressed to it.
    pub corp_id: String,
    /// The self-built app's AgentId, which `message/send` sends as.
    pub agent_id: u64,
    /// The self-built app's secret.
    pub secret: SecretString,
    /// The callback's Token and EncodingAESKey, as set on the app's "接收消息" page.
    pub token: SecretString,
    pub encoding_aes_key: SecretString,
    /// Also serve the 微信客服 accounts this app manages (their callbacks come to the same URL).
    #[serde(default)]
    pub kf: bool,
    /// The secret the customer-service API uses, when it is not the app's own.
    #[serde(default)]
    pub kf_secret: Option<SecretString>,
    /// App replies as plain text, or as WeCom markdown (which renders only inside the WeCom
    /// client, not for members reading through WeChat). Customer service is always plain.
    #[serde(default)]
    pub reply_format: ReplyFormat,
    #[serde(default = "default_api_base")]
    pub api_base: String,
    /// How far a request's `timestamp` may be from this server's clock, either way (at least 30).
    #[serde(default = "default_timestamp_window_secs")]
    pub timestamp_window_secs: u64,
    /// What a customer entering a 微信客服 session is greeted with (the welcome code lives 20 s,
    /// so it is never an LLM answer); left out: the bot's `welcome`.
    #[serde(default)]
    pub kf_welcome: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplyFormat {
    #[default]
    Text,
    Markdown,
}

fn default_api_base() -> String {
    "https://qyapi.weixin.qq.com".into()
}

fn default_timestamp_window_secs() -> u64 {
    botgate_wecom::DEFAULT_TIMESTAMP_WINDOW.as_secs()
}

impl WecomSettings {
    /// The secret whose token the customer-service API takes.
    pub fn kf_secret(&self) -> &SecretString {
        self.kf_secret.as_ref().unwrap_or(&self.secret)
    }

    pub(super) fn validate(&self, bot: &str) -> Result<(), ConfigError> {
        let field = |leaf: &str| format!("bots.{bot}.wecom.{leaf}");
        if self.corp_id.trim().is_empty() {
            return Err(ConfigError::invalid(field("corp_id"), "must not be empty"));
        }
        let token = self.token.expose_secret();
        if token.is_empty() || token.len() > 32 || !token.chars().all(|c| c.is_ascii_alphanumeric())
        {
            return Err(ConfigError::invalid(
                field("token"),
                "expected 1 to 32 ASCII letters and digits, as set in the WeCom console",
            ));
        }
        if let Err(error) =
            botgate_wxcrypt::EncodingAesKey::parse(self.encoding_aes_key.expose_secret())
        {
            return Err(ConfigError::invalid(
                field("encoding_aes_key"),
                error.to_string(),
            ));
        }
        if self.secret.expose_secret().trim().is_empty() {
            return Err(ConfigError::invalid(field("secret"), "must not be empty"));
        }
        if !super::validate::http_url(&self.api_base) {
            return Err(ConfigError::invalid(
                field("api_base"),
                "expected an http:// or https:// URL",
            ));
        }
        if self.timestamp_window_secs < botgate_wecom::MIN_TIMESTAMP_WINDOW.as_secs() {
            return Err(ConfigError::invalid(
                field("timestamp_window_secs"),
                "must be at least 30: WeCom retries a callback within seconds, possibly with its first timestamp",
            ));
        }
        Ok(())
    }
}
