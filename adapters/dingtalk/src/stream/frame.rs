//! Server → client frames (inbound.md §8.2):
//! `{"specVersion","type":"SYSTEM|EVENT|CALLBACK","headers":{"topic","messageId",…},"data":"<JSON as a string>"}`.

use botgate_contract::AdapterError;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::BOT_MESSAGE_TOPIC;
use crate::inbound::{decode_robot_message, RobotInbound};
use crate::wire::MAX_BODY_BYTES;

/// The largest frame read: a robot message of [`MAX_BODY_BYTES`], escaped once more as `data`.
pub const MAX_FRAME_BYTES: usize = 2 * MAX_BODY_BYTES;

/// One server frame, reduced to what the client must do with it.
// Robot messages are most frames, and one frame is handled at a time: boxing the big variant
// would cost an allocation per message and clumsier matches for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A robot message (topic [`BOT_MESSAGE_TOPIC`]). ACK it by `message_id` whatever `data`
    /// holds: with [`super::ack_callback`] once handled, [`super::ack_error`] if it is not a
    /// robot message. DingTalk does not redeliver robot messages.
    Callback {
        message_id: String,
        topic: String,
        data: Result<RobotInbound, AdapterError>,
    },
    /// A SYSTEM `ping`: answer with [`super::ack_pong`] echoing `data`.
    Ping { message_id: String, data: String },
    /// A SYSTEM `disconnect`: the server closes the socket ~10 s later; reconnect with a new
    /// ticket. No ACK is required.
    Disconnect { reason: Option<String> },
    /// Anything else (events, other callback topics, new system topics): ACK with
    /// [`super::ack_not_found`] when it has a message id.
    Other {
        kind: String,
        topic: Option<String>,
        message_id: Option<String>,
    },
}

#[derive(Deserialize)]
struct WireFrame {
    #[serde(rename = "type")]
    kind: Option<String>,
    // Strings per the SDKs (Go: map[string]string); read as JSON so that one odd value does
    // not cost the whole frame, and its message id with it.
    #[serde(default)]
    headers: Map<String, Value>,
    #[serde(default)]
    data: Option<String>,
}

/// Parses one text frame from the socket.
pub fn parse_frame(text: &str) -> Result<Frame, AdapterError> {
    if text.len() > MAX_FRAME_BYTES {
        return Err(AdapterError::TooLarge);
    }
    let frame: WireFrame = serde_json::from_str(text)
        .map_err(|error| malformed(format!("not a Stream frame: {error}")))?;
    let kind = frame
        .kind
        .filter(|kind| !kind.is_empty())
        .ok_or_else(|| malformed("frame without type".to_owned()))?;
    let header = |name: &str| {
        frame
            .headers
            .get(name)
            .and_then(Value::as_str)
            .filter(|value| !value.is_empty())
            .map(str::to_owned)
    };
    let topic = header("topic");
    let message_id = header("messageId");
    let data = frame.data.unwrap_or_default();
    Ok(match (kind.as_str(), topic.as_deref()) {
        ("CALLBACK", Some(BOT_MESSAGE_TOPIC)) => Frame::Callback {
            message_id: message_id
                .ok_or_else(|| malformed("callback without messageId".to_owned()))?,
            topic: BOT_MESSAGE_TOPIC.to_owned(),
            data: decode_robot_message(data.as_bytes()),
        },
        ("SYSTEM", Some("ping")) => Frame::Ping {
            message_id: message_id.ok_or_else(|| malformed("ping without messageId".to_owned()))?,
            data,
        },
        ("SYSTEM", Some("disconnect")) => Frame::Disconnect {
            reason: disconnect_reason(&data),
        },
        _ => Frame::Other {
            kind,
            topic,
            message_id,
        },
    })
}

/// `{"reason":"connection is expired"}`; a reason that cannot be read is no reason.
fn disconnect_reason(data: &str) -> Option<String> {
    let data: Value = serde_json::from_str(data).ok()?;
    data.get("reason")?.as_str().map(str::to_owned)
}

fn malformed(reason: String) -> AdapterError {
    AdapterError::Malformed(reason)
}
