//! The settings types, one struct per TOML table, with their defaults.

use std::collections::BTreeMap;

use secrecy::SecretString;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default)]
    pub server: ServerSettings,
    #[serde(default)]
    pub store: StoreSettings,
    #[serde(default)]
    pub delivery: DeliverySettings,
    #[serde(default)]
    pub llm: BTreeMap<String, LlmSettings>,
    #[serde(default)]
    pub bots: BTreeMap<String, BotSettings>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    pub listen: String,
    /// Requests with a larger body are refused with 413 before any parsing.
    pub max_body_bytes: usize,
    /// On SIGTERM, answers in flight get this long to finish.
    pub shutdown_timeout_secs: u64,
    /// HTTP worker threads; 0 = one per core.
    pub workers: usize,
    /// Key of the hash that stands for user ids in logs ([`crate::telemetry::log_id`]). Set the
    /// same value on every replica so one user's lines correlate across them; left out, each
    /// process draws a random key, so its hashes match nothing outside that process.
    pub log_id_key: Option<SecretString>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            listen: "0.0.0.0:8080".into(),
            max_body_bytes: 256 * 1024,
            shutdown_timeout_secs: 30,
            workers: 0,
            log_id_key: None,
        }
    }
}

/// The asynchronous delivery engine: a durable queue and the workers that drain it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliverySettings {
    /// Jobs one replica works on at once (each mostly waits on the LLM, so this can be large).
    pub workers: usize,
    /// A job whose worker has been silent this long is taken over by another replica.
    pub visibility_timeout_secs: u64,
    /// Attempts of one send before the job is dead-lettered.
    pub send_attempts: u32,
    /// Deliveries of one job (first + reclaims) before it is dead-lettered.
    pub max_deliveries: u64,
    /// How long a platform message id is remembered for deduplication.
    pub dedup_ttl_secs: u64,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        DeliverySettings {
            workers: 64,
            visibility_timeout_secs: 30,
            send_attempts: 5,
            max_deliveries: 5,
            dedup_ttl_secs: 24 * 3600,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSettings {
    /// Left out: the embedded in-process store (single instance only). With `cluster`, one or
    /// more of the cluster's nodes, separated by commas.
    pub redis_url: Option<SecretString>,
    /// `redis_url` names nodes of a Redis Cluster; `key_prefix` must then be a hash tag
    /// (`{botgate}`), so that each script's keys share a slot.
    pub cluster: bool,
    pub key_prefix: String,
    /// How many shards conversations are spread over (see `keyspace.rs`); more than one only
    /// pays on a Redis Cluster, where each shard's keys may sit on a different node.
    pub shards: usize,
    pub session_ttl_secs: u64,
    pub max_turns: usize,
}

impl StoreSettings {
    pub fn keyspace(&self) -> crate::keyspace::KeySpace {
        crate::keyspace::KeySpace::new(&self.key_prefix, self.shards)
    }
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            redis_url: None,
            cluster: false,
            key_prefix: "botgate".into(),
            shards: 1,
            session_ttl_secs: 1800,
            max_turns: 20,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum LlmSettings {
    Bailian(BailianSettings),
    Openai(OpenAiSettings),
    Rules(RulesSettings),
}

impl LlmSettings {
    /// The provider's `http2` setting: unset is `auto`.
    pub fn http2(&self) -> Option<bool> {
        match self {
            LlmSettings::Bailian(bailian) => bailian.http2,
            LlmSettings::Openai(openai) => openai.http2,
            LlmSettings::Rules(_) => None,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            LlmSettings::Bailian(_) => "bailian",
            LlmSettings::Openai(_) => "openai",
            LlmSettings::Rules(_) => "rules",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BailianSettings {
    pub app_id: String,
    pub api_key: SecretString,
    #[serde(default = "default_bailian_base_url")]
    pub base_url: String,
    /// `X-DashScope-WorkSpace`: only for apps outside the default workspace.
    #[serde(default)]
    pub workspace: Option<String>,
    /// Stream the answer (SSE, incremental output). Non-streaming gives the same final text.
    #[serde(default = "yes")]
    pub stream: bool,
    /// `true`: HTTP/2 only (over TLS via ALPN, or cleartext h2c); `false`: HTTP/1.1, a
    /// connection per call in flight. Unset: HTTP/2 when the TLS handshake agrees on it, else
    /// HTTP/1.1 (see `LlmProtocol`).
    #[serde(default)]
    pub http2: Option<bool>,
    /// Sent as `input.biz_params` (prompt variables, plugin parameters, workflow inputs).
    #[serde(default)]
    pub biz_params: Option<toml::Table>,
    #[serde(flatten)]
    pub limits: CallLimits,
}

fn default_bailian_base_url() -> String {
    "https://dashscope.aliyuncs.com".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenAiSettings {
    /// Up to and including `/v1`, e.g. `https://dashscope.aliyuncs.com/compatible-mode/v1`.
    pub base_url: String,
    #[serde(default)]
    pub api_key: Option<SecretString>,
    pub model: String,
    #[serde(default)]
    pub system_prompt: Option<String>,
    #[serde(default = "yes")]
    pub stream: bool,
    /// `true`: HTTP/2 only (over TLS via ALPN, or cleartext h2c); `false`: HTTP/1.1, a
    /// connection per call in flight. Unset: HTTP/2 when the TLS handshake agrees on it, else
    /// HTTP/1.1 (see `LlmProtocol`).
    #[serde(default)]
    pub http2: Option<bool>,
    #[serde(flatten)]
    pub limits: CallLimits,
}

/// How long one answer may take, and how patiently transient failures are retried.
#[derive(Debug, Clone, Deserialize)]
pub struct CallLimits {
    /// Total deadline for one answer, retries included.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// Longest silence tolerated between two stream chunks.
    #[serde(default = "default_idle_timeout_secs")]
    pub idle_timeout_secs: u64,
    /// Retries after the first attempt, for throttling, 5xx and timeouts only.
    #[serde(default = "default_retries")]
    pub retries: u32,
}

fn default_timeout_secs() -> u64 {
    60
}
fn default_idle_timeout_secs() -> u64 {
    30
}
fn default_retries() -> u32 {
    3
}
fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesSettings {
    #[serde(default)]
    pub rules: Vec<RuleSettings>,
    /// When no rule matches and this provider is the bot's only answerer.
    #[serde(default = "default_rules_answer")]
    pub default_answer: String,
}

pub fn default_rules_answer() -> String {
    "我还在学习中，这个问题暂时回答不了。输入 /help 查看可用命令。".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSettings {
    /// Matches when the message contains any of these (case-insensitive).
    #[serde(default)]
    pub keywords: Vec<String>,
    /// Matches when this regular expression finds a match in the message.
    #[serde(default)]
    pub regex: Option<String>,
    pub answer: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HistoryMode {
    /// History kept by botgate (Redis or embedded) and sent as `input.messages`.
    #[default]
    Messages,
    /// History kept by Bailian under its `session_id` (1 h, 50 turns), which botgate remembers.
    BailianSession,
}

/// Names that are safe to use as a literal path segment (no pattern syntax, no separators).
pub fn routable_bot_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.'))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BotSettings {
    /// The `[llm.NAME]` that answers; may be left out when exactly one is configured.
    #[serde(default)]
    pub llm: Option<String>,
    /// A `[llm.NAME]` of kind "rules" consulted first; a hit costs no LLM call.
    #[serde(default)]
    pub rules: Option<String>,
    #[serde(default = "default_farewell")]
    pub farewell: String,
    #[serde(default = "default_welcome")]
    pub welcome: String,
    #[serde(default = "default_fallback")]
    pub fallback: String,
    #[serde(default = "default_refusal")]
    pub refusal: String,
    /// What counts as "I'm done"; compared with the whole message, ignoring case and end punctuation.
    #[serde(default = "default_farewell_phrases")]
    pub farewell_phrases: Vec<String>,
    #[serde(default)]
    pub history: HistoryMode,
    /// Append a short list of the documents Bailian cited (`doc_references`).
    #[serde(default)]
    pub show_sources: bool,
    /// Pass images to the LLM application (vision apps); otherwise answer `image_unsupported`.
    #[serde(default)]
    pub images: bool,
    #[serde(default = "default_image_unsupported")]
    pub image_unsupported: String,
    #[serde(default = "default_voice_unrecognized")]
    pub voice_unrecognized: String,
    #[serde(default)]
    pub wechat: Option<WechatSettings>,
    #[serde(default)]
    pub webhook: Option<WebhookSettings>,
    #[serde(default)]
    pub wecom: Option<super::WecomSettings>,
    #[serde(default)]
    pub web: Option<super::WebSettings>,
    #[serde(default)]
    pub dingtalk: Option<super::DingtalkSettings>,
    /// Messages one user may send per `per_secs`; past it they get `reply` and no LLM call.
    #[serde(default)]
    pub rate_limit: Option<RateLimitSettings>,
    /// LLM calls this bot may have in flight at once, across all replicas.
    #[serde(default)]
    pub max_concurrent_llm_calls: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSettings {
    pub messages: u32,
    #[serde(default = "default_rate_window")]
    pub per_secs: u64,
    #[serde(default = "default_rate_reply")]
    pub reply: String,
}

fn default_rate_window() -> u64 {
    60
}
fn default_rate_reply() -> String {
    "您发送得太快了，请稍后再试。".into()
}

/// The generic signed webhook channel: `POST /webhook/{bot}` in, `POST deliver_url` out.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// HMAC-SHA256 key for `X-Botgate-Signature` on both directions.
    pub secret: SecretString,
    pub deliver_url: String,
    /// Longest answer part per delivery, in UTF-8 bytes.
    #[serde(default = "default_webhook_part_bytes")]
    pub max_part_bytes: usize,
}

fn default_webhook_part_bytes() -> usize {
    4000
}

pub fn default_farewell() -> String {
    "感谢您的咨询，再见".into()
}
fn default_welcome() -> String {
    "您好，有什么可以帮您？".into()
}
fn default_fallback() -> String {
    "抱歉，服务暂时繁忙，请稍后再试".into()
}
fn default_refusal() -> String {
    "抱歉，这个问题我无法回答".into()
}
fn default_image_unsupported() -> String {
    "暂时无法识别图片，请用文字描述您的问题。".into()
}
fn default_voice_unrecognized() -> String {
    "抱歉，没有听清您的语音，请打字告诉我。".into()
}
pub fn default_farewell_phrases() -> Vec<String> {
    [
        "再见",
        "拜拜",
        "没有了",
        "没有了谢谢",
        "好的我知道了",
        "我知道了",
        "谢谢再见",
        "好的谢谢再见",
        "bye",
        "bye bye",
        "goodbye",
        "that's all",
        "thats all",
        "that is all",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplyMode {
    /// Answer inside the webhook response (any account, including unverified subscription accounts).
    #[default]
    Passive,
    /// Acknowledge at once and send through the customer-service API (verified accounts).
    Active,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WechatSettings {
    pub app_id: String,
    pub token: SecretString,
    /// Left out for a plaintext-only account.
    #[serde(default)]
    pub encoding_aes_key: Option<SecretString>,
    /// Needed for reply_mode = "active".
    #[serde(default)]
    pub app_secret: Option<SecretString>,
    #[serde(default)]
    pub reply_mode: ReplyMode,
    #[serde(default = "default_placeholder")]
    pub placeholder: String,
    #[serde(default = "default_wechat_api_base")]
    pub api_base: String,
    /// Refuse plaintext requests. Plaintext mode signs no body, and safe-mode URLs carry a valid
    /// plaintext `signature`, so a leaked URL could be replayed with any body. Left out: on
    /// whenever `encoding_aes_key` is set (compatible and safe mode both send `msg_signature`);
    /// see [`WechatSettings::requires_encryption`]. `false` only while the console is still in
    /// plaintext mode with a key already entered here.
    #[serde(default)]
    pub require_encryption: Option<bool>,
    /// How far a request's `timestamp` may be from this server's clock, either way, before it is
    /// refused as a replay (401). At least 30: WeChat's retries of one message span about 15 s.
    #[serde(default = "default_timestamp_window_secs")]
    pub timestamp_window_secs: u64,
    /// WeChat's own deadline for one request: leave it at 5000; tests scale it down.
    #[serde(default = "default_deadline_ms")]
    pub deadline_ms: u64,
    /// Passive mode: how long one WeChat request waits for the answer. Between 70% of
    /// `deadline_ms` and `deadline_ms` − 100 (3500..=4900 by default).
    #[serde(default = "default_passive_wait_ms")]
    pub passive_wait_ms: u64,
}

impl WechatSettings {
    /// `require_encryption` as configured, else on exactly when the account has a key.
    pub fn requires_encryption(&self) -> bool {
        self.require_encryption
            .unwrap_or(self.encoding_aes_key.is_some())
    }
}

fn default_timestamp_window_secs() -> u64 {
    botgate_wechat::DEFAULT_TIMESTAMP_WINDOW.as_secs()
}

fn default_deadline_ms() -> u64 {
    5000
}

fn default_passive_wait_ms() -> u64 {
    4500
}

fn default_placeholder() -> String {
    "正在思考中，回复任意文字获取回答".into()
}
fn default_wechat_api_base() -> String {
    "https://api.weixin.qq.com".into()
}
