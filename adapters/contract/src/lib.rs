//! The contract between platform adapters and the conversation core: what an adapter hands over.
//!
//! Adapters are pure: they take the bytes of a request and the current time, and return an
//! [`InboundMessage`] or an [`AdapterError`]; [`Adapter`] is the trait every platform implements. They never do I/O, and this crate depends on
//! nothing of ours (no actix, no redis), so the dependency direction is enforced by the graph.

mod adapter;

pub use adapter::{Adapter, HeaderList, Headers, Inbound, Method, Outcome, RawRequest, Response};

use std::fmt;

/// The platform a message came from; part of every storage key, so names are stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Platform {
    Console,
    Wechat,
    Wecom,
    Dingtalk,
    Web,
    /// Used by tests that drive the core directly.
    Test,
    /// The generic signed webhook channel (custom integrations; acknowledge, then deliver by POST).
    Webhook,
}

impl Platform {
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Console => "console",
            Platform::Wechat => "wechat",
            Platform::Wecom => "wecom",
            Platform::Dingtalk => "dingtalk",
            Platform::Web => "web",
            Platform::Test => "test",
            Platform::Webhook => "webhook",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "console" => Platform::Console,
            "wechat" => Platform::Wechat,
            "wecom" => Platform::Wecom,
            "dingtalk" => Platform::Dingtalk,
            "web" => Platform::Web,
            "test" => Platform::Test,
            "webhook" => Platform::Webhook,
            _ => return None,
        })
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the user sent, reduced to what the conversation core acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// A text message (menu clicks arrive here too: the menu key is treated as a question).
    Text(String),
    /// An image the user sent, by a URL the LLM application can fetch.
    Image { url: String },
    /// A voice message; `recognition` is the platform's own speech-to-text when it gave one.
    Voice { recognition: Option<String> },
    /// The user opened the conversation for the first time (subscribe, enter session, widget open).
    FirstContact,
    /// The user left for good (unsubscribe): the conversation's memory is forgotten, no reply.
    Left,
    /// Anything else the platform tells us that needs no answer; acknowledged and dropped.
    Ignored { kind: String },
}

/// One inbound message, decoded and verified by an adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundMessage {
    pub platform: Platform,
    /// Who the conversation is with, within this bot and platform (a user or a group).
    pub conversation: String,
    /// Who sent this message (equal to `conversation` in one-to-one chats).
    pub sender: String,
    /// The platform's id for this delivery, stable across the platform's retries: the dedup key.
    pub message_id: String,
    pub content: Content,
}

/// Why an adapter refused a request. Every variant maps to a 4xx; none of them carries secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdapterError {
    #[error("missing query parameter `{0}`")]
    MissingParameter(&'static str),
    #[error("signature does not match")]
    BadSignature,
    /// The request's timestamp is further from the receiver's clock than its window allows
    /// (a replay of an old request, or a clock out of sync). `skew_secs` is now minus the
    /// timestamp: positive when the request claims to be older than now, negative when newer.
    #[error("timestamp outside the accepted window (skew {skew_secs} s)")]
    StaleTimestamp { skew_secs: i64 },
    #[error("malformed body: {0}")]
    Malformed(String),
    #[error("cannot decrypt: {0}")]
    Decrypt(String),
    #[error("message is addressed to another receiver id")]
    WrongReceiver,
    #[error("body too large")]
    TooLarge,
    #[error("this bot has no encryption key configured, but the request is encrypted")]
    EncryptionNotConfigured,
}
