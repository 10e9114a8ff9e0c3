//! DingTalk's side of the protocol: robot messages as DingTalk sends them, signed for HTTP mode
//! or wrapped in a Stream frame. Used by `botgate simulate dingtalk`, the end-to-end tests and
//! the benchmark.

use serde::Serialize;

use crate::robot::{SIGN_HEADER, TIMESTAMP_HEADER};
use crate::stream::BOT_MESSAGE_TOPIC;
use crate::wire::{AtUser, RobotMessage, TextContent};
use crate::DingtalkRobot;

/// How long DingTalk's session webhooks live in both official samples (≈ 90 min).
pub const SESSION_WEBHOOK_LIFETIME_MS: u64 = 5_400_000;

/// A text message from a member to the robot, one-to-one or @-mentioning it in a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimulatedMessage {
    /// `msgId`: the dedup key, so distinct messages need distinct ids.
    pub message_id: String,
    /// What the member typed after the mention, as DingTalk delivers it (with its leading space).
    pub text: String,
    pub group: bool,
    pub conversation_id: String,
    pub sender_staff_id: Option<String>,
    pub sender_id: String,
    pub sender_nick: String,
    pub robot_code: String,
    pub session_webhook: String,
}

impl SimulatedMessage {
    /// A one-to-one message from a fixed member; set the fields to vary it.
    pub fn new(message_id: &str, text: &str) -> Self {
        Self {
            message_id: message_id.to_owned(),
            text: text.to_owned(),
            group: false,
            conversation_id: "cidSimulatedSingle==".to_owned(),
            sender_staff_id: Some("simulated-staff".to_owned()),
            sender_id: "$:LWCP_v1:$simulatedSender".to_owned(),
            sender_nick: "模拟用户".to_owned(),
            robot_code: "dingsimulatedrobot".to_owned(),
            session_webhook: "https://oapi.dingtalk.com/robot/sendBySession?session=simulated"
                .to_owned(),
        }
    }

    /// The same message in a group, @-mentioning the robot.
    pub fn in_group(mut self) -> Self {
        self.group = true;
        self.conversation_id = "cidSimulatedGroup==".to_owned();
        self
    }

    pub fn with_session_webhook(mut self, url: &str) -> Self {
        self.session_webhook = url.to_owned();
        self
    }

    /// The §6.2 body, created at `create_at_ms`; its webhook expires 90 minutes later.
    pub fn to_wire(&self, create_at_ms: u64) -> RobotMessage {
        let robot_user = "$:LWCP_v1:$simulatedRobot".to_owned();
        RobotMessage {
            message_type: Some("text".to_owned()),
            text: Some(TextContent {
                content: self.text.clone(),
            }),
            content: None,
            message_id: Some(self.message_id.clone()),
            conversation_id: Some(self.conversation_id.clone()),
            conversation_type: Some(if self.group { "2" } else { "1" }.to_owned()),
            conversation_title: self.group.then(|| "模拟群".to_owned()),
            is_in_at_list: Some(true),
            sender_id: Some(self.sender_id.clone()),
            sender_staff_id: self.sender_staff_id.clone(),
            sender_nick: Some(self.sender_nick.clone()),
            sender_corp_id: Some("dingsimulatedcorp".to_owned()),
            chatbot_user_id: Some(robot_user.clone()),
            chatbot_corp_id: Some("dingsimulatedcorp".to_owned()),
            robot_code: Some(self.robot_code.clone()),
            session_webhook: Some(self.session_webhook.clone()),
            session_webhook_expired_time: Some(
                create_at_ms.saturating_add(SESSION_WEBHOOK_LIFETIME_MS),
            ),
            at_users: match self.group {
                true => vec![AtUser {
                    dingtalk_id: Some(robot_user),
                    staff_id: None,
                }],
                false => Vec::new(),
            },
            create_at: Some(create_at_ms),
        }
    }

    pub fn to_json(&self, create_at_ms: u64) -> String {
        // Strings, numbers and booleans always serialise.
        serde_json::to_string(&self.to_wire(create_at_ms)).unwrap_or_default()
    }
}

/// One HTTP-mode callback as DingTalk posts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRequest {
    /// `timestamp` (ms) and `sign`, plus the content type.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl DingtalkRobot {
    /// `message` created and signed at `timestamp_ms`: pass the current time in milliseconds.
    pub fn sign_request(&self, message: &SimulatedMessage, timestamp_ms: u64) -> SignedRequest {
        self.sign_body(&message.to_json(timestamp_ms), timestamp_ms)
    }

    /// Any body (tests send broken ones on purpose) with the headers of `timestamp_ms`.
    pub fn sign_body(&self, body: &str, timestamp_ms: u64) -> SignedRequest {
        SignedRequest {
            headers: vec![
                (
                    "Content-Type".to_owned(),
                    "application/json; charset=utf-8".to_owned(),
                ),
                (TIMESTAMP_HEADER.to_owned(), timestamp_ms.to_string()),
                (SIGN_HEADER.to_owned(), self.sign(timestamp_ms)),
            ],
            body: body.to_owned(),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireFrame<'a> {
    spec_version: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    headers: FrameHeaders<'a>,
    data: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FrameHeaders<'a> {
    app_id: &'a str,
    content_type: &'a str,
    message_id: &'a str,
    time: String,
    topic: &'a str,
}

/// A Stream CALLBACK frame carrying `message`, as DingTalk pushes it at `time_ms`.
pub fn stream_callback_frame(message: &SimulatedMessage, frame_id: &str, time_ms: u64) -> String {
    stream_frame(
        "CALLBACK",
        BOT_MESSAGE_TOPIC,
        frame_id,
        time_ms,
        message.to_json(time_ms),
    )
}

/// A SYSTEM `ping` frame with `opaque` in its data.
pub fn stream_ping_frame(frame_id: &str, opaque: &str, time_ms: u64) -> String {
    let data = serde_json::json!({ "opaque": opaque }).to_string();
    stream_frame("SYSTEM", "ping", frame_id, time_ms, data)
}

/// A SYSTEM `disconnect` frame giving `reason`.
pub fn stream_disconnect_frame(frame_id: &str, reason: &str, time_ms: u64) -> String {
    let data = serde_json::json!({ "reason": reason }).to_string();
    stream_frame("SYSTEM", "disconnect", frame_id, time_ms, data)
}

fn stream_frame(kind: &str, topic: &str, frame_id: &str, time_ms: u64, data: String) -> String {
    let frame = WireFrame {
        spec_version: "1.0",
        kind,
        headers: FrameHeaders {
            app_id: "simulated-app",
            content_type: "application/json",
            message_id: frame_id,
            time: time_ms.to_string(),
            topic,
        },
        data,
    };
    serde_json::to_string(&frame).unwrap_or_default()
}
