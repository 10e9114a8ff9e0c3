//! The message inside a Tencent callback, the same schema on WeChat Official Accounts and WeCom
//! apps (`FromUserName`, `CreateTime`, `MsgType`, `MsgId`, `Content`, `Event`, …): what kind
//! it is, the id it is deduplicated by, and its content for the conversation core. Each
//! platform names its own events.

use botgate_contract::{AdapterError, Content};

/// What kind of message a request carried (its `MsgType`), for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    Text,
    Image,
    Voice,
    /// `MsgType=event`: subscribe or entering the app, menu clicks, scans, …
    Event,
    /// Video, location, link, file and anything newer: acknowledged and ignored.
    Other,
}

impl MessageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Text => "text",
            MessageKind::Image => "image",
            MessageKind::Voice => "voice",
            MessageKind::Event => "event",
            MessageKind::Other => "other",
        }
    }
}

/// The fields of a decrypted message that decide what it is, as parsed by the platform.
pub struct MessageFields {
    /// `FromUserName`, required.
    pub user: String,
    /// `MsgType`, lower case.
    pub msg_type: String,
    pub msg_id: Option<u64>,
    pub create_time: Option<u64>,
    pub event: Option<String>,
    pub event_key: Option<String>,
    pub content: Option<String>,
    pub recognition: Option<String>,
    pub pic_url: Option<String>,
}

/// A message classified: its kind, the id retries of it share, and its content.
pub struct Classified {
    pub kind: MessageKind,
    pub message_id: String,
    pub content: Content,
}

/// Classifies `fields`; `event_content` maps an event's name and key to content (the names
/// differ per platform).
pub fn classify(
    fields: MessageFields,
    event_content: impl FnOnce(&str, String) -> Content,
) -> Result<Classified, AdapterError> {
    if fields.msg_type == "event" {
        let event = non_empty(fields.event, "event without Event")?;
        let create_time = fields
            .create_time
            .ok_or_else(|| malformed("event without CreateTime"))?;
        let event_key = fields.event_key.unwrap_or_default();
        // Events carry no MsgId. Tencent recommends FromUserName + CreateTime for dedup; Event and
        // EventKey are added so two different events in the same second (two menu clicks) stay
        // distinct.
        return Ok(Classified {
            kind: MessageKind::Event,
            message_id: format!("ev:{}:{create_time}:{event}:{event_key}", fields.user),
            content: event_content(&event, event_key),
        });
    }
    let msg_id = fields
        .msg_id
        .ok_or_else(|| malformed("message without MsgId"))?;
    let (kind, content) = match fields.msg_type.as_str() {
        "text" => (
            MessageKind::Text,
            Content::Text(
                fields
                    .content
                    .ok_or_else(|| malformed("text message without Content"))?,
            ),
        ),
        "voice" => (
            MessageKind::Voice,
            Content::Voice {
                recognition: fields.recognition.filter(|text| !text.is_empty()),
            },
        ),
        "image" => (
            MessageKind::Image,
            Content::Image {
                url: non_empty(fields.pic_url, "image message without PicUrl")?,
            },
        ),
        _ => (
            MessageKind::Other,
            Content::Ignored {
                kind: fields.msg_type,
            },
        ),
    };
    Ok(Classified {
        kind,
        message_id: msg_id.to_string(),
        content,
    })
}

/// `value` when present and not empty, else a malformed-message error saying `reason`.
pub fn non_empty(value: Option<String>, reason: &str) -> Result<String, AdapterError> {
    value
        .filter(|value| !value.is_empty())
        .ok_or_else(|| malformed(reason))
}

fn malformed(reason: &str) -> AdapterError {
    AdapterError::Malformed(reason.to_owned())
}
