//! The robot message JSON (inbound.md §6.2): the HTTP-mode body and the Stream `data` alike.
//!
//! Field names are DingTalk's. Everything is optional at this layer so that a missing field is
//! reported by name when mapping, and unknown fields are ignored (DingTalk adds fields freely).
//! `content` differs by `msgtype` and is kept as JSON, read by the accessors below.

use botgate_contract::AdapterError;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The largest robot message accepted. DingTalk caps message bodies at 20 000 bytes (outbound.md
/// §4.5); an inbound message with its ids and webhook is a few KB.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// One robot message as DingTalk sends it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RobotMessage {
    /// `text`, `richText`, `picture`, `audio`, `video`, `file`, `unknownMsgType`, …
    #[serde(rename = "msgtype", default, skip_serializing_if = "Option::is_none")]
    pub message_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<TextContent>,
    /// The body of the other types (`downloadCode`, `recognition`, `richText`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Value>,
    #[serde(rename = "msgId", default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    /// A string: `"1"` one-to-one, `"2"` group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_title: Option<String>,
    /// Whether the robot was @-mentioned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_in_at_list: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_id: Option<String>,
    /// The sender's userid in the robot's organisation; absent for senders from another one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_staff_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_nick: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_corp_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chatbot_user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chatbot_corp_id: Option<String>,
    /// The robot's code, which is the app's appKey for enterprise-internal robots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub robot_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_webhook: Option<String>,
    /// When `session_webhook` stops working, in Unix milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_webhook_expired_time: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub at_users: Vec<AtUser>,
    /// Unix milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_at: Option<u64>,
}

/// `text` of a text message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextContent {
    #[serde(default)]
    pub content: String,
}

/// One @-mentioned member of a group message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AtUser {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dingtalk_id: Option<String>,
    /// Only for members of the robot's organisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staff_id: Option<String>,
}

impl RobotMessage {
    /// Parses a body, refusing oversize input and anything but a JSON object.
    pub fn parse(json: &[u8]) -> Result<Self, AdapterError> {
        if json.len() > MAX_BODY_BYTES {
            return Err(AdapterError::TooLarge);
        }
        serde_json::from_slice(json).map_err(|error| {
            AdapterError::Malformed(format!("not a DingTalk robot message: {error}"))
        })
    }

    /// `content.recognition`: the platform's speech-to-text of an audio message.
    pub fn recognition(&self) -> Option<&str> {
        self.content_str("recognition")
    }

    /// The texts of a `richText` message's text items, in order; pictures are skipped.
    pub fn rich_text(&self) -> Vec<&str> {
        self.content
            .as_ref()
            .and_then(|content| content.get("richText"))
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|item| item.get("text").and_then(Value::as_str))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn content_str(&self, name: &str) -> Option<&str> {
        self.content
            .as_ref()
            .and_then(|content| content.get(name))
            .and_then(Value::as_str)
    }
}
