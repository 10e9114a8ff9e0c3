//! The `kf/sync_msg` pull: its request body and its response (cursor, has_more, msg_list).

use std::fmt;

use botgate_contract::AdapterError;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::item::{parse_kf_item, KfItem};
use crate::KfNotice;

/// The most messages one pull returns (also the default).
pub const MAX_SYNC_LIMIT: u32 = 1000;

/// The body of `POST /cgi-bin/kf/sync_msg`. Absent fields are left out of the JSON.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SyncMsgRequest {
    /// The previous response's `next_cursor`; absent on the very first pull. Persist it:
    /// without it every pull starts three days back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// The notice's pull token; without it the call is strictly rate-limited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// At most [`MAX_SYNC_LIMIT`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// 0 = AMR (default), 1 = Silk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice_format: Option<u32>,
    /// Restricts the pull to one customer-service account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_kfid: Option<String>,
}

impl SyncMsgRequest {
    /// The pull a notice asks for: its token and account, from `cursor` (`None` or empty for
    /// the first pull), as many messages as allowed.
    pub fn after_notice(notice: &KfNotice, cursor: Option<&str>) -> Self {
        Self {
            cursor: cursor
                .filter(|cursor| !cursor.is_empty())
                .map(str::to_owned),
            token: Some(notice.token.clone()),
            limit: Some(MAX_SYNC_LIMIT),
            voice_format: None,
            open_kfid: notice.open_kfid.clone(),
        }
    }
}

// The pull token is a short-lived credential: logs get its length, never its value.
impl fmt::Debug for SyncMsgRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SyncMsgRequest")
            .field("cursor", &self.cursor)
            .field("token_len", &self.token.as_ref().map(String::len))
            .field("limit", &self.limit)
            .field("voice_format", &self.voice_format)
            .field("open_kfid", &self.open_kfid)
            .finish()
    }
}

/// The response of `kf/sync_msg`. Items stay raw JSON until [`SyncMsgResponse::items`] maps
/// them one by one, so one odd item never blocks the batch (and with it the cursor).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SyncMsgResponse {
    #[serde(default)]
    pub errcode: i64,
    #[serde(default)]
    pub errmsg: String,
    /// The cursor of the next pull; persist it once this batch is handled.
    #[serde(default)]
    pub next_cursor: String,
    /// 1 while more messages wait. Pull again even when `msg_list` is empty: WeCom can answer
    /// `has_more: 1` with no messages (inbound.md §4.2).
    #[serde(default)]
    pub has_more: u32,
    #[serde(default)]
    pub msg_list: Vec<Value>,
}

impl SyncMsgResponse {
    /// Reads a response body; unknown fields are ignored, wrong types are `Malformed`.
    pub fn parse(body: &[u8]) -> Result<Self, AdapterError> {
        let malformed = |error: serde_json::Error| {
            AdapterError::Malformed(format!("sync_msg response: {error}"))
        };
        // Read as an object first: serde would otherwise take a JSON array for this struct.
        let object: Map<String, Value> = serde_json::from_slice(body).map_err(malformed)?;
        Self::deserialize(Value::Object(object)).map_err(malformed)
    }

    /// `errcode == 0`: the other fields mean something.
    pub fn succeeded(&self) -> bool {
        self.errcode == 0
    }

    /// Whether another pull from [`next_cursor`](Self::next_cursor) is due.
    pub fn more_to_pull(&self) -> bool {
        self.has_more != 0
    }

    /// Each item mapped on its own: an error concerns that item only.
    pub fn items(&self) -> impl Iterator<Item = Result<KfItem, AdapterError>> + '_ {
        self.msg_list.iter().map(parse_kf_item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_pull_after_a_notice_leaves_out_the_cursor() {
        let notice = KfNotice {
            token: "ENC1".into(),
            open_kfid: Some("wk1".into()),
        };

        let first = serde_json::to_value(SyncMsgRequest::after_notice(&notice, Some(""))).unwrap();
        let next = serde_json::to_value(SyncMsgRequest::after_notice(&notice, Some("c2"))).unwrap();

        assert_eq!(
            first,
            serde_json::json!({"token": "ENC1", "limit": 1000, "open_kfid": "wk1"})
        );
        assert_eq!(next["cursor"], "c2");
    }

    #[test]
    fn debug_hides_the_token() {
        let request = SyncMsgRequest {
            token: Some("ENCsecret".into()),
            ..SyncMsgRequest::default()
        };

        let shown = format!("{request:?}");

        assert!(!shown.contains("ENCsecret"), "{shown}");
    }

    #[test]
    fn an_error_response_parses_with_defaults() {
        let response =
            SyncMsgResponse::parse(br#"{"errcode":95007,"errmsg":"invalid msg token"}"#).unwrap();

        assert!(!response.succeeded());
        assert!(!response.more_to_pull());
        assert!(response.msg_list.is_empty());
    }
}
