//! Replies through a message's session webhook (outbound.md §4.2): no token, valid ~90 minutes.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::host::webhook_host_allowed;
use super::OutgoingMessage;

/// A webhook this close to its expiry is treated as expired: the request takes time in flight,
/// and DingTalk's clock is not ours (outbound.md §5.2 caches it until expiry − 60 s).
pub const WEBHOOK_SAFETY_MARGIN: Duration = Duration::from_secs(60);

/// Whether the session webhook `url`, expiring at `expires_ms`, can still be used at `now_ms`
/// (with [`WEBHOOK_SAFETY_MARGIN`] to spare) and points at one of `hosts`.
pub fn session_webhook_usable(url: &str, expires_ms: u64, now_ms: u64, hosts: &[&str]) -> bool {
    let margin_ms = WEBHOOK_SAFETY_MARGIN.as_millis() as u64;
    now_ms.saturating_add(margin_ms) < expires_ms && webhook_host_allowed(url, hosts)
}

/// The body POSTed to a session webhook:
/// `{"msgtype":"text","text":{"content":…},"at":{"atUserIds":[…],"isAtAll":false}}` or
/// `{"msgtype":"markdown","markdown":{"title":…,"text":…},"at":{…}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionWebhookMessage {
    pub msgtype: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub markdown: Option<Markdown>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<At>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Text {
    pub content: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Markdown {
    pub title: String,
    pub text: String,
}

/// Who a group message @-mentions, by userid (staff id).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct At {
    #[serde(default)]
    pub at_user_ids: Vec<String>,
    #[serde(default)]
    pub is_at_all: bool,
}

impl SessionWebhookMessage {
    /// `message`, @-mentioning `at_user_ids` when given (groups); `None` sends no `at` at all
    /// (one-to-one chats).
    pub fn new(message: &OutgoingMessage<'_>, at_user_ids: Option<Vec<String>>) -> Self {
        let at = at_user_ids.map(|at_user_ids| At {
            at_user_ids,
            is_at_all: false,
        });
        match *message {
            OutgoingMessage::Text(content) => Self {
                msgtype: "text".to_owned(),
                text: Some(Text {
                    content: content.to_owned(),
                }),
                markdown: None,
                at,
            },
            OutgoingMessage::Markdown { title, text } => Self {
                msgtype: "markdown".to_owned(),
                text: None,
                markdown: Some(Markdown {
                    title: title.to_owned(),
                    text: text.to_owned(),
                }),
                at,
            },
        }
    }

    pub fn to_json(&self) -> String {
        // Strings, booleans and lists of strings always serialise.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// What the message says: the text's content or the markdown's text.
    pub fn body_text(&self) -> Option<&str> {
        match (&self.text, &self.markdown) {
            (Some(text), _) => Some(&text.content),
            (None, Some(markdown)) => Some(&markdown.text),
            (None, None) => None,
        }
    }
}

/// The webhook's answer: `{"errcode":0,"errmsg":"ok"}` on success.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionWebhookResponse {
    #[serde(default)]
    pub errcode: i64,
    #[serde(default)]
    pub errmsg: String,
}

impl SessionWebhookResponse {
    pub fn is_ok(&self) -> bool {
        self.errcode == 0
    }
}

/// Characters kept in a markdown title: it is only a preview in notifications.
const TITLE_CHARS: usize = 30;

/// A markdown message's title from its text: the first non-empty line without its heading,
/// quote or list marker, at most 30 characters.
pub fn preview_title(markdown: &str) -> String {
    let line = markdown
        .lines()
        .map(|line| {
            line.trim_start_matches(['#', '>', '-', '*', '+', ' ', '\t'])
                .trim()
        })
        .find(|line| !line.is_empty())
        .unwrap_or_default();
    line.chars().take(TITLE_CHARS).collect()
}
