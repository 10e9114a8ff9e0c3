//! Opening a Stream connection: `POST /v1.0/gateway/connections/open`, then the WebSocket URL
//! with its single-use ticket.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::BOT_MESSAGE_TOPIC;

/// On api.dingtalk.com, not gateway.dingtalk.com (inbound.md §0 row 9).
pub const OPEN_CONNECTION_URL: &str = "https://api.dingtalk.com/v1.0/gateway/connections/open";

/// What to receive on the connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    /// `CALLBACK` or `EVENT` (whose topic must be `*`).
    #[serde(rename = "type")]
    pub kind: String,
    pub topic: String,
}

/// The connection-open body:
/// `{"clientId","clientSecret","subscriptions":[{"type","topic"}],"ua","localIp"}`.
/// `Debug` hides the secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OpenConnectionRequest {
    /// The AppKey (a suiteKey for third-party apps).
    pub client_id: String,
    /// The AppSecret.
    pub client_secret: String,
    pub subscriptions: Vec<Subscription>,
    /// Who is connecting, as the SDKs report themselves (`dingtalk-sdk-python/v0.24.3-union`).
    pub ua: String,
    /// The SDKs report the host's address; nothing documents a use for it, so it is optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_ip: Option<String>,
}

impl OpenConnectionRequest {
    /// Robot messages only. No `EVENT` subscription: events would have to be acknowledged and
    /// are redelivered when not, for nothing the gateway acts on.
    pub fn robot_messages(client_id: &str, client_secret: &str, ua: &str) -> Self {
        Self {
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            subscriptions: vec![Subscription {
                kind: "CALLBACK".to_owned(),
                topic: BOT_MESSAGE_TOPIC.to_owned(),
            }],
            ua: ua.to_owned(),
            local_ip: None,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl fmt::Debug for OpenConnectionRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenConnectionRequest")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("subscriptions", &self.subscriptions)
            .field("ua", &self.ua)
            .field("local_ip", &self.local_ip)
            .finish()
    }
}

/// `{"endpoint":"wss://…/connect","ticket":"…"}`. `Debug` hides the ticket.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenConnectionResponse {
    pub endpoint: String,
    pub ticket: String,
}

impl OpenConnectionResponse {
    /// The URL to open the WebSocket on.
    pub fn websocket_url(&self) -> String {
        websocket_url(&self.endpoint, &self.ticket)
    }
}

impl fmt::Debug for OpenConnectionResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenConnectionResponse")
            .field("endpoint", &self.endpoint)
            .field("ticket", &"<redacted>")
            .finish()
    }
}

/// `{endpoint}?ticket={ticket}`, the ticket percent-encoded (the SDKs use `quote_plus`); `&`
/// instead of `?` should the endpoint ever come with a query of its own.
pub fn websocket_url(endpoint: &str, ticket: &str) -> String {
    let separator = if endpoint.contains('?') { '&' } else { '?' };
    let mut url = format!("{endpoint}{separator}ticket=");
    for byte in ticket.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            url.push(char::from(byte));
        } else {
            url.push_str(&format!("%{byte:02X}"));
        }
    }
    url
}
