//! What the gateway sends to DingTalk (outbound.md §4): session-webhook replies, robot OpenAPI
//! messages, AI cards and the access token request, plus how an answer is cut into messages.

mod card;
mod host;
mod openapi;
mod webhook;

use botgate_text::PartsPolicy;

pub use card::{
    out_track_id, CardCreateAndDeliver, CardData, CardInstanceUpdate, CardStreamingUpdate,
    FlowStatus, GroupDeliver, RobotDeliver, SupportForward, AI_CARD_CONTENT_KEY,
    AI_MARKDOWN_CARD_TEMPLATE, CARD_CREATE_AND_DELIVER_PATH, CARD_INSTANCES_PATH, CARD_SCOPES,
    CARD_STREAMING_PATH,
};
pub use host::{webhook_host_allowed, DEFAULT_WEBHOOK_HOSTS};
pub use openapi::{
    AccessDeniedDetail, AccessTokenRequest, AccessTokenResponse, BatchSendOto,
    BatchSendOtoResponse, GroupMessageSend, GroupMessageSendResponse, OpenApiError, OpenApiSend,
    ACCESS_TOKEN_HEADER, ACCESS_TOKEN_URL, BATCH_SEND_OTO_URL, GROUP_MESSAGE_SEND_URL,
    MAX_BATCH_USER_IDS, OPENAPI_BASE,
};
pub use webhook::{
    preview_title, session_webhook_usable, At, Markdown, SessionWebhookMessage,
    SessionWebhookResponse, Text, WEBHOOK_SAFETY_MARGIN,
};

/// One message to send, whatever the channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutgoingMessage<'a> {
    Text(&'a str),
    /// `title` is what notifications and the conversation list show (see [`preview_title`]).
    Markdown {
        title: &'a str,
        text: &'a str,
    },
}

/// UTF-8 bytes per part. DingTalk's markdown is reliable up to ~3500 *characters* (3rd-party,
/// outbound.md §4.5) and `PartsPolicy` counts bytes; 3000 bytes is ≤ 3000 characters for any
/// text (≈ 1000 for Chinese), and far inside the 20 000-byte body limit even JSON-escaped.
pub const PART_BYTES: usize = 3000;

/// Answers as DingTalk shows them: markdown kept, cut on paragraph (then line, sentence)
/// boundaries into parts of at most [`PART_BYTES`]. No part cap: DingTalk has no per-answer
/// quota like WeChat's five messages.
pub const PARTS: PartsPolicy = PartsPolicy {
    max_bytes: PART_BYTES,
    max_parts: None,
    continue_hint: None,
    truncated_hint: "",
    plain_text: false,
};
