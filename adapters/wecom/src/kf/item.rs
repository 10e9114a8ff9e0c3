//! One pulled customer-service message: its wire shape and what the gateway does with it.

use botgate_contract::{AdapterError, Content, InboundMessage, Platform};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `origin` 3: the WeChat customer wrote. The only messages fed to the LLM.
pub const ORIGIN_CUSTOMER: u32 = 3;
/// `origin` 4: a system event (`msgtype: "event"`).
pub const ORIGIN_SYSTEM: u32 = 4;
/// `origin` 5: a human servicer wrote from the WeCom client.
pub const ORIGIN_SERVICER: u32 = 5;

/// One item of `msg_list`, as WeCom writes it. Unknown fields are ignored and every field is
/// optional here; [`map_kf_message`] decides what each kind of item requires.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct KfMessage {
    /// Globally unique: the dedup key (a replayed cursor returns the same ids).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msgid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_kfid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_userid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_time: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub servicer_userid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msgtype: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<KfText>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<KfEvent>,
}

/// `text`: the customer's words, or the text of the menu item they tapped.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct KfText {
    #[serde(default)]
    pub content: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub menu_id: Option<String>,
}

/// `event` of an `origin` 4 item; which fields are set depends on `event_type`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct KfEvent {
    #[serde(default)]
    pub event_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_kfid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_userid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scene: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scene_param: Option<String>,
    /// `enter_session`: usable once, with `kf/send_msg_on_event`, to greet the customer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub welcome_code: Option<String>,
    /// `msg_send_fail`: the `msgid` of the message that was not delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_msgid: Option<String>,
    /// `msg_send_fail`: why (4 = 48-hour window closed, 6 = over the 5-message limit, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_type: Option<u32>,
}

/// What one pulled item asks of the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KfItem {
    /// The customer wrote: answer it. `open_kfid` is the account the answer is sent from.
    Customer {
        message: InboundMessage,
        open_kfid: String,
    },
    /// The customer opened the chat; `welcome_code`, when present, allows one greeting.
    EnterSession {
        external_userid: String,
        open_kfid: String,
        welcome_code: Option<String>,
        scene: Option<String>,
    },
    /// A message the gateway sent was not delivered.
    SendFailed { fail_msgid: String, fail_type: u32 },
    /// A human servicer wrote to the customer: never answered (the gateway may step back).
    Servicer {
        msgid: String,
        open_kfid: String,
        external_userid: String,
        servicer_userid: Option<String>,
    },
    /// Any other event or origin: nothing to do. `kind` is the event type or `origin:N`.
    Other { kind: String },
}

/// Reads and maps one raw `msg_list` item.
pub fn parse_kf_item(value: &Value) -> Result<KfItem, AdapterError> {
    let message = KfMessage::deserialize(value)
        .map_err(|error| AdapterError::Malformed(format!("sync_msg item: {error}")))?;
    map_kf_message(message)
}

/// Maps one item. Customer messages become an [`InboundMessage`] whose conversation and sender
/// are the customer (`external_userid`) and whose id is `msgid`; only text has words for the
/// LLM, media arrive as `media_id`s (no URL) and are ignored, voice is voice without a
/// transcript.
pub fn map_kf_message(message: KfMessage) -> Result<KfItem, AdapterError> {
    let origin = message
        .origin
        .ok_or_else(|| malformed("sync_msg item without origin"))?;
    match origin {
        ORIGIN_CUSTOMER => customer(message),
        ORIGIN_SYSTEM => system_event(message),
        ORIGIN_SERVICER => Ok(KfItem::Servicer {
            msgid: required(message.msgid, "msgid")?,
            open_kfid: required(message.open_kfid, "open_kfid")?,
            external_userid: required(message.external_userid, "external_userid")?,
            servicer_userid: message.servicer_userid.filter(|id| !id.is_empty()),
        }),
        other => Ok(KfItem::Other {
            kind: format!("origin:{other}"),
        }),
    }
}

fn customer(message: KfMessage) -> Result<KfItem, AdapterError> {
    let msgid = required(message.msgid, "msgid")?;
    let customer = required(message.external_userid, "external_userid")?;
    let open_kfid = required(message.open_kfid, "open_kfid")?;
    let msgtype = required(message.msgtype, "msgtype")?;
    let content = match msgtype.as_str() {
        "text" => Content::Text(
            message
                .text
                .ok_or_else(|| malformed("text item without text"))?
                .content,
        ),
        "voice" => Content::Voice { recognition: None },
        _ => Content::Ignored { kind: msgtype },
    };
    Ok(KfItem::Customer {
        message: InboundMessage {
            platform: Platform::Wecom,
            conversation: customer.clone(),
            sender: customer,
            message_id: msgid,
            content,
        },
        open_kfid,
    })
}

fn system_event(message: KfMessage) -> Result<KfItem, AdapterError> {
    let event = message
        .event
        .ok_or_else(|| malformed("event item without event"))?;
    match event.event_type.as_str() {
        // The ids sit inside `event`; older samples also repeat them on the item itself.
        "enter_session" => Ok(KfItem::EnterSession {
            external_userid: required(
                event.external_userid.or(message.external_userid),
                "external_userid",
            )?,
            open_kfid: required(event.open_kfid.or(message.open_kfid), "open_kfid")?,
            welcome_code: event.welcome_code.filter(|code| !code.is_empty()),
            scene: event.scene.filter(|scene| !scene.is_empty()),
        }),
        "msg_send_fail" => Ok(KfItem::SendFailed {
            fail_msgid: required(event.fail_msgid, "fail_msgid")?,
            // 0 is WeCom's own "unknown reason".
            fail_type: event.fail_type.unwrap_or(0),
        }),
        "" => Err(malformed("event item without event_type")),
        other => Ok(KfItem::Other {
            kind: other.to_owned(),
        }),
    }
}

fn required(value: Option<String>, field: &str) -> Result<String, AdapterError> {
    value
        .filter(|value| !value.is_empty())
        .ok_or_else(|| malformed(&format!("sync_msg item without {field}")))
}

fn malformed(reason: &str) -> AdapterError {
    AdapterError::Malformed(reason.to_owned())
}
