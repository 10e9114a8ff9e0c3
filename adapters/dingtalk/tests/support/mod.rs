//! Published DingTalk vectors (inbound.md §9) and helpers shared by the adapter's integration tests.

// Each test file uses a different subset of these.
#![allow(dead_code)]

use botgate_contract::{AdapterError, HeaderList, Inbound, InboundMessage};
use botgate_dingtalk::{DingtalkRobot, ReplyContext, RobotInbound};
use serde_json::Value;

/// G3: the receive-message doc's Python example inputs.
pub const G3_SECRET: &str = "this is a secret";
pub const G3_TIMESTAMP: u64 = 1577262236757;
pub const G3_SIGN: &str = "DJrE6qdyVGCQz9z5r2MDuNcNAhwYnuAkyj13cx169CA=";

/// G3b.
pub const G3B_SECRET: &str = "SECdemo";
pub const G3B_TIMESTAMP: u64 = 1700000000000;
pub const G3B_SIGN: &str = "lOvVf9TQCVugV68mGbSZCg0gzOl1SVjxWi1MyVZCUuA=";

/// The §6.2 sample body, its elisions filled in: a group message @-mentioning the robot.
pub const SAMPLE_BODY: &str = r#"{
  "conversationId": "cidAsXSBLnA==", "conversationType": "2", "conversationTitle": "测试群",
  "atUsers": [{"dingtalkId": "$:LWCP_v1:$4robot", "staffId": "user123"}],
  "chatbotCorpId": "ding9f50b15bccd16741", "chatbotUserId": "$:LWCP_v1:$robot", "robotCode": "dingrobotc6gk",
  "msgId": "msgLICYeHgY4JtMQw==", "createAt": 1690362101894,
  "senderId": "$:LWCP_v1:$sender", "senderNick": "用户", "senderStaffId": "16650698", "senderCorpId": "ding9f50b15bccd16741", "isAdmin": true,
  "isInAtList": true,
  "sessionWebhook": "https://oapi.dingtalk.com/robot/sendBySession?session=76da0c1b", "sessionWebhookExpiredTime": 1690367502152,
  "msgtype": "text", "text": {"content": " 测试数据"}
}"#;

pub const SAMPLE_ROBOT_CODE: &str = "dingrobotc6gk";

/// The G3 robot.
pub fn robot() -> DingtalkRobot {
    DingtalkRobot::new(G3_SECRET)
}

/// The headers DingTalk sends.
pub fn headers(timestamp: &str, sign: &str) -> Vec<(String, String)> {
    vec![
        (
            "Content-Type".to_owned(),
            "application/json; charset=utf-8".to_owned(),
        ),
        ("timestamp".to_owned(), timestamp.to_owned()),
        ("sign".to_owned(), sign.to_owned()),
    ]
}

/// The G3 headers.
pub fn g3_headers() -> Vec<(String, String)> {
    headers(&G3_TIMESTAMP.to_string(), G3_SIGN)
}

pub fn decode(
    robot: &DingtalkRobot,
    headers: &[(String, String)],
    body: &str,
    now_ms: u64,
) -> Result<RobotInbound, AdapterError> {
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    robot.decode(&HeaderList(&pairs), body.as_bytes(), now_ms)
}

/// `body` decoded with the G3 headers at the G3 time.
pub fn decode_body(body: &str) -> Result<RobotInbound, AdapterError> {
    decode(&robot(), &g3_headers(), body, G3_TIMESTAMP)
}

/// The sample body with `changes` applied: a `null` removes the field.
pub fn sample_with(changes: Value) -> String {
    let mut body: serde_json::Map<String, Value> =
        serde_json::from_str(SAMPLE_BODY).expect("the sample is JSON");
    for (name, value) in changes.as_object().expect("an object of changes") {
        match value {
            Value::Null => body.remove(name),
            value => body.insert(name.clone(), value.clone()),
        };
    }
    Value::Object(body).to_string()
}

pub fn message(inbound: Result<RobotInbound, AdapterError>) -> (InboundMessage, ReplyContext) {
    match inbound {
        Ok(Inbound::Message { message, reply }) => (message, reply),
        other => panic!("not a message: {other:?}"),
    }
}

/// Replaces the first occurrence of `from`, insisting there is one (so a tamper always tampers).
pub fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "{from:?} not in {text:?}");
    text.replacen(from, to, 1)
}
