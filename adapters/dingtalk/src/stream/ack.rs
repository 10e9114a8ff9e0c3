//! The frames the client answers with, one per received frame, on the same socket
//! (inbound.md §8.3): `{"code","headers":{"contentType","messageId"},"message","data"}`.

use serde::{Deserialize, Serialize};

pub const CODE_OK: u16 = 200;
pub const CODE_BAD_REQUEST: u16 = 400;
/// An unknown topic or type ("not found / not implemented").
pub const CODE_NOT_FOUND: u16 = 404;

/// The `data` of a robot-message ACK. DingTalk does not use it; this is the reference's value.
pub const CALLBACK_ACK_DATA: &str = r#"{"response": null}"#;

const JSON: &str = "application/json";

/// One ACK frame. Field order is the wire's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    pub code: u16,
    pub headers: AckHeaders,
    pub message: String,
    /// A JSON document encoded as a string, like the frames' own `data`.
    pub data: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AckHeaders {
    pub content_type: String,
    pub message_id: String,
}

impl Ack {
    pub fn new(code: u16, message_id: &str, message: &str, data: &str) -> Self {
        Self {
            code,
            headers: AckHeaders {
                content_type: JSON.to_owned(),
                message_id: message_id.to_owned(),
            },
            message: message.to_owned(),
            data: data.to_owned(),
        }
    }

    pub fn to_json(&self) -> String {
        // Numbers and strings always serialise.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A robot message received: code 200, `OK`, data `{"response": null}`.
pub fn ack_callback(message_id: &str) -> String {
    Ack::new(CODE_OK, message_id, "OK", CALLBACK_ACK_DATA).to_json()
}

/// The answer to a SYSTEM `ping`: its `data` echoed back.
pub fn ack_pong(message_id: &str, data: &str) -> String {
    Ack::new(CODE_OK, message_id, "ok", data).to_json()
}

/// A frame whose topic or type this client does not handle.
pub fn ack_not_found(message_id: &str) -> String {
    Ack::new(CODE_NOT_FOUND, message_id, "not implemented", "").to_json()
}

/// A frame whose data could not be read: `reason` must say what failed, never what it said.
pub fn ack_error(message_id: &str, reason: &str) -> String {
    Ack::new(CODE_BAD_REQUEST, message_id, reason, "").to_json()
}
