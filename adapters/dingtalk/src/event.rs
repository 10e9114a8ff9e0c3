//! Event subscription HTTP push (事件订阅, inbound.md §7): WXBizMsgCrypt as WeChat's, but JSON,
//! millisecond timestamps, two spellings of two query names, and an *encrypted* `success`.
//!
//! Not robot messages (those come in HTTP mode or over Stream): org events such as
//! `check_url`, the URL check DingTalk sends when the callback is configured, which must be
//! answered with [`EventSubscription::success_reply`] within 1500 ms.

use std::fmt;
use std::time::Duration;

use botgate_contract::AdapterError;
use botgate_wxcrypt::query::CallbackQuery;
use botgate_wxcrypt::{signature_matches, CryptError, EncodingAesKey, WxCrypt};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::signature::{check_window, parse_millis};
use crate::wire::MAX_BODY_BYTES;

/// DingTalk documents no window for events; the robot's hour is the one it states anywhere.
pub const DEFAULT_EVENT_WINDOW: Duration = Duration::from_secs(3600);

/// One event subscription: the console's token and aes_key, and the id ciphertexts are
/// addressed to (the AppKey for a self-built app, the corpId for legacy callbacks, the
/// suiteKey for third-party suites).
#[derive(Clone)]
pub struct EventSubscription {
    token: String,
    crypt: WxCrypt,
    window_ms: u64,
}

/// A verified, decrypted event: its `EventType` and every field as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub event_type: String,
    pub fields: Map<String, Value>,
}

#[derive(Deserialize)]
struct Envelope {
    encrypt: Option<String>,
}

impl EventSubscription {
    pub fn new(token: &str, key: EncodingAesKey, receive_id: &str) -> Self {
        Self {
            token: token.to_owned(),
            crypt: WxCrypt::new(token, key, receive_id),
            window_ms: u64::try_from(DEFAULT_EVENT_WINDOW.as_millis()).unwrap_or(u64::MAX),
        }
    }

    pub fn timestamp_window(mut self, window: Duration) -> Self {
        self.window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        self
    }

    /// Checks `msg_signature` (or `signature`) over token, `timeStamp` (or `timestamp`), nonce
    /// and the body's `encrypt`; then the window against `now_ms`, in **milliseconds**; then
    /// decrypts (addressed to the receive id) and reads the event JSON.
    pub fn open(&self, query: &str, body: &[u8], now_ms: u64) -> Result<Event, AdapterError> {
        if body.len() > MAX_BODY_BYTES {
            return Err(AdapterError::TooLarge);
        }
        let (query, [signature, camel_timestamp]) =
            CallbackQuery::parse_with(query, ["signature", "timeStamp"]).map_err(query_error)?;
        let signature = either(query.msg_signature, signature, "msg_signature")?;
        let timestamp = either(query.timestamp, camel_timestamp, "timeStamp")?;
        let nonce = query.nonce.ok_or(AdapterError::MissingParameter("nonce"))?;
        let envelope: Envelope = serde_json::from_slice(body)
            .map_err(|error| malformed(format!("not an event envelope: {error}")))?;
        let encrypt = envelope
            .encrypt
            .ok_or_else(|| malformed("event envelope without encrypt".to_owned()))?;
        if !signature_matches(&signature, &[&self.token, &timestamp, &nonce, &encrypt]) {
            return Err(AdapterError::BadSignature);
        }
        check_window(parse_millis(&timestamp)?, now_ms, self.window_ms)?;
        let plaintext = self.crypt.decrypt(&encrypt).map_err(crypt_error)?;
        let fields: Map<String, Value> = serde_json::from_slice(&plaintext)
            .map_err(|error| malformed(format!("decrypted event is not JSON: {error}")))?;
        let event_type = fields
            .get("EventType")
            .and_then(Value::as_str)
            .filter(|event_type| !event_type.is_empty())
            .ok_or_else(|| malformed("event without EventType".to_owned()))?
            .to_owned();
        Ok(Event { event_type, fields })
    }

    /// The answer to every event: `{"msg_signature","timeStamp","nonce","encrypt"}` with
    /// `encrypt` = the encrypted `success` (a plain `success` fails with errcode 71009).
    pub fn success_reply(&self, timestamp_ms: &str, nonce: &str, random: &[u8; 16]) -> String {
        self.crypt
            .encrypt_reply_json(b"success", timestamp_ms, nonce, random)
    }
}

/// A parameter DingTalk spells two ways. Both present is refused rather than guessed at.
fn either(
    first: Option<String>,
    second: Option<String>,
    name: &'static str,
) -> Result<String, AdapterError> {
    match (first, second) {
        (Some(_), Some(_)) => Err(malformed(format!("{name} given under both its spellings"))),
        (Some(value), None) | (None, Some(value)) => Ok(value),
        (None, None) => Err(AdapterError::MissingParameter(name)),
    }
}

fn query_error(error: botgate_wxcrypt::CallbackError) -> AdapterError {
    match error {
        botgate_wxcrypt::CallbackError::TooLarge => AdapterError::TooLarge,
        other => malformed(other.to_string()),
    }
}

fn crypt_error(error: CryptError) -> AdapterError {
    match error {
        CryptError::WrongReceiver => AdapterError::WrongReceiver,
        CryptError::BadSignature => AdapterError::BadSignature,
        other => AdapterError::Decrypt(other.to_string()),
    }
}

fn malformed(reason: String) -> AdapterError {
    AdapterError::Malformed(reason)
}

impl fmt::Debug for EventSubscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventSubscription")
            .field("token", &"<redacted>")
            .field("crypt", &self.crypt)
            .field("window_ms", &self.window_ms)
            .finish()
    }
}
