//! The answer: `kf/send_msg` and `kf/send_msg_on_event` bodies, and their idempotency `msgid`.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};

/// The longest `msgid` WeCom accepts on a send.
pub const MAX_SEND_MSGID_BYTES: usize = 32;

/// The documented limit of a text's `content`, in UTF-8 bytes; longer answers are split.
pub const MAX_SEND_TEXT_BYTES: usize = 2048;

/// A send's `msgid`: at most 32 bytes of `[0-9a-zA-Z_-]`. WeCom refuses a second send with the
/// same id, which makes a retried delivery harmless.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SendMsgId(String);

impl SendMsgId {
    /// `id` as it is, if WeCom would accept it.
    pub fn parse(id: &str) -> Option<Self> {
        let allowed = |byte: &u8| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-');
        (!id.is_empty() && id.len() <= MAX_SEND_MSGID_BYTES && id.bytes().all(|b| allowed(&b)))
            .then(|| Self(id.to_owned()))
    }

    /// A valid id for any string (e.g. `from_msgid_4622416642169452483:2`, a pulled message and
    /// the index of one part of its answer): the first 128 bits of its SHA-1 in hex. Always
    /// hashed, even when `id` would pass as is, so two different inputs can only collide by
    /// a 128-bit hash collision, and the same input always gives the same id.
    pub fn derive_from(id: &str) -> Self {
        let digest = Sha1::digest(id.as_bytes());
        let mut hex = String::with_capacity(MAX_SEND_MSGID_BYTES);
        for byte in &digest[..MAX_SEND_MSGID_BYTES / 2] {
            // Writing to a String cannot fail.
            let _ = write!(hex, "{byte:02x}");
        }
        Self(hex)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for SendMsgId {
    type Error = String;

    fn try_from(id: String) -> Result<Self, Self::Error> {
        Self::parse(&id).ok_or_else(|| format!("invalid send msgid {id:?}"))
    }
}

impl From<SendMsgId> for String {
    fn from(id: SendMsgId) -> Self {
        id.0
    }
}

/// What a send says; serialised as `"msgtype": "text", "text": {...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "msgtype", rename_all = "snake_case")]
pub enum SendBody {
    Text { text: SendText },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendText {
    /// At most [`MAX_SEND_TEXT_BYTES`].
    pub content: String,
}

/// The body of `POST /cgi-bin/kf/send_msg`: a message to a customer from one account, allowed
/// within 48 hours of the customer's last message, at most 5 per customer message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendMsgRequest {
    /// The customer's `external_userid`.
    pub touser: String,
    pub open_kfid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msgid: Option<SendMsgId>,
    #[serde(flatten)]
    pub body: SendBody,
}

impl SendMsgRequest {
    pub fn text(touser: &str, open_kfid: &str, msgid: Option<SendMsgId>, content: &str) -> Self {
        Self {
            touser: touser.to_owned(),
            open_kfid: open_kfid.to_owned(),
            msgid,
            body: text(content),
        }
    }
}

/// The body of `POST /cgi-bin/kf/send_msg_on_event`: a greeting with an `enter_session`
/// event's `welcome_code` (usable once, shortly after the event).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendMsgOnEventRequest {
    pub code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msgid: Option<SendMsgId>,
    #[serde(flatten)]
    pub body: SendBody,
}

impl SendMsgOnEventRequest {
    pub fn text(code: &str, msgid: Option<SendMsgId>, content: &str) -> Self {
        Self {
            code: code.to_owned(),
            msgid,
            body: text(content),
        }
    }
}

/// The response of either send.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SendMsgResponse {
    #[serde(default)]
    pub errcode: i64,
    #[serde(default)]
    pub errmsg: String,
    /// The id the message was sent under (the request's, or one WeCom chose).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msgid: Option<String>,
}

fn text(content: &str) -> SendBody {
    SendBody::Text {
        text: SendText {
            content: content.to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn derived_ids_are_valid_deterministic_and_distinct() {
        let sources = [
            "from_msgid_4622416642169452483:0",
            "from_msgid_4622416642169452483:1",
            "from_msgid_4622416642169452483:2",
            "",
            "问题",
        ];

        let ids: Vec<SendMsgId> = sources.iter().map(|s| SendMsgId::derive_from(s)).collect();

        for (id, source) in ids.iter().zip(sources) {
            assert_eq!(SendMsgId::parse(id.as_str()).as_ref(), Some(id), "{source}");
            assert_eq!(id.as_str().len(), MAX_SEND_MSGID_BYTES);
            assert_eq!(&SendMsgId::derive_from(source), id);
        }
        let mut unique = ids.clone();
        unique.dedup();
        assert_eq!(unique.len(), ids.len());
        // sha1("") = da39a3ee5e6b4b0d3255bfef95601890afd80709
        assert_eq!(ids[3].as_str(), "da39a3ee5e6b4b0d3255bfef95601890");
    }

    #[test]
    fn parse_refuses_what_wecom_would() {
        assert!(SendMsgId::parse("ok_ID-1").is_some());
        assert!(SendMsgId::parse(&"a".repeat(32)).is_some());
        for bad in ["", "a:b", "a b", "中", &"a".repeat(33)] {
            assert_eq!(SendMsgId::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn send_bodies_serialise_as_documented() {
        let id = SendMsgId::parse("m1").unwrap();

        let send = serde_json::to_value(SendMsgRequest::text(
            "wmUser",
            "wkAcct",
            Some(id.clone()),
            "你好",
        ))
        .unwrap();
        let greet = serde_json::to_value(SendMsgOnEventRequest::text("CODE", None, "hi")).unwrap();

        assert_eq!(
            send,
            json!({"touser": "wmUser", "open_kfid": "wkAcct", "msgid": "m1", "msgtype": "text", "text": {"content": "你好"}})
        );
        assert_eq!(
            greet,
            json!({"code": "CODE", "msgtype": "text", "text": {"content": "hi"}})
        );
    }

    #[test]
    fn send_bodies_read_back_and_refuse_invalid_ids() {
        let good = r#"{"touser":"u","open_kfid":"k","msgid":"m_1","msgtype":"text","text":{"content":"x"}}"#;
        let bad_id = r#"{"touser":"u","open_kfid":"k","msgid":"m:1","msgtype":"text","text":{"content":"x"}}"#;

        let read: SendMsgRequest = serde_json::from_str(good).unwrap();

        assert_eq!(
            read,
            SendMsgRequest::text("u", "k", SendMsgId::parse("m_1"), "x")
        );
        assert!(serde_json::from_str::<SendMsgRequest>(bad_id).is_err());
    }
}
