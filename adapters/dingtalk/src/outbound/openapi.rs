//! The robot OpenAPI on api.dingtalk.com (outbound.md §4.1, §4.3): the access token, and the
//! one-to-one and group sends used when there is no usable session webhook.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::OutgoingMessage;

pub const OPENAPI_BASE: &str = "https://api.dingtalk.com";
pub const ACCESS_TOKEN_URL: &str = "https://api.dingtalk.com/v1.0/oauth2/accessToken";
pub const BATCH_SEND_OTO_URL: &str = "https://api.dingtalk.com/v1.0/robot/oToMessages/batchSend";
pub const GROUP_MESSAGE_SEND_URL: &str = "https://api.dingtalk.com/v1.0/robot/groupMessages/send";

/// The header the access token travels in on api.dingtalk.com calls.
pub const ACCESS_TOKEN_HEADER: &str = "x-acs-dingtalk-access-token";

/// `userIds` per `batchSend` call (3rd-party code caps it at 20; outbound.md §4.3).
pub const MAX_BATCH_USER_IDS: usize = 20;

/// `POST /v1.0/oauth2/accessToken`: `{"appKey":…,"appSecret":…}`. `Debug` hides the secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessTokenRequest {
    pub app_key: String,
    pub app_secret: String,
}

impl AccessTokenRequest {
    pub fn new(app_key: &str, app_secret: &str) -> Self {
        Self {
            app_key: app_key.to_owned(),
            app_secret: app_secret.to_owned(),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl fmt::Debug for AccessTokenRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessTokenRequest")
            .field("app_key", &self.app_key)
            .field("app_secret", &"<redacted>")
            .finish()
    }
}

/// `{"accessToken":…,"expireIn":7200}`; `expire_in` in seconds. `Debug` hides the token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessTokenResponse {
    pub access_token: String,
    pub expire_in: u64,
}

impl fmt::Debug for AccessTokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessTokenResponse")
            .field("access_token", &"<redacted>")
            .field("expire_in", &self.expire_in)
            .finish()
    }
}

/// An api.dingtalk.com error body: `{"code":"Forbidden.AccessDenied…","requestid":…,"message":…}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenApiError {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub requestid: String,
    #[serde(default)]
    pub message: String,
    /// On a 403 for a missing scope: which ones (`Card.Streaming.Write`…).
    #[serde(default)]
    pub accessdenieddetail: AccessDeniedDetail,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessDeniedDetail {
    #[serde(default)]
    pub required_scopes: Vec<String>,
}

/// `POST /v1.0/robot/oToMessages/batchSend`: one-to-one messages to members by userid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchSendOto {
    pub robot_code: String,
    pub user_ids: Vec<String>,
    pub msg_key: String,
    /// The message's parameters as a JSON-encoded *string*, not an object.
    pub msg_param: String,
}

impl BatchSendOto {
    /// Keep `user_ids` within [`MAX_BATCH_USER_IDS`].
    pub fn new(robot_code: &str, user_ids: &[&str], message: &OutgoingMessage<'_>) -> Self {
        let (msg_key, msg_param) = template(message);
        Self {
            robot_code: robot_code.to_owned(),
            user_ids: user_ids.iter().map(|id| (*id).to_owned()).collect(),
            msg_key,
            msg_param,
        }
    }
}

/// `batchSend`'s answer; a non-empty `flow_controlled_staff_id_list` means rate-limited users.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchSendOtoResponse {
    #[serde(default)]
    pub process_query_key: String,
    #[serde(default)]
    pub invalid_staff_id_list: Vec<String>,
    #[serde(default)]
    pub flow_controlled_staff_id_list: Vec<String>,
    #[serde(default)]
    pub filtered_staff_id_list: Vec<String>,
}

/// `POST /v1.0/robot/groupMessages/send`: a message to a group the robot is in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupMessageSend {
    pub robot_code: String,
    /// The inbound message's `conversationId` (`cid…`).
    pub open_conversation_id: String,
    pub msg_key: String,
    /// The message's parameters as a JSON-encoded *string*, not an object.
    pub msg_param: String,
}

impl GroupMessageSend {
    pub fn new(
        robot_code: &str,
        open_conversation_id: &str,
        message: &OutgoingMessage<'_>,
    ) -> Self {
        let (msg_key, msg_param) = template(message);
        Self {
            robot_code: robot_code.to_owned(),
            open_conversation_id: open_conversation_id.to_owned(),
            msg_key,
            msg_param,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupMessageSendResponse {
    #[serde(default)]
    pub process_query_key: String,
}

/// One OpenAPI send, to a member or to a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenApiSend {
    Single(BatchSendOto),
    Group(GroupMessageSend),
}

impl OpenApiSend {
    pub fn url(&self) -> &'static str {
        match self {
            OpenApiSend::Single(_) => BATCH_SEND_OTO_URL,
            OpenApiSend::Group(_) => GROUP_MESSAGE_SEND_URL,
        }
    }

    pub fn to_json(&self) -> String {
        match self {
            OpenApiSend::Single(body) => serde_json::to_string(body),
            OpenApiSend::Group(body) => serde_json::to_string(body),
        }
        .unwrap_or_default()
    }
}

/// The robot message template and its parameters: `sampleText {content}` or
/// `sampleMarkdown {title, text}`, the parameters encoded as a JSON string.
fn template(message: &OutgoingMessage<'_>) -> (String, String) {
    let (key, param) = match *message {
        OutgoingMessage::Text(content) => ("sampleText", serde_json::json!({ "content": content })),
        OutgoingMessage::Markdown { title, text } => (
            "sampleMarkdown",
            serde_json::json!({ "title": title, "text": text }),
        ),
    };
    (key.to_owned(), param.to_string())
}
